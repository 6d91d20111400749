"""Choose `--method wsddn`'s settings on raccoon-dev's even half (the training photos; the test half is scored
once, by raccoon_eval.py): top box, all-raccoon recall and boxes per photo for each score and area weight (NMS
IoU 0.3, score ratio 0.5, at most 5 boxes: the defaults).

    PYTHONPATH=. python scripts/raccoon_wsddn_grid.py models/raccoon-oicr
"""

from __future__ import annotations

import itertools
import json
import sys

import torch
from raccoon_eval import run

torch.set_num_threads(1)
for score, area in itertools.product(("seed", "oicr"), (0.4, 0.5, 0.6)):
    params = {"score": score, "area_weight": area}
    r = run(sys.argv[1], "wsddn", params, split="calib")
    print(json.dumps({**params, **{k: r[k] for k in ("top_box_loc", "recall", "boxes_per_image")}}), flush=True)
