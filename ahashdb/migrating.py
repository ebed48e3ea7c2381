"""What the Alembic migrations share: loading an earlier migration's module, so that a
downgrade can restore the frozen SQL text of what that revision created (each revision
holds its own SQL as literal constants; none builds on another's)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

__all__ = ["earlier_migration"]


def earlier_migration(beside: str, name: str) -> ModuleType:
    """The module of migration script ``name`` (``"0007_spread_chunks.py"``) in the folder of
    ``beside`` (the calling migration's ``__file__``), loaded on its own (not imported as a
    package module, as Alembic loads them too)."""
    path = Path(beside).with_name(name)
    spec = importlib.util.spec_from_file_location(f"ahashdb_migration_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"migration script {path} cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
