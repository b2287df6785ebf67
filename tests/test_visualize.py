"""Tests of mrcnn.visualize: headless drawing, PNG output and pixel math."""
import os
import subprocess
import sys

import matplotlib
import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib import patches

from mrcnn import visualize
from mrcnn.drawing import figures

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def headless():
    matplotlib.use("Agg")
    yield
    plt.close("all")


def png_size(path):
    """(height, width) of a PNG file."""
    return matplotlib.image.imread(str(path)).shape[:2]


def assert_png_is_figure_size(path, fig):
    """The PNG has the figure's size in pixels, up to rounding."""
    width, height = fig.get_size_inches() * fig.dpi
    got_height, got_width = png_size(path)
    assert abs(got_height - height) <= 1 and abs(got_width - width) <= 1


def rect_mask(shape, y1, x1, y2, x2):
    mask = np.zeros(shape, dtype=bool)
    mask[y1:y2, x1:x2] = True
    return mask


def scene(size=64):
    """An image with two rectangular instances: boxes, masks, class ids."""
    image = np.random.default_rng(0).integers(0, 255, (size, size, 3),
                                              dtype=np.uint8)
    masks = np.stack([rect_mask((size, size), 5, 5, 30, 25),
                      rect_mask((size, size), 35, 30, 60, 60)], axis=-1)
    boxes = np.array([[5, 5, 30, 25], [35, 30, 60, 60]])
    class_ids = np.array([1, 2])
    return image, boxes, masks, class_ids


CLASS_NAMES = ["BG", "cat", "dog"]


############################################################
#  Pixel math
############################################################

def test_apply_mask_by_hand():
    image = np.array([[[10, 20, 30], [40, 50, 60]],
                      [[70, 80, 90], [100, 110, 120]]], dtype=np.float64)
    mask = np.array([[1, 0], [0, 1]])
    out = visualize.apply_mask(image, mask, (1.0, 0.0, 0.5), alpha=0.5)
    assert out is image  # in place, as matterport
    # Masked: v * 0.5 + 0.5 * c * 255; unmasked pixels unchanged.
    np.testing.assert_allclose(out[0, 0], [132.5, 10.0, 78.75])
    np.testing.assert_allclose(out[1, 1], [177.5, 55.0, 123.75])
    np.testing.assert_allclose(out[0, 1], [40, 50, 60])
    np.testing.assert_allclose(out[1, 0], [70, 80, 90])


def test_apply_mask_on_uint8_truncates():
    image = np.full((2, 2, 3), 101, dtype=np.uint8)
    visualize.apply_mask(image, np.eye(2), (0.0, 1.0, 0.0), alpha=0.2)
    # 101 * 0.8 = 80.8 and 80.8 + 0.2 * 255 = 131.8
    assert image[0, 0].tolist() == [80, 131, 80]
    assert image[0, 1].tolist() == [101, 101, 101]


def test_random_colors():
    colors = visualize.random_colors(7)
    assert len(colors) == 7 and len(set(colors)) == 7
    values = np.array(colors)
    assert values.shape == (7, 3)
    assert values.min() >= 0 and values.max() <= 1
    # Full saturation and value: each color has a channel at 1 and one at 0.
    np.testing.assert_allclose(values.max(axis=1), 1.0)
    np.testing.assert_allclose(values.min(axis=1), 0.0)
    dim = np.array(visualize.random_colors(5, bright=False))
    np.testing.assert_allclose(dim.max(axis=1), 0.7)


def test_apply_masks_fast_matches_apply_mask_without_overlap():
    image, _, masks, _ = scene()
    colors = [(1.0, 0.0, 0.0), (0.0, 0.5, 1.0)]
    fast = visualize.apply_masks_fast(image, masks, colors, alpha=0.4)
    slow = image.astype(np.float64)
    for i in range(masks.shape[-1]):
        visualize.apply_mask(slow, masks[:, :, i], colors[i], alpha=0.4)
    assert fast.dtype == np.uint8
    np.testing.assert_allclose(fast, np.round(slow), atol=1)


def test_apply_masks_fast_last_instance_wins_on_overlap():
    image = np.full((4, 4, 3), 100, dtype=np.uint8)
    masks = np.zeros((4, 4, 2), dtype=bool)
    masks[:2, :, 0] = True
    masks[1:3, :, 1] = True
    out = visualize.apply_masks_fast(image, masks,
                                     [(1, 0, 0), (0, 0, 1)], alpha=0.5)
    # Row 1 is covered by both: blended once, with the second color.
    assert out[1, 0].tolist() == [50, 50, 178]  # 50 + 127.5 rounds to 178
    assert out[0, 0].tolist() == [178, 50, 50]
    assert out[3, 0].tolist() == [100, 100, 100]
    assert visualize.apply_masks_fast(image, masks[:, :, :0]).tolist() == (
        image.tolist())


