"""SavedModel export: the reloaded serving signature against detect()."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn import data, utils
from mrcnn.inference import export
from mrcnn.inference import postprocess
from mrcnn import model as modellib
from samples.shapes.shapes import ShapesDataset
from tests import tiny


class ExportConfig(tiny.TinyConfig):
    NAME = "export"
    IMAGES_PER_GPU = 1
    # Random weights: keep every detection so there is something to compare.
    DETECTION_MIN_CONFIDENCE = 0.0


def shapes_images(count, seed):
    dataset = ShapesDataset()
    dataset.load_shapes(count, 64, 64, seed=seed, max_shapes=3)
    dataset.prepare()
    return [dataset.load_image(i) for i in dataset.image_ids]


def piecewise_image(height, width):
    """Flat regions: skimage's float64 resize lands a hair below integers
    there, and the uint8 cast truncates, so the rounding must match too."""
    image = np.full((height, width, 3), 37, np.uint8)
    image[height // 8:height // 2, width // 10:width // 2] = (200, 100, 13)
    image[height // 2:, :, 1] = 250
    return image


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny inference model (random weights), its export and the reloaded
    serving function."""
    keras.utils.set_random_seed(7)
    model = modellib.MaskRCNN("inference", ExportConfig(),
                              str(tmp_path_factory.mktemp("logs")))
    path = tmp_path_factory.mktemp("export") / "mask_rcnn"
    model.export(str(path))
    served = tf.saved_model.load(str(path)).signatures["serving_default"]
    return model, served


def masks_agree(a, b):
    """At most 5 % of the union's pixels, or 3 pixels, differ: a batch
    runs other convolution kernels than a single image, and an untrained
    model's mask probabilities sit near the 0.5 threshold, so a pixel or
    two of a thin mask (boxes 1-3 pixels wide here) may flip."""
    union = np.logical_or(a, b).sum()
    return np.logical_xor(a, b).sum() <= max(3, 0.05 * union)


def assert_same_detections(expected, actual):
    np.testing.assert_array_equal(actual["class_ids"], expected["class_ids"])
    assert np.abs(actual["rois"] - expected["rois"]).max(initial=0) <= 1
    np.testing.assert_allclose(actual["scores"], expected["scores"],
                               atol=1e-4)
    assert actual["masks"].shape == expected["masks"].shape
    for i in range(expected["masks"].shape[-1]):
        assert masks_agree(expected["masks"][..., i],
                           actual["masks"][..., i])


def test_signature_takes_uint8_images_and_names_outputs(exported):
    _, served = exported
    (spec,) = served.structured_input_signature[1].values()
    assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, None,
                                                               None, 3]
    outputs = served.structured_outputs
    assert set(outputs) == {"num_detections", "boxes", "class_ids", "scores",
                            "masks", "mask_probs"}
    assert outputs["boxes"].dtype == tf.int32
    assert outputs["masks"].dtype == tf.uint8
    assert outputs["mask_probs"].shape.as_list()[2:] == [28, 28]


def test_batch_of_images_matches_detect(exported):
    model, served = exported
    images = shapes_images(2, seed=21)
    outputs = served(images=tf.constant(np.stack(images)))
    results = export.results_from_serving(outputs)
    assert len(results) == 2
    for image, result in zip(images, results):
        expected = model.detect([image])[0]
        assert len(expected["class_ids"]) > 0
        assert_same_detections(expected, result)


@pytest.mark.parametrize("shape", [(48, 80), (40, 30)])
def test_resized_images_match_detect(exported, shape):
    """Downscaled (48x80 -> 38x64) and upscaled (40x30 -> 64x48) images:
    resizing and unmolding happen inside the graph."""
    model, served = exported
    rng = np.random.default_rng(shape[0])
    for image in (rng.integers(0, 256, shape + (3,)).astype(np.uint8),
                  piecewise_image(*shape)):
        (result,) = export.results_from_serving(
            served(images=tf.constant(image[np.newaxis])))
        expected = model.detect([image])[0]
        assert len(expected["class_ids"]) > 0
        assert_same_detections(expected, result)
        assert result["masks"].shape[:2] == shape


class Pad64Config(ExportConfig):
    IMAGE_RESIZE_MODE = "pad64"
    IMAGE_MIN_DIM = 64


