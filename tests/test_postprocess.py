"""Unmolding and mask pasting (mrcnn.inference.postprocess), and the inference path
of MaskRCNN.detect that feeds them: one trace per input shape, the mask
head on the real detections only, no memory growth over many calls."""

import numpy as np
import pytest

from mrcnn import model as modellib
from mrcnn import utils
from mrcnn.inference import postprocess
from samples.shapes.shapes import ShapesDataset
from tests import tiny


############################################################
#  Resizing and pasting against skimage (utils.unmold_mask)
############################################################

def test_resize_matrix_matches_hand_worked_weights():
    # 2 -> 4 samples: output k reads c = (k + 0.5) / 2 - 0.5 = -0.25, 0.25,
    # 0.75, 1.25; outside the signal is zero (mode "constant").
    expected = np.array([[0.75, 0.0], [0.75, 0.25], [0.25, 0.75],
                         [0.0, 0.75]])
    np.testing.assert_array_equal(postprocess.linear_resize_matrix(4, 2),
                                  expected)
    # Same size: the identity.
    np.testing.assert_array_equal(postprocess.linear_resize_matrix(5, 5),
                                  np.eye(5))


@pytest.mark.parametrize("height,width", [(1, 1), (3, 50), (28, 28),
                                          (57, 13), (200, 120)])
def test_resize_mask_equals_skimage(height, width):
    rng = np.random.default_rng(height * 1000 + width)
    mask = rng.uniform(0.05, 0.95, (28, 28)).astype(np.float32)
    expected = utils.resize(mask, (height, width))
    np.testing.assert_allclose(postprocess.resize_mask(mask, height, width),
                               expected, rtol=0, atol=1e-6)


def random_boxes(rng, count, image_shape, max_side):
    height, width = image_shape
    y1 = rng.integers(0, height - 1, count)
    x1 = rng.integers(0, width - 1, count)
    y2 = np.minimum(y1 + rng.integers(1, max_side, count), height)
    x2 = np.minimum(x1 + rng.integers(1, max_side, count), width)
    return np.stack([y1, x1, y2, x2], axis=1)


def reference_paste(masks, boxes, image_shape):
    """The original loop: one skimage resize per mask."""
    if not len(masks):
        return np.zeros(tuple(image_shape) + (0,), bool)
    return np.stack([utils.unmold_mask(m, b, image_shape)
                     for m, b in zip(masks, boxes)], axis=-1)


@pytest.mark.parametrize("kind", ["uniform", "smooth"])
def test_paste_masks_equals_unmold_mask(kind):
    rng = np.random.default_rng(7)
    image_shape = (150, 230)
    count = 40
    if kind == "uniform":  # many values near the threshold
        masks = rng.uniform(0, 1, (count, 28, 28))
    else:  # sigmoid outputs of smooth logits, like the mask head's
        logits = rng.normal(0, 4, (count, 7, 7)).repeat(4, 1).repeat(4, 2)
        masks = 1 / (1 + np.exp(-logits))
    masks = masks.astype(np.float32)
    boxes = random_boxes(rng, count, image_shape, max_side=140)
    boxes[0] = [0, 0, image_shape[0], image_shape[1]]  # the whole image
    boxes[1] = [5, 5, 6, 6]  # one pixel
    full = postprocess.paste_masks(masks, boxes, image_shape)
    expected = reference_paste(masks, boxes, image_shape)
    assert full.shape == expected.shape and full.dtype == bool
    np.testing.assert_array_equal(full, expected)
    assert expected.any() and not expected.all()  # a non-trivial check


def test_constant_masks_fill_or_leave_their_box():
    # skimage clips to the mask's own range: the zero border does not fade
    # a mask that is above the threshold everywhere.
    image_shape = (40, 40)
    boxes = np.array([[2, 3, 30, 20], [10, 10, 35, 39]])
    masks = np.stack([np.full((28, 28), 0.6), np.full((28, 28), 0.4)])
    masks = masks.astype(np.float32)
    full = postprocess.paste_masks(masks, boxes, image_shape)
    expected = np.zeros((40, 40, 2), bool)
    expected[2:30, 3:20, 0] = True
    np.testing.assert_array_equal(full, expected)
    np.testing.assert_array_equal(full, reference_paste(masks, boxes,
                                                        image_shape))


