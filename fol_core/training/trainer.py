"""Fine-tune a classifier head CAM can read (global average pooling + linear) on the user's image labels,
and by default the backbone's last stage and final conv with it (`Settings.tune_blocks`).

The backbone's frozen trunk (the registry's network) sees each training image once per epoch in a fresh
random augmentation; what follows is trained on the views seen so far (a growing bank of the trunk's
output, or of pooled features when only the head is trained), scored on the held-out images after each
epoch, and the best epoch's weights are kept (early stopping).
Classes are independent sigmoids trained with BCE, so a negative photo (no class) is a target of
zeros and a photo may hold several classes.

A run is interruptible: each epoch ends with a checkpoint in `NAME.partial/`, which the same command
resumes; the model folder `NAME` appears only when finished (written in NAME.partial, then renamed).
"""

from __future__ import annotations

import ctypes
import datetime
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn
from torchvision.transforms import v2

from ..errors import UserError, about, one_line
from ..models import CARD, WEIGHTS, Classifier, load_model, with_tuned_layers
from ..paths import exclusive
from .data import TrainingError, TrainingSet, load_training_set

PARTIAL = ".partial"
CHECKPOINT = "checkpoint.pt"
PRELOAD = 256
"""Training photos are kept in memory stretched to PRELOAD x PRELOAD, from which each epoch crops."""

Progress = Callable[[dict[str, Any]], None]
"""Called after each epoch with its row of the history (epoch, train_loss, val_loss, val_accuracy, ...)."""


@dataclass(frozen=True)
class Settings:
    """What a run trains with (recorded in the card; a resumed run must have the same)."""

    backbone: str = "efficientnet_lite0"
    epochs: int = 12
    patience: int = 3
    """Stop after this many epochs without a better held-out loss."""
    lr: float = 3e-3
    weight_decay: float = 1e-3
    batch_size: int = 32
    head_passes: int = 3
    """Passes over the feature bank per epoch."""
    val_fraction: float = 0.2
    seed: int = 0
    wsddn: bool = False
    """Also train OICR's refinement streams (methods/wsddn.py) on region proposals."""
    refine: int = 3
    """OICR's refinement streams (K)."""
    proposals: tuple[str, ...] = ("heatmaps",)
    """WSDDN's proposals: the heatmaps' boxes, plus "selective_search" and/or "windows" if named."""
    tune_blocks: int = 1
    """Also fine-tune the backbone's last N stages and its layers after them up to the CAM layer (0: the head only;
    1, the default, gave better boxes than 0 and 2 on the calibration halves measured: README)."""
    tune_lr: float = 3e-4
    """The fine-tuned backbone layers' learning rate (no weight decay: they start from ImageNet's weights)."""


@dataclass
class TrainResult:
    folder: Path
    card: dict
    resumed_from: int
    """The epoch the run carried on after (0: a fresh run)."""


