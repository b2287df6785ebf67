"""EXIF-rotated photos: JPEGs stored turned and tagged Orientation 6, 3 or
8, annotated in the upright frame (as LabelMe and browsers show them).

Pillow's ImageOps.exif_transpose is the reference for the upright frame.
"""
import json
import logging

import numpy as np
import pytest
from PIL import Image, ImageOps

from mrcnn import utils
from mrcnn.structures import orientation
from mrcnn.datasets import (LabelMeDataset, ViaDataset, check_annotation_file,
                            check_dataset, check_path, load_dataset)

# Upright scene: 24 wide, 40 high, an object at x 4..15, y 25..34.
UPRIGHT_HEIGHT, UPRIGHT_WIDTH = 40, 24
OBJECT = (25, 4, 35, 16)  # (y1, x1, y2, x2), y2/x2 exclusive

# Stored pixels for each orientation, undoing by hand what viewers do:
# 6 = viewers turn it 90 degrees clockwise, so it is stored turned
# counter-clockwise; 8 the other way; 3 is stored upside down.
TO_STORED = {
    6: lambda upright: np.rot90(upright, k=1),
    8: lambda upright: np.rot90(upright, k=-1),
    3: lambda upright: upright[::-1, ::-1],
}


def upright_scene():
    scene = np.random.default_rng(0).integers(0, 60, (UPRIGHT_HEIGHT,
                                                      UPRIGHT_WIDTH, 3))
    y1, x1, y2, x2 = OBJECT
    scene[y1:y2, x1:x2] = 250
    return scene.astype(np.uint8)


def tagged_jpeg(path, tag):
    """A JPEG whose stored pixels are the scene turned for tag, tagged."""
    stored = np.ascontiguousarray(TO_STORED[tag](upright_scene()))
    exif = Image.Exif()
    exif[orientation.EXIF_ORIENTATION_TAG] = tag
    Image.fromarray(stored).save(path, quality=95, exif=exif.tobytes())
    return str(path)


def reference_upright(path):
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def labelme_json(folder, image_name, rectangle, name="photo.json"):
    """A LabelMe json with one rectangle given as (x1, y1, x2, y2)."""
    x1, y1, x2, y2 = rectangle
    shapes = [{"label": "thing", "points": [[x1, y1], [x2, y2]],
               "shape_type": "rectangle", "group_id": None}]
    (folder / name).write_text(json.dumps(
        {"shapes": shapes, "imagePath": image_name, "imageData": None,
         "imageHeight": UPRIGHT_HEIGHT, "imageWidth": UPRIGHT_WIDTH}))


def via_json(folder, image_name, rectangle):
    """A VIA json with one rect region given as (x, y, width, height)."""
    x, y, width, height = rectangle
    region = {"shape_attributes": {"name": "rect", "x": x, "y": y,
                                   "width": width, "height": height},
              "region_attributes": {}}
    (folder / "via_region_data.json").write_text(json.dumps(
        {image_name: {"filename": image_name, "regions": [region]}}))
    return str(folder / "via_region_data.json")


# The object's rectangle in the upright frame, for each tool's format.
LABELME_OBJECT = (4, 25, 15, 34)   # corners are pixel centres
VIA_OBJECT = (4, 25, 12, 10)       # x, y, width, height


@pytest.mark.parametrize("tag", [1, 2, 3, 4, 5, 6, 7, 8])
def test_upright_pixels_match_pillow(tmp_path, tag):
    stored = np.random.default_rng(tag).integers(0, 256, (5, 7, 3)).astype(
        np.uint8)
    exif = Image.Exif()
    exif[orientation.EXIF_ORIENTATION_TAG] = tag
    Image.fromarray(stored).save(tmp_path / "a.png", exif=exif.tobytes())
    assert orientation.exif_orientation(tmp_path / "a.png") == tag
    expected = reference_upright(tmp_path / "a.png")
    np.testing.assert_array_equal(
        orientation.upright_pixels(stored, tag), expected)
    assert orientation.upright_size(5, 7, tag) == expected.shape[:2]


