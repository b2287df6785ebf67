"""Tiled inference (mrcnn.inference.tiling, MaskRCNN.detect_tiled, mrcnn detect
--tile): the tile grid by brute force, the merging on a 6,000 x 4,000 image
whose per-tile detections are known (each object cut by the tiles exactly
as a perfect detector would see it, with pixel noise), and small runs
through the real model."""

import contextlib
import io
import json
import os
import tracemalloc

import numpy as np
import pytest
import skimage.io
from pycocotools import mask as mask_utils

from mrcnn.cli import commands as cli
from mrcnn.inference import tiling
from mrcnn import model as modellib
from tests import tiny


############################################################
#  Tile grid
############################################################

def test_tile_starts_hand_values():
    assert tiling.tile_starts(10, 4, 1) == [0, 3, 6]
    # 4 tiles: steps of 7/3 floored, none over tile - overlap = 3.
    assert tiling.tile_starts(11, 4, 1) == [0, 2, 4, 7]
    assert tiling.tile_starts(4, 4, 1) == [0]
    assert tiling.tile_starts(3, 4, 1) == [0]


@pytest.mark.parametrize("tile, overlap", [(4, 0), (4, 1), (7, 3), (64, 16),
                                           (1024, 256)])
def test_tiles_cover_every_pixel_and_overlap_enough(tile, overlap):
    for length in list(range(1, 3 * tile)) + [6000, 4000]:
        starts = tiling.tile_starts(length, tile, overlap)
        size = min(tile, length)
        covered = np.zeros(length, int)
        for start in starts:
            assert 0 <= start and start + size <= length
            covered[start:start + size] += 1
        assert covered.min() >= 1, (length, starts)
        for first, second in zip(starts, starts[1:]):
            assert first + size - second >= overlap, (length, starts)
        # No more tiles than needed.
        assert len(starts) == 1 or len(starts) == int(np.ceil(
            (length - tile) / (tile - overlap))) + 1


def test_windows_are_row_major_and_cut_to_small_images():
    windows = tiling.tile_windows((100, 150, 3), (64, 64), (16, 16))
    np.testing.assert_array_equal(windows[:3], [[0, 0, 64, 64],
                                                [0, 43, 64, 107],
                                                [0, 86, 64, 150]])
    assert len(windows) == 6
    np.testing.assert_array_equal(
        tiling.tile_windows((30, 50, 3), (64, 64), (16, 16)), [[0, 0, 30, 50]])


@pytest.mark.parametrize("tile, overlap, message", [
    (0, None, "tile must be >= 1"),
    (64, 64, "overlap .* must be >= 0 and less than the tile"),
    (64, -1, "overlap"),
    (64.0, None, "tile must be an int or a"),
    ((64, 64, 3), None, "tile must be an int or a"),
])
def test_bad_tile_arguments_are_refused(tile, overlap, message):
    with pytest.raises(ValueError, match=message):
        tiling.check_tile(tile, overlap)


############################################################
#  Merging, with known per-tile detections
############################################################

class Truth:
    """Known objects as (box, mask crop, class id)."""

    def __init__(self):
        self.boxes, self.masks, self.class_ids = [], [], []

    def add(self, box, mask, class_id=1):
        box = np.asarray(box)
        assert mask.shape == (box[2] - box[0], box[3] - box[1])
        self.boxes.append(box)
        self.masks.append(mask)
        self.class_ids.append(class_id)

    def free(self, box, margin):
        """Whether box keeps `margin` px from every object so far."""
        for other in self.boxes:
            if box[0] < other[2] + margin and other[0] < box[2] + margin \
                    and box[1] < other[3] + margin \
                    and other[1] < box[3] + margin:
                return False
        return True


def ellipse(height, width):
    yy, xx = np.ogrid[:height, :width]
    return (((yy + 0.5 - height / 2) / (height / 2)) ** 2
            + ((xx + 0.5 - width / 2) / (width / 2)) ** 2) <= 1


