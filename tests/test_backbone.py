"""ResNet backbones, FPN and BatchNorm (mrcnn/network/backbone.py)."""
import numpy as np
import pytest
import keras

from mrcnn.network.backbone import BatchNorm, fpn_graph, resnet_graph

IMAGE = 64


def build_backbone(architecture, pyramid_size=256):
    image = keras.Input((IMAGE, IMAGE, 3))
    c_maps = resnet_graph(image, architecture, stage5=True, train_bn=False)
    p_maps = fpn_graph(*c_maps[1:], pyramid_size=pyramid_size)
    return keras.Model(image, c_maps + p_maps, name=architecture)


_BACKBONES = {}


def backbone(architecture):
    """Built once per test module: building ResNet-101 takes seconds."""
    if architecture not in _BACKBONES:
        _BACKBONES[architecture] = build_backbone(architecture)
    return _BACKBONES[architecture]


def resnet_param_count(model):
    """Parameters of the ResNet part (the FPN layers excluded)."""
    return sum(layer.count_params() for layer in model.layers
               if not layer.name.startswith("fpn_"))


@pytest.fixture(scope="module")
def resnet18():
    return backbone("resnet18")


@pytest.mark.parametrize("architecture, channels", [
    ("resnet18", [64, 64, 128, 256, 512]),
    ("resnet50", [64, 256, 512, 1024, 2048]),
    ("resnet101", [64, 256, 512, 1024, 2048]),
])
def test_feature_map_shapes(architecture, channels):
    model = backbone(architecture)
    c_maps, p_maps = model.outputs[:5], model.outputs[5:]
    # C1 is the stem output after the max pool: stride 4 like C2.
    strides = [4, 4, 8, 16, 32]
    for tensor, stride, depth in zip(c_maps, strides, channels):
        assert tuple(tensor.shape) == (None, IMAGE // stride,
                                       IMAGE // stride, depth)
    for tensor, stride in zip(p_maps, [4, 8, 16, 32, 64]):
        assert tuple(tensor.shape) == (None, IMAGE // stride,
                                       IMAGE // stride, 256)


def test_forward_pass_matches_static_shapes(resnet18):
    image = np.random.default_rng(0).normal(size=(2, IMAGE, IMAGE, 3))
    outputs = resnet18.predict(image.astype("float32"), verbose=0)
    for array, tensor in zip(outputs, resnet18.outputs):
        assert array.shape == (2,) + tuple(tensor.shape[1:])
        assert np.all(np.isfinite(array))


def test_matterport_layer_names():
    model = backbone("resnet101")
    names = {layer.name for layer in model.layers}
    expected = {"conv1", "bn_conv1", "res2a_branch2a", "bn2a_branch2a",
                "res2a_branch1", "bn2a_branch1", "res2c_branch2c",
                "res3d_branch2c", "res4a_branch1", "res4w_branch2c",
                "bn4w_branch2c", "res5c_branch2c", "bn5c_branch2c",
                "fpn_c5p5", "fpn_c4p4", "fpn_c3p3", "fpn_c2p2",
                "fpn_p5upsampled", "fpn_p4upsampled", "fpn_p3upsampled",
                "fpn_p4add", "fpn_p3add", "fpn_p2add",
                "fpn_p2", "fpn_p3", "fpn_p4", "fpn_p5", "fpn_p6"}
    assert expected <= names
    # Stage 4 of resnet101 has 23 blocks: a..w, nothing after.
    assert "res4x_branch2a" not in names
    assert "res2b_branch1" not in names  # identity blocks: no projection
    # Stage 4 identity blocks use the 3-conv bottleneck.
    assert {"res4v_branch2a", "res4v_branch2b", "res4v_branch2c"} <= names


def test_resnet50_stage4_has_six_blocks():
    image = keras.Input((IMAGE, IMAGE, 3))
    c_maps = resnet_graph(image, "resnet50", stage5=False)
    assert c_maps[4] is None  # no stage 5, as in matterport
    names = {layer.name for layer in
             keras.Model(image, c_maps[1:4]).layers}
    assert "res4f_branch2c" in names and "res4g_branch2a" not in names
    assert not any(name.startswith("res5") for name in names)


def test_resnet50_and_101_parameter_counts():
    # keras.applications.ResNet50 is the same bottleneck ResNet (biased
    # convs, BN with 4 variables), only with other layer names.
    reference = keras.applications.ResNet50(
        weights=None, include_top=False, input_shape=(IMAGE, IMAGE, 3))
    resnet50 = resnet_param_count(backbone("resnet50"))
    assert resnet50 == reference.count_params()
    # resnet101 has 17 more stage-4 identity blocks: 1x1 1024->256,
    # 3x3 256->256, 1x1 256->1024 convs with biases, and 3 BNs of 4 vectors.
    block = (1024 * 256 + 256) + (9 * 256 * 256 + 256) + (256 * 1024 + 1024) \
        + 4 * (256 + 256 + 1024)
    assert resnet_param_count(backbone("resnet101")) == \
        resnet50 + 17 * block


def test_resnet18_parameter_count():
    # torchvision's resnet18 has 11,689,512 parameters, 513,000 of them in
    # the fc layer; its convs have no bias and its BN layers store gamma and
    # beta only. Ours adds a bias to each of its convs and the moving mean
    # and variance to each BN; each conv is followed by one BN, and the
    # convs have 4,800 output channels in all:
    # conv1 64 + stage2 4*64 + stage3 5*128 + stage4 5*256 + stage5 5*512.
    conv_channels = 64 + 4 * 64 + 5 * 128 + 5 * 256 + 5 * 512
    assert conv_channels == 4800
    expected = 11689512 - 513000 + conv_channels * 3
    assert resnet_param_count(backbone("resnet18")) == expected


def test_unknown_architecture_is_rejected():
    with pytest.raises(ValueError, match="resnet34"):
        resnet_graph(keras.Input((IMAGE, IMAGE, 3)), "resnet34")


def bn_model(train_bn):
    inputs = keras.Input((3,))
    layer = BatchNorm(train_bn=train_bn, name="bn")
    return keras.Model(inputs, layer(inputs)), layer


def test_frozen_batchnorm_ignores_training_flag():
    model, layer = bn_model(train_bn=False)
    x = np.random.default_rng(1).normal(5.0, 2.0, size=(8, 3))
    x = x.astype("float32")
    before = [w.numpy().copy() for w in layer.weights]
    out = model(x, training=True).numpy()
    # Moving mean 0 and variance 1: inference mode scales by 1/sqrt(1+eps).
    np.testing.assert_allclose(out, x / np.sqrt(1.0 + layer.epsilon),
                               rtol=1e-6)
    for w, old in zip(layer.weights, before):
        np.testing.assert_array_equal(w.numpy(), old)


@pytest.mark.parametrize("train_bn", [True, None])
def test_trainable_batchnorm_follows_training_flag(train_bn):
    model, layer = bn_model(train_bn=train_bn)
    x = np.random.default_rng(2).normal(5.0, 2.0, size=(8, 3))
    x = x.astype("float32")
    out = model(x, training=True).numpy()
    expected = (x - x.mean(0)) / np.sqrt(x.var(0) + layer.epsilon)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    # moving = momentum * moving + (1 - momentum) * batch mean, from 0.
    np.testing.assert_allclose(layer.moving_mean.numpy(),
                               (1 - layer.momentum) * x.mean(0), rtol=1e-5)
    inference = model(x, training=False).numpy()
    np.testing.assert_allclose(
        inference, (x - layer.moving_mean.numpy()) / np.sqrt(
            layer.moving_variance.numpy() + layer.epsilon), rtol=1e-5)


def test_batchnorm_config_round_trip():
    layer = BatchNorm(train_bn=False, name="bn_x", epsilon=1e-3)
    clone = BatchNorm.from_config(layer.get_config())
    assert clone.train_bn is False and clone.name == "bn_x"
