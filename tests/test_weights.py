"""Weight files: Keras 3 checkpoints, legacy Keras 2 .h5 files in the
layout of matterport's mask_rcnn_coco.h5, keras.applications ResNet50
weights, broken files (mrcnn/weights/loading.py)."""
import logging
import os

import h5py
import numpy as np
import pytest
import keras

from mrcnn.network.backbone import fpn_graph, resnet_graph
from mrcnn.network.heads import build_fpn_mask_graph, fpn_classifier_graph
from mrcnn.network.rpn import build_rpn_model
from mrcnn.weights.loading import (CLASS_SPECIFIC_LAYERS,
                                   IMAGENET_RESNET50_URL,
                                   applications_resnet_name,
                                   get_imagenet_weights, load_weights,
                                   save_weights)

CLASS_LAYERS_WITH_WEIGHTS = ["mrcnn_class_logits", "mrcnn_bbox_fc",
                             "mrcnn_mask"]
RPN_LAYERS = ["rpn_conv_shared", "rpn_class_raw", "rpn_bbox_pred"]


def tiny_mask_rcnn(num_classes=3):
    """resnet18 + a thin FPN, RPN and heads, with matterport's layer names."""
    image = keras.Input((64, 64, 3), name="input_image")
    meta = keras.Input((12 + num_classes,), name="input_image_meta")
    rois = keras.Input((4, 4), name="input_rois")
    c_maps = resnet_graph(image, "resnet18", stage5=True, train_bn=False)
    p_maps = fpn_graph(*c_maps[1:], pyramid_size=8)
    rpn = build_rpn_model(1, 3, 8, conv_depth=8)
    rpn_outputs = [rpn(p) for p in p_maps]
    rpn_class = keras.layers.Concatenate(axis=1, name="rpn_class")(
        [outputs[1] for outputs in rpn_outputs])
    head_outputs = list(fpn_classifier_graph(
        rois, p_maps[:4], meta, 7, num_classes, train_bn=False,
        fc_layers_size=16))
    masks = build_fpn_mask_graph(rois, p_maps[:4], meta, 14, num_classes,
                                 train_bn=False, conv_depth=8)
    return keras.Model([image, meta, rois],
                       [rpn_class] + head_outputs + [masks], name="mask_rcnn")