def seam_truth(image_shape, windows, rng, count):
    """Objects centred on tile edges, in overlap bands and at band
    corners, none closer than 4 px to another; plus an object longer than
    a tile, and two rectangles touching each other across a seam."""
    truth = Truth()
    ys = sorted({int(v) for w in windows for v in (w[0], w[2])})
    xs = sorted({int(v) for w in windows for v in (w[1], w[3])})
    height, width = image_shape[:2]
    tile_w = int(windows[0][3] - windows[0][1])
    # Longer than a tile, across several vertical seams.
    long_box = [ys[1] - 30, 100, ys[1] + 30, 100 + int(1.6 * tile_w)]
    truth.add(long_box, ellipse(60, long_box[3] - 100))
    # Two touching rectangles, each cut by the same horizontal seam.
    y, x = ys[2], xs[3] + 20
    truth.add([y - 50, x, y + 50, x + 40], np.ones((100, 40), bool))
    truth.add([y - 50, x + 40, y + 50, x + 80], np.ones((100, 40), bool))
    while len(truth.boxes) < count:
        h, w = rng.integers(40, 600, 2)
        cy = rng.choice(ys) + rng.integers(-40, 40)
        cx = rng.choice(xs) + rng.integers(-40, 40)
        if rng.random() < 0.3:  # anywhere on one seam
            cx = rng.integers(0, width)
        box = np.array([cy - h // 2, cx - w // 2, cy - h // 2 + h,
                        cx - w // 2 + w])
        if box[0] < 0 or box[1] < 0 or box[2] > height or box[3] > width \
                or not truth.free(box, margin=4):
            continue
        truth.add(box, ellipse(h, w), class_id=int(rng.integers(1, 3)))
    return truth


class PerfectDetector:
    """detect_tiles stand-in: in each tile, every object's part inside the
    tile is one detection (pixel-exact, then 3% of its pixels dropped at
    random); parts under 20 px are missed, as a real model misses slivers.
    Records the number of detections."""

    def __init__(self, truth, seed):
        self.truth = truth
        self.rng = np.random.default_rng(seed)
        self.detections = 0
        self.largest_tile_output = 0  # bytes of one tile's masks

    def __call__(self, image, windows):
        return [self.detect_window(window) for window in windows]

    def detect_window(self, window):
        y0, x0, y1, x1 = [int(v) for v in window]
        masks, rois, class_ids = [], [], []
        for box, crop, class_id in zip(self.truth.boxes, self.truth.masks,
                                       self.truth.class_ids):
            top, left = max(box[0], y0), max(box[1], x0)
            bottom, right = min(box[2], y1), min(box[3], x1)
            if bottom <= top or right <= left:
                continue
            part = crop[top - box[0]:bottom - box[0],
                        left - box[1]:right - box[1]]
            if part.sum() < 20:
                continue
            mask = np.zeros((y1 - y0, x1 - x0), bool)
            mask[top - y0:bottom - y0, left - x0:right - x0] = \
                part & (self.rng.random(part.shape) >= 0.03)
            masks.append(mask)
            rois.append([top - y0, left - x0, bottom - y0, right - x0])
            class_ids.append(class_id)
        self.detections += len(masks)
        n = len(masks)
        self.largest_tile_output = max(self.largest_tile_output,
                                       n * (y1 - y0) * (x1 - x0))
        return {"rois": np.array(rois, np.int32).reshape(n, 4),
                "class_ids": np.array(class_ids, np.int32),
                "scores": self.rng.uniform(0.7, 1.0, n).astype(np.float32),
                "masks": (np.stack(masks, axis=-1) if n else
                          np.zeros((y1 - y0, x1 - x0, 0), bool))}


def crop_iou(box_a, mask_a, box_b, mask_b):
    """IoU of two masks given as crops of their boxes."""
    top = np.minimum(box_a[:2], box_b[:2])
    bottom = np.maximum(box_a[2:], box_b[2:])
    frames = []
    for box, mask in ((box_a, mask_a), (box_b, mask_b)):
        frame = np.zeros(bottom - top, bool)
        frame[box[0] - top[0]:box[2] - top[0],
              box[1] - top[1]:box[3] - top[1]] = mask
        frames.append(frame)
    union = (frames[0] | frames[1]).sum()
    return (frames[0] & frames[1]).sum() / union if union else 0.0


def match_truth(truth, result):
    """[objects, detections] mask IoU, zero where classes differ."""
    ious = np.zeros((len(truth.boxes), len(result["class_ids"])))
    for i, (box, mask) in enumerate(zip(truth.boxes, truth.masks)):
        for j, roi in enumerate(result["rois"]):
            if result["class_ids"][j] != truth.class_ids[i] or \
                    roi[0] >= box[2] or box[0] >= roi[2] or \
                    roi[1] >= box[3] or box[1] >= roi[3]:
                continue
            ious[i, j] = crop_iou(box, mask, roi, result["masks"][j])
    return ious


def seam_counts(truth, windows):
    """(objects cut by some tile's border, objects no tile holds whole)."""
    cut = whole_nowhere = 0
    for box in truth.boxes:
        inside = (windows[:, 0] <= box[0]) & (windows[:, 1] <= box[1]) \
            & (windows[:, 2] >= box[2]) & (windows[:, 3] >= box[3])
        meets = (windows[:, 0] < box[2]) & (windows[:, 1] < box[3]) \
            & (windows[:, 2] > box[0]) & (windows[:, 3] > box[1])
        cut += bool(np.any(meets & ~inside))
        whole_nowhere += not inside.any()
    return cut, whole_nowhere


def test_objects_cut_by_tiles_of_a_6000_by_4000_image_are_found_once():
    shape = (4000, 6000, 3)
    image = np.broadcast_to(np.uint8(0), shape)  # read-only, no memory
    tile, overlap = 768, 128
    windows = tiling.tile_windows(shape, (tile, tile), (overlap, overlap))
    truth = seam_truth(shape, windows, np.random.default_rng(0), count=120)
    cut, whole_nowhere = seam_counts(truth, windows)
    assert cut >= 100 and whole_nowhere >= 30, (cut, whole_nowhere)
    detector = PerfectDetector(truth, seed=1)

    tracemalloc.start()
    result = tiling.detect_tiled(image, detector, tile, overlap,
                                 batch_size=2, full_masks=False)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # Memory follows the tiles and the objects, not the image: at most a
    # batch of tiles' masks (held twice while the detector stacks them)
    # and the pieces and merged crops (about twice the returned crops).
    crops = sum(mask.nbytes for mask in result["masks"])
    batch = 2 * detector.largest_tile_output
    assert peak < 2 * batch + 3 * crops, (peak, batch, crops)
    # Full-size masks would take 24 MB an instance.
    assert peak < 0.02 * len(truth.boxes) * shape[0] * shape[1]

    assert detector.detections > 1.5 * len(truth.boxes)
    ious = match_truth(truth, result)
    matched = ious >= 0.5
    assert np.all(matched.sum(axis=1) == 1), np.flatnonzero(
        matched.sum(axis=1) != 1)   # each object found once
    assert np.all(matched.sum(axis=0) == 1)  # nothing duplicated or extra
    assert ious.max(axis=1).min() >= 0.9
    assert len(result["class_ids"]) == len(truth.boxes)
    for roi, mask in zip(result["rois"], result["masks"]):
        assert mask.shape == (roi[2] - roi[0], roi[3] - roi[1])
        assert 0 <= roi[0] and roi[2] <= shape[0]
        assert 0 <= roi[1] and roi[3] <= shape[1]
    assert np.all(np.diff(result["scores"]) <= 0)


def test_pieces_that_only_touch_across_a_seam_join():
    # Overlap 0: the tiles share no pixel, the pieces only touch.
    shape = (128, 192, 3)
    windows = tiling.tile_windows(shape, (64, 64), (0, 0))
    assert len(windows) == 6
    truth = Truth()
    truth.add([40, 50, 90, 140], ellipse(50, 90))          # 4 tiles
    truth.add([5, 100, 30, 140], ellipse(25, 40), 2)       # 2 tiles
    truth.add([100, 10, 120, 30], np.ones((20, 20), bool))  # 1 tile
    result = tiling.detect_tiled(np.zeros(shape, np.uint8),
                                 PerfectDetector(truth, seed=2), 64, 0)
    assert result["masks"].shape == (128, 192, 3)
    ious = match_truth(truth, {**result, "masks": [
        result["masks"][y1:y2, x1:x2, i]
        for i, (y1, x1, y2, x2) in enumerate(result["rois"])]})
    assert len(result["class_ids"]) == 3
    assert ious.max(axis=1).min() >= 0.9


def test_neighbours_of_other_classes_or_far_apart_stay_apart():
    # The same object in both tiles' overlap, reported once as class 1 and
    # once as class 2, stays two instances; so does a piece with no pixel
    # in the shared band.
    shape = (64, 112, 3)

    def detect_tiles(image, windows):
        results = []
        for y0, x0, y1, x1 in windows:
            k = int(x0 > 0)  # the left or the right tile
            mask = np.zeros((y1 - y0, x1 - x0), bool)
            mask[20:40, 50 - x0:60 - x0] = True  # x 50..60, both tiles
            far = np.zeros_like(mask)
            far[5:10, (5 if k == 0 else 55):(10 if k == 0 else 60)] = True
            results.append({
                "rois": np.array([[20, 50 - x0, 40, 60 - x0],
                                  [5, 5, 10, 10] if k == 0 else
                                  [5, 55, 10, 60]]),
                "class_ids": np.array([k + 1, 1]),
                "scores": np.array([0.9, 0.8]),
                "masks": np.stack([mask, far], axis=-1)})
        return results
    result = tiling.detect_tiled(np.zeros(shape, np.uint8), detect_tiles,
                                 64, 16)
    assert sorted(result["class_ids"].tolist()) == [1, 1, 1, 2]


############################################################
#  Through the real model
############################################################

class TiledConfig(tiny.TinyConfig):
    NAME = "tiled"
    IMAGES_PER_GPU = 2
    DETECTION_MIN_CONFIDENCE = 0.0


@pytest.fixture(scope="module")
def confident_model(tmp_path_factory):
    """A random-weight tiny model whose classifier never says background:
    every tile has detections."""
    import keras
    keras.utils.set_random_seed(3)
    model = modellib.MaskRCNN("inference", TiledConfig(),
                              str(tmp_path_factory.mktemp("logs")))
    tiny.never_background(model.keras_model)
    return model


def textured_image(height, width, seed):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60, (height, width, 3)).astype(np.uint8)
    for _ in range(6):
        y, x = rng.integers(0, height - 20), rng.integers(0, width - 20)
        image[y:y + 20, x:x + 20] = rng.integers(150, 255, 3)
    return image


def test_one_tile_gives_exactly_detect(confident_model):
    image = textured_image(64, 64, seed=4)
    tiled = confident_model.detect_tiled([image])[0]
    plain = confident_model.detect([image])[0]
    assert len(plain["class_ids"]) > 0
    for key in ("rois", "class_ids", "scores", "masks"):
        np.testing.assert_array_equal(tiled[key], plain[key], err_msg=key)


def test_tiled_masks_are_the_union_of_the_tiles_masks(confident_model):
    image = textured_image(100, 150, seed=5)
    result = confident_model.detect_tiled([image], tile=64, overlap=16)[0]
    crops = confident_model.detect_tiled([image], tile=64, overlap=16,
                                         full_masks=False)[0]
    windows = tiling.tile_windows(image.shape, (64, 64), (16, 16))
    union = np.zeros(image.shape[:2], bool)
    count = 0
    for (y1, x1, y2, x2), r in zip(windows, confident_model.detect(
            [image[y1:y2, x1:x2] for y1, x1, y2, x2 in windows])):
        union[y1:y2, x1:x2] |= r["masks"].any(axis=-1)
        count += len(r["class_ids"])
    assert result["masks"].shape == (100, 150, len(result["class_ids"]))
    assert 0 < len(result["class_ids"]) <= count
    # Merging joins pieces: it never loses or invents a pixel.
    np.testing.assert_array_equal(result["masks"].any(axis=-1), union)
    np.testing.assert_array_equal(crops["rois"], result["rois"])
    for i, (y1, x1, y2, x2) in enumerate(result["rois"]):
        np.testing.assert_array_equal(crops["masks"][i],
                                      result["masks"][y1:y2, x1:x2, i])
        assert not result["masks"][..., i].sum() > (y2 - y1) * (x2 - x1)


def test_detect_tiled_refuses_bad_input(confident_model):
    with pytest.raises(ValueError, match="takes a list of images"):
        confident_model.detect_tiled(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="image 1 has shape"):
        confident_model.detect_tiled([np.zeros((64, 64, 3), np.uint8),
                                      np.zeros((64, 64, 4), np.uint8)])


def test_cli_detect_with_tiles(confident_model, tmp_path):
    run_dir = tmp_path / "tiled20240101T0000"
    weights = str(run_dir / "confident.weights.h5")
    # The run config of the model's own values, as `mrcnn train` writes it.
    settings = {key: np.asarray(getattr(TiledConfig, key)).tolist()
                for key in cli.OVERRIDABLE if key not in (
                    "GPU_COUNT", "IMAGES_PER_GPU", "STEPS_PER_EPOCH",
                    "VALIDATION_STEPS")}
    cli.write_run_config(str(run_dir), "tiled", ["BG", "a", "b", "c"],
                         settings)
    confident_model.save_weights(weights)
    image_path = str(tmp_path / "big.png")
    skimage.io.imsave(image_path, textured_image(100, 150, seed=5))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main(["detect", "--weights", weights, "--logs",
                           str(tmp_path), "--tile", "64", "--overlap", "16",
                           "--out", str(tmp_path / "out"), image_path])
    assert status == 0, out.getvalue()
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    with open(summary["results"]) as f:
        results = json.load(f)
    expected = confident_model.detect_tiled(
        [skimage.io.imread(image_path)], tile=64, overlap=16)[0]
    assert len(results) == len(expected["class_ids"]) > 0
    for entry in results:
        assert mask_utils.decode(entry["segmentation"]).shape == (100, 150)
    assert os.path.exists(str(tmp_path / "out" / "big_detections.png"))
