"""The base method owns the forward pass and the hooks; each method only says how to explain a class.

Batches: `forward_batch` runs a batch of photos through one graph and `explain_batch` explains one class
in each of several of its photos. Photos never mix in a batch (the network is in eval mode, its BatchNorm
frozen), so one backward pass from the sum of their class scores gives each photo its own gradient. The
base's `explain_batch` explains photo by photo, which is right for any method; a method batches for real
by overriding it (Grad-CAM and CAM through `HeatmapMethod.channel_weights_batch`, FOL with its own).
"""

from __future__ import annotations

from collections.abc import Sequence
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


def class_probs(logits: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """Class probabilities: a softmax over ImageNet's classes, or each class's own sigmoid (a trained model)."""
    logits = logits.detach()
    return logits.sigmoid() if multilabel else logits.softmax(-1)


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
    walk: torch.Tensor | None = None
    """(h, w, h * w): where a class map spreads from each pixel of a feature grid (mscam's `spread`)."""
    foreground: torch.Tensor | None = None
    """(h, w): the foreground probe's probability over the photo, whatever the class: on the walk's grid (mscam's
    `foreground`) or at every input pixel (FOL's `trim`, filled by its first explanation)."""
    cut: torch.Tensor | None = None
    """(h, w) on the walk's grid: the photo's normalized cut, positive on one side (mscam's `ncut`)."""

    @property
    def probs(self) -> torch.Tensor:
        return class_probs(self.logits, self.multilabel)


@dataclass
class BatchPass:
    """One forward graph for a batch of photos: row i of every tensor is photo i."""

    pixels: torch.Tensor
    """(B, 3, S, S) in [0, 1]."""
    x: torch.Tensor
    logits: torch.Tensor
    """(B, classes)"""
    activation: torch.Tensor
    """The method's layer's output, (B, C, h, w)."""
    multilabel: bool = False
    """Each class's probability is its own sigmoid (a trained model), not a softmax over classes."""

    @property
    def probs(self) -> torch.Tensor:
        return class_probs(self.logits, self.multilabel)


Wanted = Sequence[tuple[int, int]]
"""(photo row, class index) pairs to explain in a batch, each row at most once."""


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
    batchable: ClassVar[bool] = True
    """Photos share one input shape (the registry's square), so a batch stacks them into one pass; False
    for a method whose `pixels` keep each photo's own shape."""
    grad_stops_at_layer: ClassVar[bool] = False
    """The method only takes gradients down to its layer: the graph may start there (a cheaper forward)."""

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
            setattr(self, p.name, p.parse(params[p.name]) if params.get(p.name) is not None
                    else p.default_for(model.imagenet))
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
        bp = self.forward_batch(pixels)
        return ForwardPass(bp.pixels, bp.x, bp.logits[0], bp.activation, bp.multilabel)

    def forward_batch(self, pixels: torch.Tensor) -> BatchPass:
        """One forward pass of a (B, 3, S, S) batch, the method's layer captured (on the model's device)."""
        pixels = pixels.to(self.model.device)
        x = self.model.normalize(pixels)
        from_layer = self.needs_grad and self.grad_stops_at_layer
        if self.needs_grad and not from_layer:
            x.requires_grad_(True)
        net = self.model.net
        mode = guided_backprop(net) if self.guided else nullcontext()
        capture = capture_output(self.model.layer(self.layer), leaf=from_layer)
        fast = nullcontext() if self.needs_grad else self.model.fast()
        with torch.set_grad_enabled(self.needs_grad), mode, fast, capture as acts:
            logits = net(x)
        if not acts:
            raise RuntimeError(f"layer {self.layer} produced no output")
        return BatchPass(pixels, x, logits.float(), acts[-1].float(), self.model.multilabel)

    def explain(self, fp: ForwardPass, class_index: int) -> Explanation:
        raise NotImplementedError

    def explain_batch(self, bp: BatchPass, wanted: Wanted) -> list[Explanation]:
        """An explanation for each (photo row, class) pair, as `explain` gives it for the photo alone.

        The base explains photo by photo (a forward pass each), so a new method batches correctly before
        it batches fast; methods override it to share the batch's passes."""
        return [self.explain(self.forward(bp.pixels[row:row + 1]), c) for row, c in wanted]

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


def upsample(heat: torch.Tensor, size: int | tuple[int, int]) -> np.ndarray:
    """(h, w) heatmap to (size, size) or size = (height, width), bilinear, scaled to [0, 1]."""
    return upsample_batch(heat[None], size)[0]


def upsample_batch(heats: torch.Tensor, size: int | tuple[int, int]) -> np.ndarray:
    """(n, h, w) heatmaps to (n, size, size) or size = (height, width), bilinear, each scaled to [0, 1]."""
    size = (size, size) if isinstance(size, int) else size
    up = torch.nn.functional.interpolate(heats[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    up = up - up.amin((1, 2), keepdim=True)
    peak = up.amax((1, 2), keepdim=True)
    return torch.where(peak > 0, up / peak.clamp_min(torch.finfo(up.dtype).tiny), up).cpu().numpy()