@pytest.mark.parametrize("tag", [6, 3, 8])
def test_labelme_loads_upright_like_labelme(tmp_path, tag, caplog):
    path = tagged_jpeg(tmp_path / "photo.jpg", tag)
    labelme_json(tmp_path, "photo.jpg", LABELME_OBJECT)
    dataset = LabelMeDataset()
    dataset.load_labelme(str(tmp_path))
    dataset.prepare()
    info = dataset.image_info[0]
    assert (info["height"], info["width"]) == (UPRIGHT_HEIGHT, UPRIGHT_WIDTH)
    with caplog.at_level(logging.WARNING):
        image = dataset.load_image(0)
        masks, _ = dataset.load_mask(0)
    assert "EXIF orientation" not in caplog.text  # applied, nothing to say
    np.testing.assert_array_equal(image, reference_upright(path))
    assert masks.shape == (UPRIGHT_HEIGHT, UPRIGHT_WIDTH, 1)
    assert utils.extract_bboxes(masks).tolist() == [list(OBJECT)]
    # Pixels and annotation agree: the object is bright inside the mask.
    assert image[masks[..., 0]].min() > 200
    assert check_path(str(tmp_path)) == []


@pytest.mark.parametrize("tag", [6, 3, 8])
def test_dataset_attribute_turns_any_dataset_upright(tmp_path, tag):
    path = tagged_jpeg(tmp_path / "photo.jpg", tag)
    via_path = via_json(tmp_path, "photo.jpg", VIA_OBJECT)
    dataset = ViaDataset()
    dataset.apply_exif_orientation = True
    dataset.load_via(via_path)
    dataset.prepare()
    info = dataset.image_info[0]
    assert (info["height"], info["width"]) == (UPRIGHT_HEIGHT, UPRIGHT_WIDTH)
    image = dataset.load_image(0)
    masks, _ = dataset.load_mask(0)
    np.testing.assert_array_equal(image, reference_upright(path))
    assert utils.extract_bboxes(masks).tolist() == [list(OBJECT)]
    assert image[masks[..., 0]].min() > 200
    assert check_dataset(dataset) == []
    # load_dataset and check_path take the same switch.
    loaded = load_dataset(via_path, apply_exif_orientation=True)
    assert loaded.load_image(0).shape[:2] == (UPRIGHT_HEIGHT, UPRIGHT_WIDTH)
    assert check_path(via_path, apply_exif_orientation=True) == []


def test_off_by_default_for_code_written_for_the_original(tmp_path,
                                                          caplog):
    tagged_jpeg(tmp_path / "photo.jpg", 6)
    dataset = ViaDataset()
    assert utils.Dataset.apply_exif_orientation is False
    dataset.load_via(via_json(tmp_path, "photo.jpg", (4, 2, 8, 8)))
    dataset.prepare()
    with caplog.at_level(logging.WARNING):
        image = dataset.load_image(0)
    assert image.shape[:2] == (UPRIGHT_WIDTH, UPRIGHT_HEIGHT)  # as stored
    assert dataset.image_info[0]["height"] == UPRIGHT_WIDTH
    assert "EXIF orientation 6" in caplog.text
    assert "apply_exif_orientation" in caplog.text
    problems = check_dataset(dataset)
    assert [p.message for p in problems] == [
        "EXIF orientation 6 is not applied: pixels and annotations are in "
        "the stored frame (set apply_exif_orientation if they were drawn on "
        "the upright view)"]


@pytest.mark.parametrize("tag", [6, 8])
def test_check_reports_annotations_that_fit_only_the_upright_frame(
        tmp_path, tag):
    tagged_jpeg(tmp_path / "photo.jpg", tag)
    via_path = via_json(tmp_path, "photo.jpg", VIA_OBJECT)  # upright frame
    problems = check_annotation_file(via_path)
    frame = [p for p in problems if p.is_error]
    assert len(frame) == 1, problems
    assert frame[0].file == str(tmp_path / "photo.jpg")
    message = frame[0].message
    assert "40x24 (width x height) stored frame" in message
    assert "EXIF orientation {}".format(tag) in message
    assert "apply_exif_orientation=True" in message
    assert any("frame" in p.message and p.is_error
               for p in check_path(via_path))
    assert not any(p.is_error for p in check_annotation_file(
        via_path, apply_exif_orientation=True))


def test_check_reports_labelme_annotations_in_the_stored_frame(tmp_path):
    tagged_jpeg(tmp_path / "photo.jpg", 6)
    # Drawn on the stored 40 x 24 pixels (by another tool): x up to 35.
    labelme_json(tmp_path, "photo.jpg", (20, 2, 35, 20))
    problems = check_annotation_file(tmp_path / "photo.json")
    frame = [p for p in problems if p.is_error]
    assert len(frame) == 1, problems
    assert "24x40 (width x height) upright frame" in frame[0].message
    assert "apply_exif_orientation=False" in frame[0].message
