"""ViaDataset: VIA 1.x / 2.x json, every shape, classes, the balloon data."""
import json
import os

import numpy as np
import pytest
import skimage.draw
import skimage.io

from mrcnn.datasets import ViaDataset, load_dataset

HEIGHT, WIDTH = 24, 32


def save_image(path, height=HEIGHT, width=WIDTH):
    image = np.random.RandomState(0).randint(0, 255, (height, width, 3))
    skimage.io.imsave(str(path), image.astype(np.uint8), check_contrast=False)
    return os.path.getsize(path)


def region(shape, **attributes):
    return {"shape_attributes": shape, "region_attributes": attributes}


SQUARE = {"name": "polygon", "all_points_x": [2, 6, 6, 2],
          "all_points_y": [3, 3, 7, 7]}
# Past the right and bottom border: clipped, no IndexError.
BORDER = {"name": "polyline", "all_points_x": [28, WIDTH + 5, WIDTH + 5, 28],
          "all_points_y": [20, 20, HEIGHT, HEIGHT]}
RECT = {"name": "rect", "x": 10, "y": 1, "width": 5, "height": 3}
CIRCLE = {"name": "circle", "cx": 20, "cy": 12, "r": 3}
ELLIPSE = {"name": "ellipse", "cx": 8, "cy": 16, "rx": 5, "ry": 2,
           "theta": 0.5}


def expected_masks():
    """The five shapes above drawn by hand (slices / brute force)."""
    rows, cols = np.mgrid[:HEIGHT, :WIDTH]
    square = np.zeros((HEIGHT, WIDTH), bool)
    square[3:8, 2:7] = True  # polygon outline pixels are inside
    border = np.zeros((HEIGHT, WIDTH), bool)
    border[20:, 28:] = True
    rect = np.zeros((HEIGHT, WIDTH), bool)
    rect[1:4, 10:15] = True  # width x height pixels
    circle = (cols - 20) ** 2 + (rows - 12) ** 2 < 9
    dx, dy = cols - 8, rows - 16
    along = dx * np.cos(0.5) + dy * np.sin(0.5)
    across = -dx * np.sin(0.5) + dy * np.cos(0.5)
    ellipse = (along / 5) ** 2 + (across / 2) ** 2 < 1
    return [square, border, rect, circle, ellipse]


def write_via1(folder):
    """VIA 1.x: dict keyed by filename+size, regions as a dict."""
    size = save_image(folder / "a.png")
    shapes = [SQUARE, BORDER, RECT, CIRCLE, ELLIPSE]
    names = ["cat", "cat", "dog", "dog", "cat"]
    regions = {str(i): region(s, kind=n)
               for i, (s, n) in enumerate(zip(shapes, names))}
    regions["5"] = region({"name": "point", "cx": 3, "cy": 3}, kind="cat")
    data = {"a.png{}".format(size): {
        "fileref": "", "size": size, "filename": "a.png",
        "base64_img_data": "", "file_attributes": {}, "regions": regions}}
    path = folder / "via_region_data.json"
    path.write_text(json.dumps(data))
    return path, names


def test_via1_every_shape_matches_hand_drawn_masks(tmp_path):
    path, names = write_via1(tmp_path)
    dataset = ViaDataset()
    dataset.load_via(tmp_path, class_attribute="kind")
    dataset.prepare()
    assert dataset.class_names == ["BG", "cat", "dog"]
    mask, class_ids = dataset.load_mask(0)
    assert mask.dtype == bool and mask.shape == (HEIGHT, WIDTH, 5)
    for k, expected in enumerate(expected_masks()):
        np.testing.assert_array_equal(mask[..., k], expected, err_msg=str(k))
    assert [dataset.class_names[c] for c in class_ids] == names
    info = dataset.image_info[0]
    assert (info["height"], info["width"]) == (HEIGHT, WIDTH)
    assert dataset.image_reference(0) == str(tmp_path / "a.png")
    assert dataset.load_image(0).shape == (HEIGHT, WIDTH, 3)


def test_via2_list_regions_and_checkbox_classes(tmp_path):
    save_image(tmp_path / "b.png")
    regions = [region(SQUARE, species={"dog": True, "cat": False}),
               region(RECT, species="cat"),
               region(CIRCLE)]  # no class: default_class
    data = {"b.png123": {"filename": "b.png", "size": 123,
                         "regions": regions, "file_attributes": {}}}
    (tmp_path / "export.json").write_text(json.dumps(data))
    dataset = ViaDataset()
    dataset.load_via(tmp_path / "export.json", class_attribute="species",
                     default_class="thing")
    dataset.prepare()
    assert dataset.class_names == ["BG", "cat", "dog", "thing"]
    mask, class_ids = dataset.load_mask(0)
    assert class_ids.tolist() == [2, 1, 3]
    square, _, rect, circle, _ = expected_masks()
    for k, expected in enumerate([square, rect, circle]):
        np.testing.assert_array_equal(mask[..., k], expected)


def test_via2_project_file_and_class_names_order(tmp_path):
    save_image(tmp_path / "c.png")
    metadata = {"c.png-1": {"filename": "c.png", "size": -1,
                            "regions": [region(SQUARE, t="b"),
                                        region(RECT, t="a"),
                                        region(CIRCLE, t="zzz")],
                            "file_attributes": {}}}
    project = {"_via_settings": {"core": {}}, "_via_img_metadata": metadata,
               "_via_attributes": {"region": {"t": {"type": "text"}}},
               "_via_image_id_list": ["c.png-1"]}
    (tmp_path / "via_project.json").write_text(json.dumps(project))
    dataset = ViaDataset()
    with pytest.warns(UserWarning, match="zzz"):
        dataset.load_via(tmp_path, class_attribute="t",
                         class_names=["b", "a"])
    dataset.prepare()
    assert dataset.class_names == ["BG", "b", "a"]
    mask, class_ids = dataset.load_mask(0)
    assert class_ids.tolist() == [1, 2]  # the "zzz" circle is skipped
    assert mask.shape[2] == 2


