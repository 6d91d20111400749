"""The engine on the real default model and real photos: methods, guided switch, Algorithm 2."""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from conftest import probabilities
from PIL import Image
from torch import nn

from fol_core import load_image, localize, resolve_class, select_classes
from fol_core.errors import UserError
from fol_core.guided import guided_backprop, make_switchable
from fol_core.imagenet import UnknownClassError
from fol_core.methods import FastLocalization
from fol_core.models import ModelUnavailableError, choose_precision, fold_batchnorm, load_model

CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968}  # espresso, cup


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def hand_boxes(examples_dir):
    return json.loads((examples_dir / "boxes.json").read_text())


@pytest.fixture(scope="module")
def mosaic(examples_dir) -> Image.Image:
    """The cat on the left, the coffee on the right, each at 300 px high."""
    cat = Image.open(examples_dir / "chelsea.png").convert("RGB").resize((450, 300))
    cup = Image.open(examples_dir / "coffee.png").convert("RGB").resize((450, 300))
    both = Image.new("RGB", (900, 300))
    both.paste(cat, (0, 0))
    both.paste(cup, (450, 0))
    return both


def test_default_model_classifies_the_examples(model, examples_dir):
    assert int(probabilities(model, load_image(examples_dir / "chelsea.png")).argmax()) in CATS
    assert int(probabilities(model, load_image(examples_dir / "coffee.png")).argmax()) in COFFEE


@pytest.mark.parametrize("method", ["fol", "gradcam", "cam"])
@pytest.mark.parametrize("photo", ["chelsea.png", "coffee.png"])
def test_boxes_match_hand_drawn_boxes(model, examples_dir, hand_boxes, method, photo):
    result = localize(examples_dir / photo, model, method)
    assert result.boxes, "no box found"
    best = max(iou((b.x0, b.y0, b.x1, b.y1), hand_boxes[photo]["box"]) for b in result.boxes)
    assert best >= 0.5, f"{method} on {photo}: best IoU {best:.2f}"
    w, h = Image.open(examples_dir / photo).size
    for b in result.boxes:
        assert 0 <= b.x0 < b.x1 <= w and 0 <= b.y0 < b.y1 <= h
        assert b.method == method and b.label == model.class_names[b.class_index]


def test_named_class_query_finds_the_rocket(model, examples_dir, hand_boxes):
    """The rocket is not top-1 ("drilling platform"): asking for "missile" must still box it."""
    result = localize(examples_dir / "rocket.jpg", model, "gradcam", classes=["missile"])
    assert [b.class_index for b in result.boxes] and {b.class_index for b in result.boxes} == {657}
    x0, _, x1, _ = hand_boxes["rocket.jpg"]["box"]
    best = max(result.boxes, key=lambda b: b.score)
    cx = (best.x0 + best.x1) / 2
    assert x0 - 60 <= cx <= x1 + 60, f"box centre {cx:.0f} is not on the rocket"


def test_batched_and_reference_schedules_give_the_same_box(model, examples_dir):
    photo = load_image(examples_dir / "coffee.png")
    fast = localize(photo, model, "fol", schedule="batched")
    slow = localize(photo, model, "fol", schedule="reference")
    assert [b.to_dict() for b in fast.boxes] == [b.to_dict() for b in slow.boxes]
    e1, e2 = fast.explanations[0], slow.explanations[0]
    assert e1.chosen == e2.chosen
    for a, b in zip(e1.neuron_maps, e2.neuron_maps):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_fol_explanation_holds_what_figure_3_draws(model, examples_dir):
    expl = localize(examples_dir / "chelsea.png", model, "fol", k=3, kmax=6).explanations[0]
    assert len(expl.neuron_maps) == len(expl.blobs) == len(expl.blob_scores) == 6
    assert 1 <= len(expl.chosen) <= 3
    assert expl.mask.shape == (224, 224) and expl.mask.any()
    union = np.any([expl.blobs[i] for i in expl.chosen], axis=0)
    assert (expl.mask == union).all()
    best = max(range(6), key=lambda i: expl.blob_scores[i])
    assert best in expl.chosen


