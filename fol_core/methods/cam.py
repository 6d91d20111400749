"""Grad-CAM and CAM: a class heatmap at the last conv layer, binarized, one box per region."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import torch

from ..models import Classifier
from ..regions import binarize
from ..result import Explanation
from .base import BatchPass, ForwardPass, Method, Wanted, upsample, upsample_batch
from .params import LAYER, Param

THRESHOLD = Param(
    "threshold", 0.3, "Grad-CAM/CAM: keep the heatmap above this fraction of its maximum", low=0.0, high=0.95,
    step=0.05, words=("otsu",), grid=tuple(round(0.05 * i, 2) for i in range(1, 20)), trained_default=0.2,
)
"""0.3 was chosen on the dev set's calibration half; 0.2 for trained models on the calibration halves of
raccoon-dev and ImageNet's dogs (README)."""


class HeatmapMethod(Method):
    """A class heatmap from weighted channels of the last conv layer; subclasses say how to weight them."""

    params: ClassVar[tuple[Param, ...]] = (LAYER, THRESHOLD)
    heatmap = True

    def channel_weights(self, fp: ForwardPass, class_index: int) -> torch.Tensor:
        raise NotImplementedError

    def channel_weights_batch(self, bp: BatchPass, wanted: Wanted) -> torch.Tensor:
        """(n, C): `channel_weights` for each (photo row, class) pair, from the batch's one graph."""
        raise NotImplementedError

    def explain(self, fp: ForwardPass, class_index: int) -> Explanation:
        weights = self.channel_weights(fp, class_index)
        heat = torch.relu((weights[:, None, None] * fp.activation[0].detach()).sum(0))
        heatmap = upsample(heat, fp.pixels.shape[-1])
        return Explanation(
            class_index, self.model.class_names[class_index], float(fp.probs[class_index]),
            heatmap=heatmap, mask=binarize(heatmap, self.threshold),
        )

    def explain_batch(self, bp: BatchPass, wanted: Wanted) -> list[Explanation]:
        """One weighted sum and one upsampling for all pairs; a subclass that explains a photo its own way
        (overrides `explain` but not this) is explained photo by photo."""
        if type(self).explain is not HeatmapMethod.explain or not wanted:
            return super().explain_batch(bp, wanted)
        rows = [r for r, _ in wanted]
        weights = self.channel_weights_batch(bp, wanted)
        heats = torch.relu((weights[:, :, None, None] * bp.activation[rows].detach()).sum(1))
        heatmaps = upsample_batch(heats, bp.pixels.shape[-1])
        probs = bp.probs
        return [
            Explanation(c, self.model.class_names[c], float(probs[r, c]), heatmap=h,
                        mask=binarize(h, self.threshold))
            for (r, c), h in zip(wanted, heatmaps)
        ]

    def explain_each(self, fp: ForwardPass, class_index: int, param: str, values: list[Any]) -> list[Explanation]:
        """One heatmap; each threshold only binarizes it again."""
        if param != "threshold":
            return super().explain_each(fp, class_index, param, values)
        expl = self.explain(fp, class_index)
        return [replace(expl, mask=binarize(expl.heatmap, v)) for v in values]


class GradCAM(HeatmapMethod):
    """Selvaraju et al.: channels weighted by the spatial mean of the class score's gradient."""

    name = "gradcam"
    title = "Grad-CAM"

    grad_stops_at_layer = True

    def channel_weights(self, fp: ForwardPass, class_index: int) -> torch.Tensor:
        (grad,) = torch.autograd.grad(fp.logits[class_index], fp.activation, retain_graph=True)
        return grad[0].mean((1, 2))

    def channel_weights_batch(self, bp: BatchPass, wanted: Wanted) -> torch.Tensor:
        rows, cls = zip(*wanted)
        (grad,) = torch.autograd.grad(bp.logits[list(rows), list(cls)].sum(), bp.activation, retain_graph=True)
        return grad[list(rows)].mean((2, 3))


class CAM(HeatmapMethod):
    """Zhou et al.: channels weighted by the classifier's weights (needs a GAP + linear head)."""

    name = "cam"
    title = "CAM"
    needs_grad = False

    @classmethod
    def unavailable(cls, model: Classifier) -> str | None:
        if model.spec.classifier is None:
            return f"CAM needs a global-average-pool + linear head, which {model.name} lacks: use gradcam"
        return None

    def __init__(self, model: Classifier, **params: Any) -> None:
        super().__init__(model, **params)
        self.fc_weight = model.layer(model.spec.classifier).weight.detach()

    def channel_weights(self, fp: ForwardPass, class_index: int) -> torch.Tensor:
        return self.fc_weight[class_index]

    def channel_weights_batch(self, bp: BatchPass, wanted: Wanted) -> torch.Tensor:
        return self.fc_weight[[c for _, c in wanted]]
