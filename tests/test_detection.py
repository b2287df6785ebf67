"""DetectionLayer against a numpy re-statement of matterport's
refine_detections_graph, written here (on top of mrcnn.utils'
apply_box_deltas and non_max_suppression)."""
import keras
import numpy as np
import pytest

from mrcnn import utils
from mrcnn.network.detection import DetectionLayer

NUM_CLASSES = 4
STD_DEV = np.array([0.1, 0.1, 0.2, 0.2], np.float32)
IMAGE_SHAPE = (128, 96, 3)
WINDOW = (16, 0, 112, 96)  # pixels: the image without its padding


############################################################
#  numpy reference
############################################################

def np_greedy_nms(boxes, scores, threshold, max_out):
    """Greedy NMS capped at max_out: the first max_out of the uncapped
    result, since greedy NMS picks boxes best score first."""
    return utils.non_max_suppression(boxes, scores, threshold)[:max_out]


def normalized_window():
    """matterport's norm_boxes on WINDOW: (y2, x2) are exclusive in
    pixels, inclusive once normalized."""
    h, w = IMAGE_SHAPE[:2]
    y1, x1, y2, x2 = WINDOW
    return np.array([y1 / (h - 1), x1 / (w - 1),
                     (y2 - 1) / (h - 1), (x2 - 1) / (w - 1)], np.float32)


def np_refine_detections(rois, probs, deltas, max_instances,
                         min_confidence, nms_threshold):
    """One image, step by step as matterport's refine_detections_graph:
    per-class NMS capped at max_instances, then the best max_instances."""
    n = len(rois)
    class_ids = probs.argmax(1)
    scores = probs[np.arange(n), class_ids]
    boxes = utils.apply_box_deltas(
        rois, deltas[np.arange(n), class_ids] * STD_DEV)
    wy1, wx1, wy2, wx2 = normalized_window()
    boxes = np.stack([np.clip(boxes[:, 0], wy1, wy2),
                      np.clip(boxes[:, 1], wx1, wx2),
                      np.clip(boxes[:, 2], wy1, wy2),
                      np.clip(boxes[:, 3], wx1, wx2)], axis=1)
    keep = np.where((class_ids > 0) & (scores >= min_confidence))[0]
    nms_keep = []
    for class_id in np.unique(class_ids[keep]):
        ixs = keep[class_ids[keep] == class_id]
        kept = np_greedy_nms(boxes[ixs], scores[ixs], nms_threshold,
                             max_instances)
        nms_keep.extend(ixs[kept])
    nms_keep = np.sort(np.array(nms_keep, np.int64))
    top = nms_keep[np.argsort(-scores[nms_keep], kind="stable")]
    top = top[:max_instances]
    out = np.zeros((max_instances, 6), np.float32)
    out[:len(top), :4] = boxes[top]
    out[:len(top), 4] = class_ids[top]
    out[:len(top), 5] = scores[top]
    return out, len(top), len(keep)


def image_meta(batch):
    """Hand-made image_meta rows: id, original shape, molded shape,
    window, scale, active class ids."""
    rows = [np.concatenate([[i], [100, 96, 3], IMAGE_SHAPE, WINDOW, [1.0],
                            np.ones(NUM_CLASSES)]) for i in range(batch)]
    return np.array(rows, np.float32)


def random_head_outputs(rng, batch, num_rois, sharpness=3.0):
    """ROIs clustered around a few objects (so NMS has work), confident
    class probabilities and deltas that push some boxes off the window."""
    centers = rng.uniform(0.1, 0.9, size=(batch, 5, 2))
    pick = rng.integers(0, 5, size=(batch, num_rois))
    c = np.take_along_axis(centers, pick[..., None], axis=1)
    c = c + rng.normal(scale=0.03, size=c.shape)
    size = rng.uniform(0.15, 0.35, size=(batch, num_rois, 2))
    rois = np.concatenate([c - size / 2, c + size / 2], -1).clip(0, 1)
    logits = sharpness * rng.normal(size=(batch, num_rois, NUM_CLASSES))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    deltas = rng.normal(size=(batch, num_rois, NUM_CLASSES, 4))
    return (rois.astype(np.float32), probs.astype(np.float32),
            deltas.astype(np.float32), image_meta(batch))


def reference(rois, probs, deltas, **kwargs):
    results = [np_refine_detections(rois[b], probs[b], deltas[b], **kwargs)
               for b in range(len(rois))]
    return (np.stack([r[0] for r in results]), [r[1] for r in results],
            [r[2] for r in results])


############################################################
#  tests
############################################################