def test_algorithm_2_boxes_each_class_in_its_own_half(model, mosaic):
    for method in ("fol", "gradcam"):
        result = localize(mosaic, model, method, classes=["Egyptian cat", "espresso"])
        by_class = {}
        for b in result.boxes:
            by_class.setdefault(b.class_index, []).append(b)
        cat = max(by_class[285], key=lambda b: b.area)
        cup = max(by_class[967], key=lambda b: b.area)
        assert (cat.x0 + cat.x1) / 2 < 450 < (cup.x0 + cup.x1) / 2, method


def test_algorithm_2_rule_picks_classes_close_to_the_top():
    probs = torch.zeros(1000)
    probs[[5, 7, 9, 11]] = torch.tensor([0.5, 0.3, 0.1, 0.05])
    assert select_classes(probs, topn=1) == [5]
    assert select_classes(probs, topn=3, ratio=0.25) == [5, 7]
    assert select_classes(probs, topn=4, ratio=0.1) == [5, 7, 9, 11]


def test_gradcam_gives_one_box_per_object(model, examples_dir):
    cat = Image.open(examples_dir / "chelsea.png").convert("RGB").resize((300, 200))
    two = Image.new("RGB", (900, 300), (255, 255, 255))
    two.paste(cat, (0, 50))
    two.paste(cat, (600, 50))
    boxes = localize(two, model, "gradcam", classes=["Egyptian cat"]).boxes
    assert len(boxes) == 2
    assert sorted((b.x0 + b.x1) / 2 < 450 for b in boxes) == [False, True]


def test_class_queries_resolve_names_synonyms_wnids_and_indices():
    assert resolve_class("pig") == resolve_class("hog") == 341
    assert resolve_class("tabby") == 281
    assert resolve_class("n02124075") == resolve_class("285") == resolve_class(285) == 285
    with pytest.raises(UnknownClassError, match="no ImageNet class"):
        resolve_class("unicorn")


# --- the guided-backprop switch ------------------------------------------------------------------

def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU6(), nn.Linear(8, 3))
    return make_switchable(net)


def input_grad(net: nn.Module, x: torch.Tensor, guided: bool) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    if guided:
        with guided_backprop(net):
            out = net(x)
    else:
        out = net(x)
    return torch.autograd.grad(out[0, 0], x)[0]


