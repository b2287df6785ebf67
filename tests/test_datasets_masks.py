"""Shape rasterising helpers and MasksDataset (instances and label layouts)."""
import json

import numpy as np
import pytest
import skimage.io
from PIL import Image

from mrcnn.datasets import MasksDataset, load_dataset
from mrcnn.datasets import masks as mask_tools


def save_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    skimage.io.imsave(str(path), array, check_contrast=False)


def random_image(height, width, seed=0):
    return np.random.RandomState(seed).randint(
        0, 255, (height, width, 3)).astype(np.uint8)


# --- shape helpers ----------------------------------------------------------

def convex_polygon_brute_force(xs, ys, shape):
    """Pixel centres inside or on a convex polygon: every edge's cross
    product has the same sign (independent of skimage)."""
    rows, cols = np.mgrid[:shape[0], :shape[1]]
    signs = []
    for i in range(len(xs)):
        x1, y1, x2, y2 = xs[i], ys[i], xs[(i + 1) % len(xs)], \
            ys[(i + 1) % len(xs)]
        signs.append((x2 - x1) * (rows - y1) - (y2 - y1) * (cols - x1))
    signs = np.stack(signs)
    return (signs >= 0).all(axis=0) | (signs <= 0).all(axis=0)


def test_polygon_mask_matches_brute_force_triangle():
    xs, ys = [3, 17, 6], [2, 9, 15]
    mask = mask_tools.polygon_mask(xs, ys, (20, 24))
    expected = convex_polygon_brute_force(xs, ys, (20, 24))
    assert mask.dtype == bool and mask.shape == (20, 24)
    np.testing.assert_array_equal(mask, expected)


def test_polygon_mask_clips_points_on_and_beyond_the_border():
    # Points at x = width / y = height and past every side: no IndexError,
    # and the mask is the visible part of the polygon.
    mask = mask_tools.polygon_mask([-5, 12, 12, -5], [3, 3, 8, 8], (8, 12))
    expected = np.zeros((8, 12), bool)
    expected[3:8, 0:12] = True
    np.testing.assert_array_equal(mask, expected)


def test_polygon_mask_with_too_few_points_is_empty():
    assert not mask_tools.polygon_mask([1, 5], [1, 5], (8, 8)).any()


def test_rectangle_mask_covers_width_by_height_pixels():
    mask = mask_tools.rectangle_mask(1, 2, 3, 4, (10, 10))
    expected = np.zeros((10, 10), bool)
    expected[2:6, 1:4] = True
    np.testing.assert_array_equal(mask, expected)
    # Partly outside: clipped.
    assert mask_tools.rectangle_mask(8, 8, 5, 5, (10, 10)).sum() == 4


def test_circle_and_ellipse_match_brute_force():
    shape = (30, 40)
    rows, cols = np.mgrid[:shape[0], :shape[1]]
    circle = mask_tools.circle_mask(20.5, 12, 7, shape)
    np.testing.assert_array_equal(
        circle, (cols - 20.5) ** 2 + (rows - 12) ** 2 < 49)
    # theta turns clockwise on screen (y down): the long axis points to
    # (cos theta, sin theta).
    cx, cy, rx, ry, theta = 20, 15, 12, 4, 0.7
    ellipse = mask_tools.ellipse_mask(cx, cy, rx, ry, theta, shape)
    dx, dy = cols - cx, rows - cy
    along = dx * np.cos(theta) + dy * np.sin(theta)
    across = -dx * np.sin(theta) + dy * np.cos(theta)
    expected = (along / rx) ** 2 + (across / ry) ** 2 < 1
    np.testing.assert_array_equal(ellipse, expected)
    tip = (int(round(cy + 10 * np.sin(theta))),
           int(round(cx + 10 * np.cos(theta))))
    mirrored = (int(round(cy - 10 * np.sin(theta))), tip[1])
    assert ellipse[tip] and not ellipse[mirrored]


def test_nan_coordinates_raise_a_clear_error():
    with pytest.raises(ValueError, match="NaN"):
        mask_tools.polygon_mask([1, float("nan"), 4], [1, 2, 5], (8, 8))


def test_read_image_size_reads_header_and_names_missing_file(tmp_path):
    save_png(tmp_path / "a.png", random_image(13, 21))
    assert mask_tools.read_image_size(tmp_path / "a.png") == (13, 21)
    with pytest.raises(FileNotFoundError, match="nope.png"):
        mask_tools.read_image_size(tmp_path / "nope.png")


# --- instances layout (nuclei) ----------------------------------------------

def write_instances_dataset(root):
    """Two samples: s1 with two flat masks, s2 with class sub-folders."""
    masks = {}
    save_png(root / "s1" / "images" / "s1.png", random_image(16, 20))
    a = np.zeros((16, 20), np.uint8)
    a[2:6, 3:9] = 255
    b = np.zeros((16, 20), np.uint8)
    b[10:14, 10:18] = 255
    save_png(root / "s1" / "masks" / "m1.png", a)
    save_png(root / "s1" / "masks" / "m2.png", b)
    masks["s1"] = [a > 0, b > 0]
    save_png(root / "s2" / "images" / "s2.png", random_image(12, 12, 1))
    c = np.zeros((12, 12), np.uint8)
    c[1:4, 1:4] = 255
    d = np.zeros((12, 12), np.uint8)
    d[6:11, 5:9] = 1  # 0/1 masks work as well as 0/255
    save_png(root / "s2" / "masks" / "dog" / "x.png", c)
    save_png(root / "s2" / "masks" / "cat" / "y.png", d)
    masks["s2"] = [c > 0, d > 0]
    return masks


