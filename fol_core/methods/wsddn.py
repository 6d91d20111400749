"""WSDDN (Bilen & Vedaldi 2016): boxes from a two-stream head over region proposals, trained on image labels.

Proposals are the classifier's own heatmaps (each class's CAM and the class-agnostic mean activation)
binarized at several thresholds, one box per region and one around each whole mask, plus the whole
photo. Each region's features are the last feature map pooled over it (torchvision's roi_align) with
its place in the photo. The classification stream is a softmax over the classes (plus a background
column, so that a one-class model with negatives can score an image below 1), the detection stream
a softmax over the regions; their product summed over the regions is the image's score (trained with
BCE on the image labels by `train --wsddn`). Boxes: the regions' scores for a class, NMS'd.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torchvision.ops import nms, roi_align

from ..models import Classifier
from ..regions import binarize, mask_box, region_boxes, scale_box
from ..result import Box, Explanation
from .base import ForwardPass, Method, upsample
from .params import LAYER, Param

THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
"""Heatmap thresholds (fractions of the maximum) the proposals are cut at."""
PREFIX = "wsddn."
"""The head's tensors in a trained model's safetensors file."""
GEOMETRY = 5
"""x0, y0, x1, y1 (fractions of the side) and the area fraction, beside the pooled features."""
MIN_SIDE = 0.1
"""Selective search boxes narrower or shorter than this fraction of the image are dropped."""
WINDOW_SCALES = (0.3, 0.45, 0.6, 0.8)
"""Sliding windows' sides, as fractions of the image's."""

NMS_IOU = Param("nms_iou", 0.4, "WSDDN: drop a region overlapping a better one this much (NMS)", low=0.05, high=0.95,
                step=0.05)
MIN_RATIO = Param("min_ratio", 0.3, "WSDDN: keep regions scoring at least this fraction of the best one", low=0.0,
                  high=1.0, step=0.05)
MAX_BOXES = Param("max_boxes", 5, "WSDDN: at most this many boxes per class", kind=int, low=1, high=50, step=1)


def selective_search(pixels: torch.Tensor, min_side: float = MIN_SIDE) -> list[tuple[float, ...]]:
    """OpenCV's selective search (fast mode) on (3, S, S) pixels in [0, 1]: boxes whose sides are at least
    min_side of the image's, in pixels."""
    import cv2

    image = np.ascontiguousarray((pixels.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)[:, :, ::-1])
    search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    search.setBaseImage(image)
    search.switchToSelectiveSearchFast()
    rects = search.process()
    side = min_side * pixels.shape[-1]
    rects = rects[(rects[:, 2] >= side) & (rects[:, 3] >= side)] if len(rects) else rects
    return [(float(x), float(y), float(x + w), float(y + h)) for x, y, w, h in rects]


def sliding_windows(size: int, scales: tuple[float, ...] = WINDOW_SCALES, ratios: tuple[float, ...] = (0.5, 1.0, 2.0),
                    stride: float = 0.5) -> list[tuple[float, ...]]:
    """Dense boxes over a size x size image: each scale (side as a fraction of the image) and aspect ratio,
    every stride x the box's side."""
    boxes = []
    for scale in scales:
        for ratio in ratios:
            w, h = min(size, size * scale * ratio ** 0.5), min(size, size * scale / ratio ** 0.5)
            for y in np.arange(0, size - h + 1, max(1.0, stride * h)):
                for x in np.arange(0, size - w + 1, max(1.0, stride * w)):
                    boxes.append((float(x), float(y), float(x + w), float(y + h)))
    return boxes


def proposals(maps: list[np.ndarray], min_area: float = 0.01, extra: list[tuple[float, ...]] = ()) -> np.ndarray:
    """(R, 4) boxes in the maps' pixels: each map's regions and whole mask at every threshold, the whole image,
    and any extra boxes (selective search, windows); near-duplicates (IoU > 0.9) removed."""
    size = maps[0].shape[0]
    boxes = [(0.0, 0.0, float(size), float(size))]
    for heat in maps:
        for t in THRESHOLDS:
            mask = binarize(heat, t)
            regions = region_boxes(mask, min_area)
            whole = mask_box(mask) if len(regions) > 1 else None
            boxes += [tuple(map(float, b)) for b in regions + ([whole] if whole else [])]
    boxes += list(extra)
    t = torch.tensor(boxes, dtype=torch.float32)
    keep = nms(t, torch.linspace(1.0, 0.5, len(t)), 0.9)
    return t[keep.sort().values].numpy()


def proposal_boxes(maps: list[np.ndarray], pixels: torch.Tensor, kinds: tuple[str, ...]) -> np.ndarray:
    """A model's proposals for one image: its heatmaps' boxes plus the other kinds it was trained with
    ("selective_search", "windows") on the (3, S, S) pixels the model saw."""
    extra = []
    if "selective_search" in kinds:
        extra += selective_search(pixels)
    if "windows" in kinds:
        extra += sliding_windows(pixels.shape[-1])
    return proposals(maps, extra=extra)


