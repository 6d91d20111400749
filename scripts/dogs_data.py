"""A second set to check trained models on: the dogs of imagenet-val-dev (ImageNet classes 151-268).

Writes OUT/train (dog/: the dogs at even positions of dev.txt; background/: up to 200 other photos of the
even positions) and OUT/voc, a VOC folder whose image list alternates even-half dogs (eval's calib
positions) and odd-half dogs (its test positions), every box named "dog"; photos are links.

    python scripts/dogs_data.py /tmp/dogs
    python -m fol_core train /tmp/dogs/train --out models/dogs --threads 1
    python -m fol_core eval /tmp/dogs/voc --model models/dogs --methods cam,mscam --calibrate
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from fol_core.imagenet import classes

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "imagenet-val-dev"
DOGS = range(151, 269)
NAME = re.compile(r"<name>\w+</name>")


def link(target: Path, link_path: Path) -> None:
    if not link_path.exists():
        link_path.symlink_to(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--negatives", type=int, default=200)
    parser.add_argument("--data", default=str(SHARED))
    args = parser.parse_args()
    data, out = Path(args.data), Path(args.out)
    wnids = {c.wnid for c in classes() if c.index in DOGS}
    ids = (data / "ImageSets/Main/dev.txt").read_text().split()

    def is_dog(name: str) -> bool:
        return bool(set(re.findall(r"<name>(\w+)</name>", (data / "Annotations" / f"{name}.xml").read_text())) & wnids)

    even = [i for i in ids[0::2] if is_dog(i)]
    odd = [i for i in ids[1::2] if is_dog(i)]
    negatives = [i for i in ids[0::2] if not is_dog(i)][: args.negatives]
    for folder, names in (("dog", even), ("background", negatives)):
        (out / "train" / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            link(data / "JPEGImages" / f"{name}.JPEG", out / "train" / folder / f"{name}.JPEG")
    voc = out / "voc"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    order = [name for pair in zip(even, odd) for name in pair]
    for name in order:
        link(data / "JPEGImages" / f"{name}.JPEG", voc / "JPEGImages" / f"{name}.JPEG")
        xml = (data / "Annotations" / f"{name}.xml").read_text()
        (voc / "Annotations" / f"{name}.xml").write_text(NAME.sub("<name>dog</name>", xml))
    (voc / "ImageSets/Main/all.txt").write_text("\n".join(order) + "\n")
    print(f"{out}: train {len(even)} dogs + {len(negatives)} background; voc {len(order)} dogs "
          f"({len(order) // 2} calib, {len(order) // 2} test)")


if __name__ == "__main__":
    main()
