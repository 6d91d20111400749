"""Train WSDDN's two-stream head (methods/wsddn.py) on the frozen backbone's region features.

Each image's feature map, proposals and region features are computed once (the backbone is frozen),
cached in the run's partial folder (a resumed run skips them), then the head is trained on them with
BCE on the image labels, with early stopping on the held-out images' loss.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..methods.wsddn import WSDDNHead, heat_maps, proposal_boxes, region_features
from ..models import Classifier

CACHE = "wsddn_cache.pt"
PROPOSAL_NOTES = {"selective_search": "; OpenCV's selective search (fast) on the model's input, sides >= 10%",
                  "windows": "; sliding windows (sides 30-80%, ratios 1:2, 1:1, 2:1, half-box stride)"}
EPOCHS = 60
PATIENCE = 8
IMAGES_PER_STEP = 8


@torch.no_grad()
def image_regions(clf: Classifier, cam_weight: torch.Tensor, pixels: torch.Tensor,
                  kinds: tuple[str, ...] = ("heatmaps",)) -> torch.Tensor:
    """(R, features) for one (3, S, S) image in [0, 1]: its proposals' region features."""
    activation = clf.net.forward_features(clf.normalize(pixels[None]))[0]
    size = pixels.shape[-1]
    boxes = torch.from_numpy(proposal_boxes(heat_maps(activation, cam_weight, size), pixels, kinds))
    return region_features(activation, boxes, size)


def _regions(clf: Classifier, cam_weight: torch.Tensor, items: list, size: int,
             kinds: tuple[str, ...]) -> list[torch.Tensor]:
    out = []
    for _, pixels in items:
        x = pixels.float()[None] / 255.0
        if x.shape[-1] != size:
            x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out.append(image_regions(clf, cam_weight, x[0], kinds))
    return out


def _loss(head: WSDDNHead, feats: list[torch.Tensor], targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The BCE of the image scores, and the scores."""
    scores = torch.stack([head.image_scores(f) for f in feats])
    return nn.functional.binary_cross_entropy(scores, targets), scores


def train_wsddn(clf: Classifier, cam_head: nn.Linear, train_items: list, val_items: list,
                classes: list[str], partial: Path, settings: Any, log: Callable[[str], None]
                ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The trained head's tensors, and what the card says about it."""
    start = time.perf_counter()
    size = clf.input_size
    cache = partial / CACHE
    y_train = torch.tensor([[float(c in e.labels) for c in classes] for e, _ in train_items])
    y_val = torch.tensor([[float(c in e.labels) for c in classes] for e, _ in val_items])
    if cache.is_file():
        saved = torch.load(cache, map_location="cpu", weights_only=True)
        train_feats, val_feats = saved["train"], saved["val"]
        log("WSDDN: region features from the checkpoint")
    else:
        weight = cam_head.weight.detach()
        kinds = tuple(settings.proposals)
        train_feats = _regions(clf, weight, train_items, size, kinds)
        val_feats = _regions(clf, weight, val_items, size, kinds)
        torch.save({"train": train_feats, "val": val_feats}, cache)
    regions = sum(len(f) for f in train_feats) / len(train_feats)
    log(f"WSDDN: {regions:.0f} proposals per image on average")
    torch.manual_seed(settings.seed)
    head = WSDDNHead(train_feats[0].shape[1], len(classes))
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=1e-3)
    best, best_loss, bad = None, float("inf"), 0
    for epoch in range(1, EPOCHS + 1):
        head.train()
        order = torch.randperm(len(train_feats)).tolist()
        for i in range(0, len(order), IMAGES_PER_STEP):
            idx = order[i:i + IMAGES_PER_STEP]
            loss, _ = _loss(head, [train_feats[j] for j in idx], y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        head.eval()
        with torch.no_grad():
            val_loss, scores = _loss(head, val_feats, y_val)
            val_loss = float(val_loss)
            accuracy = float(((scores >= 0.5) == y_val.bool()).all(1).float().mean())
        if val_loss < best_loss:
            best, best_loss, bad = {k: v.clone() for k, v in head.state_dict().items()}, val_loss, 0
            best_row = {"epoch": epoch, "val_loss": round(val_loss, 5), "val_accuracy": round(accuracy, 4)}
        else:
            bad += 1
            if bad >= PATIENCE:
                break
    head.load_state_dict(best)
    seconds = round(time.perf_counter() - start, 1)
    log(f"WSDDN: held-out loss {best_row['val_loss']:.4f}, accuracy {best_row['val_accuracy']:.1%} "
        f"(epoch {best_row['epoch']}), {seconds:.0f} s")
    card = {"proposals": "the classifier's heatmaps (CAM per class, mean activation) at thresholds 0.1-0.7"
                         + "".join(PROPOSAL_NOTES[k] for k in settings.proposals if k in PROPOSAL_NOTES),
            "proposal_kinds": list(settings.proposals),
            "region_features": "roi_align on the last feature map (2 x 2, averaged) + box geometry",
            "head": "classification softmax over classes + background x detection softmax over regions",
            "proposals_per_image": round(regions, 1), "seconds": seconds, **best_row}
    return head.tensors(), {"card": card, "metrics": {"wsddn_val_accuracy": best_row["val_accuracy"]}}
