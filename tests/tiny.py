"""The tiny Mask R-CNN the tests (and benchmarks/soak.py) train and run.

The shapes model (samples/shapes) cut down until a training step takes a
moment on a CPU: 64 px images, thin FPN and heads, few anchors, ROIs and
instances. A short run: two steps an epoch, no validation.

Import it as ``from tests.tiny import TinyConfig`` (pytest puts the repo
root on sys.path; scripts under tests/ and benchmarks/ put it there
themselves) and subclass it for what a test really changes, a NAME (which
names the log folder and the checkpoints) first.
"""

from samples.shapes.shapes import ShapesConfig


class TinyConfig(ShapesConfig):
    NAME = "tiny"
    IMAGES_PER_GPU = 2
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    TOP_DOWN_PYRAMID_SIZE = 32
    RPN_CONV_DEPTH = 32
    FPN_CLASSIF_FC_LAYERS_SIZE = 64
    MASK_HEAD_CONV_DEPTH = 16
    POST_NMS_ROIS_TRAINING = 64
    POST_NMS_ROIS_INFERENCE = 32
    TRAIN_ROIS_PER_IMAGE = 16
    RPN_TRAIN_ANCHORS_PER_IMAGE = 32
    MAX_GT_INSTANCES = 4
    DETECTION_MAX_INSTANCES = 8
    MINI_MASK_SHAPE = (14, 14)
    STEPS_PER_EPOCH = 2
    VALIDATION_STEPS = 0


def never_background(keras_model):
    """Makes a random-weight model's classifier never pick the background
    (its logit bias -20), so that every image gets detections: tests that
    compare code paths, not detection quality, then have rows to compare."""
    logits = keras_model.get_layer("mrcnn_class_logits")
    kernel, bias = logits.get_weights()
    bias[0] = -20.0
    logits.set_weights([kernel, bias])


def skip_if_16_bit_floats_cannot_run():
    """Skips the calling test where bfloat16 and float16 convolutions
    cannot run: an AVX-512 CPU under an AVX2-class ONEDNN_MAX_CPU_ISA (the
    documented reproduction of an AVX2 host), where TensorFlow hands them
    to oneDNN and the cap keeps oneDNN from building its kernels (an
    abort, or "could not create a primitive descriptor"). A real AVX2
    host runs them in Eigen, and runs these tests."""
    import os

    import pytest

    from mrcnn import runtime

    if runtime.bf16_aborts_under_isa_cap():
        pytest.skip("16-bit float convolutions cannot run under {}={} on this AVX-512 CPU"
                    .format(runtime.ONEDNN_ISA_ENV,
                            os.environ.get(runtime.ONEDNN_ISA_ENV)))


def like_a_trained_model(keras_model):
    """Gives a random-weight model scores, boxes and masks like a trained
    one's, for comparisons of runtimes (tests/test_export_formats.py,
    benchmarks/export_runtimes.py) that would otherwise be decided by the
    last bit.

    Its RPN and class scores saturate at 1.0 in float32, and which of two
    equal scores a runtime ranks first is then decided by the last bit of
    its convolutions: those logits are scaled down 20 times. Its box
    deltas make boxes 1-3 pixels wide, where a box edge one pixel off
    (allowed) halves the mask IoU: the deltas are scaled down 20 times
    (the boxes keep the anchors' sizes). Its mask probabilities sit near
    the 0.5 threshold: the mask logits are scaled up 4 times.
    """
    rpn = keras_model.get_layer("rpn_model")
    for layer, factor in (
            (keras_model.get_layer("mrcnn_class_logits"), 0.05),
            (rpn.get_layer("rpn_class_raw"), 0.05),
            (rpn.get_layer("rpn_bbox_pred"), 0.05),
            (keras_model.get_layer("mrcnn_bbox_fc"), 0.05),
            (keras_model.get_layer("mrcnn_mask"), 4.0)):
        layer.set_weights([w * factor for w in layer.get_weights()])
