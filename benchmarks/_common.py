"""Helpers shared by the benchmark scripts: a scratch database and timing statistics."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import datagen
import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from ahashdb import HashStore
from ahashdb.config import database_url, libpq_url


def scratch_database(url: str | None, name: str) -> str:
    """(Re)create database ``name`` on the server of ``url`` (default: embedded); its URL."""
    base = database_url(url)
    admin = make_url(libpq_url(base)).set(database="postgres")
    admin_url = admin.render_as_string(hide_password=False)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return admin.set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    """Drop the database a scratch URL names."""
    u = make_url(url)
    admin_url = u.set(database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(u.database))
        )


@contextmanager
def clustered_database(url: str | None, name: str, rows: int, companies: int) -> Iterator[str]:
    """Scratch database ``name`` at the head revision, holding ``rows`` of the search
    benchmark's clustered data in ``companies`` companies (bulk-loaded); dropped after."""
    made = scratch_database(url, name)
    try:
        with HashStore(made, auto_migrate=True) as store:
            store.insert_many(datagen.rows(*datagen.clustered(rows, companies)), bulk=True)
        yield made
    finally:
        drop_database(made)


def stored_queries(conn: psycopg.Connection, n: int) -> list[tuple[int, int]]:
    """``n`` stored ``(hash, company_id)`` pairs, the same ones for the same data every run."""
    conn.execute("SELECT setseed(0.42)")
    return conn.execute("SELECT hash, company_id FROM image_hashes ORDER BY random() LIMIT %s",
                        (n,)).fetchall()


def timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    """(seconds, result) of one call of ``fn(*args)``."""
    t = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t, result


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of values, nearest-rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def ms(seconds: float) -> str:
    """Seconds as a short millisecond figure."""
    return f"{seconds * 1000:.2f}" if seconds < 0.1 else f"{seconds * 1000:.0f}"


def summary(values: list[float]) -> tuple[float, float]:
    """(p50, p95) of timings."""
    return statistics.median(values), pct(values, 0.95)
