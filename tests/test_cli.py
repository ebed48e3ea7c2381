"""The ahashdb command line, run for real against the test database; rows checked through
HashStore."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import imagehash
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from ahashdb import HashStore
from ahashdb.cli import app
from ahashdb.store import SCHEMA_REVISION
from tests.imagegen import encode, photo

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def run(url: str, *args: str, input: str | None = None):  # noqa: A002, ANN201
    result = runner.invoke(app, list(args), env={"AHASHDB_DATABASE_URL": url}, input=input)
    return result


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for i in range(8):
        target = folder / ("sub" if i % 2 else "") / f"{100 + i}.jpg"
        photo(i, (480, 360)).save(target, quality=90)
    return folder


def stored(store: HashStore) -> list[tuple[int, int, str]]:
    return [(c, m, h) for c, m, h in store.connection.execute(
        "SELECT company_id, meta_id, ahash_to_hex(hash) FROM image_hashes ORDER BY meta_id")]


def test_every_command_has_help_with_an_example_and_a_readme_mention() -> None:
    readme = (ROOT / "README.md").read_text()
    group = typer.main.get_command(app)
    assert hasattr(group, "commands")
    names: list[list[str]] = []
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            names += [[name, sub] for sub in cmd.commands]
        else:
            names.append([name])
    assert {"hash", "migrate", "ingest", "query", "delete", "stats"} <= {n[0] for n in names}
    for parts in names:
        result = runner.invoke(app, [*parts, "--help"])
        assert result.exit_code == 0, result.output
        assert "Example" in result.output, parts
        assert f"ahashdb {' '.join(parts)}" in readme, f"README lacks `ahashdb {' '.join(parts)}`"
    for opt in ("--database-url", "--debug", "--version"):
        assert opt in runner.invoke(app, ["--help"]).output


def test_hash_prints_hex_and_path(photos: Path) -> None:
    p = photos / "100.jpg"
    result = runner.invoke(app, ["hash", str(p)])
    assert result.exit_code == 0
    assert result.stdout == f"{imagehash.average_hash(Image.open(p))}  {p}\n"
    result = runner.invoke(app, ["hash", str(p), "--format", "json"])
    assert json.loads(result.stdout) == [{"hash": str(imagehash.average_hash(Image.open(p))),
                                          "path": str(p)}]


def test_ingest_then_query_finds_resized_copies(store: HashStore, photos: Path,
                                                tmp_path: Path) -> None:
    url = store.url
    result = run(url, "ingest", str(photos), "--company-id", "5", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert "8 added, 0 already present, 0 failed" in result.stderr
    rows = stored(store)
    assert [m for _, m, _ in rows] == list(range(100, 108))
    for c, m, h in rows:
        path = photos / ("sub" if (m - 100) % 2 else "") / f"{m}.jpg"
        assert c == 5 and h == str(imagehash.average_hash(Image.open(path)))

    for m in (100, 103, 106):
        original = photos / ("sub" if (m - 100) % 2 else "") / f"{m}.jpg"
        copy = tmp_path / f"copy{m}.jpg"
        Image.open(original).resize((240, 180)).save(copy, quality=55)
        expected = imagehash.average_hash(Image.open(original)) - imagehash.average_hash(
            Image.open(copy))
        result = run(url, "query", str(copy), "--company-id", "5", "-f", "nl")
        assert result.exit_code == 0, result.output
        hits = [json.loads(line) for line in result.stdout.splitlines()]
        mine = [h for h in hits if h["meta_id"] == m]
        assert mine and mine[0]["distance"] == expected
        assert mine[0]["query"] == str(copy) and mine[0]["source"] == str(original)
        assert [h["distance"] for h in hits] == sorted(h["distance"] for h in hits)

    again = run(url, "ingest", str(photos), "--company-id", "5")
    assert again.exit_code == 0
    assert "0 added, 8 already present, 0 failed" in again.stderr
    assert len(stored(store)) == 8


def test_mixed_folder_stores_good_files_and_names_bad_ones(
    store: HashStore, tmp_path: Path
) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(3):
        photo(i).save(folder / f"{i + 1}.png")
    jpeg = encode(photo(9), "JPEG")
    bad = {
        "10.jpg": b"",
        "11.jpg": b"just some text, not a JPEG",
        "12.jpg": jpeg[: len(jpeg) // 3],
        "13.svg": b"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'/>",
    }
    for name, data in bad.items():
        (folder / name).write_bytes(data)
    big = Image.new("L", (12000, 12000))  # 144 MP > Pillow's bomb limit, tiny as PNG
    big.save(folder / "14.png", optimize=True)
    errors_csv = tmp_path / "errors.csv"
    result = run(store.url, "ingest", str(folder), "--company-id", "1", "--errors",
                 str(errors_csv))
    assert result.exit_code == 1
    assert "3 added, 0 already present, 5 failed" in result.stderr
    lines = result.stderr.splitlines()
    for name in [*bad, "14.png"]:
        assert any(line.startswith(str(folder / name) + ": ") for line in lines), name
    assert any("decompression bomb" in line for line in lines)
    assert any("empty" in line for line in lines)
    assert "Traceback" not in result.output
    assert sorted(m for _, m, _ in stored(store)) == [1, 2, 3]
    with open(errors_csv, newline="") as f:
        assert len(list(csv.DictReader(f))) == 5


def test_manifest_csv_and_jsonl_and_meta_id_option(store: HashStore, photos: Path) -> None:
    manifest = photos / "m.csv"
    manifest.write_text("path,meta_id,source\n100.jpg,9001,s3://bucket/a\nsub/101.jpg,9002,\n")
    result = run(store.url, "ingest", "--manifest", str(manifest), "--company-id", "2")
    assert result.exit_code == 0, result.output
    jl = photos / "m.jsonl"
    jl.write_text(json.dumps({"path": str(photos / "102.jpg"), "meta_id": 9003,
                              "company_id": 3}) + "\n")
    # A row's company_id beside --company-id is refused (it would move rows into another
    # tenant) unless --allow-company-column says so.
    refused = run(store.url, "ingest", "--manifest", str(jl), "--company-id", "2")
    assert refused.exit_code == 1
    assert "has a company_id, and --company-id was given" in refused.stderr
    assert store.count(company_id=3) == 0
    assert run(store.url, "ingest", "--manifest", str(jl), "--company-id", "2",
               "--allow-company-column").exit_code == 0
    assert run(store.url, "ingest", str(photos / "104.jpg"), "--company-id", "2",
               "--meta-id", "77").exit_code == 0
    got = {(c, m, s) for c, m, s in store.connection.execute(
        "SELECT company_id, meta_id, source FROM image_hashes")}
    assert got == {(2, 9001, "s3://bucket/a"), (2, 9002, str(photos / "sub/101.jpg")),
                   (3, 9003, str(photos / "102.jpg")), (2, 77, str(photos / "104.jpg"))}


def test_paths_from_stdin_and_glob(store: HashStore, photos: Path) -> None:
    listing = f"{photos / '100.jpg'}\n{photos / 'sub' / '101.jpg'}\n"
    assert run(store.url, "ingest", "-", "--company-id", "1", input=listing).exit_code == 0
    assert run(store.url, "ingest", str(photos / "10[24].jpg"), "--company-id", "1").exit_code == 0
    assert sorted(m for _, m, _ in stored(store)) == [100, 101, 102, 104]


def test_hashes_file(store: HashStore, tmp_path: Path) -> None:
    f = tmp_path / "h.csv"
    f.write_text("hash,meta_id,company_id,source\nffd7918181c9ffff,1,4,a\n9f172786e71f1e00,2,,b\n")
    result = run(store.url, "ingest", "--hashes", str(f), "--company-id", "9")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {f}:2: this row has a company_id, and --company-id")
    assert stored(store) == []
    result = run(store.url, "ingest", "--hashes", str(f), "--company-id", "9",
                 "--allow-company-column")
    assert result.exit_code == 0, result.output
    assert stored(store) == [(4, 1, "ffd7918181c9ffff"), (9, 2, "9f172786e71f1e00")]
    bad = tmp_path / "bad.csv"
    bad.write_text("hash,meta_id\nnothex,1\n")
    result = run(store.url, "ingest", "--hashes", str(bad), "--company-id", "9")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {bad}:2: hash 'nothex'")


def test_query_by_hash_meta_id_nearest_and_formats(store: HashStore) -> None:
    store.insert_many([("ffd7918181c9ffff", 1, 1, "a"), ("ffd7918181c9fffe", 1, 2, "b"),
                       ("9f172786e71f1e00", 1, 3, "c"), ("ffd7918181c9ffff", 2, 4, "d")])
    r = run(store.url, "query", "--hash", "ffd7918181c9ffff", "--company-id", "1", "-f", "csv")
    assert r.exit_code == 0
    assert r.stdout.splitlines() == [
        "query,id,company_id,meta_id,hash,distance,source",
        "ffd7918181c9ffff,1,1,1,ffd7918181c9ffff,0,a",
        "ffd7918181c9ffff,2,1,2,ffd7918181c9fffe,1,b",
    ]
    r = run(store.url, "query", "--meta-id", "1", "--company-id", "1", "--nearest", "2",
            "-f", "json")
    assert [(h["meta_id"], h["distance"]) for h in json.loads(r.stdout)] == [(2, 1), (3, 33)]
    r = run(store.url, "query", "--hash", "ffd7918181c9ffff", "--all-companies", "-t", "0",
            "-f", "nl")
    assert [json.loads(x)["company_id"] for x in r.stdout.splitlines()] == [1, 2]
    r = run(store.url, "query", "--hash", "ffd7918181c9ffff", "--company-id", "1", "--limit", "1")
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 3  # header, rule, one row


def test_delete_and_stats(store: HashStore) -> None:
    store.insert_many([(1, 1, 10), (2, 1, 10), (3, 1, 11), (0, 2, 1)])
    r = run(store.url, "delete", "--company-id", "1", "--meta-id", "10")
    assert r.exit_code == 0 and r.stdout == "deleted 2 rows\n"
    r = run(store.url, "stats", "-f", "json")
    s = json.loads(r.stdout)
    assert s["rows"] == 2 and s["companies"] == {"1": 1, "2": 1} and s["all_zero_hashes"] == 1


def test_user_errors_are_one_line_without_traceback(store: HashStore, make_database) -> None:  # noqa: ANN001
    r = run(store.url, "query", "--hash", "xyz", "--company-id", "1")
    assert r.exit_code == 1
    assert r.stderr == "error: hash 'xyz': expected exactly 16 hex digits (0-9, a-f), got 3" \
        " characters with non-hex characters\n"
    r = run(store.url, "query", "--hash", "ffd7918181c9ffff")
    assert r.exit_code == 1 and r.stderr.startswith("error: --company-id is required")
    r = run(store.url, "query", "--hash", "ffd7918181c9ffff", "--company-id", "x")
    assert r.exit_code == 2  # not an integer: a usage error, reported by Typer
    r = run(store.url, "ingest", "/no/such/dir/1.jpg", "--company-id", "1")
    assert r.exit_code == 1 and "/no/such/dir/1.jpg: no such file" in r.stderr
    r = run("postgresql://u:hunter2@127.0.0.1:1/x", "stats")
    assert r.exit_code == 1 and "127.0.0.1:1" in r.stderr and "hunter2" not in r.output
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.output
    empty = make_database("cli_empty")
    r = run(empty, "stats")
    assert r.exit_code == 1 and "run `ahashdb migrate`" in r.stderr
    r = run(empty, "migrate", "--check")
    assert r.exit_code == 1
    r = run(empty, "migrate")
    assert r.exit_code == 0 and f"schema at revision {SCHEMA_REVISION}" in r.stdout
    assert run(empty, "migrate", "--check").exit_code == 0
    r = runner.invoke(app, ["--debug", "query", "--hash", "xyz", "--company-id", "1"],
                      env={"AHASHDB_DATABASE_URL": store.url})
    assert r.exit_code == 1 and r.exception is not None  # --debug re-raises
