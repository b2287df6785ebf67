"""Mixed precision as a config choice: MIXED_PRECISION = "mixed_bfloat16"
(CPU) or "mixed_float16" (GPU). Convolutions compute in 16 bits; boxes,
anchors, NMS, targets, head outputs and losses stay float32."""

import keras
import numpy as np
import pytest

from mrcnn import data, runtime
from mrcnn.network import architecture
from mrcnn.training import distribute
from mrcnn import model as modellib
from mrcnn.network.detection import DetectionLayer
from mrcnn.network.graph_layers import (AnchorLayer, DetectionBoxesLayer,
                                        IdentityLayer, NormBoxesLayer)
from mrcnn.network.heads import PositiveRois
from mrcnn.network.roi_align import PyramidROIAlign
from mrcnn.network.rpn import ProposalLayer
from mrcnn.network.targets import DetectionTargetLayer
from mrcnn.training.trainer import LOSS_NAMES
from samples.shapes.shapes import ShapesDataset
from tests import tiny


class TinyConfig(tiny.TinyConfig):
    NAME = "tinymp"
    STEPS_PER_EPOCH = 1  # the bfloat16 fixture trains a single step


class BFloat16Config(TinyConfig):
    MIXED_PRECISION = "mixed_bfloat16"


class Float16Config(TinyConfig):
    MIXED_PRECISION = "mixed_float16"


def inference_config(base):
    return type(base.__name__ + "Inference", (base,), {
        "IMAGES_PER_GPU": 1, "DETECTION_MIN_CONFIDENCE": 0.0})()


# Layers whose outputs feed box math, sampling or losses: float32 (int32
# for class ids) under any policy. TinyConfig's training graph has neither
# external ROIs nor the mask head on positives.
OPTIONAL_BOX_LAYERS = ("norm_input_rois", "mask_rois")
FLOAT32_TRAINING_LAYERS = tuple(
    name for name in architecture.BOX_LAYERS["training"]
    if name not in OPTIONAL_BOX_LAYERS) + architecture.ROI_ALIGN_LAYERS + (
    "rpn_class_logits", "rpn_class", "mrcnn_class_logits", "mrcnn_class",
    "mrcnn_mask") + LOSS_NAMES
FLOAT32_INFERENCE_LAYERS = (architecture.BOX_LAYERS["inference"]
                            + architecture.ROI_ALIGN_LAYERS
                            + ("rpn_class", "mrcnn_class", "mrcnn_mask"))


def shapes_dataset(count, seed):
    dataset = ShapesDataset()
    dataset.load_shapes(count, 64, 64, seed=seed, max_shapes=2)
    dataset.prepare()
    return dataset


def output_dtypes(keras_model, name):
    output = keras_model.get_layer(name).output
    outputs = output if isinstance(output, (list, tuple)) else [output]
    return {str(o.dtype) for o in outputs}


def all_layers(keras_model):
    for layer in keras_model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from all_layers(layer)


@pytest.fixture(scope="module")
def bfloat16_trained(tmp_path_factory):
    """A bfloat16 model trained one step, its History and first weights."""
    tiny.skip_if_16_bit_floats_cannot_run()
    model_dir = str(tmp_path_factory.mktemp("logs"))
    keras.utils.set_random_seed(2)
    model = modellib.MaskRCNN("training", BFloat16Config(), model_dir)
    before = model.keras_model.get_layer("conv1").get_weights()[0]
    history = model.train(shapes_dataset(2, seed=3), None,
                          learning_rate=0.01, epochs=1, layers="all",
                          workers=1)
    return model, history, before


def test_bfloat16_training_step_has_finite_losses(bfloat16_trained):
    model, history, before = bfloat16_trained
    assert set(history.history) == {"loss", *LOSS_NAMES}
    for name, values in history.history.items():
        assert np.all(np.isfinite(values)), (name, values)
    assert history.history["rpn_class_loss"][0] > 0
    # float32 master weights, moved by a finite update.
    assert all(w.dtype == "float32" for w in model.keras_model.weights)
    after = model.keras_model.get_layer("conv1").get_weights()[0]
    assert np.all(np.isfinite(after)) and not np.array_equal(after, before)


def test_bfloat16_convs_and_float32_box_math(bfloat16_trained):
    keras_model = bfloat16_trained[0].keras_model
    for name in ("conv1", "res2a_branch2a", "fpn_p2", "mrcnn_mask_conv1"):
        assert keras_model.get_layer(name).compute_dtype == "bfloat16", name
        assert output_dtypes(keras_model, name) == {"bfloat16"}, name
    for name in FLOAT32_TRAINING_LAYERS:
        assert output_dtypes(keras_model, name) <= {"float32", "int32"}, name


