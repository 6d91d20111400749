"""results.json, results.md and per_image.csv from the outcomes: every method and both constant baselines
on the same images."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..methods import get_method
from .evaluate import Outcome
from .metrics import (
    BASELINES,
    IOU_CORRECT,
    SMALL_OBJECT,
    baseline_box,
    best_match,
    fixed_box_accuracy,
    iou_matrix,
    maxboxacc,
    paired_test,
    photo_kinds,
    summarize,
)

HIST_EDGES = tuple(round(0.1 * i, 1) for i in range(11))
"""IoU histogram bins (the paper's Figure 5): [0, 0.1), ..., [0.9, 1.0]."""


def _histogram(ious: list[float]) -> dict[str, list]:
    counts, _ = np.histogram(ious, bins=HIST_EDGES)
    return {"edges": list(HIST_EDGES), "counts": counts.tolist()}


KINDS = ("one object", "several objects", "small objects", "larger objects")


def by_kind(kinds: list[tuple[str, str]], ious: list[float]) -> dict[str, dict[str, float | int | None]]:
    """GT-known Loc within each kind of photo (`photo_kinds`, one per sample), with how many samples each
    holds: why two splits of one set score apart, and where the misses are."""
    out = {}
    for kind in KINDS:
        hits = [iou >= IOU_CORRECT for iou, k in zip(ious, kinds) if kind in k]
        out[kind] = {"n": len(hits), "gt_known_loc": float(np.mean(hits)) if hits else None}
    return out


def baseline_ious(outcomes: list[Outcome], fraction: float) -> list[float]:
    """IoU of a constant centred box (fraction of each side) with each sample's true boxes."""
    return [best_match([baseline_box(o.sample.width, o.sample.height, fraction)], o.sample.boxes)[0] for o in outcomes]


def method_entry(name: str, outcomes: list[Outcome], params: dict[str, Any], kinds: list[tuple[str, str]],
                 ious: list[float]) -> dict[str, Any]:
    """A method's scores (`ious`: each outcome's IoU, as the paired comparisons read them)."""
    truths = [o.sample.boxes for o in outcomes]
    entry = summarize(ious, [o.top1_ok for o in outcomes], [o.best_box for o in outcomes], truths,
                      [o.seconds for o in outcomes])
    if get_method(name).heatmap:
        curves = np.stack([o.curve for o in outcomes]) if outcomes else np.zeros((0, 100))
        per_delta = maxboxacc(curves)
        entry["maxboxacc_v2"] = float(np.mean([v["accuracy"] for v in per_delta.values()]))
        entry["maxboxacc"] = per_delta
    entry["top_box_loc"] = float(np.mean([o.top_iou >= IOU_CORRECT for o in outcomes])) if outcomes else 0.0
    entry["recall"] = _recall([o.found for o in outcomes], truths)
    entry["by_kind"] = by_kind(kinds, ious)
    entry["params"] = params
    entry["iou_histogram"] = _histogram(ious)
    return entry


def _recall(found: list[int], truths: list[np.ndarray]) -> float:
    """All-objects recall: true boxes matched at IoU >= 0.5 by some box, over all true boxes."""
    total = sum(len(t) for t in truths)
    return sum(found) / total if total else 0.0


def baseline_entries(outcomes: list[Outcome], kinds: list[tuple[str, str]], ious: dict[str, list[float]]
                     ) -> dict[str, dict[str, Any]]:
    """The constant boxes (`ious`: each one's `baseline_ious`), scored on the same samples; Top-1 Loc uses the
    same classifier's top-1."""
    out = {}
    truths = [o.sample.boxes for o in outcomes]
    for name, fraction in BASELINES.items():
        boxes = [baseline_box(o.sample.width, o.sample.height, fraction) for o in outcomes]
        entry = summarize(ious[name], [o.top1_ok for o in outcomes], boxes, truths)
        entry["maxboxacc_v2"] = fixed_box_accuracy(ious[name])
        entry["top_box_loc"] = entry["gt_known_loc"]  # one box: it is the top box
        found = [int((iou_matrix([b], t).max(0) >= IOU_CORRECT).sum()) for b, t in zip(boxes, truths)]
        entry["recall"] = _recall(found, truths)
        entry["by_kind"] = by_kind(kinds, ious[name])
        entry["iou_histogram"] = _histogram(ious[name])
        out[name] = entry
    return out


def comparisons(ious: dict[str, list[float]], methods: Sequence[str]) -> list[dict[str, Any]]:
    """Each method against each later entry (the other methods, then the baselines) on the same samples: the
    difference in GT-known Loc and the exact McNemar test of it (`paired_test`)."""
    hits = {name: np.asarray(v) >= IOU_CORRECT for name, v in ious.items()}
    names = list(hits)
    return [{"a": a, "b": b, "difference": float(hits[a].mean() - hits[b].mean()), **paired_test(hits[a], hits[b])}
            for i, a in enumerate(names) if a in methods for b in names[i + 1:]]


def build_results(dataset: str, model: str, split: str, outcomes: dict[str, list[Outcome]],
                  params: dict[str, dict[str, Any]], calibration: dict[str, Any] | None, command: str) -> dict:
    first = next(iter(outcomes.values()))  # every method ran on the same samples, in the same order
    kinds = [photo_kinds(o.sample.boxes, o.sample.width, o.sample.height) for o in first]
    base = {name: baseline_ious(first, fraction) for name, fraction in BASELINES.items()}
    ious = {name: [o.iou for o in outs] for name, outs in outcomes.items()} | base
    return {
        "dataset": dataset,
        "split": split,
        "n_images": len({o.sample.image_id for o in first}),
        "n_samples": len(first),
        "model": model,
        "top1_accuracy": float(np.mean([o.top1_ok for o in first])),
        "command": command,
        "methods": {name: method_entry(name, outs, params[name], kinds, ious[name]) for name, outs in outcomes.items()},
        "baselines": baseline_entries(first, kinds, base),
        "comparisons": comparisons(ious, list(outcomes)),
        "calibration": calibration,
    }


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}"


