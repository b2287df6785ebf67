"""BATCH_NORM_MOMENTUM: how fast trained batch norm's moving statistics,
the ones inference normalizes with, follow the batch statistics."""
import keras
import numpy as np
import pytest

from mrcnn import model as modellib
from mrcnn.training import trainer
from samples.shapes.shapes import ShapesDataset
from tests.tiny import TinyConfig


class MomentumConfig(TinyConfig):
    NAME = "momentum"
    TRAIN_BN = True
    HEAD_TRAIN_BN = True


def first_batch(config):
    dataset = ShapesDataset()
    dataset.load_shapes(2, 64, 64, seed=7, max_shapes=2)
    dataset.prepare()
    batch = trainer.training_feeds(config, dataset, None)[0][0]
    return batch[0] if isinstance(batch, tuple) else batch


@pytest.mark.parametrize("momentum", [0.99, 0.5])
def test_a_step_moves_the_moving_mean_by_one_minus_momentum(tmp_path,
                                                            momentum):
    """One training-mode pass: moving_mean = m * old + (1 - m) * the batch
    mean of conv1's output, worked out from conv1's output directly."""
    config = type("C", (MomentumConfig,),
                  {"BATCH_NORM_MOMENTUM": momentum})()
    keras.utils.set_random_seed(3)
    keras_model = modellib.MaskRCNN("training", config,
                                    str(tmp_path)).keras_model
    # {outer name: the batch norm}: the heads' are in TimeDistributed
    norms = {layer.name: getattr(layer, "layer", layer)
             for layer in keras_model.layers}
    norms = {name: n for name, n in norms.items()
             if isinstance(n, keras.layers.BatchNormalization)}
    assert {"bn_conv1", "mrcnn_class_bn1", "mrcnn_mask_bn4"} <= set(norms)
    assert all(n.momentum == momentum for n in norms.values())

    inputs = first_batch(config)
    conv1 = keras.Model(keras_model.inputs[0],
                        keras_model.get_layer("conv1").output)
    batch_mean = np.asarray(conv1(inputs["input_image"], training=True),
                            np.float64).mean(axis=(0, 1, 2))
    norm = keras_model.get_layer("bn_conv1")
    before = np.asarray(norm.moving_mean, np.float64)
    keras_model._named_losses(inputs, training=True)
    after = np.asarray(norm.moving_mean, np.float64)
    np.testing.assert_allclose(
        after, momentum * before + (1 - momentum) * batch_mean,
        rtol=1e-4, atol=1e-4)
    assert np.abs(after - before).max() > 1e-3  # it moved


def test_the_original_momentum_stays_the_default():
    from mrcnn.config import Config
    from mrcnn.config_presets import FROM_SCRATCH
    assert Config.BATCH_NORM_MOMENTUM == 0.99  # Keras' and matterport's
    assert FROM_SCRATCH["BATCH_NORM_MOMENTUM"] == 0.9
