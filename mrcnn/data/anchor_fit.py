"""Anchors that fit the data: how many ground-truth boxes the config's RPN
anchors cover, and anchor scales and ratios that would cover more.

    report = anchor_report(dataset, config)
    print(format_anchor_report(report))      # what `mrcnn check-dataset --anchors` prints
    report.current.share, report.suggested.share
    report.suggested.scales, report.suggested.ratios

A box is covered when some anchor has IoU >= config.RPN_POSITIVE_IOU with
it: the anchors the RPN is trained to call positive for that box by the
threshold (training also makes each box's best anchor positive, however
low its IoU, but a box covered only that way is learned from one poorly
placed anchor). Boxes and anchors are those of training: the boxes of
``load_image_gt`` (after the config's resizing and padding, before
augmentation; in "crop" mode one random crop per image) and the pyramid
anchors of ``compute_backbone_shapes`` for the resized image's shape, with
the IoU of ``compute_overlaps``, found through the training feed's anchor
index. Crowd instances (negative class ids) are left out: they are never
positives.

The suggestion keeps the number of ratios, so that pretrained RPN weights
(one output per ratio) still load, and one scale per pyramid level. Its
candidates come from the quantiles of the box sizes (sqrt(h * w), pixels)
and aspect ratios (w / h), spread over the levels or doubling from level to
level as the default scales do; the config's own values are a candidate
too, so the suggestion never covers fewer boxes than the config.
"""

import dataclasses
import json

import numpy as np

from mrcnn.structures import anchors as anchor_lib
from mrcnn.structures import boxes as box_utils
from mrcnn.structures import dropped
from mrcnn.data.anchor_index import _AnchorIndex
from mrcnn.data.loading import load_image_gt
from mrcnn.data.meta import compute_backbone_shapes
from mrcnn.data.rpn_targets import _find_best_anchors

# Quantiles printed for the box sizes and aspect ratios.
REPORT_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
# Where the suggested scales and ratios are read off the box statistics:
# the lowest quantile of an evenly spread set (0.5 / n: the centres of n
# equal parts), and for the scales also the base of a doubling series.
_SPREAD_LOW = (None, 0.1, 0.02)
_DOUBLING_BASE = (0.1, 0.25, 0.5)


@dataclasses.dataclass
class AnchorCoverage:
    """How well one set of anchors covers the boxes.

    scales: one anchor size per pyramid level, pixels (sqrt of the area).
    ratios: anchor width / height ratios.
    best_iou: [boxes] float64, each box's highest IoU with any anchor
        (boxes image shape by shape, in sorted order of the shapes).
    threshold: the IoU from which a box counts as covered.
    """

    scales: tuple
    ratios: tuple
    best_iou: np.ndarray
    threshold: float

    @property
    def covered(self):
        """Number of boxes with an anchor at IoU >= threshold."""
        return int(np.count_nonzero(self.best_iou >= self.threshold))

    @property
    def share(self):
        """covered / boxes (0.0 without boxes)."""
        return self.covered / len(self.best_iou) if len(self.best_iou) else 0.0


@dataclasses.dataclass
class AnchorReport:
    """anchor_report's result: the boxes' statistics, the coverage of the
    config's anchors (current) and of the suggested ones."""

    num_boxes: int
    sizes: np.ndarray     # [boxes] sqrt(h * w), pixels of the resized image
    aspects: np.ndarray   # [boxes] w / h
    current: AnchorCoverage
    suggested: AnchorCoverage


def training_boxes(dataset, config):
    """The ground-truth boxes training sees, grouped by image shape.

    Loads every image with load_image_gt (resized and padded as the
    config says, no augmentation); instances it drops are left out without
    logging them (check_dataset reports them).
    Returns {(height, width): [N, (y1, x1, y2, x2)] float64 pixels} of the
    non-crowd instances.
    """
    boxes = {}
    with dropped.captured(dataset):
        for image_id in dataset.image_ids:
            image, _, class_ids, bbox, _ = load_image_gt(dataset, config,
                                                         image_id)
            shape = tuple(int(d) for d in image.shape[:2])
            boxes.setdefault(shape, []).append(
                np.asarray(bbox, np.float64)[np.asarray(class_ids) > 0])
    return {shape: np.concatenate(parts).reshape(-1, 4)
            for shape, parts in boxes.items()}