def _row_label(kind: str, name: str) -> str:
    return name if kind == "methods" else f"*{name.replace('_', ' ')}* (baseline)"


def markdown_table(results: dict) -> str:
    """Methods then baselines: the localization scores in %, mean IoU, seconds per image."""
    head = ("| | GT-known Loc | its 95% interval | top box Loc | Top-1 Loc | mean IoU | recall | MaxBoxAccV2 "
            "| centre m=0 | centre m=0.25 | s / image |\n| --- |" + " ---: |" * 10 + "\n")
    rows = []
    for kind in ("methods", "baselines"):
        for name, r in results[kind].items():
            s, ci = r["s_per_image"], r["gt_known_interval"]
            interval = "—" if ci is None else f"{_pct(ci[0])}-{_pct(ci[1])}"
            rows.append(
                f"| {_row_label(kind, name)} | {_pct(r['gt_known_loc'])} | {interval} "
                f"| {_pct(r['top_box_loc'])} | {_pct(r['top1_loc'])} "
                f"| {r['mean_iou']:.3f} | {_pct(r['recall'])} | {_pct(r.get('maxboxacc_v2'))} | {_pct(r['center_correct']['0.0'])} "
                f"| {_pct(r['center_correct']['0.25'])} | {'—' if s is None else f'{s:.3f}'} |"
            )
    return head + "\n".join(rows) + "\n"


def kinds_table(results: dict) -> str:
    """GT-known Loc by kind of photo, methods then baselines."""
    counts = next(iter(results["methods"].values()))["by_kind"]
    head = ("| | " + " | ".join(f"{k} ({counts[k]['n']})" for k in KINDS) + " |\n| --- |"
            + " ---: |" * len(KINDS) + "\n")
    rows = [f"| {_row_label(kind, name)} | " + " | ".join(_pct(r["by_kind"][k]["gt_known_loc"]) for k in KINDS) + " |"
            for kind in ("methods", "baselines") for name, r in results[kind].items()]
    return head + "\n".join(rows) + "\n"


def comparisons_table(results: dict) -> str:
    """The paired comparisons: by how much one entry leads the other, on how many samples only one of them
    hits, and how likely such a split would be if neither were better (exact McNemar)."""
    label = {name: _row_label(kind, name) for kind in ("methods", "baselines") for name in results[kind]}
    head = ("| first | second | difference (points) | only the first hits | only the second hits | p |\n"
            "| --- | --- | ---: | ---: | ---: | ---: |\n")
    rows = [f"| {label[c['a']]} | {label[c['b']]} | {100 * c['difference']:+.1f} | {c['only_a']} | {c['only_b']} "
            f"| {c['p']:.2g} |" for c in results["comparisons"]]
    return head + "\n".join(rows) + "\n"


def calibration_table(calibration: dict[str, Any]) -> str:
    head = ("| method | parameter | default | chosen | GT-known Loc at chosen (calib) | calib images |\n"
            "| --- | --- | ---: | ---: | ---: | ---: |\n")
    rows = [
        f"| {name} | {c['param']} | {c['default']} | {c['chosen']:g} "
        f"| {_pct(c['gt_known_loc'][c['values'].index(c['chosen'])])} | {c['n_images']} |"
        for name, c in calibration["methods"].items()
    ]
    return head + "\n".join(rows) + "\n"


