"""Which threshold each hash needs: aHash, pHash, dHash and wHash on real photos and the
edits users make, measured in one run.

    python benchmarks/algorithms.py
    python benchmarks/algorithms.py --max-threshold 20

Takes the photographs scikit-image ships (the dev extra installs it), makes edited JPEG
copies of each (half size, JPEG quality 25, blur, brighter, lower contrast, 10% crop, a 10%
letterbox border, a 5° rotation, a caption bar, 4:3 squeeze), and labels every original
with its own copies "same" and every pair of different photos (originals and copies)
"different". For each algorithm it prints the threshold with the best F1 (what
``ahashdb eval`` would choose) and the largest threshold whose false-match rate among
different photos is no higher than aHash's at T = 10 (the usual aHash rule): that one is
``DEFAULT_MAX_DISTANCE``, the threshold a search uses when given none. Then the recall of
each edit at that default. No database.
"""

from __future__ import annotations

import argparse
import io
import itertools
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent))

from orientations import photos  # noqa: E402

from ahashdb.evaluate import best, score  # noqa: E402
from ahashdb.hashes import ALGORITHMS, DEFAULT_MAX_DISTANCE, hash_image  # noqa: E402


def _crop(img: Image.Image) -> Image.Image:
    w, h = img.size
    return img.crop((w // 20, h // 20, w - w // 20, h - h // 20))


def _caption(img: Image.Image) -> Image.Image:
    out = img.copy()
    w, h = out.size
    ImageDraw.Draw(out).rectangle((0, h - h // 8, w, h), fill=(255, 255, 255))
    return out


EDITS = {
    "half_size": lambda im: im.resize((max(1, im.width // 2), max(1, im.height // 2))),
    "jpeg_q25": lambda im: im,  # saved at quality 25 below
    "blur": lambda im: im.filter(ImageFilter.GaussianBlur(1.5)),
    "brighter": lambda im: ImageEnhance.Brightness(im).enhance(1.3),
    "low_contrast": lambda im: ImageEnhance.Contrast(im).enhance(0.7),
    "crop_10pct": _crop,
    "letterbox_10pct": lambda im: ImageOps.expand(im, border=max(1, im.height // 10), fill=0),
    "rotate_5deg": lambda im: im.rotate(5, expand=False),
    "caption_bar": _caption,
    "squeeze_4_3": lambda im: im.resize((im.width, max(1, im.height * 3 // 4))),
}


def jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-threshold", type=int, default=24)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    originals: list[bytes] = []
    copies: list[tuple[int, str, bytes]] = []  # (photo index, edit, JPEG)
    for i, path in enumerate(photos()):
        with Image.open(path) as img:
            rgb = img.convert("RGB")
        originals.append(jpeg(rgb, 95))
        for name, edit in EDITS.items():
            copies.append((i, name, jpeg(edit(rgb), 25 if name == "jpeg_q25" else 85)))
    n = len(originals)
    print(f"{n} photos, {len(copies)} edited copies ({len(EDITS)} edits each);"
          f" same pairs: {len(copies)}, different pairs:"
          f" {n * (n - 1) // 2 + len(copies) * (n - 1)}")
    print(f"{'algorithm':<10}{'best-F1 T':>10}{'F1':>7}{'recall':>8}{'false':>7}"
          f"{'same-FP T':>10}{'recall':>8}{'false':>7}{'default':>8}"
          "  recall per edit at the same-FP T")
    reference: float | None = None
    for alg in ALGORITHMS:
        orig = [hash_image(data, alg) for data in originals]
        cop = [(i, name, hash_image(data, alg)) for i, name, data in copies]
        measured: list[tuple[int, bool]] = []
        per_edit: dict[str, list[int]] = {name: [] for name in EDITS}
        for i, name, h in cop:
            d = (orig[i] ^ h).bit_count()
            measured.append((d, True))
            per_edit[name].append(d)
            measured += [((orig[j] ^ h).bit_count(), False) for j in range(n) if j != i]
        measured += [((a ^ b).bit_count(), False) for a, b in itertools.combinations(orig, 2)]
        scores = score(alg, measured, args.max_threshold)
        top = best(scores)
        if reference is None:  # aHash comes first: its rate at T=10 is the yardstick
            reference = scores[10].fp / (scores[10].fp + scores[10].tn)
        same_fp = max((s for s in scores if s.fp / (s.fp + s.tn) <= reference),
                      key=lambda s: s.threshold)
        recalls = ", ".join(
            f"{name} {sum(d <= same_fp.threshold for d in ds) / len(ds):.0%}"
            for name, ds in per_edit.items())
        print(f"{alg:<10}{top.threshold:>10}{top.f1:>7.3f}{top.recall:>8.1%}{top.fp:>7}"
              f"{same_fp.threshold:>10}{same_fp.recall:>8.1%}{same_fp.fp:>7}"
              f"{DEFAULT_MAX_DISTANCE[alg]:>8}  {recalls}")
    print(f"false = false matches among {top.fp + top.tn} different pairs;"
          f" aHash's rate at T=10: {reference:.2%}")
    print(f"({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
