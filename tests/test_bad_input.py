"""Bad input, met the way a user meets it: broken or odd image files,
awkward annotations, Dataset subclasses that return malformed arrays, and
images detect() cannot use. Each case gets an error naming the image (or
file) and the problem, or the documented handling (docs/troubleshooting.md),
and nothing is dropped without a warning that names the image
(tests/test_dropped_instances.py).
"""

import json
import logging
import os

import numpy as np
import pytest
from PIL import Image

from mrcnn import data, utils
from mrcnn import model as modellib
from mrcnn.datasets import ViaDataset
from tests import tiny


class TinyConfig(tiny.TinyConfig):
    NAME = "badinput"
    NUM_CLASSES = 1 + 1
    DETECTION_MIN_CONFIDENCE = 0.0


CONFIG = TinyConfig()


# ------------------------------------------------------------- helpers

def rect_region(x, y, width, height, name="balloon"):
    return {"shape_attributes": {"name": "rect", "x": x, "y": y,
                                 "width": width, "height": height},
            "region_attributes": {"type": name}}


def polygon_region(xs, ys, name="balloon"):
    return {"shape_attributes": {"name": "polygon", "all_points_x": xs,
                                 "all_points_y": ys},
            "region_attributes": {"type": name}}


def write_via(folder, images):
    """A VIA 2 export in folder: images is {filename: [regions]}."""
    entries = {}
    for filename, regions in images.items():
        size = os.path.getsize(folder / filename) \
            if (folder / filename).exists() else 0
        entries[filename + str(size)] = {"filename": filename, "size": size,
                                         "regions": regions,
                                         "file_attributes": {}}
    path = folder / "via_region_data.json"
    path.write_text(json.dumps(entries))
    return path


def load_via(folder, **options):
    dataset = ViaDataset()
    options.setdefault("class_attribute", "type")
    options.setdefault("class_names", ["balloon"])
    dataset.load_via(str(folder / "via_region_data.json"), **options)
    dataset.prepare()
    return dataset


def save_image(path, array, mode=None, **save_options):
    Image.fromarray(array, mode=mode).save(path, **save_options)
    return path


def noise(shape, seed=0, dtype=np.uint8, high=256):
    return np.random.default_rng(seed).integers(0, high, shape).astype(dtype)


class ArrayDataset(utils.Dataset):
    """In-memory images and annotations: each image is (image array, masks
    [H, W, N], class ids [N]), returned as given, however malformed."""

    def __init__(self, samples, num_classes=2, name="array sample"):
        super().__init__()
        self.name = name
        for class_id in range(1, num_classes):
            self.add_class("arrays", class_id, "class{}".format(class_id))
        for index, sample in enumerate(samples):
            self.add_image("arrays", image_id=index, path=None,
                           sample=sample)
        self.prepare()

    def load_image(self, image_id):
        return self.image_info[image_id]["sample"][0]

    def load_mask(self, image_id):
        _, masks, class_ids = self.image_info[image_id]["sample"]
        return masks, class_ids

    def image_reference(self, image_id):
        return "{} {}".format(self.name, image_id)


def box_masks(height, width, boxes):
    """Bool [height, width, N] masks of (y1, x1, y2, x2) boxes."""
    masks = np.zeros((height, width, len(boxes)), dtype=bool)
    for i, (y1, x1, y2, x2) in enumerate(boxes):
        masks[y1:y2, x1:x2, i] = True
    return masks


# ---------------------------------------------------------- image files

def test_file_that_is_not_an_image_is_named_when_loading(tmp_path):
    (tmp_path / "photo.jpg").write_text("this is a text file, not a JPEG")
    write_via(tmp_path, {"photo.jpg": [rect_region(1, 1, 5, 5)]})
    with pytest.raises(ValueError, match="cannot read image") as info:
        load_via(tmp_path)
    assert str(tmp_path / "photo.jpg") in str(info.value)


