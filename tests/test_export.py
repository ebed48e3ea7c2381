"""Export streams a company's hashes in a form ingest --hashes reads back; a round trip into
another database gives the same hashes, meta_ids and sources. delete --all asks first."""

from __future__ import annotations

from pathlib import Path

import pytest

from ahashdb import HashStore
from tests.test_cli import run as cli

ROWS = [(0x0123_4567_89AB_CDEF, 7, 1, "s3://bucket/a.jpg"), (0xFFD7_9181_81C9_FFFF, 7, 2, None),
        (0x0000_0000_0000_00FF, 7, 3, 'quote " comma , =formula'), (0x1, 8, 4, "other company"),
        (0x0F0F, 7, 5, "=SUM(A1)")]  # data, not a cell: exported exactly


def _stored(store: HashStore, company: int) -> list[tuple[str, int, str | None]]:
    return sorted(store.export(company_id=company))


@pytest.mark.parametrize("fmt", ["csv", "nl", "parquet"])
def test_export_then_ingest_hashes_round_trips(store: HashStore, make_database,  # noqa: ANN001
                                                tmp_path: Path, fmt: str) -> None:
    store.insert_many([(h, c, m, s) for h, c, m, s in ROWS])
    store.insert(0x5555, company_id=7, meta_id=9, algorithm="phash")  # another algorithm
    out = tmp_path / f"company7.{'jsonl' if fmt == 'nl' else fmt}"
    r = cli(store.url, "export", "--company-id", "7", "--format", fmt, "-o", str(out))
    assert r.exit_code == 0, r.output
    assert "exported 4 ahash rows of company 7" in r.stderr
    other = make_database(f"export_{fmt}")
    with HashStore(other, auto_migrate=False) as target:
        target.migrate()
    r = cli(other, "ingest", "--hashes", str(out), "--company-id", "7")
    assert r.exit_code == 0, r.output
    with HashStore(other) as target:
        assert _stored(target, 7) == _stored(store, 7)
        assert len(_stored(target, 7)) == 4 and target.count() == 4
    if fmt == "csv":
        assert out.read_text().splitlines()[0] == "hash,meta_id,source"


def test_export_to_stdout_and_delete_all_asks_first(store: HashStore) -> None:
    store.insert_many([(h, c, m, s) for h, c, m, s in ROWS])
    r = cli(store.url, "export", "--company-id", "7", "-f", "nl")
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 4
    refused = cli(store.url, "delete", "--company-id", "7", "--all")
    assert refused.exit_code == 1 and "confirm with --yes" in refused.stderr
    assert store.count(7) == 4
    done = cli(store.url, "delete", "--company-id", "7", "--all", "--yes")
    assert done.exit_code == 0 and done.stdout.strip() == "deleted 4 rows"
    assert (store.count(7), store.count(8)) == (0, 1)