def test_instances_layout_loads_each_mask_file(tmp_path):
    expected = write_instances_dataset(tmp_path)
    (tmp_path / "s1" / "masks" / "dog").mkdir()  # empty class folder
    dataset = MasksDataset()
    dataset.load_masks(tmp_path)
    dataset.prepare()
    assert dataset.class_names == ["BG", "cat", "dog", "object"]
    by_id = {info["id"]: i for i, info in enumerate(dataset.image_info)}
    mask, class_ids = dataset.load_mask(by_id["s1"])
    assert mask.dtype == bool and mask.shape == (16, 20, 2)
    for k in range(2):
        np.testing.assert_array_equal(mask[..., k], expected["s1"][k])
    assert class_ids.tolist() == [3, 3] and class_ids.dtype == np.int32
    mask, class_ids = dataset.load_mask(by_id["s2"])
    # Sub-folders are read in sorted order: cat (y.png), then dog (x.png).
    np.testing.assert_array_equal(mask[..., 0], expected["s2"][1])
    np.testing.assert_array_equal(mask[..., 1], expected["s2"][0])
    assert class_ids.tolist() == [1, 2]
    assert dataset.image_reference(by_id["s2"]).endswith("s2.png")
    assert dataset.image_info[by_id["s2"]]["height"] == 12


def test_instances_layout_single_class_name_and_empty_mask(tmp_path):
    save_png(tmp_path / "n1" / "images" / "n1.png", random_image(8, 8))
    full = np.zeros((8, 8), np.uint8)
    full[0:3, 0:3] = 255
    save_png(tmp_path / "n1" / "masks" / "a.png", full)
    save_png(tmp_path / "n1" / "masks" / "empty.png", np.zeros((8, 8),
                                                              np.uint8))
    dataset = load_dataset(tmp_path, class_names=["nucleus"])
    assert dataset.class_names == ["BG", "nucleus"]
    mask, class_ids = dataset.load_mask(0)
    assert mask.shape == (8, 8, 1) and class_ids.tolist() == [1]
    assert mask.sum() == 9


def test_instances_layout_mask_size_mismatch_names_file(tmp_path):
    save_png(tmp_path / "n1" / "images" / "n1.png", random_image(8, 8))
    save_png(tmp_path / "n1" / "masks" / "big.png",
             np.full((9, 8), 255, np.uint8))
    dataset = load_dataset(tmp_path, format="masks")
    with pytest.raises(ValueError, match="big.png.*9x8.*8x8"):
        dataset.load_mask(0)


# --- label layout -----------------------------------------------------------

def test_label_layout_each_value_is_an_instance(tmp_path):
    save_png(tmp_path / "images" / "a.png", random_image(10, 12))
    label = np.zeros((10, 12), np.uint16)
    label[1:3, 1:4] = 1
    label[5:9, 2:5] = 2
    label[6:8, 8:11] = 300  # 16-bit label values work
    save_png(tmp_path / "labels" / "a.png", label)
    (tmp_path / "labels" / "a.json").write_text(json.dumps(
        {"1": "cat", "2": "dog", "300": "cat"}))
    dataset = MasksDataset()
    dataset.load_masks(tmp_path, layout="label")
    dataset.prepare()
    mask, class_ids = dataset.load_mask(0)
    assert mask.shape == (10, 12, 3)
    for k, value in enumerate([1, 2, 300]):
        np.testing.assert_array_equal(mask[..., k], label == value)
    assert [dataset.class_names[c] for c in class_ids] == ["cat", "dog",
                                                           "cat"]


def test_label_layout_palette_png_without_sidecar_is_single_class(tmp_path):
    save_png(tmp_path / "images" / "p.jpg", random_image(6, 6))
    label = np.zeros((6, 6), np.uint8)
    label[0:2, 0:2] = 4
    label[3:6, 3:6] = 7
    palette = Image.fromarray(label, mode="P")
    palette.putpalette([v for i in range(256) for v in (i, 255 - i, 0)])
    (tmp_path / "labels").mkdir()
    palette.save(tmp_path / "labels" / "p.png")
    dataset = load_dataset(tmp_path)
    mask, class_ids = dataset.load_mask(0)
    assert dataset.class_names == ["BG", "object"]
    assert class_ids.tolist() == [1, 1]
    np.testing.assert_array_equal(mask[..., 0], label == 4)
    np.testing.assert_array_equal(mask[..., 1], label == 7)


def test_label_layout_errors_name_the_files(tmp_path):
    save_png(tmp_path / "images" / "a.png", random_image(6, 6))
    save_png(tmp_path / "images" / "b.png", random_image(6, 6))
    save_png(tmp_path / "labels" / "a.png", np.full((6, 6), 3, np.uint8))
    with pytest.raises(FileNotFoundError, match="b.png"):
        load_dataset(tmp_path)
    save_png(tmp_path / "labels" / "b.png", np.full((6, 6), 5, np.uint8))
    (tmp_path / "labels" / "b.json").write_text('{"3": "cat"}')
    dataset = load_dataset(tmp_path)
    with pytest.raises(ValueError, match="label value 5.*b.json"):
        dataset.load_mask(1)


def test_unknown_layout_is_a_clear_error(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(ValueError, match="not a masks dataset"):
        MasksDataset().load_masks(tmp_path)