@pytest.mark.parametrize("config_class,shape", [
    (ExportConfig, (48, 80)), (ExportConfig, (40, 30)),
    (ExportConfig, (130, 70)), (ExportConfig, (64, 64)),
    (Pad64Config, (50, 90)), (Pad64Config, (70, 130))])
def test_mold_images_graph_equals_mold_inputs(config_class, shape):
    config = config_class()
    # mold_inputs needs only the config: skip building a graph.
    unbuilt = modellib.MaskRCNN.__new__(modellib.MaskRCNN)
    unbuilt.config = config
    for image in (piecewise_image(*shape),
                  np.random.default_rng(1).integers(
                      0, 256, shape + (3,)).astype(np.uint8)):
        molded, metas, windows = unbuilt.mold_inputs([image])
        g_molded, g_metas, g_window = export.mold_images_graph(
            tf.constant(image[np.newaxis]), config)
        np.testing.assert_array_equal(g_molded.numpy(), molded)
        np.testing.assert_array_equal(g_metas.numpy(), metas)
        np.testing.assert_array_equal(g_window.numpy(), windows[0])


@pytest.mark.parametrize("molded_shape", [(64, 64), (128, 192)])
def test_pyramid_anchors_graph_equals_numpy_anchors(molded_shape):
    config = Pad64Config()
    expected = utils.norm_boxes(utils.generate_pyramid_anchors(
        config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS,
        data.compute_backbone_shapes(config, molded_shape),
        config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE), molded_shape)
    actual = export.pyramid_anchors_graph(config, *molded_shape).numpy()
    np.testing.assert_array_equal(actual, expected)


def synthetic_detections(rng, max_instances, num_classes):
    """Five detections inside the window (one of them an inverted box,
    which unmolding drops), then padding rows of zeros."""
    ys = np.sort(rng.uniform(0.25, 0.75, (5, 2)), axis=1)
    xs = np.sort(rng.uniform(0.05, 0.95, (5, 2)), axis=1)
    detections = np.zeros((max_instances, 6), np.float32)
    detections[:5, :4] = np.stack([ys[:, 0], xs[:, 0], ys[:, 1], xs[:, 1]],
                                  axis=1)
    detections[2, 2] = detections[2, 0] - 0.05  # y2 above y1
    detections[:5, 4] = rng.integers(1, num_classes, 5)
    detections[:5, 5] = np.sort(rng.uniform(0.5, 1.0, 5))[::-1]
    masks = rng.uniform(0, 1, (max_instances, 28, 28, num_classes))
    return detections, masks.astype(np.float32)


@pytest.mark.parametrize("full_masks", [True, False])
def test_unmold_detections_graph_equals_numpy(full_masks):
    rng = np.random.default_rng(5)
    image_shape, molded_shape = (48, 80, 3), (64, 64, 3)
    window = np.array([13, 0, 51, 64])
    batch = [synthetic_detections(rng, 8, 4) for _ in range(2)]
    outputs = export.unmold_detections_graph(
        tf.constant(np.stack([d for d, _ in batch])),
        tf.constant(np.stack([m for _, m in batch])),
        tf.constant(window, tf.int32), tf.constant(molded_shape[:2]),
        tf.constant(image_shape[:2]), full_masks=full_masks)
    results = export.results_from_serving(outputs)
    for (detections, masks), result in zip(batch, results):
        boxes, class_ids, scores, full = postprocess.unmold_detections(
            detections, masks, image_shape, molded_shape, window)
        assert len(class_ids) == 4  # the inverted box is dropped
        np.testing.assert_array_equal(result["rois"], boxes)
        np.testing.assert_array_equal(result["class_ids"], class_ids)
        np.testing.assert_array_equal(result["scores"], scores)
        if full_masks:
            np.testing.assert_array_equal(result["masks"], full)
        else:
            assert "masks" not in result
    padding = outputs["boxes"].numpy()[:, 4:]
    assert not padding.any() and not outputs["class_ids"].numpy()[:, 4:].any()


def test_export_refuses_what_it_cannot_serve():
    training_model = type("Model", (), {"mode": "training",
                                        "config": ExportConfig()})()
    with pytest.raises(ValueError, match="inference mode"):
        export.serving_function(training_model)

    class CropConfig(ExportConfig):
        IMAGE_RESIZE_MODE = "crop"
    crop_model = type("Model", (), {"mode": "inference",
                                    "config": CropConfig()})()
    with pytest.raises(ValueError, match="'crop' is not supported"):
        export.serving_function(crop_model)
