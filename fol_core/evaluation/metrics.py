"""Localization metrics as pure functions of boxes and heatmaps, so each can be checked by hand.

Boxes are (x0, y0, x1, y1) pixel edges in the photo's own pixels: a box from column 0 to column 9
inclusive is (0, 10), its width is x1 - x0 and IoU needs no "+1" (VOC's 1-based integers are
converted on reading: x0 = xmin - 1, x1 = xmax).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from scipy.stats import binomtest
from torchvision.ops import box_area, box_iou

IOU_CORRECT = 0.5
"""GT-known and Top-1 Loc: a box is right at IoU >= 0.5 with a true box (ILSVRC's rule)."""
MARGINS = tuple(round(0.05 * i, 2) for i in range(11))
"""Centre-correctness margins 0, 0.05, ..., 0.5 (the paper's Figure 7)."""
CAM_THRESHOLDS = tuple(round(0.01 * i, 2) for i in range(100))
"""MaxBoxAccV2's heatmap thresholds 0, 0.01, ..., 0.99 (wsolevaluation's cam_curve_interval = 0.01)."""
MAXBOX_DELTAS = (0.3, 0.5, 0.7)
"""MaxBoxAccV2 averages the best-threshold box accuracy over these IoU criteria."""
CONFIDENCE = 0.95
"""Level of the interval (Wilson's) around each GT-known Loc."""
SMALL_OBJECT = 0.2
"""A photo of small objects: its largest true box covers less than this share of it. Every method misses
these far more often (the dev set's calib half: 24% hit against 88% for the rest), so their share in a split
moves its score."""


def as_boxes(boxes: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Any list of (x0, y0, x1, y1) as a float (n, 4) array (n may be 0)."""
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def iou_matrix(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(n, m) IoU of every predicted box with every true box (torchvision's box_iou)."""
    pred, truth = as_boxes(pred), as_boxes(truth)
    if not len(pred) or not len(truth):
        return np.zeros((len(pred), len(truth)))
    return box_iou(torch.from_numpy(pred), torch.from_numpy(truth)).nan_to_num(0.0).numpy()


def best_match(pred: np.ndarray, truth: np.ndarray) -> tuple[float, int | None]:
    """The best IoU over all (predicted, true) pairs and the index of that predicted box.

    A method that returns several boxes for the class is scored by its best one (GT-known protocol:
    any true box of the class counts); no box scores 0 and index None.
    """
    ious = iou_matrix(pred, truth)
    if ious.size == 0:
        return 0.0, None
    i = int(ious.max(1).argmax())
    return float(ious[i].max()), i


def centre_inside(box: Sequence[float], truth: np.ndarray, margin: float) -> bool:
    """The paper's centre-correctness: the predicted box's centre lies inside a true box shrunk by
    `margin` x its width on the left and on the right and `margin` x its height at top and bottom.

    Margin 0 is the true box itself (edges included); 0.25 its middle half in each direction;
    0.5 only the true box's exact centre.
    """
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    for x0, y0, x1, y1 in as_boxes(truth):
        dx, dy = margin * (x1 - x0), margin * (y1 - y0)
        if x0 + dx <= cx <= x1 - dx and y0 + dy <= cy <= y1 - dy:
            return True
    return False


def centre_correctness(boxes: Sequence[Sequence[float] | None], truths: Sequence[np.ndarray],
                       margins: Sequence[float] = MARGINS) -> dict[str, float]:
    """Fraction of images whose box (None: no box, wrong) has its centre inside a shrunk true box, per margin."""
    n = max(1, len(boxes))
    return {
        str(m): sum(b is not None and centre_inside(b, t, m) for b, t in zip(boxes, truths)) / n for m in margins
    }


def heatmap_boxes(heatmap: np.ndarray, threshold: float) -> np.ndarray:
    """wsolevaluation's boxes at one threshold: the heatmap as 8-bit, pixels > threshold x its max,
    one box around every contour (multi-contour evaluation). Empty when nothing is above."""
    u8 = (np.clip(heatmap, 0, 1) * 255).astype(np.uint8)
    _, binary = cv2.threshold(u8, int(threshold * int(u8.max())), 255, cv2.THRESH_BINARY)
    contours, _ = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    return as_boxes([(x, y, x + w, y + h) for x, y, w, h in map(cv2.boundingRect, contours)])


def iou_curve(heatmap: np.ndarray, truth: np.ndarray, thresholds: Sequence[float] = CAM_THRESHOLDS) -> np.ndarray:
    """For each heatmap threshold, the best IoU of any of its contour boxes with any true box.

    The heatmap must already be at the photo's size (so its boxes are in the photo's pixels); it is
    min-max normalized here, as wsolevaluation normalizes every score map.
    """
    heat = heatmap.astype(np.float32) - float(heatmap.min())
    peak = float(heat.max())
    heat = heat / peak if peak > 0 else heat
    return np.array([best_match(heatmap_boxes(heat, t), truth)[0] for t in thresholds])


def maxboxacc(curves: np.ndarray, deltas: Sequence[float] = MAXBOX_DELTAS,
              thresholds: Sequence[float] = CAM_THRESHOLDS) -> dict[str, dict[str, float]]:
    """Per IoU criterion delta: the box accuracy at the best heatmap threshold and that threshold.

    `curves` is (images, thresholds) from iou_curve; an image is right at a threshold when any of its
    boxes there reaches IoU >= delta with any true box (Choe et al., CVPR 2020).
    """
    curves = np.asarray(curves, dtype=np.float64).reshape(-1, len(thresholds))
    out = {}
    for d in deltas:
        acc = (curves >= d).mean(0) if len(curves) else np.zeros(len(thresholds))
        best = int(acc.argmax())
        out[str(d)] = {"accuracy": float(acc[best]), "threshold": float(thresholds[best])}
    return out


def maxboxacc_v2(curves: np.ndarray, deltas: Sequence[float] = MAXBOX_DELTAS,
                 thresholds: Sequence[float] = CAM_THRESHOLDS) -> float:
    """MaxBoxAccV2: the mean over deltas (0.3, 0.5, 0.7) of the best-threshold box accuracy."""
    per_delta = maxboxacc(curves, deltas, thresholds)
    return float(np.mean([v["accuracy"] for v in per_delta.values()]))


def fixed_box_accuracy(ious: Sequence[float], deltas: Sequence[float] = MAXBOX_DELTAS) -> float:
    """MaxBoxAccV2 of a method with no threshold to choose (a constant box): mean over deltas of IoU >= delta."""
    ious = np.asarray(ious, dtype=np.float64)
    return float(np.mean([(ious >= d).mean() if ious.size else 0.0 for d in deltas]))


BASELINES = {"whole_image": 1.0, "centre_80": 0.8}
"""Constant boxes: a centred box of this fraction of each side (1.0: the whole photo)."""


def baseline_box(width: float, height: float, fraction: float) -> tuple[float, float, float, float]:
    """A centred box covering `fraction` of the photo's width and of its height."""
    mx, my = (1 - fraction) * width / 2, (1 - fraction) * height / 2
    return mx, my, width - mx, height - my


def summarize(ious: Sequence[float], top1: Sequence[bool], boxes: Sequence[Sequence[float] | None],
              truths: Sequence[np.ndarray], seconds: Sequence[float] | None = None) -> dict:
    """The results.json entry of one method: GT-known Loc, Top-1 Loc, mean IoU, centre-correctness,
    median seconds per image (None for the constant baselines)."""
    ious_a = np.asarray(ious, dtype=np.float64)
    hit = ious_a >= IOU_CORRECT
    return {
        "gt_known_loc": float(hit.mean()) if hit.size else 0.0,
        "gt_known_interval": hit_interval(int(hit.sum()), hit.size),
        "top1_loc": float((hit & np.asarray(top1, bool)).mean()) if hit.size else 0.0,
        "mean_iou": float(ious_a.mean()) if hit.size else 0.0,
        "center_correct": centre_correctness(boxes, truths),
        "s_per_image": float(np.median(seconds)) if seconds else None,
    }


def photo_kinds(truth: np.ndarray, width: float, height: float) -> tuple[str, str]:
    """Which kinds of photo a sample is, by its true boxes: one object or several, small objects or larger."""
    areas = box_area(torch.as_tensor(as_boxes(truth)))
    small = len(areas) > 0 and float(areas.max()) < SMALL_OBJECT * width * height
    return ("several objects" if len(truth) > 1 else "one object", "small objects" if small else "larger objects")


def hit_interval(hits: int, n: int, level: float = CONFIDENCE) -> tuple[float, float] | None:
    """Wilson's interval of a hit rate measured on n samples: where the rate on photos like these may lie
    (250 photos leave about +-6 points at 70%). None without a sample."""
    if n == 0:
        return None
    ci = binomtest(hits, n).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def paired_test(hits_a: Sequence[bool], hits_b: Sequence[bool]) -> dict[str, float | int]:
    """Two methods scored on the same samples, by the exact McNemar test: only the samples one of them hits
    and the other misses tell them apart, so a lead far inside both intervals can still be real (or not)."""
    a, b = np.asarray(hits_a, bool), np.asarray(hits_b, bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return {"only_a": only_a, "only_b": only_b, "p": float(p)}
