"""Choose WSDDN's proposals on raccoon-dev's even half: heatmaps, + selective search, + sliding windows.

A WSDDN head is trained on each kind over the frozen backbone and MODEL's CAM head (the training folder of
raccoon_data.py), then its boxes on the even half's photos are scored (top box, all-raccoon recall).

    PYTHONPATH=. python scripts/raccoon_proposals.py models/raccoon /tmp/raccoon-train
"""
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

torch.set_num_threads(1)
cv2.setNumThreads(1)
from torchvision.ops import nms

from fol_core.evaluation.dataset import load_dataset, split_ids
from fol_core.evaluation.metrics import iou_matrix
from fol_core.formats import voc
from fol_core.methods.wsddn import WSDDNHead, heat_maps, proposals, region_features, selective_search, sliding_windows
from fol_core.models import load_model
from fol_core.regions import scale_box
from fol_core.training.data import load_training_set

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "raccoon-dev"
clf = load_model(sys.argv[1])
W = clf.layer(clf.spec.classifier).weight.detach()
S = clf.input_size
data = load_training_set(sys.argv[2], "folders", None, 0.2, 0)
items = {}
t = time.perf_counter()
for part, es in (("train", data.train), ("val", data.val)):
    for e in es:
        photo = data.source.open(e.key)
        x = clf.to_pixels(photo)  # (1,3,S,S)
        with torch.no_grad():
            act = clf.net.forward_features(clf.normalize(x))[0]
        items[e.key] = {"part": part, "y": float(bool(e.labels)), "act": act, "pix": x[0], "maps": heat_maps(act, W, S)}
print("features", round(time.perf_counter() - t), "s", flush=True)
t = time.perf_counter()
ss = {k: selective_search(it["pix"]) for k, it in items.items()}
print("selective search", round(time.perf_counter() - t), "s", flush=True)
win = sliding_windows(S)
variants = {"heat": lambda k: [], "ss": lambda k: ss[k], "win": lambda k: win}
ids = split_ids(voc.image_ids(DATA), "calib")
samples = {s.path.stem: s for s in load_dataset(DATA, ids, {"raccoon": (0,)}).samples}
key_of = {Path(k).stem: k for k in items}

def train_head(feats, ys, parts, seed=0):
    torch.manual_seed(seed)
    tr = [i for i, p in enumerate(parts) if p == "train"]; va = [i for i, p in enumerate(parts) if p == "val"]
    y = torch.tensor(ys)[:, None]
    head = WSDDNHead(feats[0].shape[1], 1)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=1e-3)
    loss_of = lambda idx: torch.nn.functional.binary_cross_entropy(torch.stack([head.image_scores(feats[j]) for j in idx]), y[idx])
    best, bl, bad = None, 1e9, 0
    for ep in range(60):
        head.train()
        order = [tr[i] for i in torch.randperm(len(tr)).tolist()]
        for i in range(0, len(order), 8):
            l = loss_of(order[i:i + 8]); opt.zero_grad(); l.backward(); opt.step()
        head.eval()
        with torch.no_grad():
            vl = float(loss_of(va))
        if vl < bl:
            best, bl, bad = {k: v.clone() for k, v in head.state_dict().items()}, vl, 0
        else:
            bad += 1
            if bad >= 8: break
    head.load_state_dict(best); head.eval()
    return head, bl

for name, extra in variants.items():
    t = time.perf_counter()
    keys = list(items)
    boxes = {k: torch.from_numpy(proposals(items[k]["maps"], extra=extra(k))) for k in keys}
    feats = [region_features(items[k]["act"], boxes[k], S) for k in keys]
    head, vl = train_head(feats, [items[k]["y"] for k in keys], [items[k]["part"] for k in keys])
    res = {}
    for mode, nms_iou, min_ratio in [(m, 0.4, r) for m in ("both", "cls") for r in (0.1, 0.3)]:
        if True:
            top = found = total = nb = 0
            for stem, s in samples.items():
                k = key_of[stem]
                with torch.no_grad():
                    f = feats[keys.index(k)]
                    sc = {"both": head(f)[:, 0], "cls": head.cls(f).softmax(1)[:, 0], "det": head.det(f).softmax(0)[:, 0]}[mode]
                b = boxes[k]
                keep = nms(b, sc, nms_iou)
                keep = keep[sc[keep] >= min_ratio * float(sc.max())][:5]
                w, h = Image.open(s.path).size
                pb = np.array([scale_box(tuple(map(float, b[i])), S, S, w, h) for i in keep.tolist()])
                m = iou_matrix(pb, s.boxes)
                top += m[0].max() >= 0.5; found += int((m.max(0) >= 0.5).sum()); total += len(s.boxes); nb += len(pb)
            res[f"{mode}/min{min_ratio}"] = (round(top / len(samples), 3), round(found / total, 3), round(nb / len(samples), 1))
    print(name, "proposals/img", round(np.mean([len(b) for b in boxes.values()]), 1), "val loss", round(vl, 4),
          round(time.perf_counter() - t), "s", json.dumps(res), flush=True)