def heat_maps(activation: torch.Tensor, cam_weight: torch.Tensor, size: int) -> list[np.ndarray]:
    """Each class's CAM and the class-agnostic mean activation, at size x size, for one (C, h, w) feature map."""
    cams = torch.relu(torch.einsum("kc,chw->khw", cam_weight, activation))
    return [upsample(c, size) for c in cams] + [upsample(torch.relu(activation).mean(0), size)]


def region_features(activation: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """(R, C + GEOMETRY): the feature map averaged over each box (roi_align), and the box's place."""
    scale = activation.shape[-1] / size
    pooled = roi_align(activation[None], [boxes], output_size=2, spatial_scale=scale, sampling_ratio=2,
                       aligned=True).mean((2, 3))
    b = boxes / size
    geometry = torch.stack([b[:, 0], b[:, 1], b[:, 2], b[:, 3], (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])], 1)
    return torch.cat([pooled, geometry], 1)


class WSDDNHead(nn.Module):
    """The two streams over region features; `forward` gives (R, classes) region scores."""

    def __init__(self, features: int, classes: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.cls = nn.Linear(features, classes + 1)
        self.det = nn.Linear(features, classes)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = self.drop(feats)
        return self.cls(x).softmax(1)[:, :-1] * self.det(x).softmax(0)

    def image_scores(self, feats: torch.Tensor) -> torch.Tensor:
        return self(feats).sum(0).clamp(1e-6, 1 - 1e-6)

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> WSDDNHead:
        det = tensors[PREFIX + "det.weight"]
        head = cls(det.shape[1], det.shape[0])
        head.load_state_dict({k[len(PREFIX):]: v for k, v in tensors.items() if k.startswith(PREFIX)})
        return head.eval()

    def tensors(self) -> dict[str, torch.Tensor]:
        return {PREFIX + k: v.detach().contiguous() for k, v in self.state_dict().items()}


@dataclass
class RegionExplanation(Explanation):
    regions: np.ndarray = field(default_factory=lambda: np.zeros((0, 5), np.float32))
    """(n, 5) kept boxes at model resolution with their scores, best first."""


class WSDDN(Method):
    """Weakly supervised deep detection: several scored boxes per class, from a model trained with --wsddn."""

    name = "wsddn"
    title = "WSDDN"
    params: ClassVar[tuple[Param, ...]] = (LAYER, NMS_IOU, MIN_RATIO, MAX_BOXES)
    needs_grad = False

    @classmethod
    def unavailable(cls, model: Classifier) -> str | None:
        if PREFIX + "det.weight" not in model.extra:
            return f"WSDDN needs a model trained with `python -m fol_core train --wsddn`; {model.name} was not"
        return None

    def __init__(self, model: Classifier, **params: Any) -> None:
        super().__init__(model, **params)
        self.head = WSDDNHead.from_tensors(model.extra)
        self.cam_weight = model.layer(model.spec.classifier).weight.detach()
        self.kinds = tuple(((model.card or {}).get("wsddn") or {}).get("proposal_kinds", ("heatmaps",)))

    @torch.no_grad()
    def region_scores(self, activation: torch.Tensor, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Proposals (R, 4) at model resolution (the kinds the model was trained with) and their (R, classes)
        scores, for one image's (C, h, w) activation and (3, S, S) pixels."""
        size = pixels.shape[-1]
        maps = heat_maps(activation, self.cam_weight, size)
        boxes = torch.from_numpy(proposal_boxes(maps, pixels, self.kinds))
        return boxes, self.head(region_features(activation, boxes, size))

    def explain(self, fp: ForwardPass, class_index: int) -> Explanation:
        size = fp.pixels.shape[-1]
        boxes, scores = self.region_scores(fp.activation[0].detach(), fp.pixels[0].detach())
        s = scores[:, class_index]
        keep = nms(boxes, s, self.nms_iou)
        keep = keep[s[keep] >= self.min_ratio * float(s.max())][: self.max_boxes]
        regions = torch.cat([boxes[keep], s[keep, None]], 1).numpy()
        heat = np.zeros((size, size), np.float32)
        for x0, y0, x1, y1, v in regions[::-1]:
            heat[int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))] = np.maximum(
                heat[int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))], v)
        return RegionExplanation(
            class_index, self.model.class_names[class_index], float(fp.probs[class_index]),
            heatmap=heat / max(float(heat.max()), 1e-12), regions=regions,
        )

    def boxes(self, expl: Explanation, width: int, height: int, min_area: float = 0.01) -> list[Box]:
        """Each kept region, scored by its region score relative to the best (so the best box comes first)."""
        regions = getattr(expl, "regions", np.zeros((0, 5)))
        size = expl.heatmap.shape[0] if expl.heatmap is not None else self.model.input_size
        top = float(regions[0, 4]) if len(regions) else 1.0
        return [Box(*scale_box((x0, y0, x1, y1), size, size, width, height), expl.label, expl.class_index,
                    expl.probability * v / top, self.name) for x0, y0, x1, y1, v in regions]