def test_boxes_without_area_give_empty_masks():
    masks = np.ones((3, 28, 28), np.float32)
    boxes = np.array([[5, 5, 5, 9], [9, 5, 4, 9], [3, 8, 7, 2]])
    full = postprocess.paste_masks(masks, boxes, (12, 12))
    assert full.shape == (12, 12, 3) and not full.any()


def test_boxes_reaching_outside_the_image_are_cropped():
    rng = np.random.default_rng(3)
    masks = rng.uniform(0, 1, (2, 28, 28)).astype(np.float32)
    boxes = np.array([[-10, -4, 30, 25], [20, 15, 60, 70]])
    full = postprocess.paste_masks(masks, boxes, (40, 50))
    # Independent check: paste into a canvas big enough for both boxes,
    # then cut the image out of it.
    offset = np.array([10, 10, 10, 10])
    canvas = reference_paste(masks, boxes + offset, (80, 90))
    np.testing.assert_array_equal(full, canvas[10:50, 10:60])


def test_pasted_masks_are_instance_major_views():
    masks = np.full((2, 28, 28), 0.9, np.float32)
    full = postprocess.paste_masks(masks, np.array([[0, 0, 4, 4],
                                                    [2, 2, 6, 6]]), (8, 8))
    assert full.shape == (8, 8, 2)
    assert full[..., 1].flags.c_contiguous
    assert full[..., 0].sum() == 16 and full[..., 1].sum() == 16


def test_paste_masks_rejects_mismatched_counts():
    with pytest.raises(ValueError, match="3 masks but 2 boxes"):
        postprocess.paste_masks(np.zeros((3, 28, 28)), np.zeros((2, 4)),
                                (10, 10))


############################################################
#  unmold_detections
############################################################

def test_unmold_detections_maps_the_window_back_to_the_image():
    # A 32x64 image molded into 64x64: 16 rows of padding above and below.
    original_shape, molded_shape = (32, 64, 3), (64, 64, 3)
    window = np.array([16, 0, 48, 64])
    detections = np.zeros((5, 6), np.float32)
    # The whole window, normalized (y2, x2 are inclusive when normalized).
    detections[0] = [16 / 63, 0, 47 / 63, 1, 2, 0.9]
    # The top-left quarter of the image.
    detections[1] = [16 / 63, 0, 31 / 63, 31 / 63, 1, 0.8]
    # No area (normalized y2 is inclusive: one row less than y1): dropped.
    detections[2] = [0.5, 0.5, 0.5 - 1 / 63, 0.6, 3, 0.7]
    masks = np.full((5, 28, 28, 4), 0.9, np.float32)
    boxes, class_ids, scores, full = postprocess.unmold_detections(
        detections, masks, original_shape, molded_shape, window)
    np.testing.assert_array_equal(boxes, [[0, 0, 32, 64], [0, 0, 16, 32]])
    np.testing.assert_array_equal(class_ids, [2, 1])
    np.testing.assert_allclose(scores, [0.9, 0.8])
    assert full.shape == (32, 64, 2)
    assert full[..., 0].all() and full[:16, :32, 1].all()
    assert full[..., 1].sum() == 16 * 32


def test_class_masks_and_all_class_masks_unmold_alike():
    rng = np.random.default_rng(11)
    detections = np.zeros((6, 6), np.float32)
    ys = np.sort(rng.uniform(0.1, 0.9, (4, 2)), axis=1)
    xs = np.sort(rng.uniform(0.1, 0.9, (4, 2)), axis=1)
    detections[:4, :4] = np.stack([ys[:, 0], xs[:, 0], ys[:, 1], xs[:, 1]], 1)
    detections[:4, 4] = [3, 1, 2, 3]
    detections[:4, 5] = [0.9, 0.8, 0.7, 0.6]
    all_classes = rng.uniform(0, 1, (6, 28, 28, 4)).astype(np.float32)
    own_class = all_classes[np.arange(4), :, :, [3, 1, 2, 3]]
    args = ((50, 70, 3), (64, 64, 3), np.array([7, 0, 57, 64]))
    by_all = postprocess.unmold_detections(detections, all_classes, *args)
    by_own = postprocess.unmold_detections(detections, own_class, *args)
    for a, b in zip(by_all, by_own):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="4 detections but masks for only 2"):
        postprocess.unmold_detections(detections, own_class[:2], *args)