DEFINITIONS = """\
- **GT-known Loc**: the true class is explained; right when a box has IoU >= 0.5 with a true box of it
  (a method giving several boxes is scored by its best one).
- **95% interval**: Wilson's interval of GT-known Loc, where the score on other photos like these may
  lie; two methods are compared on the same photos by the paired comparisons instead (samples are taken as
  independent, though a mosaic's two classes share one image).
- **top box Loc**: only the method's first box counts (what a reviewer sees first); class-agnostic
  runs (`--agnostic`) explain the classifier's top-1 class and match any true box, whatever its name.
- **Top-1 Loc**: GT-known Loc and the classifier's top-1 class is the true one.
- **recall**: the true boxes matched at IoU >= 0.5 by some box of the method, over all true boxes
  (one box per object is needed when a class appears several times).
- **mosaics** (`--mosaics`): two photos of different classes side by side, both classes named; each
  class is scored against its own photo's boxes.
- **mean IoU**: the best IoU of the method's boxes with the true boxes (0 without a box).
- **centre m**: the centre of the method's best box lies inside a true box shrunk by m x its width on
  the left and on the right and m x its height at top and bottom (the paper's centre-correctness).
- **MaxBoxAccV2** (Choe et al., CVPR 2020): heatmap thresholds 0, 0.01, ..., 0.99, a box around every
  contour, right when any has IoU >= delta with a true box; the best threshold's accuracy, averaged over
  delta 0.3, 0.5, 0.7. For the constant boxes (no threshold): the mean over delta of IoU >= delta.
- Baselines: *whole image*, and *centre 80*: a centred box of 80% of each side.
"""


def plots_line(calibrated: bool) -> str:
    """The report's list of the files beside it (calibration.png only when a calibration was run)."""
    plots = ["iou_histogram.png", "center_correctness.png", "comparison.png"] + ["calibration.png"] * calibrated
    return (f"\nPlots: {', '.join(f'`{p}`' for p in plots)}; worst and best images per method: "
            "`sheet_METHOD.png`; every sample: `per_image.csv`.\n")


def markdown(results: dict) -> str:
    text = (
        f"# Localization on {results['dataset']}\n\n"
        f"{results['n_images']} images ({results['n_samples']} image-label samples), split `{results['split']}`, "
        f"model `{results['model']}` (top-1 classification accuracy {_pct(results['top1_accuracy'])}%).\n\n"
        f"```\n{results['command']}\n```\n\n"
        "Scores in % of samples (mean IoU as a fraction); s / image is the median time of one forward pass, "
        "the explanation and the boxes (reading and decoding the photo not counted).\n\n"
        + markdown_table(results) + "\n"
        f"GT-known Loc by kind of photo (samples of each in brackets; small: the largest true box covers under "
        f"{SMALL_OBJECT:.0%} of the photo):\n\n" + kinds_table(results) + "\n"
        "Paired comparisons on the same samples (p: exact McNemar test; under 0.05, a lead unlikely to be "
        "chance):\n\n" + comparisons_table(results) + "\n"
    )
    if results.get("calibration"):
        cal = results["calibration"]
        text += (f"Thresholds chosen by GT-known Loc on {cal['source']}, never on the scored images:\n\n"
                 + calibration_table(cal) + "\n")
    return text + DEFINITIONS + plots_line(bool(results.get("calibration")))


def _rounded(value: Any) -> Any:
    """Floats to 4 decimals, so results.json reads like the table."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def write_reports(results: dict, outcomes: dict[str, list[Outcome]], out: Path) -> None:
    (out / "results.json").write_text(json.dumps(_rounded(results), indent=1), encoding="utf-8")
    (out / "results.md").write_text(markdown(results), encoding="utf-8")
    with (out / "per_image.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "label", "method", "iou", "correct", "top1", "top1_ok", "n_boxes",
                    "x0", "y0", "x1", "y1", "seconds"])
        for name, outs in outcomes.items():
            for o in outs:
                box = o.best_box if o.best_box is not None else [""] * 4
                w.writerow([o.sample.image_id, o.sample.label, name, f"{o.iou:.4f}", int(o.correct), o.top1,
                            int(o.top1_ok), len(o.boxes), *(f"{v:.1f}" if v != "" else "" for v in box),
                            f"{o.seconds:.4f}"])

