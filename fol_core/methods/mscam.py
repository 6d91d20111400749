"""Multi-scale CAM: the class heatmap averaged over several input sizes, each at the photo's own aspect ratio.

Measured on imagenet-val-dev (README, issue 10's ablation): finer maps from larger inputs and the
photo's own shape (no square stretch) gain about 6 points of GT-known Loc over Grad-CAM at 224 px
and 20 on two-photo mosaics. Spreading the map over the pixels whose features look like the ones it covers
(`spread`) reaches the rest of the object, where the class evidence sits on its most telling part (a face,
a wheel); weighting it by a class-agnostic foreground probe (`foreground`, fit without boxes) lets a lower cut
take in the objects of classes the network only half-knows (raccoon-dev: 66 to 81 %); weighting it by the side of
the photo's normalized cut it lies on (`ncut`, untrained) fades what spills across the photo's main divide (test
halves: ImageNet 68 to 70 %, raccoon-dev 81 to 89 %). The scales, the spread, the probe's weight, the cut's
settings and the threshold were chosen on the calibration halves only; a trained model's threshold
(0.1: its heatmaps are peakier, unspread) on the calibration halves of raccoon-dev and ImageNet's dogs (README).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..guided import capture_output
from ..models import Classifier
from ..regions import binarize, grabcut_region
from ..result import Explanation
from .base import ForwardPass, upsample
from .cam import CAM, THRESHOLD
from .params import LAYER, Param, ParamError


def parse_scales(text: str) -> list[int]:
    """Short sides, comma-separated, sorted: refused in one line unless each is 64-1024 px."""
    try:
        sizes = sorted({int(v) for v in str(text).split(",") if v.strip()})
    except ValueError:
        sizes = []
    if not sizes or not all(64 <= s <= 1024 for s in sizes):
        raise ParamError(f"scales are short sides from 64 to 1024 px, comma-separated (got {text!r})")
    return sizes


@torch.inference_mode()
def layer_passes(model: Classifier, layer: str, pixels: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor],
                                                                                      list[torch.Tensor]]:
    """One pass without gradient per (1, 3, h, w) input, in the model's `fast` precision: each pass's class
    scores and the output of `layer`, both float32."""
    logits, outputs = [], []
    for scaled in pixels:
        with capture_output(model.layer(layer)) as acts, model.fast():
            logits.append(model.net(model.normalize(scaled.to(model.device)))[0].float())
        outputs.append(acts[-1].float())
    return logits, outputs


SPREAD_FLOOR = 0.05
"""The spread map is kept only where the class map holds at least this share of its peak: without it a
class spreads to look-alike pixels anywhere, e.g. into the other photo of a two-photo mosaic (calibration
halves: mosaics 69.6 without, 70.8 with; single photos unchanged)."""


def affinity_walk(features: torch.Tensor, power: float) -> torch.Tensor:
    """One step of a random walk over the backbone's own affinities, untrained: from each pixel of the
    (C, h, w) feature map to every pixel, in proportion to their cosine similarity (negative ones zero) to
    the `power`. (h, w, h * w), each row summing to 1; computed once per photo, whatever the classes."""
    c, h, w = features.shape
    x = F.normalize(features.reshape(c, -1).float(), dim=0)
    affinity = torch.relu(x.T @ x) ** power
    return (affinity / affinity.sum(1, keepdim=True).clamp_min(1e-12)).reshape(h, w, h * w)


def spread(heatmap: np.ndarray, walk: torch.Tensor, floor: float = SPREAD_FLOOR) -> np.ndarray:
    """The class map carried to the pixels that look like the ones it covers: each pixel of the walk's
    grid takes the map's mean over the pixels it walks to (`affinity_walk`). Upsampled to the heatmap's
    size, cut below `floor` of the original's peak, scaled to a maximum of 1."""
    h, w, _ = walk.shape
    heat = torch.from_numpy(np.ascontiguousarray(heatmap, dtype=np.float32))
    coarse = F.interpolate(heat[None, None], size=(h, w), mode="area").reshape(-1)
    spread_map = F.interpolate((walk @ coarse)[None, None], size=heat.shape, mode="bilinear",
                               align_corners=False)[0, 0]
    spread_map = spread_map * (heat >= floor * heat.max())
    return (spread_map / spread_map.max().clamp_min(1e-12)).numpy()