def test_global_policy_restored_after_building(bfloat16_trained, tmp_path,
                                               monkeypatch):
    assert keras.mixed_precision.global_policy().name == "float32"
    model = modellib.MaskRCNN("inference", inference_config(TinyConfig),
                              str(tmp_path))
    assert {layer.compute_dtype for layer in all_layers(model.keras_model)} \
        == {"float32"}

    # Restored even when building fails half-way.
    def broken(config):
        keras.layers.Dense(1)  # created under the mixed policy
        raise RuntimeError("broken graph")
    monkeypatch.setattr(modellib.architecture, "build_inference_graph",
                        broken)
    with pytest.raises(RuntimeError, match="broken graph"):
        modellib.MaskRCNN("inference", inference_config(BFloat16Config),
                          str(tmp_path))
    assert keras.mixed_precision.global_policy().name == "float32"


def check_detect_structure(results, images, config):
    assert len(results) == len(images)
    for image, r in zip(images, results):
        assert set(r) == {"rois", "class_ids", "scores", "masks"}
        n = len(r["class_ids"])
        assert 0 < n <= config.DETECTION_MAX_INSTANCES
        assert r["rois"].shape == (n, 4) and r["scores"].shape == (n,)
        assert r["scores"].dtype == np.float32
        assert r["masks"].shape == image.shape[:2] + (n,)
        assert r["masks"].dtype == bool
        assert np.all(np.isfinite(r["scores"]))
        assert np.all(r["rois"][:, :2] >= 0)
        assert np.all(r["rois"][:, 2] <= image.shape[0])
        assert np.all(r["rois"][:, 3] <= image.shape[1])


def test_bfloat16_detect_agrees_with_float32(bfloat16_trained, tmp_path):
    """Same weights in a bfloat16 and a float32 inference model: detect()
    has the documented structure, and the RPN scores agree to bfloat16's
    precision (8 bits of mantissa, about 2 decimal digits)."""
    trained = bfloat16_trained[0]
    weights_path = str(tmp_path / "trained.weights.h5")
    trained.save_weights(weights_path)
    dataset = shapes_dataset(2, seed=8)
    images = [dataset.load_image(i) for i in dataset.image_ids]
    scores = {}
    for base in (BFloat16Config, TinyConfig):
        config = inference_config(base)
        model = modellib.MaskRCNN("inference", config, str(tmp_path))
        model.load_weights(weights_path, by_name=True)
        for name in FLOAT32_INFERENCE_LAYERS:
            assert output_dtypes(model.keras_model, name) == {"float32"}
        if base is BFloat16Config:
            check_detect_structure(model.detect(images), images, config)
        molded, metas, _ = model.mold_inputs(images[:1])
        anchors = model.get_anchors(molded[0].shape)[np.newaxis]
        rpn_class = keras.Model(
            model.keras_model.inputs,
            model.keras_model.get_layer("rpn_class").output)
        scores[base] = np.asarray(
            rpn_class([molded, metas, anchors]))[..., 1]
    difference = np.abs(scores[BFloat16Config] - scores[TinyConfig])
    # Errors compound over the layers: bounded on average, a little looser
    # for the few anchors near 0.5 where the sigmoid is steepest.
    assert difference.mean() < 0.01 and difference.max() < 0.25, (
        difference.mean(), difference.max())
    assert difference.max() > 0  # the two really computed differently


def test_float16_graph_uses_loss_scaling_and_detects(tmp_path):
    tiny.skip_if_16_bit_floats_cannot_run()
    training = modellib.MaskRCNN("training", Float16Config(), str(tmp_path))
    keras_model = training.keras_model
    assert keras_model.get_layer("conv1").compute_dtype == "float16"
    for name in FLOAT32_TRAINING_LAYERS:
        assert output_dtypes(keras_model, name) <= {"float32", "int32"}, name
    training.compile(0.01, 0.9)
    optimizer = keras_model.optimizer
    # float16 gradients underflow without loss scaling.
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(optimizer.inner_optimizer, distribute.GlobalGradientSGD)

    config = inference_config(Float16Config)
    inference = modellib.MaskRCNN("inference", config, str(tmp_path))
    image = shapes_dataset(1, seed=4).load_image(0)
    check_detect_structure(inference.detect([image]), [image], config)


class AllBoxLayersConfig(TinyConfig):
    """A training graph with every layer of architecture.BOX_LAYERS:
    external ROIs (norm_input_rois) and the mask head on the positive ROIs
    (mask_rois)."""
    NAME = "tinympboxes"
    USE_RPN_ROIS = False
    MASK_HEAD_POSITIVE_ROIS = True