@pytest.mark.parametrize("fault,error", [
    ("truncated", ValueError),  # header intact: loads, fails to decode
    ("deleted", FileNotFoundError),  # gone between loading and training
])
def test_broken_file_fails_training_naming_it(tmp_path, fault, error):
    save_image(tmp_path / "good.jpg", noise((64, 64, 3)), quality=95)
    save_image(tmp_path / "bad.jpg", noise((64, 64, 3), seed=1), quality=95)
    write_via(tmp_path, {"good.jpg": [rect_region(2, 2, 20, 20)],
                         "bad.jpg": [rect_region(2, 2, 20, 20)]})
    dataset = load_via(tmp_path)
    bad = tmp_path / "bad.jpg"
    if fault == "truncated":
        content = bad.read_bytes()
        bad.write_bytes(content[:int(len(content) * 0.6)])
    else:
        bad.unlink()
    bad_id = next(i for i in dataset.image_ids
                  if dataset.image_info[i]["path"] == str(bad))
    with pytest.raises(error) as info:
        data.load_image_gt(dataset, CONFIG, bad_id)
    assert str(bad) in str(info.value)
    # The training feed stops with the same error, not a later crash.
    feed = data.MaskRCNNDataset(dataset, CONFIG, shuffle=False)
    with pytest.raises(error, match="bad.jpg"):
        feed[0]


def expected_rgb(path, mode):
    """The RGB uint8 image independently of mrcnn: PIL's own conversion,
    or for 16-bit grey the top 8 bits of each value."""
    with Image.open(path) as image:
        if mode == "I;16":
            grey = (np.array(image).astype(np.uint16) >> 8).astype(np.uint8)
            return np.repeat(grey[..., None], 3, axis=-1)
        return np.array(image.convert("RGB"))


@pytest.mark.parametrize("mode,array", [
    ("RGB", noise((64, 64, 3))),
    ("L", noise((64, 64))),
    ("LA", noise((64, 64, 2))),
    ("RGBA", noise((64, 64, 4))),
    ("P", noise((64, 64), high=16)),
    ("I;16", noise((64, 64), dtype=np.uint16, high=65536)),
])
def test_image_modes_become_rgb_uint8(tmp_path, mode, array):
    path = tmp_path / "image.png"
    if mode == "P":
        image = Image.fromarray(array, mode="L").convert("P")
        image.save(path)
    else:
        save_image(path, array)
        with Image.open(path) as written:
            assert written.mode == mode  # the file is what we meant
    write_via(tmp_path, {"image.png": [rect_region(4, 8, 10, 6)]})
    dataset = load_via(tmp_path)
    image, _, class_ids, boxes, masks = data.load_image_gt(
        dataset, CONFIG, 0)
    assert image.dtype == np.uint8 and image.shape == (64, 64, 3)
    np.testing.assert_array_equal(image, expected_rgb(path, mode))
    np.testing.assert_array_equal(class_ids, [1])
    np.testing.assert_array_equal(boxes, [[8, 4, 14, 14]])


def test_exif_orientation_is_not_applied_and_is_warned(tmp_path, caplog):
    # Stored 20 rows x 40 columns; orientation 6 asks viewers to turn it
    # 90 degrees clockwise (40 x 20 on screen).
    stored = noise((20, 40, 3))
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[utils.EXIF_ORIENTATION_TAG] = 6
    image.save(tmp_path / "phone.png", exif=exif.tobytes())
    save_image(tmp_path / "plain.png", stored)
    region = rect_region(30, 2, 5, 10)  # in stored pixels: x 30..34, y 2..11
    write_via(tmp_path, {"phone.png": [region], "plain.png": [region]})
    dataset = load_via(tmp_path)

    with caplog.at_level(logging.WARNING):
        for image_id in dataset.image_ids:
            loaded = dataset.load_image(image_id)
            masks, _ = dataset.load_mask(image_id)
            # Pixels as stored, and annotations in that same frame.
            np.testing.assert_array_equal(loaded, stored)
            assert masks.shape == (20, 40, 1)
            assert utils.extract_bboxes(masks).tolist() == [[2, 30, 12, 35]]
        dataset.load_image(0)  # a second load does not warn again
    warnings = [r.getMessage() for r in caplog.records
                if "EXIF orientation" in r.getMessage()]
    assert len(warnings) == 1
    assert str(tmp_path / "phone.png") in warnings[0]
    assert "orientation 6" in warnings[0]


