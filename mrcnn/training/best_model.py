"""Best checkpoint and early stopping on a validation metric.

    model.train(dataset_train, dataset_val, learning_rate=0.001, epochs=100,
                layers="heads", monitor="val_mask_ap50", patience=5)

After each epoch the monitored value is read from the epoch's logs: Keras'
own ``val_loss``, or an AP that an EvaluationCallback (mrcnn.evaluation.evaluate)
computes on the validation set with an inference twin of the model. When it
improves, the weights are saved, atomically, as
``mask_rcnn_<name>_best.weights.h5`` beside the per-epoch checkpoints, and
the score as ``mask_rcnn_<name>_best.json``. After ``patience`` epochs
without improvement training stops, and the log says so. Training that
continues in the same run folder (a checkpoint of it loaded, or a second
train() call) reads the json back, so an epoch must beat the best score of
the whole run to replace the best file; the patience count starts afresh.
"""

import copy
import json
import logging
import math
import os

import keras

from mrcnn import atomic_files
from mrcnn.training import termination
from mrcnn.weights import loading as weights_io

logger = logging.getLogger(__name__)

# monitor name -> (key in the epoch logs, "min" or "max", evaluation type).
# The AP keys are those EvaluationCallback adds: eval_<type>_<COCO stat>.
MONITORS = {
    "val_loss": ("val_loss", "min", None),
    "val_mask_ap50": ("eval_segm_AP50", "max", "segm"),
    "val_mask_ap": ("eval_segm_AP", "max", "segm"),
    "val_bbox_ap50": ("eval_bbox_AP50", "max", "bbox"),
    "val_bbox_ap": ("eval_bbox_AP", "max", "bbox"),
}

# The best-model file's name ends so; find_last() passes it over.
from mrcnn.training.checkpoints import BEST_SUFFIX, is_best_checkpoint  # noqa: E402,F401


def best_paths(log_dir, name):
    """(weights path, score json path) of a run's best checkpoint."""
    stem = os.path.join(log_dir, "mask_rcnn_{}_best".format(name.lower()))
    return stem + ".weights.h5", stem + ".json"


def inference_config(config):
    """A copy of a training config for an inference twin on one device."""
    twin = copy.copy(config)
    twin.GPU_COUNT = 1
    twin.BATCH_SIZE = twin.IMAGES_PER_GPU
    return twin


def training_callbacks(monitor, patience, log_dir, name, val_dataset,
                       has_val_feed, make_inference_model):
    """The callbacks train() adds for `monitor` and `patience`.

    monitor: None (no best model, no early stop) or a key of MONITORS.
    patience: None (never stop) or epochs without improvement to stop after.
    val_dataset: the validation Dataset the APs are computed on;
        has_val_feed: whether Keras computes val_loss (VALIDATION_STEPS > 0).
    make_inference_model: no-argument callable returning an inference
        MaskRCNN, built at the first evaluation.
    Returns a list: [EvaluationCallback (for APs), BestModelCheckpoint].
    Raises ValueError for a monitor or patience that cannot work.
    """
    if monitor is None:
        if patience is not None:
            raise ValueError("train(): patience={} needs a monitor, e.g. "
                             "monitor='val_mask_ap50'".format(patience))
        return []
    if monitor not in MONITORS:
        raise ValueError("train(): monitor must be one of {}, got {!r}".format(
            sorted(MONITORS), monitor))
    if patience is not None and (isinstance(patience, bool) or not isinstance(
            patience, int) or patience < 1):
        raise ValueError("train(): patience must be None or an int >= 1, got "
                         "{!r}".format(patience))
    _, _, iou_type = MONITORS[monitor]
    callbacks = []
    if iou_type is None:
        if not has_val_feed:
            raise ValueError("train(): monitor='val_loss' needs a val_dataset "
                             "and VALIDATION_STEPS > 0")
    else:
        if val_dataset is None:
            raise ValueError("train(): monitor={!r} needs a val_dataset to "
                             "evaluate".format(monitor))
        from mrcnn.evaluation.evaluate import EvaluationCallback
        callbacks.append(EvaluationCallback(
            make_inference_model, val_dataset, every=1, log_dir=log_dir,
            iou_types=(iou_type,)))
    weights_path, _ = best_paths(log_dir, name)
    callbacks.append(BestModelCheckpoint(monitor, weights_path, patience))
    return callbacks


class BestModelCheckpoint(keras.callbacks.Callback):
    """Keeps the best epoch's weights and stops after `patience` epochs
    without improvement (strictly better: higher AP, lower loss).

    weights_path: where the best weights go (see best_paths); the score
    goes to the json beside it and is read back at construction.
    Attributes: best (the best score, None before any), best_epoch
    (1-based), stopped_epoch (1-based epoch that stopped training, or None).
    """

    def __init__(self, monitor, weights_path, patience=None):
        super().__init__()
        self.monitor = monitor
        self.log_key, self.mode, _ = MONITORS[monitor]
        self.weights_path = weights_path
        self.json_path = weights_path[:-len(".weights.h5")] + ".json"
        self.patience = patience
        self.wait = 0
        self.stopped_epoch = None
        self.best, self.best_epoch = self._read_state()

    def _read_state(self):
        if not os.path.exists(self.json_path):
            return None, None
        with open(self.json_path) as f:
            state = json.load(f)
        if state.get("monitor") != self.monitor:
            logger.warning("%s holds the best %s, not %s: the best model "
                           "starts afresh", self.json_path,
                           state.get("monitor"), self.monitor)
            return None, None
        print("Best {} so far: {:.4f} (epoch {})".format(
            self.monitor, state["best"], state["epoch"]))
        return float(state["best"]), int(state["epoch"])

    def _improves(self, value):
        if value is None or not math.isfinite(value):
            return False
        if self.mode == "max" and value < 0:
            # COCOeval's -1: undefined (no ground truth to score).
            logger.warning("%s is undefined (%s); the best model is not "
                           "updated", self.monitor, value)
            return False
        if self.best is None:
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = logs.get(self.log_key)
        if value is None:
            logger.warning("epoch %d: no %s in the logs; the best model is "
                           "not updated", epoch + 1, self.log_key)
        value = None if value is None else float(value)
        losses_finite = all(math.isfinite(float(v)) for k, v in logs.items()
                            if k.endswith("loss"))
        if losses_finite and self._improves(value):
            self._save(epoch + 1, value)
            self.wait = 0
            return
        self.wait += 1
        if self.patience is not None and self.wait >= self.patience:
            self.stopped_epoch = epoch + 1
            self.model.stop_training = True
            self._say("Early stop after epoch {}: {} has not improved for {} "
                      "epochs; best {:.4f} at epoch {} ({})".format(
                          epoch + 1, self.monitor, self.wait, self.best
                          if self.best is not None else float("nan"),
                          self.best_epoch, self.weights_path))

    def _save(self, epoch, value):
        # A SIGTERM waits for both: the score always matches the weights.
        with termination.writing():
            weights_io.save_weights(self.model, self.weights_path)
            self._write_json({"monitor": self.monitor, "best": value,
                              "epoch": epoch})
        previous = self.best
        self.best, self.best_epoch = value, epoch
        self._say("Epoch {}: {} {} {:.4f}; saved {}".format(
            epoch, self.monitor, "improved from {:.4f} to".format(previous)
            if previous is not None else "is", value, self.weights_path))

    def _write_json(self, state):
        # Written and renamed, like the weights: never half a file.
        atomic_files.write_json(self.json_path, state)

    @staticmethod
    def _say(message):
        # On stdout with Keras' progress lines, and to the logging system.
        print(message)
        logger.info(message)