def augmentation(size: int) -> v2.Compose:
    """The usual light augmentation: a crop of most of the photo, a mirror image, some colour change."""
    return v2.Compose([
        v2.RandomResizedCrop(size, scale=(0.5, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.ColorJitter(0.2, 0.2, 0.2),
    ])


def _targets(examples: list, classes: list[str]) -> torch.Tensor:
    return torch.tensor([[float(c in e.labels) for c in classes] for e in examples])


def _preload(data: TrainingSet, examples: list, size: int) -> tuple[list, list[str]]:
    """Each readable photo stretched to size x size as uint8 (C, H, W); unreadable ones are reported and dropped."""
    kept, problems = [], []
    for e in examples:
        try:
            photo = data.source.open(e.key)
        except (UserError, OSError) as exc:
            problems.append(f"skipped {about(e.key, exc)}")
            continue
        arr = np.asarray(photo.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0))
        kept.append((e, torch.from_numpy(arr.copy()).permute(2, 0, 1)))
    return kept, problems


def pooled_features(clf: Classifier, pixels: torch.Tensor, batch: int = 32) -> torch.Tensor:
    """The backbone's pooled features (what the CAM head reads) for (N, 3, S, S) pixels in [0, 1]."""
    return torch.cat([clf.features(pixels[i:i + batch])[0] for i in range(0, len(pixels), batch)])


@dataclass
class Split:
    """The backbone cut where fine-tuning starts: the frozen trunk (the shared network's own layers) and a
    trainable tail (the last stages and the layers after them, up to the CAM layer, with ImageNet's weights)."""

    trunk: nn.Sequential
    tail: nn.Sequential
    names: list[str]
    """Each tail layer's module path in the network (its weights are saved under it)."""

    @torch.no_grad()
    def inputs(self, clf: Classifier, pixels: torch.Tensor, batch: int = 32) -> torch.Tensor:
        """The trunk's output (the tail's input) for (N, 3, S, S) pixels in [0, 1], kept in half precision."""
        parts = []
        for i in range(0, len(pixels), batch):
            with clf.fast():
                parts.append(self.trunk(clf.normalize(pixels[i:i + batch])).half())
        return torch.cat(parts)


def split_backbone(clf: Classifier, blocks: int) -> Split:
    """Cut the network before its last `blocks` stages (the registry's `stages`), whose layers run in the
    order of the network's children (timm's EfficientNets: stem, stages, conv_head, bn2 = the CAM layer).

    The trunk is the loaded network's own (BatchNorm folded into its convolutions); the tail is copied from
    a freshly built one, BatchNorm kept, so that its weights are saved under the registry's own names and
    load (and fold) like any other."""
    spec = clf.spec
    children = list(clf.net.named_children())
    names = [n for n, _ in children]
    top = spec.cam_layer.split(".")[0]
    if not spec.stages or spec.stages not in names or top not in names[names.index(spec.stages) + 1:]:
        raise TrainingError(f"{spec.name} cannot fine-tune its last blocks (the registry names no stages before "
                            "its CAM layer): train the head only")
    stages = clf.layer(spec.stages)
    if not 1 <= blocks <= len(stages):
        raise TrainingError(f"--tune-blocks: {spec.name} has {len(stages)} stages (got {blocks})")
    cut, first, last = len(stages) - blocks, names.index(spec.stages), names.index(top)
    trunk = nn.Sequential(*(m for _, m in children[:first]), *stages[:cut])
    fresh = spec.build(None)
    tail_names = [f"{spec.stages}.{k}" for k in range(cut, len(stages))] + names[first + 1:last + 1]
    tail = nn.Sequential(*(fresh.get_submodule(n) for n in tail_names)).eval()  # BatchNorm keeps ImageNet's statistics
    tail.to(memory_format=torch.channels_last)
    return Split(trunk, tail, tail_names)


class Tuned(nn.Module):
    """The fine-tuned tail, global average pooling and the linear head: class scores from the trunk's output."""

    def __init__(self, tail: nn.Sequential, head: nn.Linear) -> None:
        super().__init__()
        self.tail, self.head = tail, head

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return self.head(self.tail(maps.float()).mean((2, 3)))


def _bce(logits: torch.Tensor, targets: torch.Tensor, pos_weight: torch.Tensor) -> torch.Tensor:
    return nn.functional.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight)


@torch.no_grad()
def _scores(head: nn.Module, feats: torch.Tensor, targets: torch.Tensor, classes: list[str],
            pos_weight: torch.Tensor) -> dict[str, Any]:
    """Held-out loss, exact-match accuracy (every class right at 0.5) and each class's accuracy."""
    logits = head(feats)
    pred = logits >= 0
    right = pred == targets.bool()
    return {
        "val_loss": round(float(_bce(logits, targets, pos_weight)), 5),
        "val_accuracy": round(float(right.all(1).float().mean()), 4),
        "per_class_accuracy": {c: round(float(right[:, i].float().mean()), 4) for i, c in enumerate(classes)},
    }


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