# ---------------------------------------------------------- annotations

def test_regions_outside_empty_or_unknown_are_clipped_or_dropped(tmp_path):
    save_image(tmp_path / "a.png", noise((48, 64, 3)))
    regions = [
        polygon_region([-10, 20, 20, -10], [5, 5, 15, 15]),  # left part out
        polygon_region([100, 120, 120, 100], [5, 5, 15, 15]),  # all outside
        polygon_region([3, 9], [3, 9]),  # two points: no area
        rect_region(50, 40, 30, -50),  # y -10..40, x 50..80: clipped
        rect_region(1, 1, 4, 4, name="dog"),  # not in class_names
    ]
    write_via(tmp_path, {"a.png": regions})
    with pytest.warns(UserWarning, match="dog"):
        dataset = load_via(tmp_path)
    masks, class_ids = dataset.load_mask(0)
    expected = np.zeros((48, 64, 2), dtype=bool)
    expected[5:16, 0:21, 0] = True  # outline pixels count as inside
    expected[0:40, 50:64, 1] = True
    np.testing.assert_array_equal(masks, expected)
    np.testing.assert_array_equal(class_ids, [1, 1])


def test_nan_coordinate_names_file_image_and_region(tmp_path):
    save_image(tmp_path / "a.png", noise((48, 64, 3)))
    write_via(tmp_path, {"a.png": [
        rect_region(1, 1, 4, 4),
        polygon_region([1, 20, float("nan")], [1, 5, 9])]})
    with pytest.raises(ValueError) as info:
        load_via(tmp_path)
    message = str(info.value)
    assert "via_region_data.json" in message and "a.png" in message
    assert "region 1" in message and "NaN" in message


def test_images_without_instances_are_skipped_by_the_feed(tmp_path, caplog):
    save_image(tmp_path / "empty.png", noise((64, 64, 3)))
    save_image(tmp_path / "full.png", noise((64, 64, 3), seed=1))
    write_via(tmp_path, {"empty.png": [],
                         "full.png": [rect_region(2, 2, 30, 30)]})
    dataset = load_via(tmp_path)
    empty_id = next(i for i in dataset.image_ids
                    if dataset.image_info[i]["path"].endswith("empty.png"))
    image, _, class_ids, boxes, masks = data.load_image_gt(dataset, CONFIG,
                                                           empty_id)
    assert image.shape == (64, 64, 3)
    assert class_ids.shape == (0,) and boxes.shape == (0, 4)
    assert masks.shape == (64, 64, 0)

    config = TinyConfig()
    feed = data.MaskRCNNDataset(dataset, config, shuffle=False)
    with caplog.at_level(logging.WARNING):
        batch = feed[0]
    # Both slots hold the image that has an instance.
    assert np.count_nonzero(batch["input_gt_class_ids"]) == 2
    assert any("empty.png" in r.getMessage() and "no instances"
               in r.getMessage() for r in caplog.records)

    write_via(tmp_path, {"empty.png": []})
    only_empty = load_via(tmp_path)
    with pytest.raises(ValueError, match="none of the 1 images"):
        data.MaskRCNNDataset(only_empty, config)[0]


# ------------------------------------ what a Dataset subclass returns

GOOD_IMAGE = noise((64, 64, 3))
GOOD_MASKS = box_masks(64, 64, [(4, 4, 20, 20)])