def manual_guided_grad(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Guided backprop written out layer by layer: positive gradients where the input was positive."""
    l1, _, l2, _, l3 = net
    z1 = l1(x)
    z2 = l2(z1.clamp(min=0))
    g = l3.weight[0:1]
    g = g.clamp(min=0) * (z2 > 0)
    g = g @ l2.weight
    g = g.clamp(min=0) * (z1 > 0)
    return g @ l1.weight


def test_guided_gradients_follow_the_guided_rule_and_differ_from_plain():
    net, x = tiny_net(), torch.randn(1, 6)
    guided, plain = input_grad(net, x, True), input_grad(net, x, False)
    torch.testing.assert_close(guided, manual_guided_grad(net, x).detach())
    assert not torch.allclose(guided, plain)
    with torch.no_grad():
        reference = torch.func.jacrev(lambda v: net(v)[0, 0])(x)
    torch.testing.assert_close(plain, reference)


def test_switch_is_restored_after_an_exception():
    net, x = tiny_net(), torch.randn(1, 6)
    plain = input_grad(net, x, False)
    with pytest.raises(RuntimeError, match="boom"), guided_backprop(net):
        assert not torch.allclose(input_grad(net, x, False), plain)  # guided inside the block
        raise RuntimeError("boom")
    torch.testing.assert_close(input_grad(net, x, False), plain)


def test_guided_and_plain_threads_on_one_model_each_get_their_own_gradient(model, examples_dir):
    """Two threads share the loaded model at the same moment, one guided and one plain."""
    x = model.normalize(model.to_pixels(load_image(examples_dir / "chelsea.png")))
    expected = {True: input_grad(model.net, x, True), False: input_grad(model.net, x, False)}
    assert not torch.allclose(expected[True], expected[False])
    barrier, got, errors = threading.Barrier(2), {True: [], False: []}, []

    def work(guided: bool) -> None:
        try:
            for _ in range(3):
                barrier.wait(timeout=60)
                got[guided].append(input_grad(model.net, x, guided))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(g,)) for g in (True, False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for guided in (True, False):
        for g in got[guided]:
            torch.testing.assert_close(g, expected[guided])


# --- models ------------------------------------------------------------------------------------

def test_torchvision_model_without_weights_says_how_to_provide_them(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ModelUnavailableError, match=r"vgg16 weights not found offline.*--weights"):
        load_model("vgg16")
    with pytest.raises(ModelUnavailableError, match="unknown model"):
        load_model("alexnet")


def test_folded_network_keeps_the_outputs_and_the_layer_names(model, examples_dir):
    """BatchNorm folded into the convolutions: no norm left, the same logits, every registry layer still there."""
    plain = model.spec.build(None).eval()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.net.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    for path in (model.spec.fol_layer, model.spec.cam_layer, "blocks.4.2.bn2"):
        model.layer(path)
    x = model.normalize(model.to_pixels(load_image(examples_dir / "chelsea.png")))
    with torch.inference_mode():
        torch.testing.assert_close(model.net(x), plain(x), rtol=1e-4, atol=1e-3)


def test_a_fold_that_would_change_the_outputs_is_undone():
    """A conv registered beside a norm it does not feed (here the norm runs first) is left alone."""

    class NormFirst(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)
            self.bn = nn.BatchNorm2d(3)
            self.bn.running_mean.fill_(0.5)
            self.bn.running_var.fill_(4.0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(self.bn(x))

    net = NormFirst().eval()
    assert fold_batchnorm(net, 8) is net


def test_precision_is_bf16_only_where_asked_or_native(monkeypatch, model, examples_dir):
    cpu = torch.device("cpu")
    assert choose_precision(cpu, "fp32") == "fp32"
    monkeypatch.setenv("FOL_PRECISION", "bf16")
    assert choose_precision(cpu) == "bf16"
    monkeypatch.delenv("FOL_PRECISION")
    assert choose_precision(torch.device("meta")) == "fp32"
    pixels = model.to_pixels(load_image(examples_dir / "chelsea.png"))
    before = model.precision
    try:
        scores = {}
        for precision in ("fp32", "bf16"):
            model.precision = precision
            scores[precision] = model.logits(pixels).softmax(-1)[0]
    finally:
        model.precision = before
    assert scores["bf16"].dtype == torch.float32
    assert int(scores["bf16"].argmax()) == int(scores["fp32"].argmax())
    assert (scores["bf16"] - scores["fp32"]).abs().max() < 0.05


def test_layer_can_be_chosen_and_bad_layers_are_refused(model, examples_dir):
    result = localize(examples_dir / "chelsea.png", model, "fol", layer="blocks.4.2.bn2")
    assert result.boxes
    with pytest.raises(UserError, match="no layer"):
        FastLocalization(model, layer="blocks.99")


def test_top1_on_the_dev_set(model, dev_set):
    ids = (dev_set / "ImageSets" / "Main" / "dev.txt").read_text().split()[:100]
    correct = 0
    for i in ids:
        truth = ET.parse(dev_set / "Annotations" / f"{i}.xml").getroot().findtext("object/name")
        correct += int(probabilities(model, load_image(dev_set / "JPEGImages" / f"{i}.JPEG")).argmax()) == resolve_class(truth)
    assert correct / len(ids) >= 0.7


@pytest.mark.slow  # loads the model or starts a subprocess
@pytest.mark.parametrize("name", ["vgg16", "resnet50"])
def test_registry_layers_exist_in_each_architecture(name):
    """The torchvision models cannot be loaded offline here, but their registered layers must exist."""
    import torchvision

    from fol_core.guided import SwitchableReLU
    from fol_core.models import get_spec

    spec = get_spec(name)
    net = make_switchable(getattr(torchvision.models, name)(weights=None))
    for path in (spec.fol_layer, spec.cam_layer) + ((spec.classifier,) if spec.classifier else ()):
        net.get_submodule(path)
    if name == "vgg16":  # the paper's layer 11: conv5_2's ReLU
        assert isinstance(net.get_submodule("features.27"), SwitchableReLU)
        assert isinstance(net.get_submodule("features.26"), nn.Conv2d)


def test_multiscale_cam_keeps_the_photos_shape_and_finds_the_cat(model, examples_dir):
    photo = load_image(examples_dir / "chelsea.png")  # 451 x 300
    result = localize(photo, model, "mscam")
    (expl,) = result.explanations
    h, w = expl.heatmap.shape
    assert h == 448 and w == pytest.approx(448 * 451 / 300, abs=32)  # the largest scale, aspect kept
    assert result.top5[0][0] in CATS and result.boxes[0].class_index in CATS
    box = result.boxes[0]
    assert 0 <= box.x0 < box.x1 <= 451 and 0 <= box.y0 < box.y1 <= 300
    with pytest.raises(UserError, match="scales"):
        localize(photo, model, "mscam", scales="16,x")


def test_a_thin_strip_is_squeezed_to_four_to_one_not_fed_at_its_own_length(model):
    strip = Image.new("RGB", (3000, 20), (120, 80, 40))
    result = localize(strip, model, "mscam")
    assert result.explanations[0].heatmap.shape == (448, 4 * 448)  # was 448 x 67200
    box = result.boxes[0]
    assert 0 <= box.x0 < box.x1 <= 3000 and 0 <= box.y0 < box.y1 <= 20


def test_fol_with_the_photos_shape_kept_boxes_each_named_class_in_its_own_half(model, mosaic):
    """Stretched to a square (the paper), each class's union of blobs spans both photos of the mosaic."""
    from fol_core.methods import create_method

    boxes = {}
    for shape in ("square", "kept"):
        result = localize(mosaic, model, create_method("fol", model, shape=shape), classes=["tabby", "espresso"])
        boxes[shape] = {b.label: b for b in result.boxes}
    assert boxes["square"]["tabby"].x1 > 500 and boxes["square"]["espresso"].x0 < 400
    assert boxes["kept"]["tabby"].x1 <= 450 <= boxes["kept"]["espresso"].x0


def test_multiscale_cam_pre_labels_photo_by_photo_as_the_engine_does(model, examples_dir, tmp_path):
    from fol_core.bootstrap.prelabel import LabelRequest, label_batch, open_run, photo_batches
    from fol_core.engine import explain_photo
    from fol_core.labelmap import LabelMap
    from fol_core.methods import create_method

    project, _ = open_run(str(examples_dir), str(tmp_path / "p"))
    method, lm = create_method("mscam", model), LabelMap.imagenet()
    (batch,) = photo_batches(project.source(), project.todo(), method, batch_size=8, workers=0)
    results = label_batch(batch, method, lm)
    for d, r in zip(batch, results):
        alone = explain_photo(project.source().open(d.key), method, LabelRequest(lm))
        assert [(b.x0, b.y0, b.x1, b.y1) for b in r.proposals] == [(b.x0, b.y0, b.x1, b.y1) for b in alone.boxes]
    project.close()


def test_grabcut_redraws_a_bleeding_heatmap_along_the_objects_edges():
    from fol_core.regions import binarize, grabcut_region, mask_box

    rng = np.random.default_rng(0)
    rgb = np.zeros((120, 160, 3), np.uint8)
    rgb[..., 1] = 150 + rng.integers(0, 30, (120, 160))  # textured green ground
    rgb[40:80, 60:110] = (200, 30, 30)  # a red object
    yy, xx = np.mgrid[:120, :160]
    heat = np.exp(-(((xx - 85) / 45.0) ** 2 + ((yy - 60) / 35.0) ** 2))  # peaks on it, bleeds far around it
    cut = mask_box(binarize(heat, 0.25))
    redrawn = mask_box(grabcut_region(rgb, heat, 0.25))
    assert cut[2] - cut[0] > 80  # the cut map is much wider than the object ...
    assert redrawn == pytest.approx((60, 40, 110, 80), abs=3)  # ... GrabCut follows the object's edges


def test_multiscale_cam_refined_by_grabcut_still_finds_the_cat(model, examples_dir, hand_boxes):
    from fol_core.methods import create_method

    method = create_method("mscam", model, refine="grabcut")
    result = localize(examples_dir / "chelsea.png", model, method)
    assert result.boxes[0].class_index in CATS
    box = result.boxes[0]
    assert iou((box.x0, box.y0, box.x1, box.y1), hand_boxes["chelsea.png"]["box"]) >= 0.5
    (cal,) = [method.explain_each(method.forward(method.pixels(load_image(examples_dir / "chelsea.png"))),
                                  box.class_index, "threshold", [method.threshold])]
    assert cal[0].mask.shape == result.explanations[0].mask.shape
    assert (cal[0].mask == result.explanations[0].mask).all()  # calibration redraws as explain does


def test_spread_carries_the_class_map_over_the_object_that_looks_alike_and_nowhere_else():
    """The map is hot on the object's left part (its telling part) and dim on the rest of it and on some ground;
    the object's pixels share their features, the ground's differ, and a look-alike far from the map is cut
    by the floor."""
    from fol_core.methods.mscam import affinity_walk, spread

    features = torch.zeros(2, 8, 8)
    features[1] = 1.0  # ground
    features[:, 2:6, 1:6] = torch.tensor([1.0, 0.0])[:, None, None]  # the object: x 8-48, y 16-48 px
    features[:, 0, 7] = torch.tensor([1.0, 0.0])  # a look-alike corner
    heat = np.zeros((64, 64), np.float32)
    heat[16:48, 8:48] = 0.1
    heat[16:48, 8:24] = 1.0  # the object's left part
    heat[:, :8] = 0.1  # some ground at the left edge
    assert heat[20:44, 28:44].max() < 0.45  # cut as it is, the right part of the object is lost
    out = spread(heat, affinity_walk(features, power=2.0))
    assert out.max() == pytest.approx(1.0)
    assert out[20:44, 28:44].min() > 0.9  # spread, it is as hot as the left part
    assert out[:, :4].max() < 0.1  # the ground stays cold ...
    assert out[:8, 56:].max() == 0.0  # ... and so does the far look-alike


def test_multiscale_cam_spreads_with_the_models_affinity_layer_unless_told_not_to(model, examples_dir):
    from fol_core.methods import create_method

    photo = load_image(examples_dir / "chelsea.png")  # 451 x 300: 448 x 672 px at the largest scale
    spread_on, spread_off = create_method("mscam", model), create_method("mscam", model, spread=0)
    fp = spread_on.forward(spread_on.pixels(photo))
    assert fp.walk.shape == (448 // 16, 672 // 16, 28 * 42)  # blocks.4, stride 16, of the largest scale
    unspread = spread_off.forward(spread_off.pixels(photo))
    assert unspread.walk is None
    cat = int(fp.probs.argmax())
    assert not np.allclose(spread_on.heatmap_of(fp, cat), spread_off.heatmap_of(unspread, cat))


def test_foreground_probe_learns_what_the_confident_pixels_look_like_and_keeps_it(tmp_path):
    """Object pixels share a feature, background ones another; the class map is confident on only part of
    the object. The probe fit on the confident pixels calls the whole object foreground, the background not,
    and a saved probe answers the same."""
    from fol_core.foreground import ForegroundHead

    torch.manual_seed(0)
    examples = []
    for _ in range(4):
        fine, coarse = torch.randn(6, 8, 8) * 0.1, torch.randn(4, 4, 4) * 0.1
        fine[0, 2:6, 2:6] += 1.0  # the object
        fine[1] += 1.0
        fine[1, 2:6, 2:6] -= 1.0
        heat = torch.zeros(8, 8)
        heat[2:6, 2:4] = 1.0  # the map lights the object's left half
        heat[2:6, 4:6] = 0.3  # and half-lights the rest: no label there
        examples.append((ForegroundHead.pixels(fine, coarse), heat))
    head = ForegroundHead.fit(("fine", "coarse"), examples)
    probs = head(fine, coarse)
    assert probs[2:6, 4:6].min() > 0.8  # the unlit half of the object
    assert probs[:2].max() < 0.2 and probs[6:].max() < 0.2
    head.save(tmp_path / "probe.safetensors")
    again = ForegroundHead.load(tmp_path / "probe.safetensors")
    assert again.layers == ("fine", "coarse")
    assert torch.allclose(again(fine, coarse), probs)
    with pytest.raises(ValueError, match="no object pixel"):
        ForegroundHead.fit(("fine", "coarse"), [(examples[0][0], torch.zeros(8, 8))])


def test_multiscale_cam_weights_the_class_map_by_the_shipped_foreground_probe(model, examples_dir, hand_boxes):
    from fol_core.methods import create_method

    photo = load_image(examples_dir / "chelsea.png")  # 451 x 300: 448 x 672 px at the largest scale
    method = create_method("mscam", model)
    assert method.foreground == 1.0 and model.foreground.layers == ("blocks.4", "bn2")
    fp = method.forward(method.pixels(photo))
    assert fp.foreground.shape == (448 // 16, 672 // 16)
    x0, y0, x1, y1 = (round(v * 448 / 300 / 16) for v in hand_boxes["chelsea.png"]["box"])
    inside = fp.foreground[y0:y1, x0:x1]
    assert inside.mean() > 0.5 > (fp.foreground.sum() - inside.sum()) / (fp.foreground.numel() - inside.numel())
    off = create_method("mscam", model, foreground=0)
    unweighted = off.forward(off.pixels(photo))
    assert unweighted.foreground is None
    cat = int(fp.probs.argmax())
    assert not np.allclose(method.heatmap_of(fp, cat), off.heatmap_of(unweighted, cat))


def test_normalized_cut_splits_the_photo_where_its_features_change_and_weights_the_side_the_map_is_on():
    """Left and right halves of an 8 x 12 grid have different features; the class map lies mostly on the
    right with a spill to the left. The cut follows the halves, the spill fades to NCUT_FLOOR ** power, the
    same photo is cut the same way every time, and a map mostly on the left keeps the left instead."""
    from fol_core.methods.mscam import NCUT_FLOOR, normalized_cut, with_cut

    torch.manual_seed(0)
    x = torch.randn(8, 12, 16) * 0.05
    x[:, :6, 0] += 1.0
    x[:, 6:, 1] += 1.0
    cut = normalized_cut(x.reshape(-1, 16), (8, 12))
    assert cut.shape == (8, 12) and torch.equal(cut, normalized_cut(x.reshape(-1, 16), (8, 12)))
    left = cut[:, :6] > 0
    assert left.all() != (cut[:, 6:] > 0).any() and (left.all() or not left.any())
    heat = np.zeros((32, 48), np.float32)
    heat[8:24, 28:44] = 1.0
    heat[8:24, 4:8] = 0.5  # the spill
    fused = with_cut(heat, cut, 1.0)
    assert fused.max() == pytest.approx(1.0) and fused[16, 36] == pytest.approx(1.0)
    assert fused[16, 6] == pytest.approx(0.5 * NCUT_FLOOR)
    heat[8:24, 4:8] = 1.0
    heat[8:24, 28:44] = 0.2  # now the left holds more of the map (64 against 51)
    assert with_cut(heat, cut, 1.0)[16, 36] == pytest.approx(0.2 * NCUT_FLOOR)


def test_multiscale_cam_cuts_the_photo_once_unless_told_not_to(model, examples_dir):
    from fol_core.methods import create_method

    photo = load_image(examples_dir / "chelsea.png")
    method, off = create_method("mscam", model), create_method("mscam", model, ncut=0)
    assert method.ncut == 0.5 and method.threshold == 0.25
    fp = method.forward(method.pixels(photo))
    assert fp.cut.shape == fp.foreground.shape == (448 // 16, 672 // 16)
    unweighted = off.forward(off.pixels(photo))
    assert unweighted.cut is None
    cat = int(fp.probs.argmax())
    assert not np.allclose(method.heatmap_of(fp, cat), off.heatmap_of(unweighted, cat))
    probe_only = create_method("mscam", model, foreground=0).forward(method.pixels(photo))
    assert probe_only.foreground is None and torch.equal(probe_only.cut, fp.cut)  # the cut alone still reads the probe's layers


def test_fol_trimmed_by_the_foreground_probe_keeps_a_part_of_its_union_and_the_cat(model, examples_dir, monkeypatch):
    from fol_core.methods import create_method

    photo = load_image(examples_dir / "chelsea.png")
    paper, trimmed = create_method("fol", model, k=1), create_method("fol", model, k=1, trim=0.5)
    fp = paper.forward(paper.pixels(photo))
    cat = int(fp.probs.argmax())
    union, kept = paper.explain(fp, cat).mask, trimmed.explain(fp, cat).mask
    assert kept.any() and not (kept & ~union).any()  # the same blob, only trimmed
    probe = trimmed.foreground_of(fp.pixels)[0].numpy()
    assert probe.shape == union.shape and (probe[kept] >= 0.5).all()
    (box,) = trimmed.boxes(trimmed.explain(fp, cat), photo.width, photo.height)
    assert box.x0 < 225 < box.x1 and box.y0 < 150 < box.y1  # on the cat's face (the photo is a close-up)
    monkeypatch.setattr(model, "foreground", None)
    with pytest.raises(UserError, match="ships none"):
        create_method("fol", model, trim=0.5)
