"""Layers whose ops XLA cannot compile say so (supports_jit False), so
that Keras' "auto" jit_compile, which compiles predict() wherever a GPU is
listed, leaves the models that hold them uncompiled; run_graph() then runs
on a machine that lists a GPU (simulated here: the CPU's XLA compiler
refuses the same ops a GPU's would)."""

import numpy as np
import pytest
import tensorflow as tf

from mrcnn import model as modellib
from mrcnn.network.detection import DetectionLayer
from mrcnn.network.roi_align import PyramidROIAlign
from mrcnn.network.rpn import ProposalLayer
from tests.tiny import TinyConfig

XLA_REFUSALS = (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError,
                tf.errors.InternalError)


class InferenceConfig(TinyConfig):
    NAME = "xla"
    IMAGES_PER_GPU = 1


def proposal_case():
    rng = np.random.default_rng(0)
    probs = tf.nn.softmax(tf.constant(rng.normal(size=(1, 20, 2)),
                                      tf.float32))
    deltas = tf.constant(rng.normal(size=(1, 20, 4)) * 0.1, tf.float32)
    corners = rng.uniform(0, 0.5, size=(1, 20, 2))
    anchors = tf.constant(np.concatenate([corners, corners + 0.3], -1),
                          tf.float32)
    return ProposalLayer(5, 0.7, pre_nms_limit=10), [probs, deltas, anchors]


def detection_case():
    rng = np.random.default_rng(1)
    corners = rng.uniform(0, 0.5, size=(1, 6, 2))
    rois = tf.constant(np.concatenate([corners, corners + 0.3], -1),
                       tf.float32)
    probs = tf.nn.softmax(tf.constant(rng.normal(size=(1, 6, 3)) * 3,
                                      tf.float32))
    deltas = tf.constant(rng.normal(size=(1, 6, 3, 4)) * 0.1, tf.float32)
    meta = np.zeros([1, 12 + 3], np.float32)
    meta[0, 4:7] = [64, 64, 3]
    meta[0, 7:11] = [0, 0, 64, 64]
    return (DetectionLayer(max_instances=4, min_confidence=0.0),
            [rois, probs, deltas, tf.constant(meta)])


def roi_align_case():
    boxes = tf.constant([[[0.1, 0.1, 0.6, 0.7]]], tf.float32)
    meta = np.zeros([1, 12 + 3], np.float32)
    meta[0, 4:7] = [64, 64, 3]
    maps = [tf.ones([1, 64 // 2 ** level, 64 // 2 ** level, 2])
            for level in range(2, 6)]
    return PyramidROIAlign(2), [boxes, tf.constant(meta)] + maps


@pytest.mark.parametrize("case", [proposal_case, detection_case,
                                  roi_align_case])
def test_layers_xla_cannot_compile_say_so(case):
    layer, inputs = case()
    assert layer(inputs) is not None  # runs without XLA
    assert layer.supports_jit is False
    with pytest.raises(XLA_REFUSALS):
        tf.function(layer.call, jit_compile=True)(inputs)


@pytest.fixture
def gpu_listed(monkeypatch):
    """tf.config.list_physical_devices as on a machine with one GPU."""
    listed = tf.config.list_physical_devices

    def with_a_gpu(device_type=None):
        devices = listed(device_type) if device_type != "GPU" else []
        if device_type in (None, "GPU"):
            devices.append(tf.config.PhysicalDevice(
                name="/physical_device:GPU:0", device_type="GPU"))
        return devices
    monkeypatch.setattr(tf.config, "list_physical_devices", with_a_gpu)


def test_auto_jit_stays_off_for_the_inference_model(tmp_path, gpu_listed):
    model = modellib.MaskRCNN("inference", InferenceConfig(), str(tmp_path))
    keras_model = model.keras_model
    assert keras_model.jit_compile is False
    # The backbone alone has no such layer: Keras would compile it, so
    # the listed GPU does reach Keras' choice.
    import keras
    backbone = keras.Model(keras_model.inputs[0],
                           keras_model.get_layer("fpn_p2").output)
    assert backbone.jit_compile is True
    # run_graph's sub-models predict without XLA (compiled, NMS would be
    # refused): up to the proposals (no ROIAlign in it), and on to the
    # detections.
    image = np.random.default_rng(2).integers(0, 255, (64, 64, 3), np.uint8)
    out = model.run_graph([image], [("proposals", "ROI")])
    assert out["proposals"].shape == (1, InferenceConfig.
                                      POST_NMS_ROIS_INFERENCE, 4)
    out = model.run_graph([image], [("detections", "mrcnn_detection")])
    assert out["detections"].shape == (1, InferenceConfig.
                                       DETECTION_MAX_INSTANCES, 6)
