"""Pick a threshold from your own images: precision, recall and F1 of "distance <= T" on
labelled pairs, for aHash and the other 64-bit hashes imagehash makes."""

from __future__ import annotations

import csv
import functools
import io
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import AhashdbError, ImageError, InvalidInput
from .hashes import ALGORITHMS as HASH_ALGORITHMS
from .hashes import hash_image
from .objects import clean_url, is_url

__all__ = ["ALGORITHMS", "Evaluation", "Pair", "Score", "best", "evaluate", "read_pairs", "score"]

SAME = {"same", "1", "true", "yes", "duplicate", "match"}
DIFFERENT = {"different", "0", "false", "no", "distinct", "nomatch"}


#: The 64-bit hashes compared (imagehash's functions at hash_size 8).
ALGORITHMS: dict[str, Callable[[str], int]] = {
    name: functools.partial(hash_image, algorithm=name) for name in HASH_ALGORITHMS
}


@dataclass(frozen=True)
class Pair:
    """Two images and whether they show the same picture."""

    a: str
    b: str
    same: bool


@dataclass(frozen=True)
class Score:
    """How "distance <= threshold" does on the labelled pairs."""

    algorithm: str
    threshold: int
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float:
        """Of the pairs called the same, the share that are."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        """Of the pairs that are the same, the share called the same."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def read_pairs(path: str | os.PathLike) -> list[Pair]:
    """Pairs from a CSV: two images and a label (same/different, 1/0, true/false), with or
    without a header. An image is a path (relative ones are relative to the CSV's folder),
    an object-store URL (``s3://``, ``gs://``) or a web URL."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"{p}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{p}: not UTF-8 text") from None
    pairs = []
    for n, row in enumerate(csv.reader(text.splitlines()), 1):
        if not row or not "".join(row).strip():
            continue
        if len(row) != 3:
            raise InvalidInput(f"{p}:{n}: expected 3 columns (image_a, image_b, label),"
                               f" got {len(row)}")
        a, b, label = (c.strip() for c in row)
        lab = label.lower()
        if lab not in SAME | DIFFERENT:
            if n == 1:
                continue  # a header
            raise InvalidInput(f"{p}:{n}: label {label!r}: expected same or different")
        pairs.append(Pair(*(c if is_url(c) else str(p.parent / c) for c in (a, b)),
                          lab in SAME))
    if not pairs:
        raise InvalidInput(f"{p}: no labelled pairs")
    return pairs


def download(pairs: Iterable[Pair], concurrency: int = 16) -> dict[str, bytes | str]:
    """The bytes of every object-store or web URL the pairs name, fetched once each, many
    at a time (or, for one that failed, its one-line reason)."""
    from types import SimpleNamespace

    from .objects import ObjectStore

    urls = sorted({path for pair in pairs for path in (pair.a, pair.b) if is_url(path)})
    items = [SimpleNamespace(path=url, data=None, error=None) for url in urls]
    return {item.path: item.data if item.error is None else item.error
            for item in ObjectStore().prefetch(items, concurrency)}


def distances(pairs: Iterable[Pair], algorithm: str,
              on_error: Callable[[str, str], None] | None = None,
              fetched: dict[str, bytes | str] | None = None) -> list[tuple[int, bool]]:
    """(distance, same) of every pair whose two images could be hashed; URLs' bytes come
    from ``fetched`` (see :func:`download`)."""
    fn = ALGORITHMS[algorithm]
    cache: dict[str, int | None] = {}
    fetched = fetched or {}

    def hashed(path: str) -> int | None:
        if path not in cache:
            shown = clean_url(path) if is_url(path) else path
            data = fetched.get(path)
            try:
                if isinstance(data, str):
                    raise ImageError(f"{shown}: {data}")
                cache[path] = fn(io.BytesIO(data) if data is not None else path)
            except AhashdbError as exc:
                cache[path] = None
                if on_error is not None:
                    msg = str(exc)
                    for prefix in (path + ": ", shown + ": "):
                        msg = msg[len(prefix):] if msg.startswith(prefix) else msg
                    on_error(shown, msg)
        return cache[path]

    out = []
    for pair in pairs:
        ha, hb = hashed(pair.a), hashed(pair.b)
        if ha is not None and hb is not None:
            out.append(((ha ^ hb).bit_count(), pair.same))
    return out


def score(algorithm: str, measured: list[tuple[int, bool]], max_threshold: int = 32
          ) -> list[Score]:
    """A Score per threshold 0..max_threshold."""
    out = []
    for t in range(max_threshold + 1):
        tp = sum(d <= t and s for d, s in measured)
        fp = sum(d <= t and not s for d, s in measured)
        fn = sum(d > t and s for d, s in measured)
        out.append(Score(algorithm, t, tp, fp, fn, len(measured) - tp - fp - fn))
    return out


def best(scores: list[Score]) -> Score:
    """The threshold with the highest F1 (the smallest such threshold on ties)."""
    return max(scores, key=lambda s: (round(s.f1, 12), -s.threshold))


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` found: every algorithm's scores and its best threshold."""

    pairs: int
    scores: dict[str, list[Score]]
    best: dict[str, Score]

    def rows(self) -> list[dict[str, object]]:
        """One plain row per (algorithm, threshold), ``best`` marking the chosen one."""
        return [{"algorithm": s.algorithm, "threshold": s.threshold,
                 "precision": round(s.precision, 4), "recall": round(s.recall, 4),
                 "f1": round(s.f1, 4), "tp": s.tp, "fp": s.fp, "fn": s.fn, "tn": s.tn,
                 "best": s is self.best[name]}
                for name, scores in self.scores.items() for s in scores]

    def summary(self, algorithm: str) -> str:
        """One line naming ``algorithm``'s best threshold and its figures."""
        top = self.best[algorithm]
        return (f"{algorithm}: best threshold {top.threshold} (F1 {top.f1:.3f},"
                f" precision {top.precision:.3f}, recall {top.recall:.3f}) on"
                f" {top.tp + top.fp + top.fn + top.tn} of {self.pairs} pairs")


def evaluate(pairs_csv: str | os.PathLike, algorithms: Iterable[str] | None = None,
             max_threshold: int = 24,
             on_error: Callable[[str, str], None] | None = None) -> Evaluation:
    """Precision, recall and F1 of "distance <= T" for T = 0 … ``max_threshold`` on the
    labelled pairs in ``pairs_csv``, per algorithm (default: all), and each one's best
    threshold. Images that cannot be hashed go to ``on_error(path, reason)`` and their
    pairs are left out."""
    names = list(algorithms or ALGORITHMS)
    for name in names:
        if name not in ALGORITHMS:
            raise InvalidInput(f"algorithm {name!r}: expected one of {', '.join(ALGORITHMS)}")
    pairs = read_pairs(pairs_csv)
    fetched = download(pairs)
    scores = {name: score(name, distances(pairs, name, on_error, fetched), max_threshold)
              for name in names}
    return Evaluation(len(pairs), scores, {name: best(s) for name, s in scores.items()})
