"""Weight file faults met through MaskRCNN.load_weights: another class
count, broken files, and files that carry code. (mrcnn.weights.loading' own cases
are in tests/test_weights.py.)"""

import ast
import base64
import json
import marshal
import os
import pickle
import re
import sys

import h5py
import numpy as np
import pytest
import keras

from mrcnn import model as modellib
from mrcnn.weights.loading import CLASS_SPECIFIC_LAYERS, WeightsFileError
from tests import tiny


class TinyConfig(tiny.TinyConfig):
    NAME = "weights"
    IMAGES_PER_GPU = 1


class TwoClassConfig(TinyConfig):
    NUM_CLASSES = 1 + 2  # the shapes file has 1 + 3


def all_weights(model):
    return [w.copy() for w in model.keras_model.get_weights()]


def assert_unchanged(model, before):
    after = model.keras_model.get_weights()
    assert len(after) == len(before)
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a, b)


def layer_shapes(model, name):
    return [tuple(w.shape) for w in model.keras_model.get_layer(name).weights]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(shapes model with 4 classes, its saved checkpoint, 3-class model)."""
    root = tmp_path_factory.mktemp("weights")
    source = modellib.MaskRCNN("inference", TinyConfig(), str(root / "a"))
    rng = np.random.default_rng(0)
    for w in source.keras_model.weights:  # distinct values everywhere
        w.assign(rng.uniform(0.5, 1.5, w.shape).astype("float32"))
    path = str(root / "mask_rcnn_shapes.weights.h5")
    source.save_weights(path)
    target = modellib.MaskRCNN("inference", TwoClassConfig(), str(root / "b"))
    return source, path, target


def test_other_class_count_names_layers_shapes_and_the_fix(models):
    source, path, target = models
    before = all_weights(target)
    log_dir, epoch = target.log_dir, target.epoch
    with pytest.raises(ValueError) as info:
        target.load_weights(path, by_name=True)
    message = str(info.value)
    assert path in message
    differing = [name for name in CLASS_SPECIFIC_LAYERS
                 if target.keras_model.get_layer(name).weights
                 and layer_shapes(source, name) != layer_shapes(target, name)]
    assert differing, "the class counts should change some head shapes"
    for name in differing:
        line = next(line for line in message.splitlines()
                    if line.strip().startswith(name + ":"))
        for shape in layer_shapes(source, name) + layer_shapes(target, name):
            assert str(shape) in line, (name, shape, line)
    # Nothing was loaded, and the run bookkeeping was left alone.
    assert_unchanged(target, before)
    assert (target.log_dir, target.epoch) == (log_dir, epoch)

    # The exclude list the message proposes makes the load work.
    proposed = ast.literal_eval(re.search(r"exclude=(\[.*?\])",
                                          message).group(1))
    assert set(CLASS_SPECIFIC_LAYERS) <= set(proposed)
    report = target.load_weights(path, by_name=True, exclude=proposed)
    assert sorted(report.skipped) == sorted(
        n for n in proposed if target.keras_model.get_layer(n).weights)
    for name in ("conv1", "fpn_p2", "mrcnn_class_conv1"):
        for got, want in zip(target.keras_model.get_layer(name).get_weights(),
                             source.keras_model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)
    kept = target.keras_model.get_layer("mrcnn_class_logits").get_weights()
    assert kept[0].shape[-1] == TwoClassConfig.NUM_CLASSES


def test_find_last_without_checkpoints_names_model_dir(models, tmp_path):
    _, _, target = models
    target.model_dir = str(tmp_path)
    (tmp_path / "weights20240101T0000").mkdir()  # a run that saved nothing
    with pytest.raises(FileNotFoundError) as info:
        target.find_last()
    assert str(tmp_path) in str(info.value)
    assert "weights" in str(info.value)


def broken_checkpoint(good_path, folder, kind):
    """What a user may end up with instead of a checkpoint, at the path of
    epoch 3 of a run (so a wrong set_log_dir would show)."""
    data = open(good_path, "rb").read()
    content = {
        "truncated": data[:len(data) // 3],  # disk full, interrupted copy
        # a bad disk sector or a damaged transfer: array bytes changed,
        # the HDF5 structure intact (HDF5 keeps no checksum of its own)
        "garbled": garbled_array_bytes(good_path, data),
        # a download that saved the server's error page
        "html": b"<!DOCTYPE html><html><body>Not Found</body></html>",
        "empty": b"",
    }[kind]
    run_dir = os.path.join(folder, "weights20240101T0000")
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, "mask_rcnn_weights_0003.weights.h5")
    with open(path, "wb") as f:
        f.write(content)
    return path


def garbled_array_bytes(path, data):
    """data with 64 bytes inverted in the middle of the largest array."""
    with h5py.File(path, "r") as f:
        arrays = []
        f.visititems(lambda name, node: arrays.append(
            (node.id.get_storage_size(), node.id.get_offset()))
            if isinstance(node, h5py.Dataset) else None)
    size, offset = max(arrays)
    start = offset + size // 2
    garbled = bytearray(data)
    garbled[start:start + 64] = bytes(255 - b for b in data[start:start + 64])
    return bytes(garbled)


@pytest.mark.parametrize("kind,expected", [
    ("truncated", r"truncated or corrupt"),
    ("garbled", r"is corrupt: its arrays no longer match"),
    ("html", r"not an HDF5 file"),
    ("empty", r"not an HDF5 file"),
])
def test_broken_checkpoint_is_named_and_changes_nothing(models, tmp_path,
                                                        kind, expected):
    _, path, target = models
    broken = broken_checkpoint(path, str(tmp_path), kind)
    before = all_weights(target)
    log_dir, epoch = target.log_dir, target.epoch
    for by_name in (True, False):
        with pytest.raises(WeightsFileError, match=expected) as info:
            target.load_weights(broken, by_name=by_name)
        assert broken in str(info.value)
    assert_unchanged(target, before)
    # A failed load must not move the run to the broken file's folder.
    assert (target.log_dir, target.epoch) == (log_dir, epoch)


# ------------------------------------------------ files that carry code

SENTINEL_NAME = "code_from_weights_file_ran"


def lambda_model_config(sentinel):
    """A Keras 2 model_config whose Lambda layer holds marshalled bytecode
    that would create `sentinel` when run (as Keras 2 stored lambdas)."""
    source = "lambda x: (open({!r}, 'w').write('ran'), x)[1]".format(
        sentinel)
    code = marshal.dumps(eval(compile(source, "<lambda>", "eval")).__code__)
    layer = {"class_name": "Lambda", "name": "conv1", "config": {
        "name": "conv1", "function": [base64.b64encode(code).decode("ascii"),
                                      None, None],
        "function_type": "lambda", "arguments": {}}}
    return json.dumps({"class_name": "Functional", "config": {
        "name": "mask_rcnn", "layers": [layer]}})


def write_legacy_full_model(path, model, sentinel):
    """A Keras 2 ``model.save`` file: model_config with the Lambda above,
    and model_weights holding conv1 (kernel, bias) in the legacy layout."""
    kernel, bias = [np.full(w.shape, 0.25 * (i + 1), np.float32) for i, w in
                    enumerate(model.keras_model.get_layer("conv1").weights)]
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = lambda_model_config(sentinel)
        f.attrs["keras_version"] = "2.2.4"
        weights = f.create_group("model_weights")
        weights.attrs["layer_names"] = [b"conv1"]
        group = weights.create_group("conv1")
        group.attrs["weight_names"] = [b"conv1/kernel:0", b"conv1/bias:0"]
        group["conv1/kernel:0"] = kernel
        group["conv1/bias:0"] = bias
    return kernel, bias


@pytest.fixture
def no_deserializing(monkeypatch):
    """Every way a weights loader could turn file content into objects or
    code raises and is recorded."""
    calls = []

    def forbidden(name, real):
        def call(*args, **kwargs):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller.startswith("importlib"):  # Python importing a .pyc
                return real(*args, **kwargs)
            calls.append(name)
            raise AssertionError("loading weights called " + name)
        return call

    import keras.src.saving.serialization_lib as serialization_lib
    import keras.src.utils.python_utils as python_utils
    for owner, name in [(marshal, "loads"), (pickle, "loads"),
                        (pickle, "load"), (python_utils, "func_load"),
                        (serialization_lib, "deserialize_keras_object"),
                        (keras.saving, "deserialize_keras_object"),
                        (keras.models, "model_from_json"),
                        (keras.saving, "load_model")]:
        monkeypatch.setattr(owner, name, forbidden(
            "{}.{}".format(owner.__name__, name), getattr(owner, name)))
    return calls


def test_legacy_model_file_with_code_loads_arrays_only(models, tmp_path,
                                                       no_deserializing):
    _, _, target = models
    sentinel = str(tmp_path / SENTINEL_NAME)
    path = str(tmp_path / "mask_rcnn_coco.h5")
    kernel, bias = write_legacy_full_model(path, target, sentinel)
    report = target.load_weights(path, by_name=True)
    assert report.loaded == ["conv1"]
    got_kernel, got_bias = target.keras_model.get_layer("conv1").get_weights()
    np.testing.assert_array_equal(got_kernel, kernel)
    np.testing.assert_array_equal(got_bias, bias)
    assert no_deserializing == []
    assert not os.path.exists(sentinel)


@pytest.mark.parametrize("by_name", [True, False])
def test_checkpoint_with_code_in_attributes_is_not_run(models, tmp_path,
                                                       no_deserializing,
                                                       by_name):
    source, path, target = models
    sentinel = str(tmp_path / SENTINEL_NAME)
    tampered = str(tmp_path / "mask_rcnn_shapes.weights.h5")
    with open(path, "rb") as f, open(tampered, "wb") as g:
        g.write(f.read())
    with h5py.File(tampered, "a") as f:
        f.attrs["model_config"] = lambda_model_config(sentinel)
        f["layers"].attrs["config"] = lambda_model_config(sentinel)
    # by_name=False goes through Keras' own loader: same structure needed.
    loader = source if not by_name else target
    loader.load_weights(tampered, by_name=by_name,
                        exclude=None if not by_name else CLASS_SPECIFIC_LAYERS)
    assert no_deserializing == []
    assert not os.path.exists(sentinel)
    np.testing.assert_array_equal(
        loader.keras_model.get_layer("conv1").get_weights()[0],
        source.keras_model.get_layer("conv1").get_weights()[0])
