"""From maps to regions to boxes: blob cleaning (OpenCV morphology), heatmap binarization, scaling."""

from __future__ import annotations

import cv2
import numpy as np

_K3 = np.ones((3, 3), np.uint8)


def percentile_mask(saliency: np.ndarray, percentile: float) -> np.ndarray:
    """Pixels above the given percentile of the map's positive values."""
    positive = saliency[saliency > 0]
    if positive.size == 0:
        return np.zeros(saliency.shape, bool)
    return saliency > np.percentile(positive, percentile)


def largest_component(mask: np.ndarray) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros(mask.shape, bool)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros(mask.shape, np.uint8)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled.astype(bool)


def clean_blob(mask: np.ndarray, opening: int = 4, smooth: int = 4, dilations: int = 18, erosions: int = 15) -> np.ndarray:
    """One solid blob without islands or holes, as in the reference code at 224 px.

    Opening removes speckle, a box filter smooths the edge, a closing (more dilations than erosions)
    merges nearby parts; then the largest component, holes filled. Iterations scale with the map size.
    """
    scale = mask.shape[0] / 224.0
    it = lambda n: max(1, round(n * scale)) if n else 0
    m = mask.astype(np.uint8)
    if opening:
        opened = cv2.dilate(cv2.erode(m, _K3, iterations=it(opening)), _K3, iterations=it(opening))
        m = opened if opened.any() else m  # a sparse map must not vanish entirely
    if smooth:
        k = max(2, it(smooth))
        m = (cv2.blur(m.astype(np.float32), (k, k)) >= 0.5).astype(np.uint8)
    m = cv2.erode(cv2.dilate(m, _K3, iterations=it(dilations)), _K3, iterations=it(erosions))
    return fill_holes(largest_component(m))


def binarize(heatmap: np.ndarray, threshold: float | str) -> np.ndarray:
    """Heatmap (in [0, 1]) above a fraction of its maximum, or above Otsu's threshold."""
    if threshold == "otsu":
        u8 = np.clip(heatmap * 255, 0, 255).astype(np.uint8)
        t, _ = cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        return u8 > t
    return heatmap >= float(threshold) * float(heatmap.max())


def grabcut_region(rgb: np.ndarray, heatmap: np.ndarray, threshold: float | str, frame: int = 128,
                   sure: float = 0.7) -> np.ndarray:
    """The heatmap's region redrawn along the photo's own colour edges, where a class heatmap bleeds into the
    context: OpenCV's GrabCut (one iteration, on a copy of short side `frame`) seeded by the heatmap (sure
    object above `sure` of its maximum, probable object above 0.6 x the threshold, probable background above
    0.3 x it, sure background below). `rgb` is the (h, w, 3) uint8 photo at the heatmap's size. Frame, seeds
    and iterations were chosen on the dev set's calibration half (README, issue 10's ablation)."""
    peak = float(heatmap.max())
    if threshold == "otsu":
        threshold = float(heatmap[binarize(heatmap, "otsu")].min(initial=peak)) / max(peak, 1e-12)
    t = float(threshold)
    h, w = heatmap.shape
    scale = frame / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    heat = cv2.resize(heatmap.astype(np.float32), size, interpolation=cv2.INTER_LINEAR) / max(peak, 1e-12)
    seeds = np.full(heat.shape, cv2.GC_BGD, np.uint8)
    seeds[heat >= 0.3 * t] = cv2.GC_PR_BGD
    seeds[heat >= 0.6 * t] = cv2.GC_PR_FGD
    seeds[heat >= max(sure, t)] = cv2.GC_FGD
    cv2.setRNGSeed(0)  # GrabCut's colour models start from k-means: the same photo gets the same box every time
    try:
        cv2.grabCut(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), seeds, None, np.zeros((1, 65)),
                    np.zeros((1, 65)), 1, cv2.GC_INIT_WITH_MASK)
    except cv2.error:  # no background seed (a map hot everywhere) or no object seed: nothing to redraw
        return binarize(heatmap, t)
    region = (seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)
    return cv2.resize(region.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)


def region_boxes(mask: np.ndarray, min_area: float = 0.01) -> list[tuple[int, int, int, int]]:
    """One (x0, y0, x1, y1) box (pixel edges) per 8-connected region of at least min_area of the map,
    the largest region first (the method's top box)."""
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    total = mask.shape[0] * mask.shape[1]
    regions = sorted(range(1, n), key=lambda i: -int(stats[i][4]))
    boxes = []
    for i in regions:
        x, y, w, h, area = (int(v) for v in stats[i])
        if area >= min_area * total:
            boxes.append((x, y, x + w, y + h))
    return boxes


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """The box around every pixel of the mask (pixel edges), or None if it is empty."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def scale_box(box: tuple[float, float, float, float], map_w: int, map_h: int, width: int, height: int) -> tuple[float, float, float, float]:
    """A box in map pixels to the original photo's pixels (the photo was stretched, not cropped)."""
    sx, sy = width / map_w, height / map_h
    x0, y0, x1, y1 = box
    return x0 * sx, y0 * sy, x1 * sx, y1 * sy
