"""Boxes from region proposals for a model trained on image labels: WSDDN's setting (Bilen & Vedaldi 2016) with
OICR's refinement (Tang et al. 2017).

Proposals are the classifier's own heatmaps (each class's CAM and the class-agnostic mean activation)
binarized at several thresholds, one box per region and one around each whole mask, plus the whole
photo (and, if the model was trained with them, selective search and sliding windows). A region's seed
score is the share of the class's CAM mass inside it minus a price for its area. WSDDN's two streams
(a softmax over classes times a softmax over regions), trained on the image labels, put their mass on
small discriminative parts here (0% top box on raccoon-dev), and so did OICR's streams seeded by them;
so the seed score seeds OICR instead: `train --wsddn` trains K (classes + background)-way region
classifiers, each on pseudo-labels from the one before (regions overlapping the best regions by IoU >=
0.5 take their class), on region features pooled inside and outside each box (roi_align on the last
feature map) with its place. Boxes: first the regions of the class map averaged over passes at several
sizes of the photo (mscam's map and threshold: on raccoon-dev's even halves they beat every seed-scored
box), then further proposals by the seed score (default, the best on the training half) or the seed times
the refined streams' mean (score oicr), NMS'd against all kept: several per class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision.ops import box_iou, nms, roi_align

from ..models import Classifier
from ..regions import binarize, mask_box, region_boxes, scale_box
from ..result import Box, Explanation
from .base import ForwardPass, Method, upsample, upsample_batch
from .cam import THRESHOLD
from .mscam import layer_passes, parse_scales
from .params import LAYER, Param, ParamError

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

STREAMS = 3
"""OICR's refinement streams (the paper's K)."""
TOPS = 3
"""Pseudo-objects per class and image: several, to find several objects (the paper takes the best region only)."""
TOP_RATIO = 0.5
"""A further pseudo-object scores at least this fraction of the class's best region."""
TOP_NMS = 0.3
"""Pseudo-objects overlap each other less than this."""
FG_IOU = 0.5
"""A region overlapping a pseudo-object this much takes its class (OICR's rule)."""

SCORE = Param("score", "seed", "WSDDN: region score: seed (the CAM's mass inside minus area_weight x area) or oicr "
                               "(x the refined streams of a model trained with --wsddn)", kind=str,
              choices=("seed", "oicr"))
AREA_WEIGHT = Param("area_weight", 0.5, "WSDDN: the seed score's price of a box's area (higher: smaller boxes)",
                    low=0.0, high=2.0, step=0.05)
NMS_IOU = Param("nms_iou", 0.3, "WSDDN: drop a region overlapping a better one this much (NMS)", low=0.05, high=0.95,
                step=0.05)
MIN_RATIO = Param("min_ratio", 0.5, "WSDDN: keep regions scoring at least this fraction of the best one", low=0.0,
                  high=1.0, step=0.05)
MAX_BOXES = Param("max_boxes", 5, "WSDDN: at most this many boxes per class", kind=int, low=1, high=50, step=1)
ANCHOR = Param("anchor", 0.1, "WSDDN: the regions of the multi-scale class map above this fraction of its maximum "
                              "come first (mscam's boxes); 0: seed-scored proposals alone", low=0.0, high=0.95,
               step=0.05, grid=THRESHOLD.grid)
"""Calibration and `improve` tune it, as mscam's threshold."""
SCALES = Param("scales", "224,320,448", "WSDDN: short sides (comma-separated) of the passes at the photo's own "
                                        "aspect ratio whose mean class map gives the first regions", kind=str)


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


def class_maps(activation: torch.Tensor, cam_weight: torch.Tensor) -> torch.Tensor:
    """(K, h, w): each class's CAM on one (C, h, w) feature map."""
    return torch.relu(torch.einsum("kc,chw->khw", cam_weight, activation))


def multi_scale_maps(activations: list[torch.Tensor], cam_weight: torch.Tensor, size: int) -> torch.Tensor:
    """(K, size, size): each class's CAM averaged over passes at several input sizes ((1, C, h, w) each, the
    photo's aspect kept), each scaled to [0, 1] on the square frame the proposals live in (mscam's map)."""
    return torch.from_numpy(np.mean([upsample_batch(class_maps(a[0], cam_weight), size) for a in activations], 0))