def weighted(heatmap: np.ndarray, weight: torch.Tensor, power: float) -> np.ndarray:
    """The class map times a coarser weight map (upsampled) to the `power`, scaled to a maximum of 1. With the
    foreground probe's probability as the weight, where the class map spills over background it fades and where
    it half-covers an object the cut can go lower (`ForegroundHead`); with the normalized cut's (`with_cut`),
    what spills across the photo's main divide fades."""
    up = F.interpolate(weight[None, None].float(), size=heatmap.shape, mode="bilinear", align_corners=False)[0, 0]
    fused = heatmap * up.cpu().numpy() ** power
    return fused / max(float(fused.max()), 1e-12)


NCUT_TAU = 0.1
"""Two pixels are linked in the normalized cut's graph where their features' cosine is above this (TokenCut's
rule; 0.05-0.2 scored alike on the calibration halves)."""
NCUT_FLOOR = 0.2
"""The weight the normalized cut leaves on the background side: a soft cut, so that a class map lying across
both sides keeps its shape."""


def normalized_cut(x: torch.Tensor, grid: tuple[int, int], tau: float = NCUT_TAU,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The photo split in two by a normalized cut (Shi and Malik; TokenCut's graph) over the (h * w, C) pixel
    features, untrained: (h, w), the second generalized eigenvector of the graph's Laplacian (one side positive
    relative to its mean). Computed once per photo; which side is the object depends on the class
    (`with_cut`). The cosines are computed in `dtype` (the model's fast precision: bf16 is 6x faster where the
    CPU has it, and only decides which links pass tau); the eigenvector comes from LOBPCG in float32, started
    from a fixed seed, so that a photo's boxes never change from run to run."""
    x = F.normalize(x.float(), dim=1).to(dtype)
    affinity = torch.where((x @ x.T).float() > tau, 1.0, 1e-5)
    scale = affinity.sum(1).rsqrt()
    start = torch.randn(len(x), 3, generator=torch.Generator().manual_seed(0)).to(x.device)
    _, vectors = torch.lobpcg(scale[:, None] * affinity * scale[None], X=start, largest=True, niter=50, tol=1e-4)
    fiedler = scale * vectors[:, 1]
    return (fiedler - fiedler.mean()).reshape(grid)


def with_cut(heatmap: np.ndarray, cut: torch.Tensor, power: float) -> np.ndarray:
    """The class map `weighted` by the side of the normalized cut that holds most of it (1) against the other
    (NCUT_FLOOR)."""
    heat = torch.from_numpy(np.ascontiguousarray(heatmap, dtype=np.float32))
    coarse = F.interpolate(heat[None, None], size=cut.shape, mode="area")[0, 0]
    side = (cut > 0).float()
    if float((coarse * side).sum()) < float((coarse * (1 - side)).sum()):
        side = 1 - side
    return weighted(heatmap, NCUT_FLOOR + (1 - NCUT_FLOOR) * side, power)


class MultiScaleCAM(CAM):
    """CAM's class heatmap, averaged over several input sizes of the photo (its shape kept)."""

    name = "mscam"
    title = "Multi-scale CAM (best boxes)"
    params: ClassVar[tuple[Param, ...]] = (
        LAYER,
        Param("threshold", 0.25, "keep the (spread, foreground- and cut-weighted) mean heatmap above this fraction "
                                 "of its maximum", low=0.0, high=0.95, step=0.05, words=("otsu",),
              grid=THRESHOLD.grid, trained_default=0.1),
        Param("scales", "224,320,448", "short sides of the photo at each forward pass (comma-separated)", kind=str),
        Param("spread", 2.0, "spread the heatmap over the pixels that look like it: the power of the feature "
                             "similarity (higher: only the closest look-alikes; 0: off)", low=0.0, high=8.0,
              step=0.5, trained_default=0.0),
        Param("foreground", 1.0, "weight the heatmap by how much each pixel looks like an object: the power of the "
                                 "foreground probe's probability (Lite0-2 ship one; 0: off)", low=0.0, high=4.0,
              step=0.5, trained_default=0.0),
        Param("ncut", 0.5, "weight the heatmap by the side of the photo's normalized cut it lies on (the other side "
                           "x 0.2): the power of the normalized cut's weight (it reads the probe's features: Lite0-2; "
                           "0: off)", low=0.0, high=4.0, step=0.25, trained_default=0.0),
        Param("refine", "none", "keep the heatmap's region as cut (none) or redraw it along the photo's colour "
                                "edges with OpenCV's GrabCut (tighter boxes on single objects, worse on mosaics)",
              kind=str, choices=("none", "grabcut")),
    )
    batchable = False

    def check(self) -> None:
        self.sizes = parse_scales(self.scales)
        if self.model.foreground is None:
            self.foreground = self.ncut = 0.0

    def pixels(self, photo: Image.Image) -> list[torch.Tensor]:
        """The photo at each scale, its aspect kept, smallest first."""
        return [self.model.to_pixels_kept(photo, size) for size in self.sizes]

    def forward(self, pixels: list[torch.Tensor]) -> ForwardPass:
        """One pass per scale; the smallest (nearest the classifier's training size) gives the class scores,
        the largest the features that spread the map, say where the foreground is and cut the photo in two."""
        layer = self.model.spec.affinity_layer if self.spread else None
        head = self.model.foreground if self.foreground or self.ncut else None
        with ExitStack() as stack:
            features = stack.enter_context(capture_output(self.model.layer(layer))) if layer else []
            probe = stack.enter_context(head.reading(self.model.layer)) if head else None
            logits, activations = layer_passes(self.model, self.layer, pixels)
        walk = affinity_walk(features[-1][0], self.spread) if features else None
        foreground = cut = None
        if probe:
            fine, coarse = probe()[0]
            x = head.pixels(fine, coarse)
            foreground = head.probability(x, fine.shape[-2:]) if self.foreground else None
            cut = normalized_cut(x, fine.shape[-2:], dtype=self.model.fast_dtype).cpu() if self.ncut else None
        return ForwardPass(pixels[-1], pixels[-1], logits[0], activations[0], self.model.multilabel, activations[1:],
                           walk=walk, foreground=foreground, cut=cut)

    def heatmap_of(self, fp: ForwardPass, class_index: int) -> np.ndarray:
        """The class's CAM at each scale, upsampled to the largest, averaged, scaled to a maximum of 1, spread,
        weighted by the foreground probe and by the normalized cut (each unless its power is 0)."""
        weights = self.fc_weight[class_index]
        size = tuple(fp.pixels.shape[-2:])
        maps = [upsample(torch.relu(torch.einsum("c,chw->hw", weights, act[0])), size)
                for act in (fp.activation, *fp.more_activations)]
        heatmap = np.mean(maps, 0)
        if heatmap.max() <= 0:
            return heatmap
        heatmap = heatmap / heatmap.max()
        if fp.walk is not None:
            heatmap = spread(heatmap, fp.walk)
        if fp.foreground is not None:
            heatmap = weighted(heatmap, fp.foreground, self.foreground)
        return heatmap if fp.cut is None else with_cut(heatmap, fp.cut, self.ncut)

    def photo_rgb(self, fp: ForwardPass) -> np.ndarray | None:
        """The (h, w, 3) uint8 photo at the heatmap's size, which GrabCut redraws along (None: no refinement)."""
        if self.refine == "none":
            return None
        return (fp.pixels[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().cpu().numpy()

    @staticmethod
    def region(heatmap: np.ndarray, rgb: np.ndarray | None, threshold: float | str) -> np.ndarray:
        return binarize(heatmap, threshold) if rgb is None else grabcut_region(rgb, heatmap, threshold)

    def explain(self, fp: ForwardPass, class_index: int) -> Explanation:
        heatmap = self.heatmap_of(fp, class_index)
        return Explanation(class_index, self.model.class_names[class_index], float(fp.probs[class_index]),
                           heatmap=heatmap, mask=self.region(heatmap, self.photo_rgb(fp), self.threshold))

    def explain_each(self, fp: ForwardPass, class_index: int, param: str, values: list[Any]) -> list[Explanation]:
        """One heatmap; each threshold only cuts (and redraws) it again."""
        if param != "threshold":
            return super().explain_each(fp, class_index, param, values)
        heatmap = self.heatmap_of(fp, class_index)
        expl = Explanation(class_index, self.model.class_names[class_index], float(fp.probs[class_index]),
                           heatmap=heatmap)
        rgb = self.photo_rgb(fp)
        return [replace(expl, mask=self.region(heatmap, rgb, v)) for v in values]