def _all_boxes(boxes_by_shape):
    """[N, 4] boxes of training_boxes' result, shape by shape in sorted
    order: the order of AnchorCoverage.best_iou."""
    parts = [boxes_by_shape[shape] for shape in sorted(boxes_by_shape)]
    return np.concatenate(parts) if parts else np.zeros([0, 4])


def pyramid_anchors(config, image_shape, scales, ratios):
    """[anchors, (y1, x1, y2, x2)] pixel anchors of training for an image
    shape, with the given scales and ratios instead of the config's."""
    backbone_shapes = compute_backbone_shapes(config, image_shape)
    return anchor_lib.generate_pyramid_anchors(
        scales, ratios, backbone_shapes, config.BACKBONE_STRIDES,
        config.RPN_ANCHOR_STRIDE)


def best_anchor_iou(anchors, boxes):
    """[boxes] float64: the highest IoU of each box with any anchor.

    anchors: [A, (y1, x1, y2, x2)]; boxes: [N, (y1, x1, y2, x2)], pixels.
    Equal to compute_overlaps(anchors, boxes).max(axis=0), but searched
    with the training feed's anchor index, which looks at the anchors of a
    shape only while they can still beat the best IoU found.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if not len(boxes):
        return np.zeros([0])
    index = _AnchorIndex(anchors)
    if index.groups is None:  # irregular anchors: no index, dense matrix
        return box_utils.compute_overlaps(
            np.asarray(anchors, np.float64), boxes).max(axis=0)
    bounds = index.iou_bounds(boxes)
    done = np.zeros(bounds.shape, bool)
    best = np.zeros([len(boxes)])
    nothing = np.zeros([0], np.int64)
    _find_best_anchors(index, boxes, bounds, done, best,
                       [nothing, nothing, np.zeros([0])])
    return best


def anchor_coverage(boxes_by_shape, config, scales=None, ratios=None):
    """AnchorCoverage of training_boxes' result by the pyramid anchors with
    these scales and ratios (default: the config's), at
    config.RPN_POSITIVE_IOU."""
    scales = tuple(config.RPN_ANCHOR_SCALES if scales is None else scales)
    ratios = tuple(config.RPN_ANCHOR_RATIOS if ratios is None else ratios)
    best = [best_anchor_iou(pyramid_anchors(config, shape, scales, ratios),
                            boxes)
            for shape, boxes in sorted(boxes_by_shape.items())]
    return AnchorCoverage(scales, ratios,
                          np.concatenate(best) if best else np.zeros([0]),
                          float(config.RPN_POSITIVE_IOU))


def box_sizes_and_aspects(boxes):
    """[N, (y1, x1, y2, x2)] -> ([N] sqrt(h * w), [N] w / h). The boxes of
    extract_bboxes are at least 1 pixel on each side."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    heights = boxes[:, 2] - boxes[:, 0]
    widths = boxes[:, 3] - boxes[:, 1]
    return np.sqrt(heights * widths), widths / heights


def _spread(values, count, low):
    """count quantiles of values evenly spread from low to 1 - low (low
    None: the centres of count equal parts, 0.5 / count)."""
    if low is None:
        low = 0.5 / count
    return np.quantile(values, np.linspace(low, 1 - low, count))


def candidate_anchors(sizes, aspects, num_levels, num_ratios):
    """[(scales, ratios)] to try: scales spread over the size quantiles or
    doubling per level from one, ratios spread over the aspect quantiles;
    scales rounded to whole pixels (>= 1), ratios to 2 decimals (>= 0.01),
    duplicates removed, in a fixed order."""
    scale_sets = [_spread(sizes, num_levels, low) for low in _SPREAD_LOW]
    scale_sets += [np.quantile(sizes, q) * 2.0 ** np.arange(num_levels)
                   for q in _DOUBLING_BASE]
    ratio_sets = [_spread(aspects, num_ratios, low) for low in _SPREAD_LOW]
    candidates = []
    for scales in scale_sets:
        scales = tuple(int(s) for s in np.maximum(np.round(scales), 1))
        for ratios in ratio_sets:
            ratios = tuple(float(r) for r in
                           np.maximum(np.round(ratios, 2), 0.01))
            if (scales, ratios) not in candidates:
                candidates.append((scales, ratios))
    return candidates


def suggest_anchors(boxes_by_shape, config, current=None):
    """The AnchorCoverage of the candidate scales and ratios that cover the
    most boxes; the config's own anchors (current, computed when None) win
    ties, so the suggestion is the config itself when nothing is better.
    """
    if current is None:
        current = anchor_coverage(boxes_by_shape, config)
    boxes = _all_boxes(boxes_by_shape)
    if not len(boxes):
        return current
    sizes, aspects = box_sizes_and_aspects(boxes)
    best = current
    for scales, ratios in candidate_anchors(
            sizes, aspects, len(config.BACKBONE_STRIDES),
            len(config.RPN_ANCHOR_RATIOS)):
        coverage = anchor_coverage(boxes_by_shape, config, scales, ratios)
        if coverage.covered > best.covered:
            best = coverage
    return best


def anchor_report(dataset, config):
    """AnchorReport of a prepared dataset under config: the coverage of the
    config's anchors and of the suggested ones (see the module docstring).
    """
    boxes_by_shape = training_boxes(dataset, config)
    current = anchor_coverage(boxes_by_shape, config)
    suggested = suggest_anchors(boxes_by_shape, config, current)
    boxes = _all_boxes(boxes_by_shape)
    sizes, aspects = box_sizes_and_aspects(boxes)
    return AnchorReport(len(boxes), sizes, aspects, current, suggested)


def _quantile_line(name, values, unit_format):
    parts = ["{:.0%} {}".format(q, unit_format.format(v)) for q, v in
             zip(REPORT_QUANTILES, np.quantile(values, REPORT_QUANTILES))]
    return "  {}: {}".format(name, ", ".join(parts))


def _coverage_line(label, coverage, num_boxes):
    return ("  {} RPN_ANCHOR_SCALES={} RPN_ANCHOR_RATIOS={}: {} of {} boxes "
            "({:.1%}), median best IoU {:.2f}".format(
                label, json.dumps(list(coverage.scales)),
                json.dumps(list(coverage.ratios)), coverage.covered,
                num_boxes, coverage.share, float(np.median(coverage.best_iou))))


def format_anchor_report(report):
    """Text of an AnchorReport, ending with the `--set` values that give
    the suggested anchors (or saying that the config's fit best)."""
    current, suggested = report.current, report.suggested
    if report.num_boxes == 0:
        return "Anchor coverage: no ground-truth boxes to cover"
    lines = ["Anchor coverage (boxes with an anchor at IoU >= {:g}, "
             "RPN_POSITIVE_IOU; {} boxes after resizing):".format(
                 current.threshold, report.num_boxes),
             _quantile_line("box size sqrt(h*w) px", report.sizes, "{:.1f}"),
             _quantile_line("aspect w/h", report.aspects, "{:.2f}"),
             _coverage_line("config:   ", current, report.num_boxes),
             _coverage_line("suggested:", suggested, report.num_boxes)]
    if suggested is current:
        lines.append("The config's anchors cover the most boxes of the "
                     "candidates tried; keep them.")
    else:
        lines.append("Suggested: --set RPN_ANCHOR_SCALES={} --set "
                     "RPN_ANCHOR_RATIOS={}".format(
                         json.dumps(list(suggested.scales)),
                         json.dumps(list(suggested.ratios))))
    return "\n".join(lines)