def heat_maps(cams: torch.Tensor, activation: torch.Tensor, size: int) -> list[np.ndarray]:
    """Each class's map and the class-agnostic mean activation of one (C, h, w) feature map, at size x size."""
    return [upsample(c, size) for c in cams] + [upsample(torch.relu(activation).mean(0), size)]


def region_features(activation: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """(R, 2 C + GEOMETRY): the feature map averaged inside each box (roi_align), averaged outside it (the context
    a box that cuts an object leaves out), and the box's place."""
    scale = activation.shape[-1] / size
    inside = roi_align(activation[None], [boxes], output_size=2, spatial_scale=scale, sampling_ratio=2,
                       aligned=True).mean((2, 3))
    b = boxes / size
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    share = area.clamp(max=0.98)[:, None]
    outside = (activation.mean((1, 2))[None] - inside * share) / (1 - share)
    geometry = torch.stack([b[:, 0], b[:, 1], b[:, 2], b[:, 3], area], 1)
    return torch.cat([inside, outside, geometry], 1)


def seed_scores(cams: torch.Tensor, boxes: torch.Tensor, size: int, area_weight: float = 0.5) -> torch.Tensor:
    """(R, classes) in [0, 1]: the share of each class's (K, h, w) map mass inside a box minus area_weight x the
    box's share of the photo, over the best box. A part (a face) holds too little of the mass, a box around the
    photo costs too much area: the box around the whole object wins, where the regions' own classifier scores
    pick parts."""
    coarse = cams.shape[-1] < size  # a feature map: 2 x 2 samples per bin; a full-size map: one per pixel
    inside = roi_align(cams[None], [boxes], output_size=2, spatial_scale=cams.shape[-1] / size,
                       sampling_ratio=2 if coarse else -1, aligned=True).mean((2, 3))
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / size ** 2)[:, None]
    score = inside * area / cams.mean((1, 2)).clamp(min=1e-6)[None] - area_weight * area
    return (score / score.max(0).values.clamp(min=1e-6)).clamp(min=0)