@pytest.mark.parametrize("masks,class_ids,pattern", [
    (GOOD_MASKS, [2], r"class ids \[2\] outside 1\.\.1"),
    (GOOD_MASKS, [0], r"class ids \[0\].*0 is the background"),
    (box_masks(64, 64, [(4, 4, 20, 20), (30, 30, 40, 40)]), [1],
     r"returned 2 masks but 1 class ids"),
    (box_masks(32, 64, [(4, 4, 20, 20)]), [1],
     r"masks of size 32x64 but the image is 64x64"),
])
def test_malformed_annotations_name_the_image(masks, class_ids, pattern):
    dataset = ArrayDataset([(GOOD_IMAGE, GOOD_MASKS, [1]),
                            (GOOD_IMAGE, masks, np.array(class_ids))])
    with pytest.raises(ValueError, match=pattern) as info:
        data.load_image_gt(dataset, CONFIG, 1)
    assert "image 1 (array sample 1)" in str(info.value)


def test_crowd_class_ids_are_accepted():
    dataset = ArrayDataset([(GOOD_IMAGE, GOOD_MASKS, np.array([-1]))])
    _, _, class_ids, _, _ = data.load_image_gt(dataset, CONFIG, 0)
    np.testing.assert_array_equal(class_ids, [-1])


@pytest.mark.parametrize("image,pattern", [
    (noise((64, 64, 4)),
     r"shape \(64, 64, 4\); expected \[height, width, 3\]"),
    (noise((64, 64)), r"shape \(64, 64\); expected"),
    (np.zeros((0, 64, 3), np.uint8), r"shape \(0, 64, 3\)"),
    (np.full((64, 64, 3), np.nan, np.float32), "NaN or infinite pixels"),
    (np.ones((64, 64, 3), bool), "bool pixels"),
])
def test_malformed_images_name_the_image(image, pattern):
    dataset = ArrayDataset([(image, GOOD_MASKS, np.array([1]))])
    with pytest.raises(ValueError, match=pattern) as info:
        data.load_image_gt(dataset, CONFIG, 0)
    assert "image 0 (array sample 0)" in str(info.value)


@pytest.mark.parametrize("kind,image", [
    ("unit floats", noise((64, 64, 3), dtype=np.float32) / 255.0),
    ("16-bit", noise((64, 64, 3), dtype=np.uint16, high=65536)),
])
def test_pixel_values_outside_0_255_are_used_with_a_warning(kind, image,
                                                            caplog):
    dataset = ArrayDataset([(image, GOOD_MASKS, np.array([1]))], name=kind)
    with caplog.at_level(logging.WARNING, logger="mrcnn.data"):
        loaded, _, class_ids, _, _ = data.load_image_gt(dataset, CONFIG, 0)
    assert loaded.dtype == image.dtype and class_ids.tolist() == [1]
    assert any("image 0 ({} 0)".format(kind) in r.getMessage()
               and "expects 0..255" in r.getMessage()
               for r in caplog.records)


def test_image_smaller_than_min_dim_is_scaled_up():
    # 10 x 16: scaled by 4 (64 / 16, so the long side fits IMAGE_MAX_DIM),
    # to 40 x 64, then padded by 12 rows above and below.
    masks = box_masks(10, 16, [(2, 4, 5, 8)])
    dataset = ArrayDataset([(noise((10, 16, 3)), masks, np.array([1]))])
    image, meta, _, boxes, _ = data.load_image_gt(dataset, CONFIG, 0)
    assert image.shape == (64, 64, 3)
    # Nearest-neighbour zoom of the mask (as matterport) may shift an edge
    # by one pixel from the exact 4x repeat.
    exact = [2 * 4 + 12, 4 * 4, 5 * 4 + 12, 8 * 4]
    assert np.abs(boxes[0] - exact).max() <= 1, boxes
    parsed = data.parse_image_meta(meta)
    np.testing.assert_array_equal(parsed["window"], [12, 0, 52, 64])
    assert parsed["scale"] == pytest.approx(4.0)