def test_color_splash_keeps_instances_in_color():
    image = np.zeros((3, 3, 3), dtype=np.uint8)
    image[...] = (255, 0, 0)
    image[2, 2] = (0, 0, 255)
    mask = np.zeros((3, 3, 2), dtype=bool)
    mask[0, 0, 0] = True
    mask[1, 1, 1] = True
    splash = visualize.color_splash(image, mask)
    assert splash.dtype == np.uint8
    assert splash[0, 0].tolist() == [255, 0, 0]
    assert splash[1, 1].tolist() == [255, 0, 0]
    # Elsewhere gray: luma 0.2125 * 255 = 54.2 (red), 0.0721 * 255 = 18.4.
    assert splash[0, 1].tolist() == [54, 54, 54]
    assert splash[2, 2].tolist() == [18, 18, 18]
    all_gray = visualize.color_splash(image, np.zeros((3, 3, 0), bool))
    assert all_gray[0, 0].tolist() == [54, 54, 54]


def test_draw_box_by_hand():
    image = np.zeros((10, 10, 3), dtype=np.uint8)
    visualize.draw_box(image, (2, 3, 7, 8), (255, 0, 0))
    drawn = image[:, :, 0] > 0
    expected = np.zeros((10, 10), bool)
    expected[2:4, 3:8] = expected[7:9, 3:8] = True
    expected[2:7, 3:5] = expected[2:7, 8:10] = True
    np.testing.assert_array_equal(drawn, expected)


############################################################
#  Figures, headless
############################################################

def test_display_instances_writes_png(tmp_path):
    image, boxes, masks, class_ids = scene()
    path = tmp_path / "instances.png"
    fig = visualize.display_instances(
        image, boxes, masks, class_ids, CLASS_NAMES,
        scores=np.array([0.9, 0.8]), figsize=(4, 3), save_path=str(path))
    assert isinstance(fig, matplotlib.figure.Figure)
    assert png_size(path) == (300, 400)
    # Created figures are released on a non-interactive backend.
    assert plt.get_fignums() == []


def test_display_instances_draws_boxes_outlines_and_captions():
    image, boxes, masks, class_ids = scene()
    fig, ax = plt.subplots()
    returned = visualize.display_instances(
        image, boxes, masks, class_ids, CLASS_NAMES,
        scores=np.array([0.9, 0.8]), ax=ax)
    assert returned is fig
    assert plt.fignum_exists(fig.number)  # the caller's figure stays open
    kinds = [type(p) for p in ax.patches]
    assert kinds.count(patches.Rectangle) == 2
    assert kinds.count(patches.Polygon) == 2  # one outline per rectangle
    assert sorted(t.get_text() for t in ax.texts) == ["cat 0.900",
                                                      "dog 0.800"]
    # The outline hugs the mask: x spans its columns' edges.
    outline = [p for p in ax.patches if isinstance(p, patches.Polygon)][0]
    xs = outline.get_xy()[:, 0]
    assert xs.min() == pytest.approx(4.5) and xs.max() == pytest.approx(24.5)


def test_display_instances_with_zero_instances(tmp_path, capsys):
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    path = tmp_path / "empty.png"
    fig = visualize.display_instances(
        image, np.zeros((0, 4)), np.zeros((32, 32, 0), bool),
        np.zeros((0,), int), CLASS_NAMES, figsize=(2, 2),
        save_path=str(path))
    assert fig is not None and png_size(path) == (200, 200)
    assert "No instances" in capsys.readouterr().out


def test_display_instances_rejects_mismatched_counts():
    image, boxes, masks, class_ids = scene()
    with pytest.raises(ValueError, match="class_ids=1"):
        visualize.display_instances(image, boxes, masks, class_ids[:1],
                                    CLASS_NAMES)


def test_show_only_on_interactive_backend(monkeypatch):
    shown = []
    monkeypatch.setattr(figures, "_is_interactive_backend", lambda: True)
    monkeypatch.setattr(plt, "show", lambda *a, **k: shown.append(1))
    image, boxes, masks, class_ids = scene()
    result = visualize.display_instances(image, boxes, masks, class_ids,
                                         CLASS_NAMES, figsize=(2, 2))
    assert shown == [1]
    assert result is None  # shown once; no Figure for Jupyter to show again
    _, ax = plt.subplots()
    visualize.display_instances(image, boxes, masks, class_ids, CLASS_NAMES,
                                ax=ax)
    assert shown == [1]  # drawing on the caller's axes never shows


def test_backend_detection():
    assert visualize._is_interactive_backend() is False  # Agg