def seeded_proposals(activation: torch.Tensor, cams: torch.Tensor, pixels: torch.Tensor,
                     kinds: tuple[str, ...], area_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One image's proposals (R, 4) at model resolution and their (R, classes) seed scores, from its (C, h, w)
    activation, its class maps (`class_maps`) and the (3, S, S) pixels the model saw: where both training and
    localizing start."""
    size = pixels.shape[-1]
    boxes = torch.from_numpy(proposal_boxes(heat_maps(cams, activation, size), pixels, kinds))
    return boxes, seed_scores(cams, boxes, size, area_weight)


def pseudo_labels(previous: torch.Tensor, boxes: torch.Tensor, positives: torch.Tensor, tops: int = TOPS,
                  top_ratio: float = TOP_RATIO, fg_iou: float = FG_IOU) -> tuple[torch.Tensor, torch.Tensor]:
    """OICR's supervision for the next stream, from the previous one's (R, C) scores: for each class in the image
    (positives, (C,) bool), its best regions after NMS (at most `tops`, each scoring at least top_ratio of the
    best, to find several objects) are that class's pseudo-objects; a region overlapping one by IoU >= fg_iou
    takes its class and its score as weight, every other region is background (index C) with the weight of its
    nearest pseudo-object. A negative image's regions are all background with weight 1."""
    classes = previous.shape[1]
    labels = torch.full((len(boxes),), classes, dtype=torch.long)
    weights = torch.ones(len(boxes))
    chosen = []
    for c in positives.nonzero().flatten().tolist():
        s = previous[:, c]
        keep = nms(boxes, s, TOP_NMS)
        keep = keep[s[keep] >= top_ratio * float(s.max())][:tops]
        chosen += [(int(i), c) for i in keep]
    if not chosen:
        return labels, weights
    index = torch.tensor([i for i, _ in chosen])
    iou, nearest = box_iou(boxes, boxes[index]).max(1)
    chosen_class = torch.tensor([c for _, c in chosen])
    weights = previous[index, chosen_class][nearest].detach()
    labels = torch.where(iou >= fg_iou, chosen_class[nearest], labels)
    return labels, weights


class OICRHead(nn.Module):
    """OICR's refinement streams (Tang et al. 2017): each a (classes + background)-way classifier over the same
    region features, trained on the pseudo-labels of the stream before it; `forward` gives the streams' mean
    (R, classes) scores."""

    def __init__(self, features: int, classes: int, streams: int = STREAMS, dropout: float = 0.2) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.refine = nn.ModuleList(nn.Linear(features, classes + 1) for _ in range(streams))

    def streams(self, feats: torch.Tensor) -> list[torch.Tensor]:
        """Each stream's (R, classes + 1) logits."""
        x = self.drop(feats)
        return [r(x) for r in self.refine]

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return torch.stack([s.softmax(1)[:, :-1] for s in self.streams(feats)]).mean(0)

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> OICRHead:
        names = [k for k in tensors if k.startswith(PREFIX + "refine.") and k.endswith(".weight")]
        first = tensors[PREFIX + "refine.0.weight"]
        head = cls(first.shape[1], first.shape[0] - 1, len(names))
        head.load_state_dict({k[len(PREFIX):]: v for k, v in tensors.items() if k.startswith(PREFIX)})
        return head.eval()

    def tensors(self) -> dict[str, torch.Tensor]:
        return {PREFIX + k: v.detach().contiguous() for k, v in self.state_dict().items()}


@dataclass
class RegionExplanation(Explanation):
    regions: np.ndarray = field(default_factory=lambda: np.zeros((0, 5), np.float32))
    """(n, 5) kept boxes at model resolution with their scores, best first."""


class WSDDN(Method):
    """Several scored boxes per class from region proposals: the CAM seed score, or OICR's refined streams."""

    name = "wsddn"
    title = "WSDDN / OICR"
    params: ClassVar[tuple[Param, ...]] = (LAYER, SCORE, AREA_WEIGHT, NMS_IOU, MIN_RATIO, MAX_BOXES, ANCHOR, SCALES)
    needs_grad = False

    @classmethod
    def unavailable(cls, model: Classifier) -> str | None:
        if model.imagenet or not model.spec.classifier:
            return (f"WSDDN needs a model trained with `python -m fol_core train` (--wsddn for its refined "
                    f"streams); {model.name} was not")
        return None

    def __init__(self, model: Classifier, **params: Any) -> None:
        super().__init__(model, **params)
        self.cam_weight = model.layer(model.spec.classifier).weight.detach()
        card = (model.card or {}).get("wsddn") or {}
        self.kinds = tuple(card.get("proposal_kinds", ("heatmaps",)))
        self.head = None
        if self.score == "oicr":
            if PREFIX + "refine.0.weight" not in model.extra:
                raise ParamError(f"score oicr needs OICR's refined streams: train {model.name} again with "
                                 "`python -m fol_core train --wsddn` (models from before OICR hold WSDDN's old head)")
            self.head = OICRHead.from_tensors(model.extra)

    def check(self) -> None:
        self.sizes = parse_scales(self.scales) if self.anchor > 0 else []
        self.batchable = not self.sizes  # the extra passes keep each photo's own shape

    def pixels(self, photo: Image.Image) -> torch.Tensor | list[torch.Tensor]:
        """The model's square input, then (with scales) the photo at each short side, its aspect kept."""
        square = self.model.to_pixels(photo)
        return [square, *(self.model.to_pixels_kept(photo, s) for s in self.sizes)] if self.sizes else square

    def forward(self, pixels: torch.Tensor | list[torch.Tensor]) -> ForwardPass:
        """The square pass gives class scores and region features; each scale's pass only its layer's output."""
        if not isinstance(pixels, list):
            return super().forward(pixels)
        fp = super().forward(pixels[0])
        fp.more_activations = layer_passes(self.model, self.layer, pixels[1:])[1]
        return fp

    @torch.no_grad()
    def region_scores(self, activation: torch.Tensor, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Proposals (R, 4) at model resolution (the kinds the model was trained with) and their (R, classes)
        scores, for one image's (C, h, w) activation and (3, S, S) pixels: the seed score, times the refined
        streams' mean with score oicr."""
        size = pixels.shape[-1]
        boxes, scores = seeded_proposals(activation, class_maps(activation, self.cam_weight), pixels, self.kinds,
                                         self.area_weight)
        if self.head is not None:
            scores = scores * self.head(region_features(activation, boxes, size))
        return boxes, scores

    def class_map(self, more: list[torch.Tensor], class_index: int, size: int) -> torch.Tensor | None:
        """(1, size, size): the class's map averaged over the passes at other scales, at model resolution, scaled
        to a maximum of 1 (None without those passes)."""
        if not more:
            return None
        heat = multi_scale_maps(more, self.cam_weight[class_index:class_index + 1], size)
        return heat / heat.max().clamp(min=1e-12)

    @staticmethod
    def anchors(heat: torch.Tensor | None, anchor: float, size: int) -> torch.Tensor:
        """(n, 5): the map's regions above `anchor` of its maximum, with their share of the map's mass over the
        best one's, the heaviest first."""
        regions = region_boxes(binarize(heat[0].numpy(), anchor), 0.01) if heat is not None else []
        if not regions:
            return torch.zeros(0, 5)
        boxes = torch.tensor(regions, dtype=torch.float32)
        mass = seed_scores(heat, boxes, size, 0.0)[:, 0]
        order = mass.argsort(descending=True)
        return torch.cat([boxes[order], mass[order, None]], 1)

    def explain(self, fp: ForwardPass, class_index: int) -> Explanation:
        return self.explain_each(fp, class_index, "anchor", [self.anchor])[0]

    def explain_each(self, fp: ForwardPass, class_index: int, param: str, values: list[Any]) -> list[Explanation]:
        """One set of scored proposals and one class map; each anchor only cuts the map again (calibration)."""
        if param != "anchor":
            return super().explain_each(fp, class_index, param, values)
        size = fp.pixels.shape[-1]
        boxes, scores = self.region_scores(fp.activation[0].detach(), fp.pixels[0].detach())
        s = scores[:, class_index]
        keep = nms(boxes, s, self.nms_iou)
        keep = keep[s[keep] >= max(self.min_ratio * float(s.max()), 1e-12)]
        heat = self.class_map(fp.more_activations, class_index, size)
        return [self.cut(fp, class_index, boxes[keep], s[keep], heat, v) for v in values]

    def cut(self, fp: ForwardPass, class_index: int, boxes: torch.Tensor, s: torch.Tensor,
            heat: torch.Tensor | None, anchor: float) -> RegionExplanation:
        """The map's regions above `anchor` first, then the kept proposals (boxes, scores s) that overlap none of
        them, scored below them (at most half the last); at most max_boxes."""
        size = fp.pixels.shape[-1]
        first = self.anchors(heat, anchor, size)
        if len(first):
            apart = box_iou(boxes, first[:, :4]).max(1).values <= self.nms_iou
            further = torch.cat([boxes[apart], s[apart, None] * first[-1, 4] / 2], 1)
        else:
            further = torch.cat([boxes, s[:, None]], 1)
        regions = torch.cat([first, further])[: self.max_boxes].numpy()
        if heat is not None:
            shown = heat[0].numpy()
        else:  # no class map of its own to show: the regions, each painted with its score
            shown = np.zeros((size, size), np.float32)
            for x0, y0, x1, y1, v in regions[::-1]:
                shown[int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))] = np.maximum(
                    shown[int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))], v)
            shown /= max(float(shown.max()), 1e-12)
        return RegionExplanation(
            class_index, self.model.class_names[class_index], float(fp.probs[class_index]), heatmap=shown,
            regions=regions,
        )

    def boxes(self, expl: Explanation, width: int, height: int, min_area: float = 0.01) -> list[Box]:
        """Each kept region, scored by its region score relative to the best (so the best box comes first)."""
        regions = getattr(expl, "regions", np.zeros((0, 5)))
        size = expl.heatmap.shape[0] if expl.heatmap is not None else self.model.input_size
        top = float(regions[0, 4]) if len(regions) else 1.0
        return [Box(*scale_box((x0, y0, x1, y1), size, size, width, height), expl.label, expl.class_index,
                    expl.probability * v / top, self.name) for x0, y0, x1, y1, v in regions]
