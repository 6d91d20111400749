"""Lay out raccoon-dev's calibration half as a training folder: raccoon/ (its 50 photos at even positions of
all.txt) and background/ (200 imagenet-val-dev photos, from the even positions of dev.txt), as links.

    python scripts/raccoon_data.py /tmp/raccoon-train [--positives 50 --negatives 200]
"""

from __future__ import annotations

import argparse
from pathlib import Path

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--positives", type=int, default=50)
    parser.add_argument("--negatives", type=int, default=200)
    parser.add_argument("--data", default=str(SHARED))
    args = parser.parse_args()
    data, out = Path(args.data), Path(args.out)
    ids = (data / "raccoon-dev/ImageSets/Main/all.txt").read_text().split()[0::2][: args.positives]
    negs = (data / "imagenet-val-dev/ImageSets/Main/dev.txt").read_text().split()[0::2][: args.negatives]
    for folder, names, root, suffix in (("raccoon", ids, "raccoon-dev", ".jpg"),
                                        ("background", negs, "imagenet-val-dev", ".JPEG")):
        (out / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            link = out / folder / f"{name}{suffix}"
            if not link.exists():
                link.symlink_to(data / root / "JPEGImages" / f"{name}{suffix}")
    print(f"{out}: {len(ids)} raccoon, {len(negs)} background")


if __name__ == "__main__":
    main()