@contextmanager
def reuse_freed_memory() -> Iterator[None]:
    """Keep freed memory for reuse while training (glibc's malloc; elsewhere nothing changes).

    Each batch's activations are tens of MB: glibc maps such blocks afresh and unmaps them when freed, so
    the kernel zero-fills every page again, which was about half of a run's CPU time (system time). At the
    end the thresholds go to the values glibc's own adjustment converges to, and spare memory is given back."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt, trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        yield
        return
    mallopt(_M_MMAP_THRESHOLD, 1 << 30)
    mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    try:
        yield
    finally:
        mallopt(_M_MMAP_THRESHOLD, 32 << 20)
        mallopt(_M_TRIM_THRESHOLD, 64 << 20)
        trim(0)


def train(source: str | dict, out: str | Path, settings: Settings = Settings(), image_labels: str | None = "folders",
          overwrite: bool = False, restart: bool = False, progress: Progress | None = None,
          log: Callable[[str], None] = print) -> TrainResult:
    """Train a model for the source's labelled images into the folder `out` (see the module's docstring)."""
    with reuse_freed_memory(), exclusive(out, "trained"):
        return _train(source, out, settings, image_labels, overwrite, restart, progress, log)


def _train(source: str | dict, out: str | Path, settings: Settings, image_labels: str | None, overwrite: bool,
           restart: bool, progress: Progress | None, log: Callable[[str], None]) -> TrainResult:
    start = time.perf_counter()
    out = Path(out)
    if not out.name or out.name.endswith(PARTIAL):
        raise TrainingError(f"{out}: name the model folder, e.g. models/NAME")
    if out.exists() and not overwrite:
        raise TrainingError(f"{out} already exists: choose another name or pass --overwrite")
    torch.manual_seed(settings.seed)
    clf = load_model(settings.backbone)
    if not clf.imagenet:
        raise TrainingError("the backbone must be a registry model (e.g. efficientnet_lite0)")
    size = clf.input_size
    split = split_backbone(clf, settings.tune_blocks) if settings.tune_blocks else None
    partial = out.with_name(out.name + PARTIAL)
    if restart and partial.exists():
        shutil.rmtree(partial)
    made = not partial.exists()
    partial.mkdir(parents=True, exist_ok=True)
    try:
        data = load_training_set(source, image_labels, partial, settings.val_fraction, settings.seed)
        fingerprint = {"data": data.fingerprint(), "settings": asdict(settings)}
        ckpt_path = partial / CHECKPOINT
        state = _load_checkpoint(ckpt_path, fingerprint)
        train_items, problems = _preload(data, data.train, PRELOAD)
        val_items, more = _preload(data, data.val, size)
        notes = list(data.source.notes)
        if data.unlabelled:
            notes.append(f"{data.unlabelled} image(s) have no label and were left out (images beside the class "
                         "folders, or missing from the CSV)")
        for line in problems + more + [f"note: {n}" for n in notes]:
            log(line)
        if not train_items or not val_items:
            raise TrainingError("too few readable images to train and to hold some out")
    except BaseException:
        if made:  # refused before any training: leave no empty run behind
            shutil.rmtree(partial, ignore_errors=True)
        raise
    classes = data.classes
    y_train = _targets([e for e, _ in train_items], classes)
    y_val = _targets([e for e, _ in val_items], classes)
    positives = y_train.sum(0)
    pos_weight = ((len(y_train) - positives) / positives.clamp(min=1)).clamp(1.0, 10.0)
    head = nn.Linear(clf.net.num_features, len(classes))
    groups = [{"params": head.parameters()}]
    if split:
        groups.append({"params": split.tail.parameters(), "lr": settings.tune_lr, "weight_decay": 0.0})
    model: nn.Module = Tuned(split.tail, head) if split else head
    optimizer = torch.optim.AdamW(groups, lr=settings.lr, weight_decay=settings.weight_decay)

    def inputs(pixels: torch.Tensor) -> torch.Tensor:
        """What the trained part reads: the trunk's maps when fine-tuning, else the pooled features."""
        return split.inputs(clf, pixels) if split else pooled_features(clf, pixels)

    if state is None:
        val_feats = inputs(torch.stack([p for _, p in val_items]).float() / 255.0)
        state = {"fingerprint": fingerprint, "epoch": 0, "bank": val_feats[:0],
                 "bank_targets": torch.zeros(0, len(classes)), "val_feats": val_feats, "history": [],
                 "best": None, "bad_epochs": 0}
        log(f"training {', '.join(classes)} ({data.negatives} negatives): {len(train_items)} images, "
            f"{len(val_items)} held out")
    else:
        model.load_state_dict(state["head"])
        optimizer.load_state_dict(state["optimizer"])
        log(f"resuming {partial} after epoch {state['epoch']}")
    resumed_from = state["epoch"]
    augment = augmentation(size)
    while state["epoch"] < settings.epochs and state["bad_epochs"] < settings.patience:
        epoch = state["epoch"] + 1
        torch.manual_seed(settings.seed * 1000 + epoch)  # the same views whether or not the run was resumed
        views = torch.stack([augment(p) for _, p in train_items]).float() / 255.0
        state["bank"] = torch.cat([state["bank"], inputs(views)])
        state["bank_targets"] = torch.cat([state["bank_targets"], y_train])
        # The head alone passes over every view seen so far; the fine-tuned layers (costlier) over as many
        # views as the epoch added, drawn from all of them.
        per_pass = len(views) if split else len(state["bank"])
        losses = []
        for _ in range(settings.head_passes):
            order = torch.randperm(len(state["bank"]))[:per_pass]
            for i in range(0, len(order), settings.batch_size):
                idx = order[i:i + settings.batch_size]
                loss = _bce(model(state["bank"][idx]), state["bank_targets"][idx], pos_weight)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
        row = {"epoch": epoch, "train_loss": round(float(np.mean(losses)), 5),
               **_scores(model, state["val_feats"], y_val, classes, pos_weight)}
        best = state["best"]
        if best is None or row["val_loss"] < best["row"]["val_loss"]:
            state["best"] = {"row": row, "head": {k: v.clone() for k, v in model.state_dict().items()}}
            state["bad_epochs"] = 0
        else:
            state["bad_epochs"] += 1
        state.update(epoch=epoch, head=model.state_dict(), optimizer=optimizer.state_dict())
        state["history"].append(row)
        _save_checkpoint(state, ckpt_path)
        log(f"epoch {epoch}: loss {row['train_loss']:.4f}, held-out loss {row['val_loss']:.4f}, "
            f"accuracy {row['val_accuracy']:.1%}")
        if progress:
            progress(row)
    best = state["best"]
    model.load_state_dict(best["head"])
    tensors = {f"{clf.spec.classifier}.{k}": v.contiguous() for k, v in head.state_dict().items()}
    tuned = {f"{name}.{k}": v.detach().contiguous() for name, layer in zip(split.names, split.tail)
             for k, v in layer.state_dict().items()} if split else {}
    tensors.update(tuned)
    extra: dict[str, Any] = {}
    if settings.wsddn:
        from .wsddn import train_wsddn

        base = with_tuned_layers(clf.spec, tuned) if tuned else clf
        wsddn_tensors, extra = train_wsddn(base, head, train_items, val_items, classes, partial, settings, log)
        tensors.update(wsddn_tensors)
    card = {
        "format": "fol-model/1",
        "name": out.name,
        "classes": classes,
        "backbone": settings.backbone,
        "output": "sigmoid",
        "threshold": 0.5,
        "head": "global average pooling + linear on the backbone's last feature map (CAM reads it)",
        "tuned_layers": split.names if split else [],
        "preprocessing": {"resize": "the whole photo stretched, no crop", "input_size": size,
                          "mean": list(clf.spec.mean), "std": list(clf.spec.std)},
        "metrics": {**{k: v for k, v in best["row"].items() if k != "epoch"}, "best_epoch": best["row"]["epoch"],
                    "epochs_run": state["epoch"], "train_images": len(train_items), "val_images": len(val_items),
                    "negatives": data.negatives, **extra.get("metrics", {})},
        "training": {**asdict(settings), "augmentation": "random resized crop (scale 0.5-1), flip, colour jitter",
                     "loss": "BCE per class (sigmoid), positive weight = negatives / positives",
                     "seconds": round(time.perf_counter() - start, 1), "resumed_after_epoch": resumed_from,
                     "threads": torch.get_num_threads()},
        "history": state["history"],
        "source": data.spec.get("root") or data.spec.get("path") or str(source),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **({"wsddn": extra["card"]} if "card" in extra else {}),
    }
    _finish(partial, out, tensors, card, overwrite)
    log(f"wrote {out}: held-out accuracy {card['metrics']['val_accuracy']:.1%} "
        f"(best epoch {card['metrics']['best_epoch']} of {state['epoch']})")
    return TrainResult(out, card, resumed_from)


