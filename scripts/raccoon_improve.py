"""The `improve` curve on raccoon-dev's test half: pre-label its 50 photos with a trained model, let a simulated
reviewer accept the true boxes of the first N, improve, and score the top box on the images not reviewed.

    python scripts/raccoon_improve.py models/raccoon --method cam --counts 10,20,40 --out /tmp/improve
    python scripts/raccoon_improve.py models/raccoon --params '{"threshold": 0.3}' ...   # not the default
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from fol_core.bootstrap.prelabel import open_run, run_prelabel
from fol_core.bootstrap.project import Action
from fol_core.evaluation.dataset import load_dataset, split_ids
from fol_core.evaluation.metrics import iou_matrix
from fol_core.formats import voc
from fol_core.models import load_model
from fol_core.result import Box
from fol_core.training.improve import improve, top_box

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "raccoon-dev"


def top_box_loc(project, truth: dict[str, np.ndarray], keys: set[str]) -> float:
    hits = []
    for r in project.images():
        if r.key in keys:
            b = top_box(r.proposals)
            hits.append(bool(b) and iou_matrix(np.array([[b.x0, b.y0, b.x1, b.y1]]), truth[r.key]).max() >= 0.5)
    return float(np.mean(hits))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--method", default="cam")
    parser.add_argument("--params", default="{}", help="JSON of method parameters for the pre-labeling")
    parser.add_argument("--counts", default="10,20,40")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    samples = load_dataset(DATA, split_ids(voc.image_ids(DATA), "test"), {"raccoon": (0,)}).samples
    src = Path(args.out) / "photos"
    src.mkdir(parents=True, exist_ok=True)
    for s in samples:
        if not (src / s.path.name).exists():
            (src / s.path.name).symlink_to(s.path)
    truth = {s.path.name: s.boxes for s in samples}
    model = load_model(args.model)
    rows = []
    for n in [int(c) for c in args.counts.split(",")]:
        folder = Path(args.out) / f"project-{n}"
        shutil.rmtree(folder, ignore_errors=True)
        project, _ = open_run(str(src), str(folder))
        run_prelabel(project, model, args.method, json.loads(args.params))
        records = project.images()
        reviewed = {r.key for r in records[:n]}
        rest = {r.key for r in records} - reviewed
        before = top_box_loc(project, truth, rest)
        for r in records[:n]:
            project.decide(r.id, Action.ACCEPT, [Box(*b, "raccoon", 0, 1.0, "manual") for b in truth[r.key]])
        decided = {r.id: (r.review, r.boxes) for r in project.images() if r.review}
        learned = improve(project, log=lambda s: print(s, file=sys.stderr))
        assert decided == {r.id: (r.review, r.boxes) for r in project.images() if r.review}  # decisions untouched
        after = top_box_loc(project, truth, rest)
        rows.append({"accepted": n, "remaining": len(rest), "before": round(before, 4), "after": round(after, 4),
                     "param": learned.param, "value": learned.value, "refined": learned.refinement is not None})
        print(json.dumps(rows[-1]), flush=True)
        project.close()


if __name__ == "__main__":
    main()