# Inputs that hold boxes, box deltas or the image window (in image_meta).
BOX_INPUTS = ("input_image_meta", "input_rpn_bbox", "input_gt_boxes",
              "input_rois", "input_anchors")
# The classes that exist to carry or crop at boxes: any layer of theirs in
# a graph must be listed.
BOX_LAYER_CLASSES = (AnchorLayer, NormBoxesLayer, ProposalLayer,
                     DetectionTargetLayer, PositiveRois, IdentityLayer,
                     DetectionLayer, DetectionBoxesLayer, PyramidROIAlign)


def build_graph(mode, policy):
    """The mode's graph of AllBoxLayersConfig under the dtype policy."""
    if mode == "training":
        config, build = AllBoxLayersConfig(), architecture.build_training_graph
    else:
        config = inference_config(AllBoxLayersConfig)
        build = architecture.build_inference_graph
    with runtime.precision_policy(policy):
        inputs, outputs = build(config)
        return keras.Model(inputs, outputs)


def producers(layer):
    """Names of the layers whose outputs `layer` reads."""
    return {tensor._keras_history.operation.name
            for node in layer._inbound_nodes for tensor in node.input_tensors}


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
@pytest.mark.parametrize("mode", ["training", "inference"])
def test_box_layers_compute_in_float32(mode, policy):
    """Every layer that carries boxes or crops at them computes in float32
    and outputs float32 boxes (int32 class ids) while the convolutions run
    in 16 bits; the list is complete, and whatever reads boxes (losses
    included) computes in float32 too."""
    keras_model = build_graph(mode, policy)
    assert keras.mixed_precision.global_policy().name == "float32"
    assert keras_model.get_layer("conv1").compute_dtype == policy[len("mixed_"):]
    listed = architecture.BOX_LAYERS[mode] + architecture.ROI_ALIGN_LAYERS
    names = {layer.name for layer in keras_model.layers}
    assert set(listed) <= names, set(listed) - names
    for name in listed:
        layer = keras_model.get_layer(name)
        assert layer.compute_dtype == "float32", (name, layer.compute_dtype)
        assert output_dtypes(keras_model, name) <= {"float32", "int32"}, name
        output = layer.output
        first = output[0] if isinstance(output, (list, tuple)) else output
        assert str(first.dtype) == "float32", name
    for name in BOX_INPUTS:
        if name in names:
            assert output_dtypes(keras_model, name) <= {"float32", "int32"}
    box_sources = set(architecture.BOX_LAYERS[mode]) | set(BOX_INPUTS)
    for layer in keras_model.layers:
        if isinstance(layer, BOX_LAYER_CLASSES):
            assert layer.name in listed, (layer.name, type(layer).__name__)
        if producers(layer) & box_sources:
            assert layer.compute_dtype == "float32", (
                layer.name, sorted(producers(layer) & box_sources))


class PositivesBFloat16Config(BFloat16Config):
    """bfloat16, the mask head on the positive ROIs, the ground truth boxes
    among the proposals (so that there are positives to crop)."""
    NAME = "tinymppositives"
    MASK_HEAD_POSITIVE_ROIS = True
    ADD_GT_TO_PROPOSALS = True


def test_bfloat16_mask_head_crops_at_the_mask_targets_boxes(tmp_path):
    """Under bfloat16 the boxes the mask head's ROIAlign crops at are, bit
    for bit, the float32 ROIs DetectionTargetLayer cut the mask targets at
    (the positives first): PositiveRois' slice of them, done in numpy."""
    tiny.skip_if_16_bit_floats_cannot_run()
    keras.utils.set_random_seed(5)
    config = PositivesBFloat16Config()
    keras_model = modellib.MaskRCNN("training", config,
                                    str(tmp_path)).keras_model
    rois, class_ids = keras_model.get_layer("proposal_targets").output[:2]
    crop_boxes = keras_model.get_layer("roi_align_mask").input[0]
    probe = keras.Model(keras_model.inputs, [rois, class_ids, crop_boxes])
    batch = data.MaskRCNNDataset(shapes_dataset(2, seed=6), config,
                                 shuffle=False)[0]
    rois, class_ids, crop_boxes = (np.asarray(out) for out in probe(
        [batch[tensor.name] for tensor in keras_model.inputs]))

    positives = int(np.max(np.sum(class_ids > 0, axis=1)))
    assert positives > 0
    expected = rois[:, :positives]
    assert crop_boxes.dtype == np.float32
    np.testing.assert_array_equal(crop_boxes.view(np.uint32),
                                  expected.view(np.uint32))
    # The check has teeth: bfloat16 would have moved these boxes.
    rounded = np.asarray(keras.ops.cast(
        keras.ops.cast(expected, "bfloat16"), "float32"))
    assert not np.array_equal(rounded, expected)
