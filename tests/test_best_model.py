"""Best checkpoint and early stopping (train(monitor=..., patience=...)) on
tiny runs: a scripted validation metric, a real plateau, and resuming."""

import json
import logging
import os

import h5py
import numpy as np
import pytest

from mrcnn.training import best_model
from mrcnn.evaluation import evaluate
from mrcnn import model as modellib
from samples.shapes.shapes import ShapesDataset
from tests import tiny


class BestConfig(tiny.TinyConfig):
    NAME = "best"
    IMAGES_PER_GPU = 1
    # Frozen batch norm: with learning rate 0 nothing changes between epochs.
    TRAIN_BN = False


def shapes_dataset(count, seed):
    dataset = ShapesDataset()
    dataset.load_shapes(count, 64, 64, seed=seed, max_shapes=2)
    dataset.prepare()
    return dataset


def h5_arrays(path):
    """Every dataset of an h5 file, by its path inside the file."""
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()])
                     if isinstance(obj, h5py.Dataset) else None)
    return arrays


def assert_same_weights(path_a, path_b):
    a, b = h5_arrays(path_a), h5_arrays(path_b)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def assert_different_weights(path_a, path_b):
    a, b = h5_arrays(path_a), h5_arrays(path_b)
    assert any(not np.array_equal(a[name], b[name]) for name in a)


class ScriptedEvaluation:
    """Stands in for evaluate.evaluate_model: the mask AP50 of each call
    comes from a list, so the test knows which epoch is best."""

    def __init__(self, values):
        self.values = list(values)
        self.calls = 0

    def __call__(self, model, dataset, iou_types=("segm",), **kwargs):
        value = self.values[self.calls]
        self.calls += 1
        stats = {"AP": value / 2, "AP50": value, "AP75": value / 4}
        return {"num_images": len(dataset.image_ids), "mAP50": value,
                "mAP": value / 2, **{t: dict(stats) for t in iou_types}}


def test_best_file_early_stop_and_resume(tmp_path, monkeypatch, capsys,
                                         caplog):
    dataset = shapes_dataset(2, seed=3)
    model_dir = str(tmp_path)
    scripted = ScriptedEvaluation([0.1, 0.3, 0.2, 0.25])
    monkeypatch.setattr(evaluate, "evaluate_model", scripted)
    model = modellib.MaskRCNN("training", BestConfig(), model_dir)
    with caplog.at_level(logging.INFO, logger="mrcnn.training.best_model"):
        history = model.train(dataset, dataset, learning_rate=0.01,
                              epochs=10, layers="heads", workers=1,
                              monitor="val_mask_ap50", patience=2)
    out = capsys.readouterr().out

    # Best at epoch 2, then two epochs without improvement: stop after 4.
    assert history.epoch == [0, 1, 2, 3]
    assert history.history["eval_segm_AP50"] == [0.1, 0.3, 0.2, 0.25]
    assert model.epoch == 4
    best_path, json_path = best_model.best_paths(model.log_dir, "best")
    assert os.path.basename(best_path) == "mask_rcnn_best_best.weights.h5"
    epoch_path = os.path.join(model.log_dir, "mask_rcnn_best_{:04d}.weights.h5")
    assert_same_weights(best_path, epoch_path.format(2))
    assert_different_weights(best_path, epoch_path.format(4))
    with open(json_path) as f:
        assert json.load(f) == {"monitor": "val_mask_ap50", "best": 0.3,
                                "epoch": 2}
    message = ("Early stop after epoch 4: val_mask_ap50 has not improved for "
               "2 epochs; best 0.3000 at epoch 2")
    assert message in out
    assert message in caplog.text
    # The best file is no epoch checkpoint: find_last still gives epoch 4.
    last = model.find_last()
    assert last == epoch_path.format(4)
    assert not [f for f in os.listdir(model.log_dir) if ".tmp" in f]

    # Resuming from the last checkpoint keeps the run's best score: 0.28
    # does not beat 0.3, 0.35 does.
    scripted = ScriptedEvaluation([0.28, 0.35])
    monkeypatch.setattr(evaluate, "evaluate_model", scripted)
    resumed = modellib.MaskRCNN("training", BestConfig(), model_dir)
    resumed.load_weights(last, by_name=True)
    assert resumed.log_dir == model.log_dir and resumed.epoch == 4
    resumed.train(dataset, dataset, learning_rate=0.01, epochs=5,
                  layers="heads", workers=1, monitor="val_mask_ap50",
                  patience=2)
    out = capsys.readouterr().out
    assert "Best val_mask_ap50 so far: 0.3000 (epoch 2)" in out
    assert_same_weights(best_path, epoch_path.format(2))
    resumed.train(dataset, dataset, learning_rate=0.01, epochs=6,
                  layers="heads", workers=1, monitor="val_mask_ap50",
                  patience=2)
    assert "improved from 0.3000 to 0.3500" in capsys.readouterr().out
    assert_same_weights(best_path, epoch_path.format(6))
    with open(json_path) as f:
        assert json.load(f) == {"monitor": "val_mask_ap50", "best": 0.35,
                                "epoch": 6}


