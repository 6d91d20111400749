"""The base method owns the forward pass and the hooks; each method only says how to explain a class."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from ..errors import UserError
from ..guided import capture_output, guided_backprop
from ..models import Classifier, ModelSpec
from ..regions import region_boxes, scale_box
from ..result import Box, Explanation
from .params import LAYER, Param, ParamError


class UnknownMethodError(UserError):
    """A method name that is not registered."""


@dataclass
class ForwardPass:
    """One forward graph, shared by every class explained in the same photo."""

    pixels: torch.Tensor
    """(1, 3, S, S) in [0, 1]."""
    x: torch.Tensor
    """The normalized input (requires grad when the method backpropagates to the image)."""
    logits: torch.Tensor
    """(classes,)"""
    activation: torch.Tensor
    """The method's layer's output, (1, C, h, w)."""
    multilabel: bool = False
    """Each class's probability is its own sigmoid (a trained model), not a softmax over classes."""
    more_activations: list[torch.Tensor] = field(default_factory=list)
    """The same layer at other input sizes (multi-scale methods)."""

    @property
    def probs(self) -> torch.Tensor:
        logits = self.logits.detach()
        return logits.sigmoid() if self.multilabel else logits.softmax(-1)


class Method:
    """Base of every localization method. A subclass declares itself in its class attributes (name, title,
    params, ...) and says how to explain a class; the base owns the forward pass, the hooks and the parameters."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    """The name people know it by (the app's choices)."""
    params: ClassVar[tuple[Param, ...]] = (LAYER,)
    """The constructor's parameters, with defaults, ranges and help: the one place they are written."""
    heatmap: ClassVar[bool] = False
    """The explanation is a class heatmap: drawn as an overlay, and scored by MaxBoxAccV2 too."""
    bench_runs: ClassVar[dict[str, dict[str, Any]]] = {}
    """Runs the bench times besides the default one: {run name: parameters}."""
    guided: ClassVar[bool] = False
    """Record the forward graph with guided ReLUs (FOL)."""
    needs_grad: ClassVar[bool] = True
    """Record a graph from the input image (parameters are frozen, so the graph starts there)."""

    def __init__(self, model: Classifier, **params: Any) -> None:
        known = {p.name: p for p in self.params}
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ParamError(f"{self.name} takes no parameter {', '.join(unknown)}; it takes {', '.join(known)}")
        reason = self.unavailable(model)
        if reason:
            raise ParamError(reason)
        self.model = model
        for p in self.params:
            setattr(self, p.name, p.parse(params[p.name]) if params.get(p.name) is not None else p.default)
        self.layer = self.layer or self.default_layer(model.spec)
        model.layer(self.layer)  # refuse an unknown layer now, with a clear message (LayerError)
        self.check()

    @classmethod
    def unavailable(cls, model: Classifier) -> str | None:
        """Why this method cannot run on `model` (None: it can)."""
        return None

    @classmethod
    def tuned(cls) -> Param | None:
        """The parameter calibration chooses (the one with a grid), if any."""
        return next((p for p in cls.params if p.grid), None)

    def check(self) -> None:
        """Refuse parameters that do not fit together (ParamError)."""

    def settings(self) -> dict[str, Any]:
        """The parameters this method runs with."""
        return {p.name: getattr(self, p.name) for p in self.params}

    @classmethod
    def default_layer(cls, spec: ModelSpec) -> str:
        """The layer this method reads in a model of this spec (the registry says which)."""
        return spec.cam_layer

    def pixels(self, photo: Image.Image) -> torch.Tensor:
        """The photo as this method feeds it to the network: (1, 3, h, w) in [0, 1] (the registry's square)."""
        return self.model.to_pixels(photo)

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
        return ForwardPass(pixels, x, logits[0], acts[-1], self.model.multilabel)

    def explain(self, fp: ForwardPass, class_index: int) -> Explanation:
        raise NotImplementedError

    def explain_each(self, fp: ForwardPass, class_index: int, param: str, values: list[Any]) -> list[Explanation]:
        """The explanation with `param` set to each of `values` (calibration); methods override it to share work."""
        return [type(self)(self.model, **{**self.settings(), param: v}).explain(fp, class_index) for v in values]

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