def randomize(model, seed):
    """Distinct random values everywhere, so that a swapped, skipped or
    misplaced array can't go unnoticed."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.uniform(0.5, 1.5, size=w.shape).astype("float32"))


def weights_by_layer(model):
    """{layer name: [arrays]} with sub-model layers flattened."""
    result = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            result.update(weights_by_layer(layer))
        elif layer.weights:
            result[layer.name] = [w.numpy().copy() for w in layer.weights]
    return result


def assert_layers_equal(got, want, names):
    for name in names:
        assert len(got[name]) == len(want[name]), name
        for a, b in zip(got[name], want[name]):
            np.testing.assert_array_equal(a, b, err_msg=name)


def assert_layers_differ(got, want, names):
    for name in names:
        assert not np.array_equal(got[name][0], want[name][0]), name


def write_legacy_h5(model, path, omit=(), rename=None, inner_names=False):
    """Writes model's weights in Keras 2's layout (that of mask_rcnn_coco.h5).

    Root attribute layer_names; one group per layer with a weight_names
    attribute; dataset "<layer>/<layer>/kernel:0"; the nested rpn_model
    group holds "rpn_model/rpn_conv_shared/kernel:0" etc. The heads were
    TimeDistributed in Keras 2, whose weights carry the wrapper's name.
    Layers are written in reverse order: loading must go by name.
    inner_names: name the weights of wrapped layers by wrapper and inner
    layer ("mrcnn_mask/conv2d_7/kernel:0"), as some Keras 2 versions did.
    """
    rename = rename or {}
    with h5py.File(path, "w") as f:
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.0.8"
        layer_names = []
        for layer in reversed(model.layers):
            if layer.name in omit:
                continue
            name = rename.get(layer.name, layer.name)
            layer_names.append(name.encode("utf8"))
            group = f.create_group(name)
            if isinstance(layer, keras.Model):
                entries = [(sub.name, w) for sub in layer.layers
                           for w in sub.weights]
            elif inner_names and hasattr(layer, "layer"):
                entries = [(name + "/" + layer.layer.name, w)
                           for w in layer.weights]
            else:
                entries = [(name, w) for w in layer.weights]
            weight_names = []
            for prefix, w in entries:
                weight_name = "{}/{}:0".format(prefix, w.name)
                group.create_dataset(weight_name, data=w.numpy())
                weight_names.append(weight_name.encode("utf8"))
            # Keras 2 stored these as fixed-length byte strings.
            group.attrs["weight_names"] = np.array(weight_names, dtype="S")
        f.attrs["layer_names"] = np.array(layer_names, dtype="S")


@pytest.fixture(scope="module")
def source():
    model = tiny_mask_rcnn()
    randomize(model, seed=1)
    return model, weights_by_layer(model)


@pytest.fixture(scope="module")
def target():
    return tiny_mask_rcnn()


@pytest.fixture(scope="module")
def checkpoint(source, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "mask_rcnn_tiny_0001.weights.h5"
    save_weights(source[0], path)
    return path


@pytest.fixture(scope="module")
def legacy_file(source, tmp_path_factory):
    path = tmp_path_factory.mktemp("legacy") / "mask_rcnn_tiny.h5"
    write_legacy_h5(source[0], path)
    return path


# ---------------------------------------------------------------- Keras 3

@pytest.mark.parametrize("by_name", [False, True])
def test_keras3_round_trip(source, target, checkpoint, by_name):
    model, expected = source
    randomize(target, seed=2)
    report = load_weights(target, checkpoint, by_name=by_name)
    got = weights_by_layer(target)
    assert set(got) == set(expected)
    assert_layers_equal(got, expected, expected)
    assert sorted(report.loaded) == sorted(expected)
    assert report.missing == [] and report.skipped == []


def test_keras3_exclude(source, target, checkpoint):
    _, expected = source
    randomize(target, seed=3)
    before = weights_by_layer(target)
    report = load_weights(target, checkpoint,
                          exclude=CLASS_SPECIFIC_LAYERS + ["rpn_model"])
    got = weights_by_layer(target)
    untouched = CLASS_LAYERS_WITH_WEIGHTS + RPN_LAYERS
    assert_layers_equal(got, before, untouched)
    assert_layers_equal(got, expected, set(expected) - set(untouched))
    assert sorted(report.skipped) == sorted(untouched)


def test_keras3_other_class_count_names_layers_and_fix(checkpoint):
    other = tiny_mask_rcnn(num_classes=5)
    for by_name in (False, True):
        with pytest.raises(ValueError) as info:
            load_weights(other, checkpoint, by_name=by_name)
        message = str(info.value)
        assert str(checkpoint) in message
        for name in CLASS_LAYERS_WITH_WEIGHTS:
            assert name in message
        # Both shapes of the class logits kernel: file (16, 3), model (16, 5).
        assert "(16, 3)" in message and "(16, 5)" in message
        assert "exclude=" + repr(CLASS_SPECIFIC_LAYERS) in message
    report = load_weights(other, checkpoint, by_name=True,
                          exclude=CLASS_SPECIFIC_LAYERS)
    assert "mrcnn_class_conv1" in report.loaded


def test_save_is_atomic(source, tmp_path, monkeypatch):
    model, _ = source
    path = tmp_path / "mask_rcnn_0001.weights.h5"
    save_weights(model, path)
    good = path.read_bytes()

    def crash(filepath, *args, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"half a file")
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(model, "save_weights", crash)
    with pytest.raises(KeyboardInterrupt):
        save_weights(model, path)
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == [path.name]  # no temporary left over


def test_save_requires_keras_suffix(source, tmp_path):
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        save_weights(source[0], tmp_path / "model.h5")


def test_report_is_logged(target, checkpoint, caplog):
    with caplog.at_level(logging.INFO, logger="mrcnn.weights.loading"):
        load_weights(target, checkpoint, by_name=True)
    assert any(str(checkpoint) in r.getMessage() for r in caplog.records)


# ------------------------------------------------- legacy Keras 2 (.h5)

def test_legacy_file_has_matterport_layout(legacy_file):
    with h5py.File(legacy_file, "r") as f:
        assert b"rpn_model" in list(f.attrs["layer_names"])
        assert "rpn_model/rpn_conv_shared/kernel:0" in f
        assert "mrcnn_class_conv1/mrcnn_class_conv1/kernel:0" in f
        assert list(f["bn_conv1"].attrs["weight_names"]) == [
            b"bn_conv1/gamma:0", b"bn_conv1/beta:0",
            b"bn_conv1/moving_mean:0", b"bn_conv1/moving_variance:0"]


@pytest.mark.parametrize("by_name", [True, False])
def test_legacy_load(source, target, legacy_file, by_name):
    _, expected = source
    randomize(target, seed=4)
    report = load_weights(target, legacy_file, by_name=by_name)
    assert_layers_equal(weights_by_layer(target), expected, expected)
    assert report.file_format == "legacy_h5"
    assert report.missing == [] and report.unused == []


def test_legacy_wrapped_layers_with_inner_names(source, target, tmp_path):
    _, expected = source
    path = tmp_path / "inner_names.h5"
    write_legacy_h5(source[0], path, inner_names=True)
    with h5py.File(path, "r") as f:
        names = [n.decode() for n in f["mrcnn_mask"].attrs["weight_names"]]
    assert names[0].startswith("mrcnn_mask/") and names[0].count("/") == 2
    randomize(target, seed=12)
    report = load_weights(target, path, by_name=False)
    assert_layers_equal(weights_by_layer(target), expected, expected)
    assert report.missing == [] and report.unused == []


def test_legacy_exclude(source, target, legacy_file):
    _, expected = source
    randomize(target, seed=5)
    before = weights_by_layer(target)
    report = load_weights(target, legacy_file, by_name=True,
                          exclude=CLASS_SPECIFIC_LAYERS)
    got = weights_by_layer(target)
    assert_layers_equal(got, before, CLASS_LAYERS_WITH_WEIGHTS)
    assert_layers_equal(got, expected,
                        set(expected) - set(CLASS_LAYERS_WITH_WEIGHTS))
    assert sorted(report.skipped) == sorted(CLASS_LAYERS_WITH_WEIGHTS)


def test_legacy_other_class_count_raises_before_loading(legacy_file):
    other = tiny_mask_rcnn(num_classes=5)
    randomize(other, seed=6)
    before = weights_by_layer(other)
    with pytest.raises(ValueError) as info:
        load_weights(other, legacy_file, by_name=True)
    message = str(info.value)
    for name in CLASS_LAYERS_WITH_WEIGHTS:
        assert name in message
    assert "(16, 12)" in message and "(16, 20)" in message  # mrcnn_bbox_fc
    assert "exclude=" + repr(CLASS_SPECIFIC_LAYERS) in message
    assert "mrcnn_class_conv1" not in message
    # Nothing was loaded, not even the layers that matched.
    assert_layers_equal(weights_by_layer(other), before, before)


def test_legacy_missing_layer(source, target, tmp_path):
    _, expected = source
    path = tmp_path / "partial.h5"
    write_legacy_h5(source[0], path, omit=("mrcnn_mask", "rpn_model"))
    with pytest.raises(ValueError) as info:
        load_weights(target, path, by_name=False)
    assert "mrcnn_mask" in str(info.value) and "by_name=True" in str(
        info.value)
    randomize(target, seed=7)
    before = weights_by_layer(target)
    report = load_weights(target, path, by_name=True)
    assert sorted(report.missing) == sorted(["mrcnn_mask"] + RPN_LAYERS)
    got = weights_by_layer(target)
    assert_layers_equal(got, before, ["mrcnn_mask"] + RPN_LAYERS)
    assert_layers_equal(got, expected, ["res5b_branch2b", "mrcnn_bbox_fc"])


def test_legacy_full_model_file(source, target, tmp_path):
    """Keras 2 model.save files keep the weights under model_weights."""
    _, expected = source
    inner = tmp_path / "inner.h5"
    write_legacy_h5(source[0], inner)
    path = tmp_path / "full_model.h5"
    with h5py.File(inner, "r") as src, h5py.File(path, "w") as dst:
        src.copy(src["/"], dst, "model_weights")
        for key, value in src.attrs.items():
            dst["model_weights"].attrs[key] = value
        dst.attrs["model_config"] = b'{"class_name": "NotToBeRun"}'
    randomize(target, seed=8)
    load_weights(target, path, by_name=True)
    assert_layers_equal(weights_by_layer(target), expected, expected)


# ------------------------------------------------------- ImageNet ResNet50

def test_applications_resnet_names():
    assert applications_resnet_name("conv1_conv") == "conv1"
    assert applications_resnet_name("conv1_bn") == "bn_conv1"
    assert applications_resnet_name("conv2_block1_1_conv") == "res2a_branch2a"
    assert applications_resnet_name("conv2_block1_0_conv") == "res2a_branch1"
    assert applications_resnet_name("conv3_block1_0_bn") == "bn3a_branch1"
    assert applications_resnet_name("conv4_block6_3_bn") == "bn4f_branch2c"
    assert applications_resnet_name("conv5_block3_2_conv") == \
        "res5c_branch2b"
    assert applications_resnet_name("conv4_block23_3_conv") == \
        "res4w_branch2c"
    assert applications_resnet_name("pool1_pool") is None
    assert applications_resnet_name("res2a_branch2a") is None


@pytest.fixture(scope="module")
def applications_resnet50():
    model = keras.applications.ResNet50(weights=None, include_top=False,
                                        input_shape=(64, 64, 3))
    randomize(model, seed=9)
    return model


@pytest.fixture(scope="module")
def our_resnet50():
    image = keras.Input((64, 64, 3))
    c_maps = resnet_graph(image, "resnet50", stage5=True, train_bn=False)
    return keras.Model(image, c_maps[1:])


@pytest.mark.parametrize("file_kind", ["keras3", "legacy"])
def test_applications_resnet50_weights(applications_resnet50, our_resnet50,
                                       tmp_path, file_kind):
    source = applications_resnet50
    if file_kind == "keras3":
        path = tmp_path / "resnet50.weights.h5"
        source.save_weights(path)
    else:
        path = tmp_path / "resnet50_notop.h5"
        write_legacy_h5(source, path)
    randomize(our_resnet50, seed=10)
    report = load_weights(our_resnet50, path, by_name=True)
    assert report.missing == []
    assert report.name_mapping is not None
    pairs = [("conv1", "conv1_conv"), ("bn_conv1", "conv1_bn"),
             ("res2a_branch1", "conv2_block1_0_conv"),
             ("bn3d_branch2b", "conv3_block4_2_bn"),
             ("res5c_branch2c", "conv5_block3_3_conv"),
             ("bn5c_branch2c", "conv5_block3_3_bn")]
    for ours, theirs in pairs:
        for a, b in zip(our_resnet50.get_layer(ours).weights,
                        source.get_layer(theirs).weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy(),
                                          err_msg=ours)
    # Every weight of the source went somewhere.
    assert sum(int(np.prod(w.shape)) for w in our_resnet50.weights) == \
        sum(int(np.prod(w.shape)) for w in source.weights)


def test_applications_names_kept_for_an_applications_model(
        applications_resnet50, tmp_path):
    """A model built on keras.applications keeps the file's names."""
    model = applications_resnet50
    expected = weights_by_layer(model)
    path = tmp_path / "own.weights.h5"
    save_weights(model, path)
    randomize(model, seed=13)
    report = load_weights(model, path, by_name=True)
    assert report.name_mapping is None and report.missing == []
    assert_layers_equal(weights_by_layer(model), expected, expected)