def test_a_real_plateau_stops_after_patience_epochs(tmp_path, capsys):
    # Learning rate 0 and frozen batch norm: the weights never change, so
    # the real evaluation gives the same AP after every epoch.
    class ConfidentPlateau(BestConfig):
        NAME = "plateau"
        DETECTION_MIN_CONFIDENCE = 0.0
    dataset = shapes_dataset(2, seed=4)
    model = modellib.MaskRCNN("training", ConfidentPlateau(), str(tmp_path))
    history = model.train(dataset, dataset, learning_rate=0.0, epochs=5,
                          layers="heads", workers=1, monitor="val_mask_ap50",
                          patience=1)
    out = capsys.readouterr().out
    assert history.epoch == [0, 1]
    scores = history.history["eval_segm_AP50"]
    assert scores[0] == scores[1] and 0.0 <= scores[0] <= 1.0
    best_path, _ = best_model.best_paths(model.log_dir, "plateau")
    assert_same_weights(best_path, os.path.join(
        model.log_dir, "mask_rcnn_plateau_0001.weights.h5"))
    assert "Early stop after epoch 2: val_mask_ap50 has not improved for " \
           "1 epochs" in out


@pytest.mark.parametrize("kwargs, message", [
    ({"monitor": "val_accuracy"}, "monitor must be one of"),
    ({"monitor": None, "patience": 3}, "patience=3 needs a monitor"),
    ({"monitor": "val_loss", "patience": 0}, "patience must be None or"),
    ({"monitor": "val_loss", "has_val_feed": False},
     "monitor='val_loss' needs a val_dataset and VALIDATION_STEPS"),
    ({"monitor": "val_mask_ap50", "val_dataset": None},
     "monitor='val_mask_ap50' needs a val_dataset"),
])
def test_monitor_arguments_that_cannot_work_are_refused(kwargs, message,
                                                        tmp_path):
    arguments = {"monitor": None, "patience": None, "log_dir": str(tmp_path),
                 "name": "x", "val_dataset": object(), "has_val_feed": True,
                 "make_inference_model": lambda: None}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        best_model.training_callbacks(**arguments)


class FakeModel:
    stop_training = False

    def __init__(self):
        self.saved = []

    def save_weights(self, path):
        self.saved.append(path)
        with open(path, "w") as f:
            f.write("weights")


@pytest.mark.parametrize("monitor, values, best_epoch, stopped", [
    ("val_loss", [3.0, 2.0, 2.5, 2.0, 1.0], 2, 4),      # lower is better
    ("val_bbox_ap", [0.2, float("nan"), 0.1, 0.4], 1, 3),  # NaN: no better
    ("val_mask_ap", [-1.0, 0.0, 0.0, 0.0], 2, 4),       # -1: undefined AP
])
def test_improvement_rule_per_monitor(tmp_path, monitor, values, best_epoch,
                                      stopped):
    path = str(tmp_path / "mask_rcnn_x_best.weights.h5")
    callback = best_model.BestModelCheckpoint(monitor, path, patience=2)
    callback.set_model(FakeModel())
    key = best_model.MONITORS[monitor][0]
    for epoch, value in enumerate(values):
        callback.on_epoch_end(epoch, {key: value, "loss": 1.0})
        if callback.model.stop_training:
            break
    assert callback.best_epoch == best_epoch
    assert callback.stopped_epoch == stopped


def test_a_non_finite_loss_epoch_is_never_the_best(tmp_path):
    path = str(tmp_path / "mask_rcnn_x_best.weights.h5")
    callback = best_model.BestModelCheckpoint("val_loss", path)
    callback.set_model(FakeModel())
    callback.on_epoch_end(0, {"val_loss": 2.0, "loss": 1.0})
    callback.on_epoch_end(1, {"val_loss": 1.0, "loss": float("nan")})
    assert callback.best_epoch == 1 and len(callback.model.saved) == 1