def test_save_instances_sizes_figure_from_image(tmp_path):
    image, boxes, masks, class_ids = scene(size=128)
    path = tmp_path / "saved.png"
    visualize.save_instances(str(path), image, boxes, masks, class_ids,
                             CLASS_NAMES, scores=np.array([0.5, 0.6]))
    assert png_size(path) == (400, 400)  # 128 px < the 4 inch minimum
    visualize.save_instances(str(path), image, boxes, masks, class_ids,
                             CLASS_NAMES, figsize=(3, 2))
    assert png_size(path) == (200, 300)


def test_display_images_and_top_masks(tmp_path):
    image, _, masks, class_ids = scene()
    path = tmp_path / "grid.png"
    fig = visualize.display_images([image, image[..., 0], image],
                                   titles=["a", "b", "c"], cols=2,
                                   save_path=str(path))
    assert len(fig.axes) == 3
    assert png_size(path) == (1400, 1400)

    path = tmp_path / "top.png"
    fig = visualize.display_top_masks(image, masks, class_ids, CLASS_NAMES,
                                      limit=2, save_path=str(path))
    assert [ax.get_title() for ax in fig.axes] == ["H x W=64x64", "dog",
                                                   "cat"]
    assert_png_is_figure_size(path, fig)


def test_display_differences(tmp_path):
    image, boxes, masks, class_ids = scene()
    path = tmp_path / "diff.png"
    fig = visualize.display_differences(
        image, boxes, class_ids, masks,
        boxes[:1], class_ids[:1], np.array([0.9]), masks[:, :, :1],
        CLASS_NAMES, save_path=str(path))
    texts = sorted(t.get_text() for t in fig.axes[0].texts)
    assert texts == ["", "", "0.90 / 1.00"]  # a perfect match: IoU 1
    assert_png_is_figure_size(path, fig)


def test_draw_rois(tmp_path, capsys):
    image, boxes, _, _ = scene()
    small_masks = np.ones((2, 7, 7), dtype=np.float32)
    path = tmp_path / "rois.png"
    fig = visualize.draw_rois(image, boxes, boxes + 1, small_masks,
                              np.array([1, 0]), CLASS_NAMES,
                              save_path=str(path))
    assert png_size(path) == (1200, 1200)
    out = capsys.readouterr().out
    assert "Positive ROIs:  1" in out and "Positive Ratio: 0.50" in out


def test_plot_precision_recall_and_overlaps(tmp_path):
    path = tmp_path / "pr.png"
    fig = visualize.plot_precision_recall(0.75, [1, 1, 0.5, 0],
                                          [0, 0.5, 1, 1],
                                          save_path=str(path))
    assert "0.750" in fig.axes[0].get_title()
    assert_png_is_figure_size(path, fig)

    path = tmp_path / "overlaps.png"
    overlaps = np.array([[0.9, 0.1], [0.0, 0.6]])
    fig = visualize.plot_overlaps(np.array([1, 2, 0]), np.array([1, 1]),
                                  np.array([0.9, 0.8]), overlaps,
                                  CLASS_NAMES, save_path=str(path))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "0.900\nmatch" in texts and "0.600\nwrong" in texts
    assert png_size(path) == (1000, 1200)
    with pytest.raises(ValueError, match="overlaps shape"):
        visualize.plot_overlaps(np.array([1]), np.array([1, 1]),
                                np.array([0.9, 0.8]), overlaps, CLASS_NAMES)


def test_draw_boxes(tmp_path):
    image, boxes, masks, _ = scene()
    path = tmp_path / "boxes.png"
    fig = visualize.draw_boxes(image, boxes=boxes, refined_boxes=boxes + 2,
                               masks=masks, captions=["x", "y"],
                               visibilities=[0, 2], title="t",
                               save_path=str(path))
    ax = fig.axes[0]
    rectangles = [p for p in ax.patches if isinstance(p, patches.Rectangle)]
    assert len(rectangles) == 3  # visibility 0 hides the refined box
    assert_png_is_figure_size(path, fig)
    with pytest.raises(ValueError):
        visualize.draw_boxes(image)


def test_display_table_and_weight_stats(capsys):
    html = visualize.display_table([["a", 1], ["b", 2]])
    assert html.count("<tr>") == 2 and "<td>" in html
    assert "a" in capsys.readouterr().out

    import keras

    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Conv2D(2, 3, name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(1, name="head", kernel_initializer="ones")(x)
    table = visualize.display_weight_stats(keras.Model(inputs, outputs))
    names = [row[0] for row in table[1:]]
    assert table[0] == ["WEIGHT NAME", "SHAPE", "MIN", "MAX", "STD"]
    assert len(names) == 4
    # Zero Conv2D bias is normal; constant dense weights are suspicious.
    assert names[1].startswith("conv/bias") and "dead" not in names[1]
    assert "dead" in names[2] and "dead" in names[3]
    assert table[1][1] == "(3, 3, 1, 2)"


def test_import_does_not_load_tensorflow():
    code = ("import sys, mrcnn.visualize; "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT,
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
