"""Grad-CAM and CAM: a class heatmap at the last conv layer, binarized, one box per region."""

from __future__ import annotations

import torch

from ..imagenet import classes
from ..models import Classifier
from ..regions import binarize
from ..result import Explanation
from .base import ForwardPass, Method, upsample


class _HeatmapMethod(Method):
    def __init__(self, model: Classifier, layer: str | None = None, threshold: float | str = 0.3) -> None:
        super().__init__(model, layer)
        self.threshold = threshold

    def channel_weights(self, fp: ForwardPass, class_index: int) -> torch.Tensor:
        raise NotImplementedError

    def explain(self, fp: ForwardPass, class_index: int) -> Explanation:
        weights = self.channel_weights(fp, class_index)
        heat = torch.relu((weights[:, None, None] * fp.activation[0].detach()).sum(0))
        heatmap = upsample(heat, fp.pixels.shape[-1])
        return Explanation(
            class_index, classes()[class_index].name, float(fp.probs[class_index]),
            heatmap=heatmap, mask=binarize(heatmap, self.threshold),
        )


class GradCAM(_HeatmapMethod):
    """Selvaraju et al.: channels weighted by the spatial mean of the class score's gradient."""

    name = "gradcam"

    def channel_weights(self, fp: ForwardPass, class_index: int) -> torch.Tensor:
        (grad,) = torch.autograd.grad(fp.logits[class_index], fp.activation, retain_graph=True)
        return grad[0].mean((1, 2))


class CAM(_HeatmapMethod):
    """Zhou et al.: channels weighted by the classifier's weights (needs a GAP + linear head)."""

    name = "cam"
    needs_grad = False

    def __init__(self, model: Classifier, layer: str | None = None, threshold: float | str = 0.3) -> None:
        if model.spec.classifier is None:
            raise ValueError(f"CAM needs a global-average-pool + linear head, which {model.name} lacks: use gradcam")
        super().__init__(model, layer, threshold)
        self.fc_weight = model.layer(model.spec.classifier).weight.detach()

    def channel_weights(self, fp: ForwardPass, class_index: int) -> torch.Tensor:
        return self.fc_weight[class_index]
