"""A spatial index of anchors for exact RPN matching without the dense
anchors x boxes IoU matrix.

Anchors are grouped by shape and laid out on grids, so only the anchors
that can reach the IoU thresholds of a box are looked at (see
``_AnchorIndex``); ``mrcnn.data.rpn_targets`` labels anchors with it.
"""

import threading

import numpy as np


# Bounds on IoU are exact maths; this slack absorbs float rounding so a
# group of anchors is never skipped by a rounding error.
_IOU_SLACK = 1e-9
# Pixels added around a box when looking for anchors that touch it, for the
# same reason. Anchors found this way but not overlapping get IoU 0.
_COORD_MARGIN = 1e-3
# Beyond this many distinct anchor shapes the index is not worth it.
_MAX_ANCHOR_GROUPS = 512


def _ragged_arange(counts):
    """[0..c0), [0..c1), ... concatenated, for counts [c0, c1, ...]."""
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total) - starts


def _areas(boxes):
    """[N, (y1, x1, y2, x2)] -> [N] areas; negative sizes count as 0."""
    return (np.maximum(boxes[:, 2] - boxes[:, 0], 0)
            * np.maximum(boxes[:, 3] - boxes[:, 1], 0))


def _pairwise_iou(boxes_a, area_a, boxes_b, area_b):
    """IoU of row i of boxes_a with row i of boxes_b ([P, 4] each -> [P]).

    Same operations as utils.compute_overlaps, so values are bit-identical.
    """
    height = (np.minimum(boxes_a[:, 2], boxes_b[:, 2])
              - np.maximum(boxes_a[:, 0], boxes_b[:, 0]))
    width = (np.minimum(boxes_a[:, 3], boxes_b[:, 3])
             - np.maximum(boxes_a[:, 1], boxes_b[:, 1]))
    intersection = np.maximum(height, 0) * np.maximum(width, 0)
    union = area_a + area_b - intersection
    # union is 0 only when both boxes are empty; their IoU is 0.
    return intersection / np.maximum(union, np.finfo(np.float64).tiny)


