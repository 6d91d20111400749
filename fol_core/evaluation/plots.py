"""The paper's plots (IoU histogram, centre-correctness against margin), a bar chart of every method and
baseline, the calibration curves, and a sheet of each method's worst and best photos.

Figures are built on matplotlib's Figure directly (Agg canvas, no pyplot state), so this runs headless
and from any thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from ..imagenet import classes
from ..images import load_image
from .evaluate import Outcome

COLOURS = {
    "fol": "#1f77b4", "gradcam": "#ff7f0e", "cam": "#2ca02c", "whole_image": "#7f7f7f", "centre_80": "#222222",
}
TRUTH, PREDICTED = "#00e5ff", "#ff2d95"
"""Failure sheet: true boxes cyan, the method's boxes magenta (its best one thick)."""
_OUTLINE = [patheffects.withStroke(linewidth=4.5, foreground="black")]


def _entries(results: dict) -> list[tuple[str, dict, bool]]:
    """(name, entry, is_baseline) for every method, then every baseline."""
    methods, baselines = results["methods"].items(), results["baselines"].items()
    return [(n, r, False) for n, r in methods] + [(n, r, True) for n, r in baselines]


def _label(name: str, baseline: bool) -> str:
    return f"{name.replace('_', ' ')} (baseline)" if baseline else name


def _colour(name: str) -> str:
    return COLOURS.get(name, "#9467bd")


def iou_histogram(results: dict, path: Path) -> None:
    """One panel per method and baseline: the share of images in each IoU bin (the paper's Figure 5)."""
    entries = _entries(results)
    fig = Figure(figsize=(3.3 * len(entries), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(entries), sharey=True))
    for ax, (name, r, baseline) in zip(axes, entries):
        edges, counts = r["iou_histogram"]["edges"], np.asarray(r["iou_histogram"]["counts"], float)
        ax.bar(edges[:-1], counts / max(1.0, counts.sum()), width=np.diff(edges), align="edge",
               color=_colour(name), alpha=0.55 if baseline else 0.9, edgecolor="white")
        ax.axvline(0.5, color="black", ls="--", lw=1)
        ax.set_title(f"{_label(name, baseline)}\nmean IoU {r['mean_iou']:.2f}, "
                     f"IoU≥0.5: {100 * r['gt_known_loc']:.0f}%", fontsize=10)
        ax.set_xlim(0, 1)
        ax.set_xlabel("IoU with the true box")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("share of images")
    fig.suptitle(f"IoU histogram — {results['dataset']}, {results['n_images']} images ({results['split']})")
    fig.savefig(path, dpi=110)


def centre_correctness(results: dict, path: Path) -> None:
    """Share of images whose box centre lies in the true box shrunk by a margin (the paper's Figure 7)."""
    fig = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = fig.subplots()
    entries = _entries(results)
    for i, (name, r, baseline) in enumerate(entries):  # equal curves stay visible: earlier lines are wider
        margins = [float(m) for m in r["center_correct"]]
        ax.plot(margins, [100 * v for v in r["center_correct"].values()], marker="osD^v"[i % 5], ms=9 - i,
                ls="--" if baseline else "-", lw=1.5 + 0.7 * (len(entries) - 1 - i), color=_colour(name),
                alpha=0.8, label=_label(name, baseline))
    ax.set_xlabel("margin (fraction of the true box's side removed on each side)")
    ax.set_ylabel("centre inside the shrunk true box (% of images)")
    ax.set_ylim(0, 100)
    ax.set_xlim(0, 0.5)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"Centre-correctness — {results['dataset']}, {results['n_images']} images ({results['split']})",
                 fontsize=10)
    fig.savefig(path, dpi=110)


METRICS = (("GT-known Loc", "gt_known_loc"), ("Top-1 Loc", "top1_loc"), ("mean IoU", "mean_iou"),
           ("MaxBoxAccV2", "maxboxacc_v2"), ("centre m=0.1", "0.1"))


