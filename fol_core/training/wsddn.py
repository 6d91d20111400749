"""Train OICR's refinement streams (methods/wsddn.py) on the frozen backbone's region features.

Each image's feature map, proposals, seed scores and region features are computed once (the backbone is
frozen), cached in the run's partial folder (a resumed run skips them), then the K streams are trained
together: stream 1 on pseudo-labels from the seed scores, stream k on those from stream k - 1's scores
(OICR's online refinement), with the pseudo-label-weighted cross-entropy over regions. Negative images
teach every stream that all their regions are background.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..methods.wsddn import (
    AREA_WEIGHT,
    FG_IOU,
    TOP_RATIO,
    TOPS,
    OICRHead,
    class_maps,
    pseudo_labels,
    region_features,
    seeded_proposals,
)
from ..models import Classifier

CACHE = "wsddn_cache.pt"
PROPOSAL_NOTES = {"selective_search": "; OpenCV's selective search (fast) on the model's input, sides >= 10%",
                  "windows": "; sliding windows (sides 30-80%, ratios 1:2, 1:1, 2:1, half-box stride)"}
EPOCHS = 30
IMAGES_PER_STEP = 8


@torch.no_grad()
def image_regions(clf: Classifier, cam_weight: torch.Tensor, pixels: torch.Tensor,
                  kinds: tuple[str, ...] = ("heatmaps",)) -> dict[str, torch.Tensor]:
    """One (3, S, S) image in [0, 1]: its proposals (R, 4), their seed scores (R, classes) and features."""
    activation = clf.net.forward_features(clf.normalize(pixels[None]))[0]
    boxes, seed = seeded_proposals(activation, class_maps(activation, cam_weight), pixels, kinds,
                                  AREA_WEIGHT.default)
    return {"boxes": boxes, "seed": seed, "feats": region_features(activation, boxes, pixels.shape[-1])}


def _regions(clf: Classifier, cam_weight: torch.Tensor, items: list, size: int,
             kinds: tuple[str, ...]) -> list[dict[str, torch.Tensor]]:
    out = []
    for _, pixels in items:
        x = pixels.float()[None] / 255.0
        if x.shape[-1] != size:
            x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out.append(image_regions(clf, cam_weight, x[0], kinds))
    return out


def oicr_loss(head: OICRHead, region: dict[str, torch.Tensor], positives: torch.Tensor) -> torch.Tensor:
    """The streams' summed loss on one image: each stream's weighted cross-entropy against the pseudo-labels
    of the stream before it (the seed scores for the first)."""
    previous, loss = region["seed"], torch.zeros(())
    for logits in head.streams(region["feats"]):
        labels, weights = pseudo_labels(previous, region["boxes"], positives)
        loss = loss + (nn.functional.cross_entropy(logits, labels, reduction="none") * weights).mean()
        previous = logits.softmax(1)[:, :-1].detach()
    return loss


def train_wsddn(clf: Classifier, cam_head: nn.Linear, train_items: list, val_items: list,
                classes: list[str], partial: Path, settings: Any, log: Callable[[str], None]
                ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The trained streams' tensors, and what the card says about them."""
    start = time.perf_counter()
    size = clf.input_size
    cache = partial / CACHE
    y_train = torch.tensor([[c in e.labels for c in classes] for e, _ in train_items])
    y_val = torch.tensor([[c in e.labels for c in classes] for e, _ in val_items])
    if cache.is_file():
        saved = torch.load(cache, map_location="cpu", weights_only=True)
        train_regions, val_regions = saved["train"], saved["val"]
        log("OICR: region features from the checkpoint")
    else:
        weight = cam_head.weight.detach()
        kinds = tuple(settings.proposals)
        train_regions = _regions(clf, weight, train_items, size, kinds)
        val_regions = _regions(clf, weight, val_items, size, kinds)
        torch.save({"train": train_regions, "val": val_regions}, cache)
    per_image = sum(len(r["boxes"]) for r in train_regions) / len(train_regions)
    log(f"OICR: {per_image:.0f} proposals per image on average")
    torch.manual_seed(settings.seed)
    head = OICRHead(train_regions[0]["feats"].shape[1], len(classes), settings.refine)
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=1e-3)
    for _ in range(EPOCHS):
        head.train()
        order = torch.randperm(len(train_regions)).tolist()
        for i in range(0, len(order), IMAGES_PER_STEP):
            idx = order[i:i + IMAGES_PER_STEP]
            loss = sum(oicr_loss(head, train_regions[j], y_train[j]) for j in idx) / len(idx)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    head.eval()
    with torch.no_grad():
        val_loss = float(sum(oicr_loss(head, r, y) for r, y in zip(val_regions, y_val, strict=True)) / len(val_regions))
    seconds = round(time.perf_counter() - start, 1)
    log(f"OICR: {settings.refine} streams, held-out pseudo-label loss {val_loss:.4f}, {seconds:.0f} s")
    card = {"proposals": "the classifier's heatmaps (CAM per class, mean activation) at thresholds 0.1-0.7"
                         + "".join(PROPOSAL_NOTES[k] for k in settings.proposals if k in PROPOSAL_NOTES),
            "proposal_kinds": list(settings.proposals),
            "region_features": "roi_align on the last feature map inside and outside the box (2 x 2, averaged) "
                               "+ box geometry",
            "seed": f"share of the class's CAM mass inside the box - {AREA_WEIGHT.default} x its share of the photo",
            "head": f"OICR: {settings.refine} refinement streams ((classes + background)-way linear), stream 1 "
                    f"on the seed's pseudo-labels; pseudo-objects: the best {TOPS} regions per class after NMS "
                    f"scoring >= {TOP_RATIO} x the best, IoU >= {FG_IOU} takes their class",
            "epochs": EPOCHS, "proposals_per_image": round(per_image, 1), "seconds": seconds,
            "val_pseudo_label_loss": round(val_loss, 5)}
    return head.tensors(), {"card": card, "metrics": {"oicr_val_loss": round(val_loss, 5)}}