def test_image_over_8000_pixels_is_used_with_one_warning(caplog):
    height = data.LARGE_IMAGE_SIDE + 1
    masks = box_masks(height, 1000, [(0, 0, height // 2, 500)])
    dataset = ArrayDataset([(np.zeros((height, 1000, 3), np.uint8), masks,
                             np.array([1]))])
    with caplog.at_level(logging.WARNING, logger="mrcnn.data"):
        for _ in range(2):
            image, _, class_ids, _, _ = data.load_image_gt(dataset, CONFIG, 0)
    assert image.shape == (64, 64, 3) and class_ids.tolist() == [1]
    warnings = [r.getMessage() for r in caplog.records
                if "a side" in r.getMessage()]
    assert len(warnings) == 1
    assert "image 0 (array sample 0)" in warnings[0]
    assert "{}x1000".format(height) in warnings[0]


def test_image_too_elongated_to_resize_names_the_image():
    # 4000 x 10 scaled to fit 64 rows would be 64 x 0.16 pixels.
    dataset = ArrayDataset([(np.zeros((4000, 10, 3), np.uint8),
                             box_masks(4000, 10, [(0, 0, 100, 10)]),
                             np.array([1]))])
    with pytest.raises(ValueError, match=r"4000x10 image .* 64x0 pixels") \
            as info:
        data.load_image_gt(dataset, CONFIG, 0)
    assert "image 0 (array sample 0)" in str(info.value)


# ------------------------------------------------------------- detect()

@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    """An untrained inference model (detections need not be good, only
    well-formed and consistent)."""
    return modellib.MaskRCNN("inference", TinyConfig(),
                             str(tmp_path_factory.mktemp("logs")))


def same_results(a, b):
    """The same detections. Scores to float32 rounding: under oneDNN's AVX2
    kernels an image's scores can move in the last bit with the image it
    shares its batch with (2e-7 seen, about one run in three with random
    weights, before Winograd too)."""
    for key in ("rois", "class_ids", "masks"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    np.testing.assert_allclose(a["scores"], b["scores"], rtol=1e-5,
                               atol=0, err_msg="scores")


def test_detect_takes_any_number_of_images(detector):
    images = [noise((64, 64, 3), seed=s) for s in range(3)]
    assert detector.detect([]) == []
    three = detector.detect(images)  # BATCH_SIZE is 2: a padded 2nd batch
    assert len(three) == 3
    for image, result in zip(images, three):
        same_results(result, detector.detect([image])[0])
    # A [N, H, W, 3] array is a batch of N images.
    for got, want in zip(detector.detect(np.stack(images)), three):
        same_results(got, want)


def test_detect_converts_float_and_grey_images(detector):
    # 64 x 64 needs no resizing, which would round uint8 pixels only.
    image = noise((64, 64, 3))
    same_results(detector.detect([image.astype(np.float64)])[0],
                 detector.detect([image])[0])
    grey = noise((50, 60), seed=3)
    same_results(detector.detect([grey])[0],
                 detector.detect([np.stack([grey] * 3, axis=-1)])[0])


def test_detect_on_image_smaller_than_min_dim(detector):
    result = detector.detect([noise((5, 7, 3))])[0]
    n = len(result["class_ids"])
    assert result["masks"].shape == (5, 7, n)
    if n:
        assert np.all(result["rois"][:, 2] <= 5)
        assert np.all(result["rois"][:, 3] <= 7)


@pytest.mark.parametrize("bad,pattern", [
    (noise((40, 40, 4)), r"image 1 has shape \(40, 40, 4\)"),
    (noise((40, 40, 3), dtype=np.float32) / 255, r"image 1 is float with "
     r"values in \[0, 1\]"),
    (np.full((40, 40, 3), np.nan), r"image 1 has NaN"),
    (np.zeros((0, 40, 3), np.uint8), r"image 1 is empty"),
])
def test_detect_rejects_bad_images_by_index(detector, bad, pattern):
    with pytest.raises(ValueError, match=pattern):
        detector.detect([noise((40, 40, 3)), bad])


def test_detect_refuses_a_single_image_not_in_a_list(detector):
    with pytest.raises(ValueError, match=r"detect\(\[image\]\)"):
        detector.detect(noise((6, 10, 3)))


def test_detect_refuses_16_bit_pixels(detector):
    with pytest.raises(ValueError, match=r"image 0 .*0\.\.255"):
        detector.detect([noise((40, 40, 3), dtype=np.uint16, high=65536)])
