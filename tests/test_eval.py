"""ahashdb eval: precision/recall/F1 per threshold from labelled pairs, on real photos."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from ahashdb.cli import app
from ahashdb.evaluate import best, score
from tests.test_real_photos import READABLE

runner = CliRunner()


def test_scores_and_the_chosen_threshold() -> None:
    measured = [(0, True), (3, True), (5, False), (8, True), (12, False)]
    s = {x.threshold: x for x in score("ahash", measured, 16)}
    assert (s[3].tp, s[3].fp, s[3].fn, s[3].tn) == (2, 0, 1, 2)
    assert s[3].precision == 1.0 and round(s[3].f1, 4) == 0.8
    assert (s[8].precision, s[8].recall) == (0.75, 1.0)
    assert best(list(s.values())).threshold == 8  # best F1; the smallest of 8..11
    assert s[16].precision == 0.6 and s[16].recall == 1.0


def test_eval_on_real_photos_prefers_a_threshold_that_separates_copies(tmp_path: Path) -> None:
    rows = []
    photos = READABLE[:10]
    for i, p in enumerate(photos):
        with Image.open(p) as img:
            copy = img.convert("RGB").resize((img.width // 2 + 1, img.height // 2 + 1))
            copy.save(tmp_path / f"copy{i}.jpg", quality=70)
        rows.append([str(p), f"copy{i}.jpg", "same"])
        rows.append([str(p), str(photos[(i + 1) % len(photos)]), "different"])
    rows.append([str(photos[0]), "missing.jpg", "same"])
    pairs = tmp_path / "pairs.csv"
    with open(pairs, "w", newline="") as f:
        csv.writer(f).writerows([["image_a", "image_b", "label"], *rows])
    r = runner.invoke(app, ["eval", str(pairs), "-a", "ahash", "-a", "phash", "-f", "csv"])
    assert r.exit_code == 1  # the missing image
    assert r.stderr.strip() == f"{tmp_path / 'missing.jpg'}: no such file"
    table = list(csv.DictReader(io.StringIO(r.stdout)))
    assert {t["algorithm"] for t in table} == {"ahash", "phash"}
    assert len(table) == 2 * 25
    for algo in ("ahash", "phash"):
        chosen = [t for t in table if t["algorithm"] == algo and t["best"] == "True"]
        assert len(chosen) == 1
        assert float(chosen[0]["f1"]) >= 0.9, chosen
        assert int(chosen[0]["tp"]) + int(chosen[0]["fn"]) == 10  # the unreadable pair left out
    r = runner.invoke(app, ["eval", str(pairs), "-a", "ahash"])
    assert "ahash: best threshold" in r.stdout and "on 20 of 21 pairs" in r.stdout
    r = runner.invoke(app, ["eval", str(pairs), "-a", "md5"])
    assert r.exit_code == 1 and "--algorithm 'md5'" in r.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("a.jpg,b.jpg,maybe\nc.jpg,d.jpg,same\n")
    r = runner.invoke(app, ["eval", str(bad)])
    assert r.exit_code == 1 and "label 'maybe'" not in r.stderr  # line 1 is taken as a header
    bad.write_text("a.jpg,b.jpg,same\nc.jpg,d.jpg,maybe\n")
    r = runner.invoke(app, ["eval", str(bad)])
    assert r.exit_code == 1 and r.stderr.startswith(f"error: {bad}:2: label 'maybe'")
