"""Score boxes on raccoon-dev's test half (odd positions of all.txt): the top box's IoU >= 0.5 rate, and the
recall of every raccoon by any box (IoU >= 0.5). The VOC boxes are used only here, to score.

    python scripts/raccoon_eval.py --model models/raccoon --method cam           # a trained model
    python scripts/raccoon_eval.py --method fol                                  # zero-shot pre-labeler baseline

With an ImageNet model the boxes are the zero-shot pre-labeler's (its best ImageNet label, no label map);
with a trained model, those of its best class (the raccoon class).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from fol_core.bootstrap.prelabel import LabelRequest
from fol_core.engine import explain_photo
from fol_core.evaluation.dataset import load_dataset, split_ids
from fol_core.evaluation.metrics import iou_matrix
from fol_core.formats import voc
from fol_core.images import load_image
from fol_core.labelmap import LabelMap
from fol_core.methods import create_method
from fol_core.models import load_model
from fol_core.result import Box

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "raccoon-dev"


def top_box(boxes: list[Box]) -> Box | None:
    """The box a reviewer sees first: the best score, then the largest."""
    return max(boxes, key=lambda b: (round(b.score, 6), b.area), default=None)


def score(results: list[tuple[np.ndarray, list[Box]]]) -> dict:
    """Top-box IoU >= 0.5 rate, mean top-box IoU, and recall of all true boxes by any box."""
    top, found, total, ious = 0, 0, 0, []
    for truth, boxes in results:
        best = top_box(boxes)
        iou = float(iou_matrix(np.array([[best.x0, best.y0, best.x1, best.y1]]), truth).max()) if best else 0.0
        ious.append(iou)
        top += iou >= 0.5
        total += len(truth)
        if boxes:
            m = iou_matrix(np.array([[b.x0, b.y0, b.x1, b.y1] for b in boxes]), truth)
            found += int((m.max(0) >= 0.5).sum())
    n = len(results)
    return {"images": n, "top_box_loc": round(top / n, 4), "mean_top_iou": round(float(np.mean(ious)), 4),
            "recall": round(found / max(total, 1), 4), "true_boxes": total,
            "boxes_per_image": round(sum(len(b) for _, b in results) / n, 2)}


def run(model_name: str, method: str, params: dict, split: str = "test", data: Path = DATA) -> dict:
    model = load_model(model_name)
    m = create_method(method, model, **params)
    label_map = LabelMap.imagenet() if model.imagenet else LabelMap.for_classes(model.class_names, 0.0)
    ids = split_ids(voc.image_ids(data), split)
    samples = load_dataset(data, ids, {"raccoon": (0,)}).samples
    results, start = [], time.perf_counter()
    for s in samples:
        photo = load_image(s.path)
        loc = explain_photo(photo, m, LabelRequest(label_map))
        results.append((s.boxes, loc.boxes))
    out = score(results)
    out.update(model=model_name, method=method, params=params, split=split,
               seconds_per_image=round((time.perf_counter() - start) / len(samples), 3))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--method", default="fol")
    parser.add_argument("--params", default="{}", help="JSON of method parameters")
    parser.add_argument("--split", default="test")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(json.dumps(run(args.model, args.method, json.loads(args.params), args.split)))


if __name__ == "__main__":
    main()
