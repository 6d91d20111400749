"""A class-agnostic foreground probe: which pixels look like an object to the backbone, whatever its class.

A linear probe on two of the network's own feature maps (a stride-16 one and the last, upsampled to it),
fit without a single box: its labels are the confident pixels of the class maps of photos whose image
labels are known (above `high` of the map's peak: object; below `low`: background; the rest unused). Fit
once on the dev set's calibration half, it carries to classes ImageNet lacks (raccoon-dev: README, issue
10's ablation), where the class map only lights the part the network half-recognizes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .guided import capture_output

DATA = Path(__file__).parent / "data"


def head_path(model_name: str) -> Path:
    """Where the probe of an ImageNet model ships (package data)."""
    return DATA / f"{model_name}.foreground.safetensors"


@dataclass(frozen=True)
class ForegroundHead:
    """A logistic probe on standardized, concatenated, L2-normalized pixel features."""

    layers: tuple[str, str]
    """The stride-16 layer and the last conv layer it reads."""
    mean: torch.Tensor
    std: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor

    @staticmethod
    def pixels(fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        """(h * w, C1 + C2) features of each pixel of the fine (C1, h, w) grid: each map L2-normalized per
        pixel, the coarse (C2, h', w') one upsampled to the fine grid."""
        coarse = F.interpolate(coarse[None].float(), size=fine.shape[-2:], mode="bilinear", align_corners=False)[0]
        x = torch.cat([F.normalize(fine.float(), dim=0), F.normalize(coarse, dim=0)])
        return x.reshape(x.shape[0], -1).T

    def __call__(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        """(h, w) foreground probabilities on the fine grid (on the features' device)."""
        return self.probability(self.pixels(fine, coarse), fine.shape[-2:])

    def probability(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """(h, w) foreground probabilities of the (h * w, C) pixel features from `pixels`."""
        mean, std, weight, bias = (t.to(x.device) for t in (self.mean, self.std, self.weight, self.bias))
        return torch.sigmoid((x - mean) / std @ weight + bias).reshape(grid)

    @contextmanager
    def reading(self, layer: Callable[[str], nn.Module]) -> Iterator[Callable[[], list[tuple[torch.Tensor,
                                                                                              torch.Tensor]]]]:
        """Hooks on the probe's two layers (`layer` finds a module by name) for the forward passes of the block;
        the callable gives their (fine, coarse) outputs for each photo of the last pass's batch."""
        with capture_output(layer(self.layers[0])) as fine, capture_output(layer(self.layers[1])) as coarse:
            yield lambda: list(zip(fine[-1], coarse[-1]))

    @classmethod
    def fit(cls, layers: tuple[str, str], examples: Iterable[tuple[torch.Tensor, torch.Tensor]], low: float = 0.05,
            high: float = 0.5, weight_decay: float = 0.01) -> ForegroundHead:
        """Fit on (pixel features from `pixels`, the class map on the same grid, peak 1) pairs: pixels above
        `high` are objects, below `low` background, each side weighted to half the loss."""
        xs, ys = [], []
        for x, heat in examples:
            heat = heat.reshape(-1)
            fg, bg = heat >= high, heat <= low
            xs += [x[fg], x[bg]]
            ys += [torch.ones(int(fg.sum())), torch.zeros(int(bg.sum()))]
        x, y = torch.cat(xs), torch.cat(ys)
        if not 0 < float(y.mean()) < 1:
            raise ValueError("the maps give no object pixel or no background pixel to learn from")
        mean, std = x.mean(0), x.std(0) + 1e-4
        x = (x - mean) / std
        share = y.mean()
        sample_weight = torch.where(y > 0, 0.5 / share, 0.5 / (1 - share))
        linear = torch.nn.Linear(x.shape[1], 1)
        opt = torch.optim.LBFGS(linear.parameters(), max_iter=100, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = F.binary_cross_entropy_with_logits(linear(x)[:, 0], y, weight=sample_weight)
            loss = loss + weight_decay * linear.weight.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        return cls(layers, mean, std, linear.weight.detach()[0], linear.bias.detach())

    def save(self, path: str | Path) -> None:
        save_file({"mean": self.mean, "std": self.std, "weight": self.weight, "bias": self.bias},
                  str(path), metadata={"fine": self.layers[0], "coarse": self.layers[1]})

    @classmethod
    def load(cls, path: str | Path) -> ForegroundHead:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata()
            tensors = [f.get_tensor(key) for key in ("mean", "std", "weight", "bias")]
        return cls((meta["fine"], meta["coarse"]), *tensors)
