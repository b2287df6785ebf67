"""Annotations are never dropped silently and loaders never crash: COCO
annotations of unknown categories, COCO records without a name or
file_name, LabelMe "mask" shapes with a broken payload, COCO polygons with
a vertex far outside the image, and label images in a lossy format or with
VOC's 255 outlines."""
import base64
import json
import logging

import numpy as np
import PIL.Image
import pytest
from pycocotools import mask as mask_utils

from mrcnn.structures import dropped
from mrcnn.datasets import (CocoDataset, LabelMeDataset, MasksDataset,
                            check_annotation_file, check_dataset, check_path,
                            dropped_counts)
from mrcnn.datasets import coco as coco_format


def save_image(path, height=12, width=16):
    PIL.Image.fromarray(np.full((height, width, 3), 90, np.uint8)).save(path)
    return path


def write_coco(tmp_path, categories, annotations, images=None):
    save_image(tmp_path / "a.png")
    data = {"images": images or [{"id": 1, "file_name": "a.png",
                                  "height": 12, "width": 16}],
            "categories": categories, "annotations": annotations}
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(data))
    return path


def square(annotation_id, category_id):
    return {"id": annotation_id, "image_id": 1, "category_id": category_id,
            "iscrowd": 0, "segmentation": [[2, 2, 8, 2, 8, 8, 2, 8]]}


def test_coco_annotation_of_unknown_category_is_warned_and_counted(
        tmp_path, caplog):
    path = write_coco(tmp_path, [{"id": 1, "name": "cat"}],
                      [square(10, 1), square(11, 9)])
    dataset = CocoDataset()
    with pytest.warns(UserWarning) as warned:
        dataset.load_coco(str(path), str(tmp_path))
    text = " ".join(str(w.message) for w in warned)
    assert "coco.json" in text and "annotation 11" in text
    assert "category_id 9" in text
    dataset.prepare()
    with caplog.at_level(logging.WARNING, logger="mrcnn.structures.dropped"):
        masks, class_ids = dataset.load_mask(0)
    assert class_ids.tolist() == [1] and masks.shape == (12, 16, 1)
    assert "1 of the 2 instances" in caplog.text
    assert dropped.CAUSES["unknown_category"] in caplog.text
    counts = dropped_counts(check_dataset(dataset))
    assert counts["unknown_category"] == (1, 1)


@pytest.mark.parametrize("field, record, where", [
    ("categories", {"id": 1}, "category #0 (id 1) has no 'name'"),
    ("images", {"id": 1, "height": 12, "width": 16},
     "image #0 (id 1) has no 'file_name'"),
])
def test_coco_record_without_a_needed_field_is_a_clear_error(
        tmp_path, field, record, where):
    categories = [{"id": 1, "name": "cat"}]
    images = None
    if field == "categories":
        categories = [record]
    else:
        images = [record]
    path = write_coco(tmp_path, categories, [square(10, 1)], images)
    with pytest.raises(ValueError) as info:
        CocoDataset().load_coco(str(path), str(tmp_path))
    assert "coco.json" in str(info.value) and where in str(info.value)
    problems = check_annotation_file(str(path), "coco", image_dir=tmp_path)
    assert any(p.is_error for p in problems)


def test_coco_category_without_name_is_an_error_of_the_check(tmp_path):
    path = write_coco(tmp_path, [{"id": 1}], [square(10, 1)])
    problems = check_annotation_file(str(path), "coco", image_dir=tmp_path)
    assert any(p.is_error and "category 1 has no name" in p.message
               for p in problems)


def test_labelme_mask_shape_with_a_broken_payload_is_named(tmp_path):
    save_image(tmp_path / "a.png")
    shape = {"label": "cat", "shape_type": "mask", "group_id": None,
             "points": [[2, 2], [6, 6]],
             "mask": base64.b64encode(b"not a png at all").decode("ascii")}
    (tmp_path / "a.json").write_text(json.dumps({
        "version": "5.0.1", "imagePath": "a.png", "imageData": None,
        "imageHeight": 12, "imageWidth": 16, "shapes": [shape]}))
    problems = check_path(str(tmp_path))  # no exception
    errors = [p for p in problems if p.is_error]
    assert any("a.json" in p.message and "shape 0" in p.message
               and "'mask' data" in p.message for p in errors), problems
    dataset = LabelMeDataset()
    dataset.load_labelme(str(tmp_path))
    dataset.prepare()
    with pytest.raises(ValueError, match=r"a\.json: shape 0: .*'mask' data"):
        dataset.load_mask(0)


def test_coco_polygon_far_outside_is_clipped_before_rasterising(
        tmp_path, monkeypatch):
    height, width = 12, 16
    far = [2, 3, 1e6, 3, 1e6, 9, 2, 9]  # a box running off to the right
    # The same box ending just past the image: pycocotools itself on a
    # polygon that needs no clipping gives the expected mask.
    near = [2, 3, width + 5, 3, width + 5, 9, 2, 9]
    expected = mask_utils.decode(mask_utils.merge(
        mask_utils.frPyObjects([near], height, width))).astype(bool)
    seen = []
    rasterise = mask_utils.frPyObjects

    def recording(polygons, h, w):
        seen.extend(polygons)
        return rasterise(polygons, h, w)

    monkeypatch.setattr(coco_format.mask_utils, "frPyObjects", recording)
    mask = coco_format.ann_to_mask({"segmentation": [far]}, height, width)
    np.testing.assert_array_equal(mask, expected)
    assert expected[3:9, 2:].all() and expected.sum() == 6 * (width - 2)
    bound = 17 * max(height, width)
    assert seen and all(abs(v) <= bound for p in seen for v in p)


def label_dataset(tmp_path, label, suffix):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    save_image(tmp_path / "images" / "a.png", *label.shape)
    PIL.Image.fromarray(label).save(tmp_path / "labels" / ("a" + suffix))


def test_label_layout_refuses_a_jpeg_label_image(tmp_path):
    label = np.zeros((12, 16), np.uint8)
    label[2:6, 2:6], label[6:10, 8:14] = 1, 2
    label_dataset(tmp_path, label, ".jpg")
    with pytest.raises(ValueError, match=r"a\.jpg is JPEG, a lossy format"):
        MasksDataset().load_masks(str(tmp_path))
    problems = check_path(str(tmp_path))
    assert any(p.is_error and "a.jpg" in p.message for p in problems)


def test_label_layout_ignores_voc_255_outlines(tmp_path, caplog):
    label = np.zeros((12, 16), np.uint8)
    label[3:9, 3:9] = 255  # VOC draws a void outline round each object
    label[4:8, 4:8] = 1
    label_dataset(tmp_path, label, ".png")
    dataset = MasksDataset()
    dataset.load_masks(str(tmp_path))
    dataset.prepare()
    with caplog.at_level(logging.WARNING):
        masks, class_ids = dataset.load_mask(0)
    assert class_ids.tolist() == [1]
    np.testing.assert_array_equal(masks[..., 0], label == 1)
    assert "255" in caplog.text and "ignore" in caplog.text
