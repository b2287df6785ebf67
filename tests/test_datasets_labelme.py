"""LabelMeDataset: shapes, group_id instances, imageData, classes."""
import base64
import io
import json

import numpy as np
import pytest
import skimage.io
from PIL import Image

from mrcnn.datasets import LabelMeDataset, load_dataset

HEIGHT, WIDTH = 20, 30


def make_image(seed=0):
    return np.random.RandomState(seed).randint(
        0, 255, (HEIGHT, WIDTH, 3)).astype(np.uint8)


def png_base64(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def shape(label, points, shape_type="polygon", group_id=None, **extra):
    return dict(label=label, points=points, shape_type=shape_type,
                group_id=group_id, flags={}, **extra)


def annotation(image_path, shapes, image_data=None):
    return {"version": "5.4.1", "flags": {}, "shapes": shapes,
            "imagePath": image_path, "imageData": image_data,
            "imageHeight": HEIGHT, "imageWidth": WIDTH}


def write_json(path, data):
    path.write_text(json.dumps(data))


def empty():
    return np.zeros((HEIGHT, WIDTH), bool)


def test_shapes_groups_and_relative_image_path(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "json").mkdir()
    skimage.io.imsave(str(tmp_path / "images" / "a.png"), make_image(),
                      check_contrast=False)
    patch = np.zeros((3, 4), np.uint8)
    patch[1:, 1:3] = 1
    shapes = [
        shape("cat", [[1, 1], [5, 1], [5, 4], [1, 4]]),             # 0
        shape("dog", [[12, 2], [15, 6]], "rectangle"),               # 1
        shape("cat", [[20, 10], [20, 13]], "circle"),                # 2
        shape("dog", [[1, 10], [4, 10], [4, 12], [1, 12]],
              group_id=7),                                           # 3a
        shape("dog", [[8, 10], [10, 10], [10, 12], [8, 12]],
              group_id=7),                                           # 3b
        shape("cat", [[0, 15], [29, 15]], "line"),                   # skipped
        shape("cat", [[6, 16], [9, 18]], "mask",
              mask=png_base64(patch)),                               # 4
    ]
    write_json(tmp_path / "json" / "a.json",
               annotation("../images/a.png", shapes))
    dataset = LabelMeDataset()
    dataset.load_labelme(tmp_path / "json")
    dataset.prepare()
    assert dataset.class_names == ["BG", "cat", "dog"]
    mask, class_ids = dataset.load_mask(0)
    assert mask.shape == (HEIGHT, WIDTH, 5) and mask.dtype == bool

    rows, cols = np.mgrid[:HEIGHT, :WIDTH]
    polygon = empty()
    polygon[1:5, 1:6] = True
    rectangle = empty()
    rectangle[2:7, 12:16] = True  # both corners inside
    circle = (cols - 20) ** 2 + (rows - 10) ** 2 < 9
    group = empty()
    group[10:13, 1:5] = True
    group[10:13, 8:11] = True
    pasted = empty()
    pasted[17:19, 7:9] = True
    for k, expected in enumerate([polygon, rectangle, circle, group,
                                  pasted]):
        np.testing.assert_array_equal(mask[..., k], expected, err_msg=str(k))
    assert [dataset.class_names[c] for c in class_ids] == [
        "cat", "dog", "cat", "dog", "cat"]
    assert dataset.image_reference(0).endswith("a.png")
    np.testing.assert_array_equal(dataset.load_image(0), make_image())


def test_same_group_id_with_other_label_is_another_instance(tmp_path):
    skimage.io.imsave(str(tmp_path / "a.png"), make_image(),
                      check_contrast=False)
    shapes = [shape("a", [[1, 1], [3, 1], [3, 3]], group_id=1),
              shape("b", [[5, 5], [8, 5], [8, 8]], group_id=1),
              shape("a", [[10, 1], [12, 1], [12, 3]], group_id=1)]
    write_json(tmp_path / "a.json", annotation("a.png", shapes))
    dataset = load_dataset(tmp_path)
    mask, class_ids = dataset.load_mask(0)
    assert class_ids.tolist() == [1, 2]
    assert mask[..., 0].any(axis=0)[[1, 10]].all()  # both "a" parts


def test_embedded_image_data_when_file_is_absent(tmp_path):
    image = make_image(3)
    shapes = [shape("x", [[2, 2], [6, 2], [6, 6], [2, 6]])]
    write_json(tmp_path / "e.json",
               annotation("not_here.png", shapes, png_base64(image)))
    dataset = LabelMeDataset()
    dataset.load_labelme([tmp_path / "e.json"])
    dataset.prepare()
    np.testing.assert_array_equal(dataset.load_image(0), image)
    assert dataset.image_reference(0).endswith("e.json")
    mask, _ = dataset.load_mask(0)
    assert mask.shape == (HEIGHT, WIDTH, 1) and mask.sum() == 25


def test_missing_image_without_image_data_is_named(tmp_path):
    write_json(tmp_path / "m.json", annotation("lost.jpg", []))
    with pytest.raises(FileNotFoundError, match="m.json.*lost.jpg"):
        LabelMeDataset().load_labelme(tmp_path)
    dataset = LabelMeDataset()
    with pytest.warns(UserWarning, match="lost.jpg"):
        dataset.load_labelme(tmp_path, skip_missing=True)
    assert dataset.image_info == []


def test_class_names_order_and_unknown_labels(tmp_path):
    skimage.io.imsave(str(tmp_path / "a.png"), make_image(),
                      check_contrast=False)
    shapes = [shape("zebra", [[1, 1], [4, 1], [4, 4]]),
              shape("ant", [[6, 1], [9, 1], [9, 4]]),
              shape("__ignore__", [[1, 8], [4, 8], [4, 12]])]
    write_json(tmp_path / "a.json", annotation("a.png", shapes))
    with pytest.warns(UserWarning, match="zebra"):
        dataset = load_dataset(tmp_path, class_names=["ant", "bee"])
    assert dataset.class_names == ["BG", "ant", "bee"]
    mask, class_ids = dataset.load_mask(0)
    assert class_ids.tolist() == [1] and mask.shape[2] == 1
    default = load_dataset(tmp_path)
    assert default.class_names == ["BG", "ant", "zebra"]


@pytest.mark.parametrize("bad, message", [
    (shape("x", [[1, float("nan")], [3, 3], [4, 1]]), "points contain NaN"),
    (shape("x", [[1, 1]], "circle"), "circle needs 2 points"),
    (shape("x", [[1, 1], [2, 2]], "blob"), "unknown shape_type"),
    (shape("", [[1, 1], [2, 2], [3, 1]]), "no label"),
])
def test_bad_shapes_name_file_and_shape(tmp_path, bad, message):
    skimage.io.imsave(str(tmp_path / "a.png"), make_image(),
                      check_contrast=False)
    write_json(tmp_path / "a.json", annotation("a.png", [bad]))
    with pytest.raises(ValueError, match="a.json: shape 0: " + message):
        LabelMeDataset().load_labelme(tmp_path)
