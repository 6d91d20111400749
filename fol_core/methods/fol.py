"""Fast Unsupervised Object Localization (Dwaraknath, Menghani, Mongia), Algorithm 1.

Rank the neurons of a conv layer by activation x (guided) gradient of the class score, guided-
backpropagate from the kmax best to the image, threshold and clean each map into a blob, re-score
the image masked by each blob, and box the union of the k best blobs.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..models import ModelSpec
from ..regions import clean_blob, mask_box, percentile_mask, scale_box
from ..result import Box, Explanation
from .base import BatchPass, ForwardPass, Method, Wanted
from .params import LAYER, Param, ParamError

SCORE_CHUNK = 256
"""Masked photos re-scored per forward pass of a batch on a GPU. On a CPU each photo's blobs go in one pass, as
for a photo alone: measured here, EfficientNet-Lite0 runs no more images/s at batch 8 than at 1, and fewer at 40."""


class FastLocalization(Method):
    name = "fol"
    title = "FOL (Fast Unsupervised Object Localization)"
    params: ClassVar[tuple[Param, ...]] = (
        LAYER,
        Param("k", 5, "FOL: blobs in the union", kind=int, low=1, high=20, step=1),
        Param("kmax", 10, "FOL: neurons ranked", kind=int, low=1, high=40, step=1),
        Param("percentile", 80.0, "FOL: a neuron's map is kept above this percentile", low=1, high=99, step=1,
              grid=(50.0, 60.0, 70.0, 80.0, 90.0, 95.0)),
        Param("shape", "square", "FOL: the photo stretched to the classifier's square (the paper) or its own shape "
                                 "kept (short side the classifier's size): twice the paper's hits on two-photo mosaics",
              kind=str, choices=("square", "kept")),
        Param("trim", 0.0, "FOL: keep only the union's pixels that the foreground probe calls object (its probability "
                           "at least this; 0: off, the paper)", low=0.0, high=0.95, step=0.05),
        Param("schedule", "batched", "FOL: one forward graph for all neurons, or the paper's one pass per neuron",
              kind=str, choices=("batched", "reference"), advanced=False),
    )
    bench_runs: ClassVar[dict[str, dict[str, Any]]] = {"fol_reference": {"schedule": "reference"}}
    guided = True

    def check(self) -> None:
        if not self.k <= self.kmax:
            raise ParamError(f"k must be between 1 and kmax (got k={self.k}, kmax={self.kmax})")
        self.batchable = self.shape == "square"  # a kept shape differs from photo to photo
        if self.trim and self.model.foreground is None:
            raise ParamError(f"trim needs a foreground probe, and {self.model.name} ships none (Lite0-2 do)")

    def pixels(self, photo: Image.Image) -> torch.Tensor:
        """The registry's square, or the photo at its own shape (short side the square's)."""
        if self.shape == "square":
            return super().pixels(photo)
        return self.model.to_pixels_kept(photo, self.model.input_size)

    @classmethod
    def default_layer(cls, spec: ModelSpec) -> str:
        return spec.fol_layer

    def select_neurons(self, fp: ForwardPass, class_index: int) -> list[tuple[int, int, int]]:
        """DAM: the kmax (channel, y, x) with the highest activation x gradient, one per channel at its arg-max."""
        (grad,) = torch.autograd.grad(fp.logits[class_index], fp.activation, retain_graph=True)
        dam = (fp.activation.detach() * grad)[0]
        c, h, w = dam.shape
        best, where = dam.reshape(c, h * w).max(1)
        top = best.argsort(descending=True)[: self.kmax].tolist()
        return [(ch, int(where[ch]) // w, int(where[ch]) % w) for ch in top]

    def neuron_maps(self, fp: ForwardPass, neurons: list[tuple[int, int, int]]) -> np.ndarray:
        """Guided backprop from each neuron to the image, mean over colour: (n, S, S).

        batched: every backward pass reuses the one forward graph (retained); measured here faster
        than vmapping the passes (is_grads_batched) or a batch of truncated forwards.
        reference: the paper's schedule, a fresh guided forward pass for each neuron.
        """
        grads = []
        for ch, y, x in neurons:
            source = fp if self.schedule == "batched" else self.forward(fp.pixels)
            seed = torch.zeros_like(source.activation)
            seed[0, ch, y, x] = 1.0
            grads.append(torch.autograd.grad(source.activation, source.x, seed, retain_graph=True)[0][0])
        return torch.stack(grads).mean(1).numpy()

    @torch.inference_mode()
    def score_blobs(self, pixels: torch.Tensor, blobs: list[np.ndarray], class_index: int) -> list[float]:
        """The class probability on the photo masked by each blob (black outside): one batched
        forward pass (reference: one pass per blob)."""
        masks = torch.from_numpy(np.stack(blobs)).float()[:, None]
        if self.schedule == "batched":
            logits = self.model.logits(pixels * masks)
        else:
            logits = torch.cat([self.model.logits(pixels * m[None]) for m in masks])
        return logits.softmax(-1)[:, class_index].tolist()

    def explain(self, fp: ForwardPass, class_index: int) -> Explanation:
        maps = self.neuron_maps(fp, self.select_neurons(fp, class_index))
        return self.explain_maps(fp, class_index, maps, self.percentile)

    def explain_each(self, fp: ForwardPass, class_index: int, param: str, values: list[Any]) -> list[Explanation]:
        """One neuron ranking and one set of guided maps for every percentile tried: only the blobs redo."""
        if param != "percentile":
            return super().explain_each(fp, class_index, param, values)
        maps = self.neuron_maps(fp, self.select_neurons(fp, class_index))
        return [self.explain_maps(fp, class_index, maps, v) for v in values]

    def explain_maps(self, fp: ForwardPass, class_index: int, maps: np.ndarray, percentile: float) -> Explanation:
        """Blobs from the neurons' maps at `percentile`, each re-scored; the union of the k best."""
        blobs = [clean_blob(percentile_mask(m, percentile)) for m in maps]
        scores = self.score_blobs(fp.pixels, blobs, class_index)
        if self.trim and fp.foreground is None:  # once per photo, whatever the classes and percentiles explained
            fp.foreground = self.foreground_of(fp.pixels)[0]
        return self.union(class_index, float(fp.probs[class_index]), maps, blobs, scores, fp.foreground)

    @torch.inference_mode()
    def foreground_of(self, pixels: torch.Tensor) -> torch.Tensor:
        """The foreground probe's probability at each pixel of a (B, 3, h, w) input, (B, h, w), read at twice
        its size (the probe's own scale: short side 448 px for Lite0's 224)."""
        big = F.interpolate(pixels.to(self.model.device), scale_factor=2.0, mode="bilinear", align_corners=False)
        with self.model.foreground.reading(self.model.layer) as probe, self.model.fast():
            self.model.net(self.model.normalize(big))
        grids = torch.stack([self.model.foreground(fine, coarse) for fine, coarse in probe()])
        return F.interpolate(grids[:, None], size=pixels.shape[-2:], mode="bilinear", align_corners=False)[:, 0].cpu()

    def union(
        self, class_index: int, probability: float, maps: np.ndarray, blobs: list[np.ndarray], scores: list[float],
        foreground: torch.Tensor | None,
    ) -> Explanation:
        """The union of the k best-scoring blobs (an empty blob never counts); with `trim`, only its pixels that
        the foreground probe calls object (unless none is)."""
        scores = [s if b.any() else -1.0 for s, b in zip(scores, blobs)]
        chosen = [i for i in np.argsort(scores)[::-1][: self.k].tolist() if blobs[i].any()]
        union = np.any([blobs[i] for i in chosen], axis=0) if chosen else np.zeros(maps.shape[1:], bool)
        if self.trim and union.any():
            trimmed = union & (foreground >= self.trim).numpy()
            union = trimmed if trimmed.any() else union
        return Explanation(
            class_index, self.model.class_names[class_index], probability,
            neuron_maps=[np.clip(m, 0, None) for m in maps], blobs=blobs, blob_scores=scores,
            chosen=chosen, mask=union,
        )

    # --- batches: each step of Algorithm 1 once for all the batch's photos ------------------------

    def explain_batch(self, bp: BatchPass, wanted: Wanted) -> list[Explanation]:
        """One ranking backward pass, kmax guided backward passes and one re-scoring forward pass (in chunks)
        for the whole batch; the reference schedule keeps its one pass per neuron, photo by photo."""
        if self.schedule != "batched" or not wanted:
            return super().explain_batch(bp, wanted)
        maps = self.neuron_maps_batch(bp, [r for r, _ in wanted], self.select_neurons_batch(bp, wanted))
        blobs = [[clean_blob(percentile_mask(m, self.percentile)) for m in ms] for ms in maps]
        scores = self.score_blobs_batch(bp.pixels, wanted, blobs)
        probs = bp.probs
        foreground = self.foreground_of(bp.pixels) if self.trim else None
        return [
            self.union(c, float(probs[r, c]), ms, bs, ss, None if foreground is None else foreground[r])
            for (r, c), ms, bs, ss in zip(wanted, maps, blobs, scores)
        ]

    def select_neurons_batch(self, bp: BatchPass, wanted: Wanted) -> list[list[tuple[int, int, int]]]:
        """`select_neurons` for each (photo row, class) pair, from one backward pass."""
        rows, cls = (list(v) for v in zip(*wanted))
        (grad,) = torch.autograd.grad(bp.logits[rows, cls].sum(), bp.activation, retain_graph=True)
        dam = (bp.activation.detach() * grad)[rows]
        n, c, h, w = dam.shape
        best, where = dam.reshape(n, c, h * w).max(2)
        top = best.argsort(1, descending=True)[:, : self.kmax].tolist()
        where = where.tolist()
        return [[(ch, where[i][ch] // w, where[i][ch] % w) for ch in top[i]] for i in range(n)]

    def neuron_maps_batch(
        self, bp: BatchPass, rows: list[int], neurons: list[list[tuple[int, int, int]]],
    ) -> list[np.ndarray]:
        """`neuron_maps` for each row: the j-th neurons of every row are seeded in one backward pass."""
        maps: list[list[torch.Tensor]] = [[] for _ in rows]
        for j in range(max(len(ns) for ns in neurons)):
            seed = torch.zeros_like(bp.activation)
            active = [i for i, ns in enumerate(neurons) if j < len(ns)]
            for i in active:
                ch, y, x = neurons[i][j]
                seed[rows[i], ch, y, x] = 1.0
            (grad,) = torch.autograd.grad(bp.activation, bp.x, seed, retain_graph=True)
            for i in active:
                maps[i].append(grad[rows[i]])
        return [torch.stack(m).mean(1).cpu().numpy() for m in maps]

    @torch.inference_mode()
    def score_blobs_batch(
        self, pixels: torch.Tensor, wanted: Wanted, blobs: list[list[np.ndarray]],
    ) -> list[list[float]]:
        """`score_blobs` for each (photo row, class) pair, the batch's masked photos in as few passes as pay."""
        masked = torch.cat([
            pixels[r:r + 1] * torch.from_numpy(np.stack(bs)).float()[:, None].to(pixels.device)
            for (r, _), bs in zip(wanted, blobs)
        ])
        cls = torch.tensor([c for (_, c), bs in zip(wanted, blobs) for _ in bs], device=pixels.device)
        chunk = SCORE_CHUNK if pixels.device.type != "cpu" else max(len(bs) for bs in blobs)
        probs = torch.cat([
            self.model.logits(part).softmax(-1).gather(1, c[:, None])[:, 0]
            for part, c in zip(masked.split(chunk), cls.split(chunk))
        ]).tolist()
        out, start = [], 0
        for bs in blobs:
            out.append(probs[start:start + len(bs)])
            start += len(bs)
        return out

    def boxes(self, expl: Explanation, width: int, height: int, min_area: float = 0.0) -> list[Box]:
        """One box around the union of the chosen blobs."""
        box = mask_box(expl.mask) if expl.mask is not None else None
        if box is None:
            return []
        h, w = expl.mask.shape
        return [Box(*scale_box(box, w, h, width, height), expl.label, expl.class_index, expl.probability, self.name)]
