"""Fit the foreground probe an ImageNet model ships (`fol_core/data/MODEL.foreground.safetensors`).

Its labels are the confident pixels of mscam's spread class maps on the dev set's calibration half, each photo
explained as its image label: no box is read. Usage (what made the shipped probe):
    PYTHONPATH=. python scripts/fit_foreground.py ../shared/data/imagenet-val-dev --split calib
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F

from fol_core.evaluation.dataset import load_dataset, split_ids
from fol_core.evaluation.evaluate import _photos, target_class
from fol_core.foreground import ForegroundHead, head_path
from fol_core.formats import voc
from fol_core.guided import capture_output
from fol_core.methods import create_method
from fol_core.models import DEFAULT_MODEL, load_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a Pascal VOC folder whose object names are ImageNet WordNet ids")
    parser.add_argument("--split", default="calib", choices=("calib", "test", "all"))
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--out", default=None, help="default: the file the model ships")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    clf = load_model(args.model)
    layers = (clf.spec.affinity_layer, clf.spec.cam_layer)
    method = create_method("mscam", clf, foreground=0)
    data = load_dataset(args.data, split_ids(voc.image_ids(args.data, None), args.split))
    examples = []
    for photo, group in _photos(data.samples, "fit", True):
        with capture_output(clf.layer(layers[0])) as fine, capture_output(clf.layer(layers[1])) as coarse:
            fp = method.forward(method.pixels(photo))
        heat = torch.from_numpy(method.heatmap_of(fp, target_class(fp.probs, group[0].classes)))
        on_grid = F.interpolate(heat[None, None], size=fine[-1].shape[-2:], mode="area")[0, 0]
        examples.append((ForegroundHead.pixels(fine[-1][0], coarse[-1][0]), on_grid))
    head = ForegroundHead.fit(layers, examples)
    out = args.out or head_path(clf.name)
    head.save(out)
    print(f"{out}: a probe on {layers[0]} + {layers[1]} from {len(examples)} photos")
    return 0


if __name__ == "__main__":
    sys.exit(main())
