"""PyramidROIAlign against a numpy bilinear crop and hand-worked levels."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn.network.roi_align import (PyramidROIAlign, crop_and_resize,
                                     roi_pyramid_level)

META_SIZE = 12 + 3  # three classes


def make_meta(batch, height, width):
    """image_meta rows with only the molded image shape filled in."""
    meta = np.zeros([batch, META_SIZE], np.float32)
    meta[:, 4:7] = [height, width, 3]
    return meta


def bilinear_sample(image, y, x):
    """image [H, W, C] at (y, x) in pixels; 0 outside [0, H-1] x [0, W-1]."""
    height, width = image.shape[:2]
    if not (0 <= y <= height - 1 and 0 <= x <= width - 1):
        return np.zeros(image.shape[2])
    top, left = math.floor(y), math.floor(x)
    bottom, right = math.ceil(y), math.ceil(x)
    dy, dx = y - top, x - left
    upper = image[top, left] * (1 - dx) + image[top, right] * dx
    lower = image[bottom, left] * (1 - dx) + image[bottom, right] * dx
    return upper * (1 - dy) + lower * dy


def sample_positions(start, end, count, size):
    """Pixel positions of count samples from start to end (normalized).

    Normalized 0 and 1 are the centres of the first and last pixels; a
    single sample sits in the middle.
    """
    if count == 1:
        return [0.5 * (start + end) * (size - 1)]
    step = (end - start) * (size - 1) / (count - 1)
    return [start * (size - 1) + i * step for i in range(count)]


def numpy_crop_and_resize(image, box, crop_shape):
    """Bilinear crop of box (normalized y1, x1, y2, x2) of image [H, W, C]."""
    ys = sample_positions(box[0], box[2], crop_shape[0], image.shape[0])
    xs = sample_positions(box[1], box[3], crop_shape[1], image.shape[1])
    return np.array([[bilinear_sample(image, y, x) for x in xs] for y in ys])


def fpn_level(box, image_area):
    """FPN Eq. 1 as written (float64), for boxes away from rounding ties.

    Zero-area boxes (padding) have no log; they go to level 2.
    """
    height, width = box[2] - box[0], box[3] - box[1]
    if height * width <= 0:
        return 2
    ratio = math.sqrt(height * width) / (224 / math.sqrt(image_area))
    return min(5, max(2, 4 + round(math.log2(ratio))))


def box_of_size(height, width, top=0.0, left=0.0):
    return [top, left, top + height, left + width]


# 448 x 448 image: a normalized 1 x 1 box is 448 px = 2 * 224 -> level 5.
IMAGE_AREA_448 = 448.0 * 448.0


@pytest.mark.parametrize("height, width, level", [
    (1.0, 1.0, 5),        # log2(2) = 1
    (0.5, 0.5, 4),        # 224 px, the canonical size
    (0.25, 0.25, 3),
    (0.125, 0.125, 2),
    (0.0625, 0.0625, 2),  # log2 = -2 -> level 1, clipped to 2
    (0.0, 0.0, 2),        # zero padding
])
def test_level_of_boxes_of_known_size(height, width, level):
    boxes = tf.constant([box_of_size(height, width)], tf.float32)
    assert roi_pyramid_level(boxes, IMAGE_AREA_448).numpy().tolist() == [level]


@pytest.mark.parametrize("height, width, level", [
    # log2 ratio exactly +0.5, -0.5, -1.5: rounded half to even (tf.round).
    (1.0, 0.5, 4),
    (0.5, 0.25, 4),
    (0.25, 0.125, 2),
    # Just past each boundary, on the far side.
    (1.0, 0.5 * 1.001, 5),
    (0.5, 0.25 * 0.999, 3),
    (0.25, 0.125 * 1.001, 3),
])
def test_level_on_rounding_boundaries(height, width, level):
    boxes = tf.constant([box_of_size(height, width)], tf.float32)
    assert roi_pyramid_level(boxes, IMAGE_AREA_448).numpy().tolist() == [level]


def test_level_matches_fpn_formula_on_random_boxes():
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 1, size=(1000, 2, 2))  # 2 (y, x) points a box
    boxes = np.concatenate([corners.min(1), corners.max(1)], axis=1)
    boxes = boxes.astype(np.float32)
    area = 640.0 * 512.0
    expected = [fpn_level(box.astype(np.float64), area) for box in boxes]
    levels = roi_pyramid_level(tf.constant(boxes), area).numpy()
    assert levels.tolist() == expected
    assert set(expected) == {2, 3, 4, 5}  # the sample covers every level


def constant_pyramid(batch, image_size, channels=2):
    """P2..P5 whose values tell level and image: 10 * level + image."""
    maps = []
    for level in range(2, 6):
        size = image_size // 2 ** level
        values = 10.0 * level + np.arange(batch, dtype=np.float32)
        maps.append(np.broadcast_to(values[:, None, None, None],
                                    (batch, size, size, channels)).copy())
    return maps


def test_each_box_reads_its_level_and_image_in_input_order():
    # Sizes by level in a 448 image, interleaved so that each level's crops
    # come out of order and must be put back.
    sizes = {2: 0.1, 3: 0.25, 4: 0.5, 5: 0.9}
    order = [[5, 2, 4, 3, 2, 5], [3, 3, 4, 2, 5, 4]]
    boxes = np.array([[box_of_size(sizes[lvl], sizes[lvl], 0.05, 0.05)
                       for lvl in image] for image in order], np.float32)
    layer = PyramidROIAlign((2, 3))
    pooled = layer([boxes, make_meta(2, 448, 448)]
                   + constant_pyramid(2, 448)).numpy()
    assert pooled.shape == (2, 6, 2, 3, 2)
    expected = 10.0 * np.array(order) + np.arange(2)[:, None]
    np.testing.assert_allclose(pooled[..., 0, 0, 0], expected)
    # A constant map crops to that constant everywhere.
    np.testing.assert_allclose(pooled, np.broadcast_to(
        expected[..., None, None, None], pooled.shape))


def test_crops_match_numpy_bilinear_reference():
    rng = np.random.default_rng(1)
    image_size, batch, channels, pool = 448, 2, 3, (3, 5)
    pyramid = [rng.normal(size=(batch, image_size // 2 ** lvl,
                                image_size // 2 ** lvl, channels))
               .astype(np.float32) for lvl in range(2, 6)]
    # In a 448 image a box of normalized side s has level 4 + round(log2(2s)):
    # 0.3 -> 3, 1.0 -> 5, 0.6 -> 4, tiny and padding -> 2.
    boxes = np.array([
        [[0.1, 0.2, 0.4, 0.5], [0.0, 0.0, 1.0, 1.0], [0.2, 0.1, 0.8, 0.7],
         [0.55, 0.3, 0.95, 0.62]],
        [[0.3, 0.3, 0.35, 0.9], [0.05, 0.1, 0.65, 0.6],
         [0.0, 0.0, 0.0, 0.0], [0.7, 0.7, 0.71, 0.75]],
    ], np.float32)
    pooled = PyramidROIAlign(pool)(
        [boxes, make_meta(batch, image_size, image_size)] + pyramid).numpy()
    area = float(image_size * image_size)
    used_levels = set()
    for b in range(batch):
        for n, box in enumerate(boxes[b]):
            level = fpn_level(box.astype(np.float64), area)
            used_levels.add(level)
            expected = numpy_crop_and_resize(pyramid[level - 2][b],
                                             box.astype(np.float64), pool)
            # float32 sample positions on a 112 px map: ~1e-5 off.
            np.testing.assert_allclose(pooled[b, n], expected, atol=1e-4,
                                       err_msg="image {} box {}".format(b, n))
    assert used_levels == {2, 3, 4, 5}


def test_gradient_reaches_feature_maps_but_not_boxes():
    rng = np.random.default_rng(2)
    boxes = tf.constant([[[0.1, 0.1, 0.6, 0.7], [0.2, 0.3, 0.3, 0.4]]],
                        tf.float32)
    pyramid = [tf.constant(rng.normal(size=(1, 64 // 2 ** lvl,
                                            64 // 2 ** lvl, 2)),
                           tf.float32) for lvl in range(2, 6)]
    layer = PyramidROIAlign(4)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(boxes)
        tape.watch(pyramid)
        total = tf.reduce_sum(layer([boxes, make_meta(1, 64, 64)] + pyramid))
    feature_grads = tape.gradient(total, pyramid)
    assert sum(float(tf.reduce_sum(tf.abs(g))) for g in feature_grads
               if g is not None) > 0
    box_grad = tape.gradient(total, boxes)
    assert box_grad is None or not np.any(box_grad.numpy())


def numpy_crop_and_resize_image_grad(upstream, boxes, box_indices,
                                     image_shape):
    """Brute-force float64 gradient of the crops' sum weighted by upstream:
    each sample hands its upstream value to its four bilinear taps."""
    grad = np.zeros(image_shape, np.float64)
    height, width = image_shape[1:3]
    crop_h, crop_w = upstream.shape[1:3]
    for n, box in enumerate(boxes):
        ys = sample_positions(box[0], box[2], crop_h, height)
        xs = sample_positions(box[1], box[3], crop_w, width)
        for i, y in enumerate(ys):
            for j, x in enumerate(xs):
                if not (0 <= y <= height - 1 and 0 <= x <= width - 1):
                    continue
                top, left = math.floor(y), math.floor(x)
                dy, dx = y - top, x - left
                for row, wy in ((top, 1 - dy), (math.ceil(y), dy)):
                    for col, wx in ((left, 1 - dx), (math.ceil(x), dx)):
                        grad[box_indices[n], row, col] += (
                            wy * wx * upstream[n, i, j])
    return grad


def random_boxes(rng, count, low=-0.2, high=1.2):
    """Boxes partly outside the image, some overlapping, some degenerate."""
    corners = rng.uniform(low, high, size=(count, 2, 2))
    boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], 1)
    boxes[:3] = [0.2, 0.3, 0.2, 0.3]  # zero-size boxes: a single point
    return boxes.astype(np.float32)


@pytest.mark.parametrize("crop_shape", [(7, 7), (3, 5), (1, 1)])
def test_crop_gradient_matches_brute_force(crop_shape):
    rng = np.random.default_rng(3)
    image = rng.normal(size=(2, 9, 11, 3)).astype(np.float32)
    boxes = random_boxes(rng, 40)
    box_indices = rng.integers(0, 2, size=40).astype(np.int32)
    upstream = rng.normal(size=(40,) + crop_shape + (3,)).astype(np.float32)
    image_t = tf.constant(image)
    with tf.GradientTape() as tape:
        tape.watch(image_t)
        crops = crop_and_resize(image_t, boxes, box_indices, crop_shape)
        weighted = tf.reduce_sum(crops * upstream)
    np.testing.assert_array_equal(crops.numpy(), tf.image.crop_and_resize(
        image, boxes, box_indices, crop_shape).numpy())
    expected = numpy_crop_and_resize_image_grad(
        upstream.astype(np.float64), boxes.astype(np.float64), box_indices,
        image.shape)
    np.testing.assert_allclose(tape.gradient(weighted, image_t).numpy(),
                               expected, atol=1e-4)


def test_crop_gradient_is_exact_with_many_overlapping_boxes():
    # TensorFlow's CPU gradient kernel adds from several threads without
    # locking and loses updates on overlapping boxes; ours must not.
    rng = np.random.default_rng(4)
    image = tf.constant(rng.normal(size=(2, 32, 32, 16)), tf.float32)
    boxes = (np.array([[0.3, 0.3, 0.7, 0.7]], np.float32)
             + rng.uniform(-0.05, 0.05, size=(2000, 4)).astype(np.float32))
    box_indices = rng.integers(0, 2, size=2000).astype(np.int32)
    upstream = rng.normal(size=(2000, 7, 7, 16)).astype(np.float32)

    # Inputs as arguments: with constants only, grappler would fold the
    # gradient at trace time (on one thread).
    @tf.function
    def image_grad(image, boxes, upstream):
        with tf.GradientTape() as tape:
            tape.watch(image)
            crops = crop_and_resize(image, boxes, box_indices, (7, 7))
            weighted = tf.reduce_sum(crops * upstream)
        return tape.gradient(weighted, image)

    expected = numpy_crop_and_resize_image_grad(
        upstream.astype(np.float64), boxes.astype(np.float64), box_indices,
        image.shape)
    for _ in range(20):
        np.testing.assert_allclose(
            image_grad(image, tf.constant(boxes), tf.constant(upstream)),
            expected, atol=1e-3)


def test_inside_functional_model_and_config_round_trip():
    boxes_in = keras.Input((None, 4), name="boxes")
    meta_in = keras.Input((META_SIZE,), name="meta")
    maps_in = [keras.Input((None, None, 2), name="p{}".format(lvl))
               for lvl in range(2, 6)]
    layer = PyramidROIAlign([3, 3], name="roi_align_test")
    output = layer([boxes_in, meta_in] + maps_in)
    assert tuple(output.shape) == (None, None, 3, 3, 2)
    model = keras.Model([boxes_in, meta_in] + maps_in, output)

    rng = np.random.default_rng(3)
    boxes = np.sort(rng.uniform(0, 1, (2, 5, 2, 2)), axis=2)
    boxes = boxes.transpose(0, 1, 3, 2).reshape(2, 5, 4).astype(np.float32)
    pyramid = constant_pyramid(2, 64)
    inputs = [boxes, make_meta(2, 64, 64)] + pyramid
    direct = model.predict(inputs, verbose=0)

    clone = PyramidROIAlign.from_config(layer.get_config())
    assert clone.pool_shape == (3, 3) and clone.name == "roi_align_test"
    np.testing.assert_allclose(clone(inputs).numpy(), direct)
    revived = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(revived, PyramidROIAlign)


def test_half_precision_feature_maps_give_float32_output():
    pyramid = [p.astype(np.float16) for p in constant_pyramid(1, 256)]
    boxes = np.array([[[0.1, 0.1, 0.2, 0.2], [0.0, 0.0, 1.0, 1.0]]],
                     np.float32)
    pooled = PyramidROIAlign(2)([boxes, make_meta(1, 256, 256)] + pyramid)
    assert pooled.dtype == tf.float32
    # In a 256 image: 0.1 side -> log2(25.6 / 224) = -3.1 -> level 2;
    # whole image -> log2(256 / 224) = 0.19 -> level 4.
    np.testing.assert_allclose(pooled.numpy()[0, :, 0, 0, 0], [20.0, 40.0])


def test_bad_arguments_are_reported():
    with pytest.raises(ValueError, match="pool_shape"):
        PyramidROIAlign((7, 0))
    with pytest.raises(ValueError, match="feature maps"):
        PyramidROIAlign(2)([np.zeros([1, 1, 4], np.float32),
                            make_meta(1, 64, 64)]
                           + constant_pyramid(1, 64)[:3])
