"""The shared constants of mrcnn.constants and mrcnn.network.layer_names do
what the modules that use them rely on: one tuple of loss names for the
config, the graph and the logs; one image-size check; the original's IoU
comparisons at the thresholds; the layer names of the graphs that are built,
and the class-specific layers found from the weights themselves."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn import constants
from mrcnn.config import Config
from mrcnn.data import detection_targets, rpn_targets
from mrcnn.network import architecture, layer_names, targets
from mrcnn.structures.resizing import resize_image
from mrcnn.training.trainer import MaskRCNNTrainingModel
from tests.tiny import TinyConfig

# matterport's Config.LOSS_WEIGHTS, key by key, in its order: the names its
# users' configs and TensorBoard logs know.
MATTERPORT_LOSSES = ["rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss",
                     "mrcnn_bbox_loss", "mrcnn_mask_loss"]


class NamesConfig(TinyConfig):
    NAME = "names"


@pytest.fixture(scope="module")
def training_graph():
    inputs, outputs = architecture.build_training_graph(NamesConfig())
    return MaskRCNNTrainingModel(inputs, outputs)


def test_loss_names_are_one_tuple_for_config_graph_and_logs(training_graph):
    assert list(constants.LOSS_NAMES) == MATTERPORT_LOSSES
    assert list(Config.LOSS_WEIGHTS) == MATTERPORT_LOSSES
    # The trainer takes the last five outputs as the losses, in this order.
    loss_layers = [t._keras_history.operation.name
                   for t in training_graph.outputs[-5:]]
    assert loss_layers == MATTERPORT_LOSSES
    assert list(training_graph.loss_trackers) == ["loss"] + MATTERPORT_LOSSES


def fits_pyramid_by_halving(size):
    """The original's check: the side halved 6 times stays a whole number."""
    return size / 2 ** 6 == int(size / 2 ** 6)


def test_pyramid_size_error_is_the_original_halving_check():
    for size in range(1, 1100):
        problem = constants.pyramid_size_error("side", size)
        assert (problem is None) == fits_pyramid_by_halving(size), size
        if problem:
            nearest = int(problem.rsplit("e.g. ", 1)[1])
            assert nearest % 64 == 0 and nearest >= 64
            assert abs(nearest - size) <= 32 or size < 32
    assert constants.pyramid_size_error("side", 0) is not None
    assert constants.pyramid_size_error("side", None) is not None


@pytest.mark.parametrize("size", [64, 100, 320, 1000])
def test_config_graph_and_resize_refuse_the_same_sizes(size):
    fits = fits_pyramid_by_halving(size)
    square = type("Sized", (Config,), {"NAME": "sized", "IMAGE_MIN_DIM": 64,
                                       "IMAGE_MAX_DIM": size})
    refused = []
    try:
        config = square()
    except ValueError as error:
        refused.append("config")
        assert "must be divisible by 64" in str(error)
    else:
        architecture.check_image_shape(config)
    stub = type("Shape", (), {"IMAGE_SHAPE": np.array([size, 128, 3])})
    try:
        architecture.check_image_shape(stub)
    except ValueError:
        refused.append("graph")
    try:
        resize_image(np.zeros((10, 12, 3), np.uint8), min_dim=size,
                     mode="pad64")
    except ValueError:
        refused.append("pad64")
    assert refused == ([] if fits else ["config", "graph", "pad64"])


def test_head_positive_iou_keeps_the_originals_comparisons():
    at = constants.HEAD_POSITIVE_IOU
    below = np.nextafter(np.float32(at), np.float32(0))
    overlaps = tf.constant([[at], [below], [0.9]], tf.float32)
    no_crowd = tf.zeros([3, 0], tf.float32)
    positive, negative = targets._sample_rois(overlaps, no_crowd, 8, 1.0,
                                              fill_with_negatives=True)
    # The graph: >= is positive.
    assert sorted(positive.numpy()) == [0, 2]
    assert sorted(negative.numpy()) == [1]
    # numpy: > is positive, < negative; an ROI at exactly 0.5 is neither.
    keep, background = detection_targets._sample_rois(
        np.array([at, below, 0.9]), NamesConfig(), np.random.default_rng(0))
    assert set(keep) == {1, 2} and list(background) == [1]


def test_crowd_iou_is_where_proposals_and_anchors_stop_being_negative():
    at = constants.CROWD_IOU
    below = np.nextafter(np.float32(at), np.float32(0))
    overlaps = tf.fill([2, 1], 0.1)
    crowd = tf.constant([[at], [below]], tf.float32)
    _, negative = targets._sample_rois(overlaps, crowd, 8, 1.0,
                                       fill_with_negatives=True)
    assert list(negative.numpy()) == [1]
    # An anchor of area 1000 and a crowd box of area 1 inside it (IoU
    # 1 / 1000 = CROWD_IOU): neutral; a slightly smaller one: negative.
    anchor = np.array([[0.0, 0.0, 10.0, 100.0]])
    no_gt = np.zeros([0, 4])
    for width, label in ((1.0, 0), (0.99, -1)):
        crowd_box = np.array([[0.0, 0.0, 1.0, width]])
        assert rpn_targets._match_anchors_dense(
            anchor, no_gt, crowd_box, 0.7, 0.3).tolist() == [label]


def names_of(keras_model):
    return {layer.name for layer in keras_model.layers}


def single_names():
    """Every layer name constant of layer_names (one name each)."""
    return {value for key, value in vars(layer_names).items()
            if key.isupper() and isinstance(value, str) and "{" not in value}


def inference_graph(num_classes):
    config = type("Classes", (NamesConfig,), {"NUM_CLASSES": num_classes,
                                              "GPU_COUNT": 1,
                                              "IMAGES_PER_GPU": 1})()
    inputs, outputs = architecture.build_inference_graph(config)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def inference_graphs():
    return inference_graph(3), inference_graph(5)


def test_every_layer_name_is_a_layer_of_the_graphs(training_graph,
                                                   inference_graphs):
    built = names_of(training_graph) | names_of(inference_graphs[0])
    # Built only with USE_RPN_ROIS False or the mask head on positive ROIs.
    optional = {layer_names.NORM_INPUT_ROIS, layer_names.MASK_ROIS}
    assert single_names() - optional <= built
    assert set(layer_names.MRCNN_FEATURE_MAPS) <= built
    assert layer_names.FPN_OUTPUT.format(6) in built
    for name in (layer_names.RPN_CLASS, layer_names.PROPOSALS,
                 layer_names.DETECTIONS, layer_names.MRCNN_MASK):
        assert name in names_of(inference_graphs[0])


def test_class_specific_layers_are_those_whose_weights_follow_num_classes(
        inference_graphs):
    shapes = [{layer.name: [tuple(w.shape) for w in layer.weights]
               for layer in graph.layers if layer.weights}
              for graph in inference_graphs]
    assert shapes[0].keys() == shapes[1].keys()
    differing = {name for name in shapes[0]
                 if shapes[0][name] != shapes[1][name]}
    listed = set(layer_names.CLASS_SPECIFIC_LAYERS)
    assert differing == listed & set(shapes[0])
    # The rest of matterport's list (its box-delta Reshape) has no weights.
    for name in listed - differing:
        assert not inference_graphs[0].get_layer(name).weights, name