def _load_checkpoint(path: Path, fingerprint: dict) -> dict | None:
    """The checkpoint of the same run (same images, labels and settings), or None to start afresh."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as exc:
        raise TrainingError(f"cannot read the checkpoint {path} ({one_line(exc)}): start again with --restart") from None
    if state.get("fingerprint") != fingerprint:
        raise TrainingError(f"{path.parent} holds a run with other images or settings: resume it with those, "
                            "or start again with --restart")
    return state


def _save_checkpoint(state: dict, path: Path) -> None:
    """Written beside, then renamed: an interrupted write leaves the previous checkpoint."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _finish(partial: Path, out: Path, tensors: dict[str, torch.Tensor], card: dict, overwrite: bool) -> None:
    """Weights then card in the partial folder, checkpoint and extracted sources removed, then one rename."""
    save_file(tensors, partial / WEIGHTS)
    (partial / (CARD + ".tmp")).write_text(json.dumps(card, indent=1), encoding="utf-8")
    os.replace(partial / (CARD + ".tmp"), partial / CARD)
    for leftover in (CHECKPOINT, "wsddn_cache.pt", "source", ".cache"):
        target = partial / leftover
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    old = out.with_name(out.name + ".old")
    if out.exists() and overwrite:
        out.rename(old)
    partial.rename(out)
    if old.exists():
        shutil.rmtree(old)