class _AnchorIndex(object):
    """Anchors grouped by shape, each group sorted by (y1, x1).

    Anchors of one shape from one pyramid level form a grid; for those the
    anchors that can touch a box are a rectangle of grid rows x columns,
    found with two binary searches. Groups that are not grids fall back to
    a binary search on y1 and a filter on x1. Either way the exact IoU is
    computed only for anchors that touch the box, and for a group only when
    the best IoU any anchor of that shape could reach is high enough.
    """

    def __init__(self, anchors):
        anchors = np.asarray(anchors, dtype=np.float64)
        if anchors.ndim != 2 or anchors.shape[1] != 4:
            raise ValueError("anchors must be [num_anchors, (y1, x1, y2, x2)]"
                             ", got shape {}".format(anchors.shape))
        self.num_anchors = anchors.shape[0]
        heights = anchors[:, 2] - anchors[:, 0]
        widths = anchors[:, 3] - anchors[:, 1]
        # Anchors of one shape differ in size by float rounding only
        # (centre +/- half size); rounding the key keeps them together.
        height_key = np.round(heights, 6)
        width_key = np.round(widths, 6)
        self.order = np.lexsort((anchors[:, 1], anchors[:, 0],
                                 width_key, height_key))
        self.boxes = anchors[self.order]
        self.areas = _areas(self.boxes)
        sorted_h, sorted_w = height_key[self.order], width_key[self.order]
        cuts = np.flatnonzero((sorted_h[1:] != sorted_h[:-1])
                              | (sorted_w[1:] != sorted_w[:-1])) + 1
        edges = np.concatenate([[0], cuts, [self.num_anchors]])
        if len(edges) - 1 > _MAX_ANCHOR_GROUPS:
            self.groups = None  # irregular anchors: use the dense matrix
            return
        heights, widths = heights[self.order], widths[self.order]
        self.groups = [self._make_group(int(start), int(stop), heights, widths)
                       for start, stop in zip(edges[:-1], edges[1:])]
        self.group_heights = np.array([g["height"] for g in self.groups])
        self.group_widths = np.array([g["width"] for g in self.groups])

    def _make_group(self, start, stop, heights, widths):
        """Shape, extent and (if regular) grid layout of one group."""
        group = {"start": start, "stop": stop,
                 # The largest size, so the search window is never too small.
                 "height": float(heights[start:stop].max()),
                 "width": float(widths[start:stop].max()),
                 "rows": None, "cols": None}
        y1 = self.boxes[start:stop, 0]
        x1 = self.boxes[start:stop, 1]
        num_rows = 1 + int(np.count_nonzero(np.diff(y1)))
        count = stop - start
        if count % num_rows:
            return group
        num_cols = count // num_rows
        grid_y = y1.reshape(num_rows, num_cols)
        grid_x = x1.reshape(num_rows, num_cols)
        rows, cols = grid_y[:, 0], grid_x[0]
        if (np.all(grid_y == rows[:, None]) and np.all(grid_x == cols)
                and np.all(np.diff(cols) > 0)):
            group["rows"], group["cols"] = rows.copy(), cols.copy()
        return group

    def iou_bounds(self, boxes):
        """[groups, boxes] best IoU any anchor of each group can have."""
        box_h = (boxes[:, 2] - boxes[:, 0])[None, :]
        box_w = (boxes[:, 3] - boxes[:, 1])[None, :]
        anchor_h = self.group_heights[:, None]
        anchor_w = self.group_widths[:, None]
        # Best case: the smaller box sits inside the larger in each axis.
        inter = (np.minimum(np.maximum(box_h, 0), anchor_h)
                 * np.minimum(np.maximum(box_w, 0), anchor_w))
        union = np.maximum(box_h, 0) * np.maximum(box_w, 0) \
            + anchor_h * anchor_w - inter
        return inter / np.maximum(union, np.finfo(np.float64).tiny)

    def _touching(self, group, boxes):
        """Sorted positions and box numbers of anchors of group near boxes.

        boxes: [K, 4]. Returns (positions [P] into self.boxes, box [P]).
        """
        start = group["start"]
        low_y = boxes[:, 0] - group["height"] - _COORD_MARGIN
        high_y = boxes[:, 2] + _COORD_MARGIN
        low_x = boxes[:, 1] - group["width"] - _COORD_MARGIN
        high_x = boxes[:, 3] + _COORD_MARGIN
        if group["rows"] is not None:
            rows, cols = group["rows"], group["cols"]
            r0 = np.searchsorted(rows, low_y, side="right")
            r1 = np.searchsorted(rows, high_y, side="left")
            c0 = np.searchsorted(cols, low_x, side="right")
            c1 = np.searchsorted(cols, high_x, side="left")
            num_r = np.maximum(r1 - r0, 0)
            num_c = np.maximum(c1 - c0, 0)
            counts = num_r * num_c
            box = np.repeat(np.arange(len(boxes)), counts)
            k = _ragged_arange(counts)
            width = num_c[box]
            positions = (start + (r0[box] + k // width) * len(cols)
                         + c0[box] + k % width)
            return positions, box
        y1 = self.boxes[start:group["stop"], 0]
        lo = np.searchsorted(y1, low_y, side="right")
        hi = np.searchsorted(y1, high_y, side="left")
        counts = np.maximum(hi - lo, 0)
        box = np.repeat(np.arange(len(boxes)), counts)
        positions = start + lo[box] + _ragged_arange(counts)
        x1 = self.boxes[positions, 1]
        near = (x1 > low_x[box]) & (x1 < high_x[box])
        return positions[near], box[near]

    def overlaps(self, boxes, wanted):
        """Exact IoU of boxes with the anchors of the wanted groups.

        boxes: [K, (y1, x1, y2, x2)] float64.
        wanted: [groups, K] bool, which (group, box) pairs to look at.
        Returns (positions [P] into the sorted anchors, box [P], iou [P]),
        covering every anchor of the wanted pairs with IoU > 0.
        """
        box_areas = _areas(boxes)
        all_positions, all_boxes = [], []
        for g in np.flatnonzero(wanted.any(axis=1)):
            picked = np.flatnonzero(wanted[g])
            positions, box = self._touching(self.groups[g], boxes[picked])
            all_positions.append(positions)
            all_boxes.append(picked[box])
        if not all_positions:
            empty = np.zeros([0], dtype=np.int64)
            return empty, empty, np.zeros([0])
        positions = np.concatenate(all_positions)
        box = np.concatenate(all_boxes)
        iou = _pairwise_iou(self.boxes[positions], self.areas[positions],
                            boxes[box], box_areas[box])
        return positions, box, iou


_INDEX_CACHE = []  # [(anchors object, snapshot copy, _AnchorIndex)]
_INDEX_CACHE_SIZE = 4
_INDEX_LOCK = threading.Lock()


def _cached_anchor_index(anchors):
    """The _AnchorIndex of anchors, built once per distinct anchors array.

    A cached index is reused when the same read-only array comes back, or
    when the content equals the snapshot taken at build time.
    """
    with _INDEX_LOCK:
        for source, snapshot, index in _INDEX_CACHE:
            if source is anchors and not anchors.flags.writeable \
                    and anchors.base is None:
                return index
            if snapshot.shape == anchors.shape \
                    and np.array_equal(snapshot, anchors):
                return index
        index = _AnchorIndex(anchors)
        _INDEX_CACHE.insert(0, (anchors, np.array(anchors, copy=True), index))
        del _INDEX_CACHE[_INDEX_CACHE_SIZE:]
        return index