@pytest.mark.parametrize("max_instances", [8, 100])
def test_detections_match_numpy_reference(max_instances):
    rng = np.random.default_rng(0)
    rois, probs, deltas, meta = random_head_outputs(rng, 2, 80)
    settings = dict(max_instances=max_instances, min_confidence=0.5,
                    nms_threshold=0.3)
    layer = DetectionLayer(**settings)
    got = np.asarray(layer([rois, probs, deltas, meta]))
    want, counts, candidates = reference(rois, probs, deltas, **settings)
    assert got.shape == (2, max_instances, 6) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5)

    # The case must exercise filtering, NMS, clipping and truncation or
    # padding, otherwise it proves little.
    window = normalized_window()
    for b in range(2):
        assert 0 < candidates[b] < 80
        assert counts[b] < candidates[b]
        boxes = got[b, :counts[b], :4]
        assert np.all(boxes[:, [0, 2]] >= window[0] - 1e-6)
        assert np.all(boxes[:, [0, 2]] <= window[2] + 1e-6)
        assert np.all(np.diff(got[b, :counts[b], 5]) <= 0)
        assert set(got[b, :counts[b], 4]) <= {1.0, 2.0, 3.0}
        if max_instances == 8:
            assert counts[b] == 8
        else:
            assert np.all(got[b, counts[b]:] == 0.0)
    assert np.any(np.isclose(got[..., 0], window[0]))


def test_per_class_nms_keeps_overlapping_boxes_of_other_classes():
    # Two identical ROIs with different best classes survive; a third,
    # same class as the first and identical box, is suppressed.
    rois = np.array([[[0.2, 0.2, 0.6, 0.6]] * 3], np.float32)
    probs = np.array([[[0.05, 0.9, 0.03, 0.02],
                       [0.1, 0.0, 0.8, 0.1],
                       [0.15, 0.85, 0.0, 0.0]]], np.float32)
    deltas = np.zeros((1, 3, NUM_CLASSES, 4), np.float32)
    layer = DetectionLayer(max_instances=5, min_confidence=0.7,
                           nms_threshold=0.3)
    got = np.asarray(layer([rois, probs, deltas, image_meta(1)]))[0]
    np.testing.assert_allclose(got[:2, 4:], [[1, 0.9], [2, 0.8]], atol=1e-6)
    np.testing.assert_allclose(got[:2, :4], rois[0, :2], atol=1e-6)
    assert np.all(got[2:] == 0)


def test_no_detections_gives_all_zeros():
    rng = np.random.default_rng(1)
    rois, probs, deltas, meta = random_head_outputs(rng, 2, 30)
    probs = probs.copy()
    probs[1, :, 0] = 10.0  # image 1: background everywhere
    probs[1] /= probs[1].sum(-1, keepdims=True)
    layer = DetectionLayer(max_instances=10, min_confidence=0.5)
    got = np.asarray(layer([rois, probs, deltas, meta]))
    assert np.all(got[1] == 0.0)
    assert np.any(got[0] != 0.0)
    too_strict = DetectionLayer(max_instances=10, min_confidence=1.01)
    assert np.all(np.asarray(too_strict([rois, probs, deltas, meta])) == 0)


def test_detection_layer_config_round_trip():
    layer = DetectionLayer(max_instances=7, min_confidence=0.4,
                           nms_threshold=0.5, bbox_std_dev=(1, 2, 3, 4),
                           name="mrcnn_detection")
    clone = DetectionLayer.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert (clone.max_instances, clone.min_confidence, clone.nms_threshold,
            clone.bbox_std_dev, clone.name) == (
                7, 0.4, 0.5, (1.0, 2.0, 3.0, 4.0), "mrcnn_detection")


def test_detection_layer_rejects_bad_std_dev():
    with pytest.raises(ValueError, match="bbox_std_dev"):
        DetectionLayer(bbox_std_dev=(0.1, 0.1, 0.2))


def test_detection_layer_in_functional_model():
    rng = np.random.default_rng(2)
    rois, probs, deltas, meta = random_head_outputs(rng, 3, 50)
    inputs = [keras.Input((None, 4)), keras.Input((None, NUM_CLASSES)),
              keras.Input((None, NUM_CLASSES, 4)),
              keras.Input((meta.shape[1],))]
    detections = DetectionLayer(max_instances=12, min_confidence=0.6,
                                nms_threshold=0.3,
                                name="mrcnn_detection")(inputs)
    assert tuple(detections.shape) == (None, 12, 6)
    model = keras.Model(inputs, detections)
    got = model.predict([rois, probs, deltas, meta], batch_size=2,
                        verbose=0)
    want, counts, _ = reference(rois, probs, deltas, max_instances=12,
                                min_confidence=0.6, nms_threshold=0.3)
    assert min(counts) > 0
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_detectionlayer_deserializes_without_custom_objects():
    # Registered with Keras, so saved models load without custom_objects.
    layer = DetectionLayer(max_instances=7)
    clone = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer))
    assert type(clone) is DetectionLayer
    assert clone.get_config() == layer.get_config()
