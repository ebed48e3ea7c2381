"""Rendering result rows as table, json, nl (JSON lines) or csv; json and nl stream."""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any, TextIO


class Format(StrEnum):
    """Output formats shared by every command that prints rows."""

    table = "table"
    json = "json"
    nl = "nl"
    csv = "csv"


def render(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    fmt: Format,
    out: TextIO | None = None,
) -> int:
    """Write rows in ``fmt``; returns how many were written. Only ``table`` buffers."""
    out = out or sys.stdout
    n = 0
    if fmt is Format.json:
        out.write("[")
        for n, row in enumerate(rows, 1):
            out.write(("\n  " if n == 1 else ",\n  ") + json.dumps({c: row[c] for c in columns}))
        out.write("\n]\n" if n else "]\n")
    elif fmt is Format.nl:
        for row in rows:
            out.write(json.dumps({c: row[c] for c in columns}) + "\n")
            n += 1
    elif fmt is Format.csv:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_cell(row[c]) for c in columns])
            n += 1
    else:
        materialized = [[_cell(row[c]) for c in columns] for row in rows]
        n = len(materialized)
        widths = [max([len(c)] + [len(r[i]) for r in materialized]) for i, c in enumerate(columns)]
        numeric = [
            bool(materialized) and all(_is_number(r[i]) for r in materialized)
            for i in range(len(columns))
        ]

        def line(cells: Sequence[str]) -> str:
            return "  ".join(
                (cell.rjust(w) if num else cell.ljust(w))
                for cell, w, num in zip(cells, widths, numeric, strict=True)
            ).rstrip()

        out.write(line(list(columns)) + "\n")
        out.write(line(["-" * w for w in widths]) + "\n")
        for r in materialized:
            out.write(line(r) + "\n")
    out.flush()
    return n


def render_object(obj: Mapping[str, Any], fmt: Format, out: TextIO | None = None) -> None:
    """Write one object (a report such as stats): indented JSON for ``json``, one line for
    ``nl``. Keys that are not strings become strings, as JSON needs."""
    out = out or sys.stdout
    out.write(json.dumps(obj, indent=2 if fmt is Format.json else None, default=str) + "\n")
    out.flush()


# C0 and C1 control characters (escape sequences start with ESC or CSI), and DEL.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _cell(value: Any) -> str:
    """A table cell: one line, and no control character reaches the terminal (a stored
    ``source`` could otherwise move the cursor, recolour or retitle it)."""
    if value is None:
        return ""
    return _CONTROL.sub(lambda m: "\\n" if m.group() == "\n" else f"\\x{ord(m.group()):02x}",
                        str(value))


def _csv_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text: a string starting with = + - @ or a
    tab/CR (a formula, to Excel and LibreOffice) gets a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _is_number(text: str) -> bool:
    return text.lstrip("-").isdigit()
