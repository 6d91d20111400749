"""Batched inference: the same boxes as one photo at a time, for every method; the batched pre-labeler and the
Ray engine store what the one-at-a-time pre-labeler stores; memory stays flat over a long run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fol_core.bootstrap.prelabel import open_run, run_prelabel
from fol_core.engine import ImageNetRequest, explain_photo, explain_photos
from fol_core.images import load_image
from fol_core.methods import METHODS, GradCAM, create_method

PHOTOS = ("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png")


def _boxes(result) -> list[tuple]:
    return [(b.x0, b.y0, b.x1, b.y1, b.label, b.class_index, b.method) for b in result.boxes]


@pytest.fixture(scope="module")
def photos(examples_dir, dev_set) -> list:
    """The examples and a few dev photos: different sizes and aspect ratios in one batch."""
    dev = sorted((dev_set / "JPEGImages").iterdir())[:4]
    return [load_image(examples_dir / p) for p in PHOTOS] + [load_image(p) for p in dev]


@pytest.mark.parametrize("name", list(METHODS))
def test_a_batch_gives_the_boxes_of_one_photo_at_a_time(model, photos, name):
    if METHODS[name].unavailable(model):
        pytest.skip(f"{name} does not run on {model.name}")
    method = create_method(name, model)
    request = ImageNetRequest.of(None, topn=2)  # two rounds where a second class comes close
    alone = [explain_photo(p, method, request) for p in photos]
    batch = explain_photos(photos, method, [request] * len(photos))
    assert any(len(r.explanations) > 1 for r in alone), "no photo exercised a second round"
    for a, b in zip(alone, batch):
        assert _boxes(a) == _boxes(b)
        assert (a.width, a.height, a.top5[0][0]) == (b.width, b.height, b.top5[0][0])
        assert abs(a.probabilities - b.probabilities).max() < 1e-4


def test_a_method_that_explains_its_own_way_is_batched_photo_by_photo(model, photos):
    """A subclass overriding explain (not explain_batch) must not get the parent's batched shortcut."""

    class Shifted(GradCAM):
        name = "shifted"

        def explain(self, fp, class_index):
            expl = super().explain(fp, class_index)
            expl.mask = expl.mask[:, ::-1].copy()  # mirrored: differs from Grad-CAM's mask
            return expl

    method = Shifted(model)
    request = ImageNetRequest.of(["tabby"])
    alone = explain_photo(photos[0], method, request)
    batch = explain_photos(photos[:2], method, [request] * 2)
    assert _boxes(alone) == _boxes(batch[0])
    assert _boxes(alone) != _boxes(explain_photo(photos[0], GradCAM(model), request))


@pytest.fixture(scope="module")
def folder(tmp_path_factory, examples_dir) -> Path:
    """The examples twice (a labelled folder too) and one corrupt file."""
    root = tmp_path_factory.mktemp("batch-src")
    for sub in ("a", "b"):
        (root / sub).mkdir()
        for p in PHOTOS:
            shutil.copy(examples_dir / p, root / sub / p)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    return root


def _stored(project) -> dict[str, tuple]:
    """Per image: stage, size, boxes, top class, then the confidence."""
    return {
        r.key: (r.stage, r.width, r.height, [(b.x0, b.y0, b.x1, b.y1, b.label, b.class_index) for b in r.proposals],
                [t["class_index"] for t in r.top5][:1], r.confidence or 0.0)
        for r in project.images()
    }


def _assert_same(got: dict[str, tuple], want: dict[str, tuple]) -> None:
    """Boxes exactly; the confidence to 1e-4 (a batch's probabilities may differ from one photo's in the last bits)."""
    assert got.keys() == want.keys()
    for key in want:
        assert got[key][:-1] == want[key][:-1], key
        assert got[key][-1] == pytest.approx(want[key][-1], abs=1e-4), key


@pytest.fixture(scope="module")
def one_at_a_time(tmp_path_factory, folder, model) -> dict[str, tuple]:
    project, _ = open_run(str(folder), str(tmp_path_factory.mktemp("one") / "p"))
    summary = run_prelabel(project, model, "gradcam", batch_size=1, workers=0)
    assert (summary.done, summary.failed) == (9, 1) and "broken.jpg" in summary.errors[0]
    stored = _stored(project)
    project.close()
    return stored


def test_batched_prelabel_stores_what_one_at_a_time_stores(tmp_path, folder, model, one_at_a_time):
    project, _ = open_run(str(folder), str(tmp_path / "p"))
    first = run_prelabel(project, model, "gradcam", limit=5, batch_size=3, workers=1)
    assert (first.done, first.remaining) == (5, 4)
    second = run_prelabel(project, model, "gradcam", batch_size=3, workers=1)  # resumes with the rest
    assert (second.done, second.remaining) == (4, 0)
    assert first.failed + second.failed == 1
    _assert_same(_stored(project), one_at_a_time)
    project.close()


@pytest.fixture(scope="module")
def local_ray():
    """Ray on this machine alone, on the loopback address; stopped at the end."""
    ray = pytest.importorskip("ray")
    from fol_core.bootstrap.distributed import start_ray

    assert start_ray(cpus=2)
    try:
        assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
        yield ray
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_ray_engine_stores_what_the_local_engine_stores_and_resumes(local_ray, tmp_path, folder, model, one_at_a_time):
    from fol_core.bootstrap.distributed import run_prelabel_ray

    project, _ = open_run(str(folder), str(tmp_path / "p"))
    first = run_prelabel_ray(project, model.name, "gradcam", limit=4, batch_size=2, actors=2)
    assert (first.done, first.remaining) == (4, 5)
    second = run_prelabel_ray(project, model.name, "gradcam", batch_size=2, actors=2)
    assert (second.done, second.remaining) == (5, 0)
    assert run_prelabel_ray(project, model.name, "gradcam").done == 0  # nothing is redone
    assert local_ray.is_initialized()  # a Ray the caller started is left running for the caller
    _assert_same(_stored(project), one_at_a_time)
    project.close()


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads /proc")
def test_memory_stays_flat_over_a_long_run(tmp_path, dev_set, model):
    """320 photos (80 dev photos under 4 names each, hard links): resident memory after the first quarter
    does not keep growing with the images done."""
    root = tmp_path / "many"
    for copy in range(4):
        (root / str(copy)).mkdir(parents=True)
        for p in sorted((dev_set / "JPEGImages").iterdir())[:80]:
            os.link(p, root / str(copy) / p.name)
    project, new = open_run(str(root), str(tmp_path / "p"))
    assert new == 320
    samples: list[tuple[int, float]] = []
    run_prelabel(project, model, "cam", batch_size=8, workers=1,
                 progress=lambda done, total, key: samples.append((done, _rss_mb())))
    assert project.counts()["new"] == 0
    after_warmup = max(rss for done, rss in samples if done <= 80)
    assert max(rss for _, rss in samples) < after_warmup + 40, samples
    project.close()