############################################################
#  MaskRCNN inference path
############################################################

class TinyInferenceConfig(tiny.TinyConfig):
    NAME = "tiny_inference"
    DETECTION_MIN_CONFIDENCE = 0.0


def shapes_images(count, seed, size=64):
    dataset = ShapesDataset()
    dataset.load_shapes(count, size, size, seed=seed, max_shapes=2)
    dataset.prepare()
    return [dataset.load_image(i) for i in dataset.image_ids]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A random-weight inference model (no training needed: the tests
    compare code paths, not detection quality) whose classifier never
    picks the background, so that every image has detections."""
    import keras
    keras.utils.set_random_seed(1)
    model = modellib.MaskRCNN("inference", TinyInferenceConfig(),
                              str(tmp_path_factory.mktemp("logs")))
    tiny.never_background(model.keras_model)
    return model


def reference_detect(model, images):
    """detect() the long way: the whole Keras model (mask head on every
    row, all classes) and one skimage resize per mask."""
    molded, metas, windows = model.mold_inputs(images)
    anchors = model.get_anchors(molded[0].shape)
    anchors = np.broadcast_to(anchors, (len(images),) + anchors.shape)
    outputs = model.keras_model.predict([molded, metas, anchors], verbose=0)
    detections, all_masks = outputs[0], outputs[3]
    results = []
    for i, image in enumerate(images):
        n = int(np.sum(detections[i, :, 4] > 0))
        boxes = postprocess.boxes_to_original(
            detections[i, :n, :4], image.shape, molded[i].shape, windows[i])
        keep = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) > 0
        class_ids = detections[i, :n, 4].astype(int)
        masks = all_masks[i, np.arange(n), :, :, class_ids]
        results.append({
            "rois": boxes[keep], "class_ids": class_ids[keep],
            "scores": detections[i, :n, 5][keep],
            "masks": reference_paste(masks[keep], boxes[keep],
                                     image.shape[:2])})
    return results


def test_detect_equals_the_whole_model_with_skimage_pasting(tiny_model):
    images = shapes_images(3, seed=5)  # 2 batches, the last one padded
    results = tiny_model.detect(images)
    expected = reference_detect(tiny_model, images)
    assert len(results) == 3
    for result, reference in zip(results, expected):
        assert len(result["class_ids"]) > 0
        np.testing.assert_array_equal(result["rois"], reference["rois"])
        np.testing.assert_array_equal(result["class_ids"],
                                      reference["class_ids"])
        np.testing.assert_allclose(result["scores"], reference["scores"],
                                   rtol=1e-5)
        np.testing.assert_array_equal(result["masks"], reference["masks"])


def test_one_trace_per_input_shape(tiny_model):
    images = shapes_images(4, seed=6)
    tiny_model.detect(images[:2])
    traces = tiny_model._detect_fn.experimental_get_tracing_count()
    for _ in range(3):
        tiny_model.detect(images)  # same molded shape, full batches
        tiny_model.detect(images[:1])  # padded batch, same shape
    assert tiny_model._detect_fn.experimental_get_tracing_count() == traces


def test_mask_head_runs_on_real_detections_only(tiny_model, tmp_path):
    # 4 proposals for 8 detection rows: at most 4 real detections, the
    # rest zero padding that the mask head must skip.
    class FewProposals(TinyInferenceConfig):
        POST_NMS_ROIS_INFERENCE = 4
    model = modellib.MaskRCNN("inference", FewProposals(), str(tmp_path))
    model.keras_model.set_weights(tiny_model.keras_model.get_weights())
    images = shapes_images(2, seed=8)
    molded, metas, _ = model.mold_inputs(images)
    anchors = np.ascontiguousarray(np.broadcast_to(
        model.get_anchors(molded[0].shape),
        (2,) + model.get_anchors(molded[0].shape).shape))
    detections, masks = model._predict(molded, metas, anchors)
    counts = (detections[..., 4] > 0).sum(axis=1)
    assert 0 < counts.max() <= 4 < detections.shape[1]
    assert masks.shape[1] == counts.max()

    # The same masks as the whole model's, which runs the mask head on all
    # 8 rows and returns every class.
    outputs = model.keras_model.predict([molded, metas, anchors], verbose=0)
    np.testing.assert_allclose(outputs[0], detections, rtol=1e-5, atol=1e-6)
    for i, n in enumerate(counts):
        class_ids = detections[i, :n, 4].astype(int)
        expected = outputs[3][i, np.arange(n), :, :, class_ids]
        np.testing.assert_allclose(masks[i, :n], expected, atol=1e-5)


def test_no_detection_gives_empty_results(tiny_model, tmp_path):
    class Impossible(TinyInferenceConfig):
        DETECTION_MIN_CONFIDENCE = 1.01
    model = modellib.MaskRCNN("inference", Impossible(), str(tmp_path))
    image = shapes_images(1, seed=9)[0]
    result = model.detect([image])[0]
    assert result["rois"].shape == (0, 4)
    assert result["masks"].shape == image.shape[:2] + (0,)


def resident_mb():
    """Current (not peak) resident memory of this process."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    import os
    return pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/statm"),
                    reason="needs /proc (Linux) to read resident memory")
