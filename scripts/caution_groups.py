"""How right the Localize tab's caution is on the dev set: among photos whose top-1 probability is under
localize.UNSURE, how often that class is the truth, and how often the truth lies in the WordNet group the top 5
agree on (hierarchy.shared_group), for group sizes up to 20 / 60 / 130 / 400 classes, on each half.

    python -m fol_core localize ../shared/data/imagenet-val-dev/JPEGImages --out /tmp/top5
    PYTHONPATH=. python scripts/caution_groups.py /tmp/top5 ../shared/data/imagenet-val-dev
"""

from __future__ import annotations

import argparse
import json
import xml.etree.ElementTree as ET
from pathlib import Path

from fol_core import hierarchy
from fol_core.imagenet import classes
from fol_core.webapp.localize import UNSURE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="the folder of `localize`'s NAME.json files")
    parser.add_argument("dataset", help="the VOC folder whose Annotations hold each photo's class")
    args = parser.parse_args()
    root = Path(args.dataset)
    index = {c.wnid: c.index for c in classes()}
    ids = [line.split()[0] for line in next((root / "ImageSets" / "Main").glob("*.txt")).read_text().splitlines()
           if line.strip()]
    for half, chosen in (("calib", ids[0::2]), ("test", ids[1::2])):
        for size in (20, 60, 130, 400):
            hierarchy.GROUP_MAX = size
            unsure = top1 = grouped = inside = 0
            for image_id in chosen:
                top5 = json.loads((Path(args.results) / f"{image_id}.json").read_text())["top5"]
                if top5[0]["probability"] >= UNSURE:
                    continue
                truth = index[ET.parse(root / "Annotations" / f"{image_id}.xml").getroot().findtext("object/name")]
                unsure += 1
                top1 += top5[0]["class_index"] == truth
                group = hierarchy.shared_group([(t["class_index"], t["probability"]) for t in top5], UNSURE)
                if group:
                    grouped += 1
                    inside += truth in hierarchy.descendants(group[0])
            print(f"{half}, groups of at most {size} classes: {unsure} unsure photos, top-1 right for {top1}; "
                  f"{grouped} with a group, the truth in it for {inside}")


if __name__ == "__main__":
    main()