def comparison(results: dict, path: Path) -> None:
    """Grouped bars: each metric (in %) for every method and baseline; GT-known Loc with its 95% interval."""
    entries = _entries(results)
    fig = Figure(figsize=(11, 4.8), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(entries)
    x = np.arange(len(METRICS))
    for i, (name, r, baseline) in enumerate(entries):
        values = [100 * (r["center_correct"][key] if key[0].isdigit() else r.get(key) or np.nan) for _, key in METRICS]
        at = x + (i - (len(entries) - 1) / 2) * width
        bars = ax.bar(at, values, width, color=_colour(name), alpha=0.55 if baseline else 0.95,
                      hatch="//" if baseline else None, edgecolor="white", label=_label(name, baseline))
        labels = ["" if np.isnan(v) else f"{v:.0f}" for v in values]
        ci = r.get("gt_known_interval")  # GT-known Loc (the first group) with its 95% interval, labelled above it
        if ci is not None:
            ax.errorbar(at[0], values[0], yerr=[[values[0] - 100 * ci[0]], [100 * ci[1] - values[0]]],
                        color="#333333", capsize=2, lw=1)
            ax.text(at[0], 100 * ci[1] + 1, labels[0], ha="center", va="bottom", fontsize=8)
            labels[0] = ""
        ax.bar_label(bars, labels=labels, fontsize=8, padding=1)
    ax.set_xticks(x, [m for m, _ in METRICS])
    ax.set_ylabel("% of images (mean IoU x 100)")
    ax.set_ylim(0, 105)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(ncol=len(entries), loc="upper center", bbox_to_anchor=(0.5, -0.08), frameon=False)
    ax.set_title(f"Methods and constant-box baselines — {results['dataset']}, {results['n_images']} images "
                 f"({results['split']}), model {results['model']}", fontsize=10)
    fig.savefig(path, dpi=110)


def calibration(calib: dict[str, Any], path: Path) -> None:
    """GT-known Loc and mean IoU on the calibration images against each method's threshold."""
    items = list(calib["methods"].items())
    fig = Figure(figsize=(4.2 * len(items), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(items)))
    for ax, (name, c) in zip(axes, items):
        ax.plot(c["values"], [100 * v for v in c["gt_known_loc"]], marker="o", ms=4, color=_colour(name),
                label="GT-known Loc (%)")
        ax.plot(c["values"], [100 * v for v in c["mean_iou"]], ls="--", color=_colour(name), label="mean IoU x 100")
        ax.axvline(c["chosen"], color="black", lw=1, label=f"chosen {c['chosen']:g}")
        if isinstance(c["default"], int | float):
            ax.axvline(c["default"], color="grey", lw=1, ls=":", label=f"default {c['default']:g}")
        ax.set_title(f"{name}: {c['param']}", fontsize=10)
        ax.set_xlabel(c["param"])
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Calibration on {calib['source']} ({items[0][1]['n_images']} images)", fontsize=10)
    fig.savefig(path, dpi=110)


def _caption(o: Outcome, rank: str, names: list[str]) -> str:
    truth = names[o.sample.classes[0]] if len(o.sample.classes) == 1 else o.sample.label
    top1 = "" if o.top1_ok else f"\ntop-1: {names[o.top1]}"
    return f"{rank} IoU {o.iou:.2f}: {truth[:22]}{top1}"


def _tile(ax: Any, o: Outcome, rank: str, names: list[str]) -> None:
    ax.imshow(load_image(o.sample.path))
    for x0, y0, x1, y1 in o.sample.boxes:
        r = ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=TRUTH, lw=2.2))
        r.set_path_effects(_OUTLINE)
    for i, (x0, y0, x1, y1) in enumerate(o.boxes):
        best = i == o.best
        r = ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=PREDICTED,
                                   lw=2.6 if best else 1.3, ls="-" if best else "--"))
        if best:
            r.set_path_effects(_OUTLINE)
    ax.set_title(_caption(o, rank, names), fontsize=9, loc="left")
    ax.set_axis_off()


def sheet(name: str, outcomes: list[Outcome], path: Path, n: int = 8, columns: int = 4,
          names: list[str] | None = None) -> None:
    """The method's n worst and n best samples by IoU, true boxes and its boxes drawn on each photo."""
    ranked = sorted(outcomes, key=lambda o: (o.iou, o.sample.image_id))
    n = min(n, len(ranked))
    groups = [("worst", ranked[:n]), ("best", ranked[::-1][:n])]
    rows = -(-n // columns)
    fig = Figure(figsize=(3.2 * columns, 2 * rows * 3.5 + 0.6), layout="constrained")
    for sub, (title, items) in zip(fig.subfigures(2, 1), groups):
        axes = np.atleast_1d(sub.subplots(rows, columns)).ravel()
        for i, ax in enumerate(axes):
            if i < len(items):
                _tile(ax, items[i], f"#{i + 1}", names or [c.name for c in classes()])
            else:
                ax.set_axis_off()
        sub.suptitle(f"{name}: {title} {len(items)} of {len(outcomes)} (by IoU of its best box)", fontsize=12,
                     fontweight="bold")
    fig.legend(handles=[Line2D([], [], color=TRUTH, lw=3, label="true boxes"),
                        Line2D([], [], color=PREDICTED, lw=3, label=f"{name}'s best box"),
                        Line2D([], [], color=PREDICTED, lw=1.3, ls="--", label=f"{name}'s other boxes")],
               loc="outside lower center", ncol=3, frameon=False)
    fig.savefig(path, dpi=90)


def write_plots(results: dict, outcomes: dict[str, list[Outcome]], out: Path, n_sheet: int = 8,
                class_names: list[str] | None = None) -> list[Path]:
    """Every plot and one sheet per method (none when n_sheet is 0), written into `out`; returns their paths
    (captions name the model's classes: ImageNet's unless given)."""
    paths = [out / "iou_histogram.png", out / "center_correctness.png", out / "comparison.png"]
    iou_histogram(results, paths[0])
    centre_correctness(results, paths[1])
    comparison(results, paths[2])
    if results.get("calibration"):
        paths.append(out / "calibration.png")
        calibration(results["calibration"], paths[-1])
    for name, outs in outcomes.items():
        if outs and n_sheet > 0:
            paths.append(out / f"sheet_{name}.png")
            sheet(name, outs, paths[-1], n_sheet, names=class_names)
    return paths