def test_many_detect_calls_do_not_grow_memory(tiny_model):
    images = shapes_images(10, seed=10)
    for _ in range(5):  # warm-up: trace, allocator pools
        tiny_model.detect(images)
    before = resident_mb()
    traces = tiny_model._detect_fn.experimental_get_tracing_count()
    for _ in range(100):  # 1,000 images in batches of 2
        tiny_model.detect(images)
    growth = resident_mb() - before
    assert tiny_model._detect_fn.experimental_get_tracing_count() == traces
    assert growth < 40, "resident memory grew by {:.1f} MB".format(growth)


############################################################
#  Training: the mask head on the positive ROIs only
############################################################

class TinyTrainingConfig(TinyInferenceConfig):
    NAME = "tiny_training"
    TRAIN_BN = False  # every batch norm frozen, the heads' included
    HEAD_TRAIN_BN = None


def test_mask_head_on_positive_rois_keeps_loss_and_gradients(tmp_path):
    import keras
    import tensorflow as tf
    from mrcnn.network import losses
    from mrcnn.network.heads import PositiveRois

    config = TinyTrainingConfig()
    dataset = ShapesDataset()
    dataset.load_shapes(2, 64, 64, seed=12, max_shapes=2)
    dataset.prepare()
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    km = model.keras_model
    batch = modellib.MaskRCNNDataset(dataset, config, shuffle=False)[0]
    maps = [km.get_layer("fpn_p%d" % level).output for level in (2, 3, 4, 5)]
    rois, class_ids, _, target_masks = km.get_layer("proposal_targets").output
    targets = keras.Model(km.inputs, [rois, class_ids, target_masks] + maps)
    rois, class_ids, target_masks, *maps = targets(batch, training=False)
    meta = tf.constant(batch["input_image_meta"])
    # The mask head alone, from its ROIs to its output.
    head = keras.Model([km.get_layer("mask_rois").output, km.inputs[1]]
                       + [km.get_layer("fpn_p%d" % level).output
                          for level in (2, 3, 4, 5)],
                       km.get_layer("mrcnn_mask").output)

    def loss_and_gradients(head_rois):
        with tf.GradientTape() as tape:
            tape.watch(maps)
            predicted = head([head_rois, meta] + maps, training=True)
            loss = losses.mrcnn_mask_loss_graph(target_masks, class_ids,
                                                predicted)
        gradients = tape.gradient(loss, head.trainable_weights + maps)
        return loss.numpy(), [g.numpy() for g in gradients]

    positive_rois = PositiveRois()([rois, class_ids])
    positives = int(np.max(np.sum(class_ids.numpy() > 0, axis=1)))
    assert 0 < positives == positive_rois.shape[1] < rois.shape[1]
    full_loss, full_gradients = loss_and_gradients(rois)
    loss, gradients = loss_and_gradients(positive_rois)
    assert full_loss > 0
    np.testing.assert_allclose(loss, full_loss, rtol=1e-5)
    for got, expected in zip(gradients, full_gradients):
        np.testing.assert_allclose(got, expected, rtol=1e-4,
                                   atol=1e-6 * np.abs(expected).max())
