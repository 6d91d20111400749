"""The base method owns the forward pass and the hooks; each method only says how to explain a class."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from ..guided import capture_output, guided_backprop
from ..models import Classifier
from ..regions import region_boxes, scale_box
from ..result import Box, Explanation


@dataclass
class ForwardPass:
    """One forward graph, shared by every class explained in the same photo."""

    pixels: torch.Tensor
    """(1, 3, S, S) in [0, 1]."""
    x: torch.Tensor
    """The normalized input (requires grad when the method backpropagates to the image)."""
    logits: torch.Tensor
    """(1000,)"""
    activation: torch.Tensor
    """The method's layer's output, (1, C, h, w)."""

    @property
    def probs(self) -> torch.Tensor:
        return self.logits.detach().softmax(-1)


class Method:
    """Base of every localization method; subclasses set `name`, `guided`, `needs_grad` and `explain`."""

    name = ""
    guided = False
    """Record the forward graph with guided ReLUs (FOL)."""
    needs_grad = True
    """Record a graph from the input image (parameters are frozen, so the graph starts there)."""

    def __init__(self, model: Classifier, layer: str | None = None) -> None:
        self.model = model
        self.layer = layer or self.default_layer()
        model.layer(self.layer)  # refuse an unknown layer now, with a clear message

    def default_layer(self) -> str:
        return self.model.spec.cam_layer

    def forward(self, pixels: torch.Tensor) -> ForwardPass:
        x = self.model.normalize(pixels)
        if self.needs_grad:
            x.requires_grad_(True)
        net = self.model.net
        mode = guided_backprop(net) if self.guided else nullcontext()
        with torch.set_grad_enabled(self.needs_grad), mode, capture_output(self.model.layer(self.layer)) as acts:
            logits = net(x)
        if not acts:
            raise RuntimeError(f"layer {self.layer} produced no output")
        return ForwardPass(pixels, x, logits[0], acts[-1])

    def explain(self, fp: ForwardPass, class_index: int) -> Explanation:
        raise NotImplementedError

    def boxes(self, expl: Explanation, width: int, height: int, min_area: float = 0.01) -> list[Box]:
        """One box per connected region of the explanation's mask (heatmap methods)."""
        if expl.mask is None:
            return []
        h, w = expl.mask.shape
        return [
            Box(*scale_box(b, w, h, width, height), expl.label, expl.class_index, expl.probability, self.name)
            for b in region_boxes(expl.mask, min_area)
        ]


def upsample(heat: torch.Tensor, size: int) -> np.ndarray:
    """(h, w) heatmap to (size, size), bilinear, scaled to [0, 1]."""
    up = torch.nn.functional.interpolate(heat[None, None], size=(size, size), mode="bilinear", align_corners=False)[0, 0]
    up = up - up.min()
    peak = float(up.max())
    return (up / peak if peak > 0 else up).numpy()