def test_missing_image_is_named_or_skipped(tmp_path):
    save_image(tmp_path / "a.png")
    data = {"a.png1": {"filename": "a.png", "regions": [region(SQUARE)]},
            "gone.png1": {"filename": "gone.png",
                          "regions": [region(SQUARE)]}}
    (tmp_path / "via_region_data.json").write_text(json.dumps(data))
    with pytest.raises(FileNotFoundError, match="gone.png"):
        ViaDataset().load_via(tmp_path)
    dataset = ViaDataset()
    with pytest.warns(UserWarning, match="gone.png"):
        dataset.load_via(tmp_path, skip_missing=True)
    dataset.prepare()
    assert [info["id"] for info in dataset.image_info] == ["a.png"]
    assert dataset.class_names == ["BG", "object"]


def test_one_class_name_names_the_single_class(tmp_path):
    save_image(tmp_path / "a.png")
    data = {"a.png1": {"filename": "a.png", "regions": [region(SQUARE)]}}
    (tmp_path / "via_region_data.json").write_text(json.dumps(data))
    dataset = load_dataset(tmp_path, class_names=["balloon"])
    assert dataset.class_names == ["BG", "balloon"]
    assert dataset.load_mask(0)[1].tolist() == [1]
    # With no region at all the class still exists.
    (tmp_path / "via_region_data.json").write_text(json.dumps(
        {"a.png1": {"filename": "a.png", "regions": {}}}))
    assert load_dataset(tmp_path).class_names == ["BG", "object"]


@pytest.mark.parametrize("shape, message", [
    ({"name": "polygon", "all_points_x": [1, float("nan"), 3],
      "all_points_y": [1, 2, 3]}, "NaN"),
    ({"name": "polygon", "all_points_x": [1, 2, 3], "all_points_y": [1, 2]},
     "3 x but 2 y"),
    ({"name": "rect", "x": 1, "y": 1, "width": 2}, "lacks height"),
    ({"name": "hexagon"}, "unknown shape"),
    ({"name": "circle", "cx": "5", "cy": 5, "r": 2}, "text, not numbers"),
])
def test_bad_regions_raise_naming_image_and_region(tmp_path, shape, message):
    save_image(tmp_path / "a.png")
    data = {"a.png1": {"filename": "a.png",
                       "regions": [region(SQUARE), region(shape)]}}
    (tmp_path / "via_region_data.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="a.png, region 1: .*" + message):
        ViaDataset().load_via(tmp_path)


def test_broken_json_names_the_file_and_line(tmp_path):
    (tmp_path / "via_region_data.json").write_text('{"a": \n  [1, 2,,]}')
    with pytest.raises(ValueError, match="via_region_data.json.*line 2"):
        ViaDataset().load_via(tmp_path)


def test_checkbox_with_two_classes_is_rejected(tmp_path):
    save_image(tmp_path / "a.png")
    data = {"a.png1": {"filename": "a.png", "regions": [
        region(SQUARE, k={"cat": True, "dog": True})]}}
    (tmp_path / "via_region_data.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="several classes"):
        ViaDataset().load_via(tmp_path, class_attribute="k")


# --- the real balloon data (VIA 1.x) ----------------------------------------

def draw_unclipped(shape, height, width):
    """A polygon drawn on a canvas larger than the image, then cropped:
    what clipping at the border must give."""
    canvas = np.zeros((height + 4, width + 4), bool)
    rows, cols = skimage.draw.polygon(shape["all_points_y"],
                                      shape["all_points_x"])
    canvas[rows, cols] = True
    return canvas[:height, :width]


def test_balloon_counts_and_border_polygons(balloon_path):
    train = load_dataset(balloon_path, subset="train",
                         default_class="balloon")
    assert train.num_images == 61
    assert train.class_names == ["BG", "balloon"]
    assert sum(len(i["polygons"]) for i in train.image_info) == 255
    # The images with points at x = width or y = height load without
    # IndexError, each instance as drawn on a larger canvas.
    touching = [i for i, info in enumerate(train.image_info)
                if any(max(p["all_points_x"]) >= info["width"]
                       or max(p["all_points_y"]) >= info["height"]
                       for p in info["polygons"])]
    assert len(touching) == 7
    for image_id in touching[:3]:
        info = train.image_info[image_id]
        mask, class_ids = train.load_mask(image_id)
        assert mask.shape == (info["height"], info["width"],
                              len(info["polygons"]))
        assert (class_ids == 1).all()
        for k, shape in enumerate(info["polygons"]):
            np.testing.assert_array_equal(
                mask[..., k],
                draw_unclipped(shape, info["height"], info["width"]))


def test_balloon_root_needs_a_subset(balloon_path):
    with pytest.raises(ValueError, match="sub-folders train, val"):
        load_dataset(balloon_path)


def test_balloon_val_masks(balloon_path):
    val = ViaDataset()
    val.load_via(balloon_path, "val", default_class="balloon",
                 source="balloon")
    val.prepare()
    assert val.num_images == 13
    total = 0
    for image_id in val.image_ids:
        mask, class_ids = val.load_mask(image_id)
        info = val.image_info[image_id]
        assert mask.shape[:2] == (info["height"], info["width"])
        assert mask.reshape(-1, mask.shape[2]).any(axis=0).all()
        total += mask.shape[2]
    assert total == 50
    assert val.map_source_class_id("balloon.1") == 1
