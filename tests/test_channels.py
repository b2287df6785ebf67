"""Images of 1, 2 or >= 4 channels with RGB weights: load_weights(by_name)
adapts conv1 (mrcnn.weights.channels); MEAN_PIXEL must have one entry per
channel."""
import logging

import keras
import numpy as np
import pytest

from mrcnn import model as modellib
from mrcnn.data import mold_image
from mrcnn.weights.channels import adapt_input_kernel, is_adaptable
from tests.tiny import TinyConfig

# One filter of a 1x1 RGB kernel per column: R, G, B = (1, 2, 3) and
# (0.5, -1, 4).
RGB = np.array([[1.0, 0.5], [2.0, -1.0], [3.0, 4.0]]).reshape(1, 1, 3, 2)


@pytest.mark.parametrize("channels, expected", [
    # More channels: RGB kept, extras = mean of RGB, all times 3 / C.
    (4, [[0.75, 1.5, 2.25, 1.5], [0.375, -0.75, 3.0, 0.875]]),
    (5, [[0.6, 1.2, 1.8, 1.2, 1.2], [0.3, -0.6, 2.4, 0.7, 0.7]]),
    # Fewer: the sum of RGB (6 and 3.5) shared by the C channels.
    (1, [[6.0], [3.5]]),
    (2, [[3.0, 3.0], [1.75, 1.75]]),
])
def test_adapted_kernel_follows_the_rule(channels, expected):
    adapted = adapt_input_kernel(RGB, channels)
    assert adapted.shape == (1, 1, channels, 2)
    np.testing.assert_allclose(adapted[0, 0].T, expected, rtol=1e-12)


def test_adapted_kernel_keeps_a_gray_response():
    kernel = np.random.default_rng(0).normal(size=(7, 7, 3, 8))
    for channels in (1, 2, 4, 6):
        adapted = adapt_input_kernel(kernel, channels)
        np.testing.assert_allclose(adapted.sum(axis=2), kernel.sum(axis=2),
                                   rtol=1e-12, atol=1e-12)


def test_only_rgb_input_layers_are_adaptable():
    rgb, four = [(7, 7, 3, 64), (64,)], [(7, 7, 4, 64), (64,)]
    assert is_adaptable("conv1", rgb, four)
    assert not is_adaptable("res2a_branch2a", rgb, four)
    assert not is_adaptable("conv1", [(7, 7, 3, 64), (64,)],
                            [(7, 7, 4, 32), (32,)])
    assert not is_adaptable("conv1", [(7, 7, 2, 64), (64,)], four)
    with pytest.raises(ValueError, match=r"\[kh, kw, 3, filters\]"):
        adapt_input_kernel(np.zeros((7, 7, 4, 2)), 5)


class GrayConfig(TinyConfig):
    NAME = "channels"
    IMAGES_PER_GPU = 1
    MEAN_PIXEL = np.array([100.0, 100.0, 100.0])


def config_with(channels):
    class Config(GrayConfig):
        IMAGE_CHANNEL_COUNT = channels
        MEAN_PIXEL = np.full(channels, 100.0)
    return Config()


def test_mean_pixel_must_match_the_channel_count():
    class FourChannels(TinyConfig):
        IMAGE_CHANNEL_COUNT = 4
    with pytest.raises(ValueError, match="FourChannels config: MEAN_PIXEL "
                       "has 3 entries but IMAGE_CHANNEL_COUNT is 4"):
        FourChannels()
    config_with(4)  # four entries: fine


def conv1_output(model, molded):
    conv1 = keras.Model(model.keras_model.inputs[0],
                        model.keras_model.get_layer("conv1").output)
    return conv1.predict(molded[np.newaxis], verbose=0)[0]


@pytest.fixture(scope="module")
def rgb_model_and_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("channels")
    model = modellib.MaskRCNN("inference", GrayConfig(), str(folder))
    path = str(folder / "rgb.weights.h5")
    model.save_weights(path)
    return model, path


@pytest.mark.parametrize("channels", [4, 1])
def test_gray_input_gives_the_rgb_models_conv1_output(
        rgb_model_and_file, channels, tmp_path, caplog):
    rgb_model, path = rgb_model_and_file
    config = config_with(channels)
    model = modellib.MaskRCNN("inference", config, str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="mrcnn.weights.channels"):
        report = model.load_weights(path, by_name=True)
    assert report.adapted == ["conv1"] and "conv1" in report.loaded
    assert not report.missing and "conv1" not in report.unused
    assert "adapted its kernel" in caplog.text and path in caplog.text
    rgb_kernel = rgb_model.keras_model.get_layer("conv1").get_weights()[0]
    np.testing.assert_allclose(
        model.keras_model.get_layer("conv1").get_weights()[0],
        adapt_input_kernel(rgb_kernel, channels), rtol=1e-6)
    # Every other layer is the file's, unchanged.
    np.testing.assert_array_equal(
        model.keras_model.get_layer("res2a_branch2a").get_weights()[0],
        rgb_model.keras_model.get_layer("res2a_branch2a").get_weights()[0])

    gray = np.random.default_rng(1).integers(0, 256, (64, 64, 1))
    expected = conv1_output(rgb_model, mold_image(
        np.repeat(gray, 3, axis=2), rgb_model.config))
    molded = mold_image(np.repeat(gray, channels, axis=2), config)
    assert np.all(molded == molded[..., :1])  # all channels equal
    np.testing.assert_allclose(conv1_output(model, molded), expected,
                               rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_without_by_name_the_mismatch_still_raises(rgb_model_and_file,
                                                   tmp_path):
    _, path = rgb_model_and_file
    model = modellib.MaskRCNN("inference", config_with(4), str(tmp_path))
    with pytest.raises(ValueError, match="conv1: file"):
        model.load_weights(path, by_name=False)