def test_fchollet_names_load_without_mapping(our_resnet50, tmp_path):
    """The v0.2 ImageNet file uses matterport's names already."""
    expected = weights_by_layer(our_resnet50)
    path = tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    write_legacy_h5(our_resnet50, path)
    randomize(our_resnet50, seed=11)
    report = load_weights(our_resnet50, path, by_name=True)
    assert report.name_mapping is None and report.missing == []
    assert_layers_equal(weights_by_layer(our_resnet50), expected, expected)


def test_get_imagenet_weights_offline(monkeypatch, tmp_path):
    calls = []

    def offline(*args, **kwargs):
        calls.append((args, kwargs))
        raise Exception("URL fetch failure: no network")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(OSError) as info:
        get_imagenet_weights()
    message = str(info.value)
    assert IMAGENET_RESNET50_URL in message
    filename = IMAGENET_RESNET50_URL.rsplit("/", 1)[-1]
    assert os.path.join(str(tmp_path / "keras_home"), "models",
                        filename) in message
    (args, kwargs), = calls
    assert IMAGENET_RESNET50_URL in args + tuple(kwargs.values())
    assert kwargs["cache_subdir"] == "models"


def test_get_imagenet_weights_returns_cached_path(monkeypatch):
    monkeypatch.setattr(keras.utils, "get_file",
                        lambda *a, **k: "/cache/models/resnet50.h5")
    assert get_imagenet_weights() == "/cache/models/resnet50.h5"


# ------------------------------------------------------------ bad files

def test_missing_file(target, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.h5"):
        load_weights(target, tmp_path / "nowhere.h5")


def test_not_hdf5(target, tmp_path):
    path = tmp_path / "mask_rcnn_coco.h5"
    path.write_bytes(b"<html><body>404 Not Found</body></html>")
    with pytest.raises(ValueError, match="not an HDF5 file") as info:
        load_weights(target, path, by_name=True)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("which", ["keras3", "legacy"])
def test_truncated(target, checkpoint, legacy_file, tmp_path, which):
    original = checkpoint if which == "keras3" else legacy_file
    path = tmp_path / ("cut.weights.h5" if which == "keras3" else "cut.h5")
    data = original.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    for by_name in (True, False):
        with pytest.raises(ValueError, match="truncated") as info:
            load_weights(target, path, by_name=by_name)
        assert str(path) in str(info.value)


def test_hdf5_without_keras_layout(target, tmp_path):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f["images"] = np.zeros(3)
    with pytest.raises(ValueError, match="not Keras weights") as info:
        load_weights(target, path, by_name=True)
    assert str(path) in str(info.value)
