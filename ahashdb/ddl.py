"""The schema's facts that both runtime code and tests need as plain SQL text: how a hash
is cut into the four search chunks, the DDL of image_hashes' indexes, and the row-level
security policy. (No SQLAlchemy here: the CLI imports this at start-up.)

The migrations hold their own frozen copies of this text, as Alembic's replaceable-objects
recipe wants; tests check that the head revision leaves exactly what is written here.
"""

from __future__ import annotations

__all__ = [
    "CHUNKS",
    "CHUNK_INDEXES",
    "CHUNK_TERMS",
    "INDEX_DDL",
    "RLS_DISABLE",
    "RLS_DISABLE_STATEMENTS",
    "RLS_ENABLE",
    "RLS_ENABLE_STATEMENTS",
    "RLS_ENABLE_STRICT",
    "RLS_ENABLE_STRICT_STATEMENTS",
    "chunk_sql",
    "chunk_values",
]

CHUNKS = 4

#: How the 64 bits are dealt into the four 16-bit chunks of the search indexes (migration
#: 0007). Chunk i holds the 16 grid cells (row r, column c) of the 8x8 aHash grid with
#: (r + c) % 4 == i: two cells of every row, one column further in each next row, so no two
#: of its bits are side by side or one above the other. (Whole rows made each chunk nearly
#: constant on smooth images, and popular chunk values make many candidates.) Each chunk is
#: the OR of its terms ``(hash >> shift) & mask``, a negative shift shifting left; which of
#: the 16 positions a cell takes is arbitrary but fixed, chosen so that few terms suffice.
CHUNK_TERMS: tuple[tuple[tuple[int, int], ...], ...] = (
    ((-9, 34816), (6, 17544), (25, 8772), (40, 4386), (59, 17)),
    ((-2, 17544), (17, 8772), (32, 4386), (40, 34816), (58, 17)),
    ((-11, 34816), (8, 17544), (23, 8772), (42, 4386), (57, 17)),
    ((0, 17544), (15, 8772), (24, 34816), (41, 4386), (56, 17)),
)


def chunk_sql(i: int, value: str = "hash") -> str:
    """SQL for chunk ``i`` of the BIGINT expression ``value`` (an integer 0..65535)."""
    terms = []
    for shift, mask in CHUNK_TERMS[i]:
        moved = value if shift == 0 else (
            f"({value} >> {shift})" if shift > 0 else f"({value} << {-shift})")
        terms.append(f"({moved} & {mask})")
    return f"({' | '.join(terms)})::integer"


def chunk_values(value: int) -> tuple[int, ...]:
    """The four chunk values of a hash (any spelling's int, signed or unsigned), as the
    generated columns ``c0``..``c3`` hold them."""
    h = value & ((1 << 64) - 1)
    return tuple(
        sum(((h >> s) if s >= 0 else (h << -s)) & m for s, m in terms)
        for terms in CHUNK_TERMS
    )


# The search indexes: one B-tree per chunk, keyed (c_i, algorithm_code, company_id) and
# covering hash and meta_id, so the exact distance is checked on index tuples alone. New
# rows land all over them (chunk keys are spread on purpose): leaf pages left 20% free take
# them without splitting, where 90% full pages each split in two.
CHUNK_FILLFACTOR = 80
CHUNK_INDEXES = tuple(f"image_hashes_c{i}_idx" for i in range(CHUNKS))
CHUNK_INDEX_KEY = ("algorithm_code", "company_id")
CHUNK_INDEX_INCLUDE = ("hash", "meta_id")
PRIMARY_KEY = ("company_id", "meta_id", "algorithm", "hash")

#: The DDL of image_hashes' indexes as the head revision creates them, by index name: what
#: bulk loads and ``partition`` rebuild (a test checks the migrations leave exactly these).
INDEX_DDL: dict[str, str] = {
    "image_hashes_pkey": "ALTER TABLE image_hashes ADD CONSTRAINT image_hashes_pkey"
    f" PRIMARY KEY ({', '.join(PRIMARY_KEY)})",
    **{
        name: f"CREATE INDEX {name} ON image_hashes (c{i}, {', '.join(CHUNK_INDEX_KEY)})"
        f" INCLUDE ({', '.join(CHUNK_INDEX_INCLUDE)}) WITH (fillfactor = {CHUNK_FILLFACTOR})"
        for i, name in enumerate(CHUNK_INDEXES)
    },
}

# Row-level security ("trusted application" mode): a role other than the owner sees the rows
# of the company in the session setting ahashdb.company_id, and none without it.
_TENANT = "company_id = NULLIF(current_setting('ahashdb.company_id', true), '')::bigint"
#: The tables that hold one company's rows, each kept to its company by the same policy.
TENANT_TABLES = ("image_hashes", "ahash_decisions", "ahash_sources")


def _rls(condition: str | None, force: bool) -> tuple[str, ...]:
    statements = []
    for table in TENANT_TABLES:
        statements.append(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;" if condition
                          else "")
        statements.append(f"ALTER TABLE {table} {'' if force else 'NO '}FORCE ROW LEVEL"
                          " SECURITY;")
        statements.append(f"DROP POLICY IF EXISTS ahashdb_tenant ON {table};")
        if condition:
            statements.append(f"CREATE POLICY ahashdb_tenant ON {table} USING ({condition})"
                              f" WITH CHECK ({condition});")
        else:
            statements.append(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;")
    return tuple(s for s in statements if s)


def _script(statements: tuple[str, ...]) -> str:
    return "\n" + "\n".join(statements) + "\n"


# Each mode as its statements (run one at a time: Citus propagates one command per
# statement) and as one script.
RLS_ENABLE_STATEMENTS = _rls(_TENANT, force=False)
RLS_DISABLE_STATEMENTS = _rls(None, force=False)
#: Turns row-level security on for the tenant tables (idempotent).
RLS_ENABLE = _script(RLS_ENABLE_STATEMENTS)
#: Turns it off again.
RLS_DISABLE = _script(RLS_DISABLE_STATEMENTS)

# Strict mode: the company is the one ahash_login('<key>') bound the current transaction
# to, which no role can set by itself (schema 0011); forced on the table's owner as well
# (superusers and BYPASSRLS roles still bypass it). The sub-select makes it one call per
# statement, not one per row.
_BOUND = "company_id = (SELECT ahash_bound_company())"
RLS_ENABLE_STRICT_STATEMENTS = _rls(_BOUND, force=True)
#: Turns strict row-level security on (idempotent; replaces trusted mode).
RLS_ENABLE_STRICT = _script(RLS_ENABLE_STRICT_STATEMENTS)
