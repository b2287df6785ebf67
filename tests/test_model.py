"""MaskRCNN end to end on a tiny config: build, train, detect, weights."""

import datetime
import hashlib
import os
import re

import numpy as np
import pytest

from mrcnn.training import checkpoints
from mrcnn import model as modellib
from mrcnn.training.trainer import LOSS_NAMES
from samples.shapes.shapes import ShapesDataset
from tests import tiny


class TinyConfig(tiny.TinyConfig):
    STEPS_PER_EPOCH = 4
    VALIDATION_STEPS = 1


class TinyInferenceConfig(TinyConfig):
    IMAGES_PER_GPU = 1
    DETECTION_MIN_CONFIDENCE = 0.0


def shapes_dataset(count, seed):
    dataset = ShapesDataset()
    dataset.load_shapes(count, 64, 64, seed=seed, max_shapes=2)
    dataset.prepare()
    return dataset


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained for 2 epochs on 2 images, and its History."""
    model_dir = str(tmp_path_factory.mktemp("logs"))
    dataset = shapes_dataset(2, seed=3)
    model = modellib.MaskRCNN("training", TinyConfig(), model_dir)
    history = model.train(dataset, dataset, learning_rate=0.01, epochs=2,
                          layers="all", workers=1)
    return model, history, dataset, model_dir


def test_training_reports_each_loss_by_name(trained):
    model, history, _, _ = trained
    expected = {"loss", *LOSS_NAMES}
    assert set(history.history) == expected | {"val_" + k for k in expected}
    for values in history.history.values():
        assert len(values) == 2 and np.all(np.isfinite(values))
    assert model.epoch == 2


def test_checkpoint_per_epoch_and_find_last(trained):
    model, _, _, model_dir = trained
    last = model.find_last()
    assert re.search(r"mask_rcnn_tiny_0002\.weights\.h5$", last)
    assert os.path.exists(last.replace("0002", "0001"))
    # Loading a checkpoint continues its epoch count and log dir.
    model.load_weights(last, by_name=True)
    assert model.epoch == 2
    assert model.log_dir == os.path.dirname(last)


def test_second_train_call_continues_without_stacking_metrics(trained):
    model, _, dataset, _ = trained
    history = model.train(dataset, None, learning_rate=0.001, epochs=3,
                          layers="heads", workers=1)
    assert history.epoch == [2]
    assert set(history.history) == {"loss", *LOSS_NAMES}
    assert model.epoch == 3


def test_training_from_an_earlier_epoch_keeps_the_later_ones(trained,
                                                             monkeypatch):
    model, _, dataset, model_dir = trained
    run_dir = os.path.dirname(model.find_last())
    files = sorted(os.listdir(run_dir))
    digests = {f: file_digest(os.path.join(run_dir, f)) for f in files
               if f.endswith(".h5")}
    assert len(digests) >= 2
    # Fine-tuning from epoch 1, in the same minute as the run started.
    minute = datetime.datetime.strptime(os.path.basename(run_dir)[-13:],
                                        "%Y%m%dT%H%M")
    monkeypatch.setattr(checkpoints, "_now", lambda: minute)
    first = os.path.join(run_dir, "mask_rcnn_tiny_0001.weights.h5")
    model.load_weights(first, by_name=True)
    assert model.epoch == 1
    history = model.train(dataset, None, learning_rate=0.001, epochs=2,
                          layers="heads", workers=1)
    assert history.epoch == [1]
    # Epoch 2 went to a new folder, which names where it came from ...
    new_dir = model.log_dir
    assert os.path.dirname(new_dir) == model_dir and new_dir != run_dir
    assert os.path.basename(new_dir).startswith(os.path.basename(run_dir))
    assert checkpoints.read_parent(new_dir) == {
        "checkpoint": os.path.abspath(first), "epoch": 1}
    assert model.find_last() == os.path.join(
        new_dir, "mask_rcnn_tiny_0002.weights.h5")
    # ... and the old run is as it was.
    assert sorted(os.listdir(run_dir)) == files
    assert {f: file_digest(os.path.join(run_dir, f)) for f in digests} \
        == digests


def file_digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_losses_fall_when_overfitting_one_image(tmp_path):
    config = TinyConfig()
    config.IMAGES_PER_GPU = 1
    config.BATCH_SIZE = 1
    dataset = shapes_dataset(1, seed=11)
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    feed = modellib.MaskRCNNDataset(dataset, config, shuffle=False, steps=1)
    batch = feed[0]
    model.set_trainable(".*", verbose=0)
    model.compile(0.01, 0.9)
    keras_model = model.keras_model

    def train_losses():
        # Training-mode losses of one step (batch norm uses batch statistics,
        # as during training); reset so that the trackers hold this step only.
        keras_model.reset_metrics()
        return keras_model.train_on_batch(batch, return_dict=True)

    first = train_losses()
    for _ in range(30):
        last = train_losses()
    assert last["loss"] < 0.5 * first["loss"], (first, last)
    for name in ("rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss"):
        assert last[name] < first[name], (name, first, last)


def test_heads_layers_train_only_heads(trained):
    model, _, _, _ = trained
    names = model.set_trainable(modellib.LAYER_REGEX["heads"], verbose=0)
    assert names, "no trainable layers"
    assert all(re.match(r"(mrcnn_|rpn_|fpn_)", n) for n in names)
    expected = {layer.name for layer in model.get_trainable_layers()
                if re.fullmatch(modellib.LAYER_REGEX["heads"], layer.name)}
    assert set(names) == expected
    backbone = [layer for layer in model.get_trainable_layers()
                if layer.name.startswith(("res", "bn", "conv1"))]
    assert backbone and not any(layer.trainable for layer in backbone)
    # rpn_model's own layers are trainable, so its weights are trained.
    rpn_vars = model.keras_model.get_layer("rpn_model").trainable_weights
    assert len(rpn_vars) == 6


def test_4plus_selects_stage_4_and_up(trained):
    model, _, _, _ = trained
    names = set(model.set_trainable(modellib.LAYER_REGEX["4+"], verbose=0))
    assert "res4a_branch2a" in names and "res5a_branch2a" in names
    assert not any(n.startswith(("res3", "bn3", "res2", "conv1")) for n in names)


def test_inference_from_checkpoint_has_documented_structure(trained, tmp_path):
    model, _, dataset, model_dir = trained
    inference = modellib.MaskRCNN("inference", TinyInferenceConfig(),
                                  model_dir)
    inference.load_weights(model.find_last(), by_name=True)
    images = [dataset.load_image(0), np.zeros((50, 70, 3), np.uint8),
              dataset.load_image(1)]
    results = inference.detect(images)
    assert len(results) == 3
    for image, r in zip(images, results):
        assert set(r) == {"rois", "class_ids", "scores", "masks"}
        n = len(r["class_ids"])
        assert r["rois"].shape == (n, 4)
        assert r["scores"].shape == (n,)
        assert r["masks"].shape == image.shape[:2] + (n,)
        assert r["masks"].dtype == bool
        assert n <= TinyInferenceConfig.DETECTION_MAX_INSTANCES
        if n:
            assert np.all(r["rois"][:, :2] >= 0)
            assert np.all(r["rois"][:, 2] <= image.shape[0])
            assert np.all(r["rois"][:, 3] <= image.shape[1])
            assert np.all(np.diff(r["scores"]) <= 1e-6)  # sorted by score
            assert set(r["class_ids"]) <= {1, 2, 3}
    # The batch of three equals three single detects.
    single = inference.detect([images[2]])[0]
    np.testing.assert_array_equal(single["rois"], results[2]["rois"])


def test_weights_round_trip_between_modes(trained, tmp_path):
    model, _, _, model_dir = trained
    path = str(tmp_path / "copy.weights.h5")
    model.save_weights(path)
    inference = modellib.MaskRCNN("inference", TinyInferenceConfig(),
                                  str(tmp_path))
    inference.load_weights(path, by_name=True)
    for name in ("conv1", "fpn_p2", "mrcnn_mask", "mrcnn_class_logits"):
        for a, b in zip(model.keras_model.get_layer(name).get_weights(),
                        inference.keras_model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    rpn_a = model.keras_model.get_layer("rpn_model").get_weights()
    rpn_b = inference.keras_model.get_layer("rpn_model").get_weights()
    for a, b in zip(rpn_a, rpn_b):
        np.testing.assert_array_equal(a, b)


def test_run_graph_returns_named_intermediates(trained):
    _, _, dataset, model_dir = trained
    inference = modellib.MaskRCNN("inference", TinyInferenceConfig(),
                                  model_dir)
    out = inference.run_graph([dataset.load_image(0)], [
        ("proposals", inference.keras_model.get_layer("ROI").output),
        ("detections", "mrcnn_detection"),
    ])
    assert list(out) == ["proposals", "detections"]
    assert out["proposals"].shape == (1, TinyConfig.POST_NMS_ROIS_INFERENCE, 4)
    assert out["detections"].shape == (1, TinyConfig.DETECTION_MAX_INSTANCES, 6)


def test_detect_rejects_bad_images(trained):
    _, _, _, model_dir = trained
    inference = modellib.MaskRCNN("inference", TinyInferenceConfig(),
                                  model_dir)
    with pytest.raises(ValueError, match="image 0 has shape"):
        inference.detect([np.zeros((32, 32, 4), np.uint8)])
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        inference.detect([np.random.rand(32, 32, 3)])
    with pytest.raises(RuntimeError, match="inference mode"):
        modellib.MaskRCNN.detect(
            type("M", (), {"mode": "training"})(), [np.zeros((8, 8, 3))])


def test_training_with_worker_processes_ends_them(tmp_path):
    import multiprocessing

    import keras

    seen = []

    class CountWorkers(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(len(multiprocessing.active_children()))

    dataset = shapes_dataset(2, seed=4)
    model = modellib.MaskRCNN("training", TinyConfig(), str(tmp_path))
    history = model.train(dataset, None, learning_rate=0.01, epochs=1,
                          layers="heads", workers=2, use_multiprocessing=True,
                          custom_callbacks=[CountWorkers()])
    assert all(np.isfinite(v[0]) for v in history.history.values())
    assert seen and max(seen) >= 2  # the batches came from 2 workers
    assert not multiprocessing.active_children()  # and they ended
