"""Subprocess for tests/test_resume.py: a training run that can be killed.

Two modes:

``train MODEL_DIR --epochs E [--pause-epoch N --marker PATH]``
    Trains a tiny shapes model to epoch E, resuming from
    ``model.find_last()`` when a checkpoint exists (the way a user restarts
    an interrupted run). With --pause-epoch, the first run that reaches the
    middle of epoch N (1-based) writes PATH and sleeps, so the test can
    SIGKILL it there; a run that finds PATH already present goes on. Prints
    ``RECORD {json}`` lines when training starts, at each epoch's start
    and when training ends.

``train MODEL_DIR --epochs E --fine-tune-epoch K --monitor
--pause WHERE:N ... --markers DIR``
    The samples' schedule: heads at LEARNING_RATE to epoch K, then all
    layers at LEARNING_RATE / 10 to epoch E, evaluating the mask AP50 after
    every epoch (--monitor). Each --pause point, "train:N" (the middle of
    epoch N), "eval:N" (the evaluation after epoch N) or "save:N" (epoch
    N's checkpoint written under its temporary name, not yet renamed),
    writes DIR/<where><N> there and waits for DIR/<where><N>.go, unless
    DIR/<where><N> is already there: the test sends SIGTERM at that point.

``save-hang PATH --marker MARKER``
    Saves a small Keras model with mrcnn.weights.loading.save_weights, but stops
    halfway through writing (the temporary file half written), writes
    MARKER and sleeps: a kill during a checkpoint write.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from mrcnn import model as modellib  # noqa: E402
from mrcnn.weights import loading as weights_io  # noqa: E402
from samples.shapes.shapes import ShapesDataset  # noqa: E402
from tests.tiny import TinyConfig  # noqa: E402

LEARNING_RATE = 0.02
HANG_SECONDS = 600  # far longer than any test waits


class ResumeConfig(TinyConfig):
    NAME = "resume"
    IMAGES_PER_GPU = 1


def record(kind, **values):
    """One machine-readable line on stdout, flushed (the run may be
    killed right after)."""
    print("RECORD " + json.dumps(dict(values, kind=kind)), flush=True)


class PauseMidEpoch(keras.callbacks.Callback):
    """Before the second step of epoch `pause_epoch` (1-based), writes the
    marker and sleeps, unless the marker is already there."""

    def __init__(self, pause_epoch, marker):
        super().__init__()
        self.pause_epoch = pause_epoch
        self.marker = marker
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_begin(self, batch, logs=None):
        if self.epoch != self.pause_epoch or batch != 1:
            return
        if os.path.exists(self.marker):
            return
        with open(self.marker, "w") as f:
            f.write("paused in epoch {} before step {}\n".format(self.epoch,
                                                                batch + 1))
        time.sleep(HANG_SECONDS)


class PausePoints:
    """The --pause points of a run: pause(where, epoch) writes the marker
    and waits for its ".go" file the first time a point is reached."""

    def __init__(self, points, folder):
        self.points = set(points or [])
        self.folder = folder
        self.epoch = None  # 1-based, set by the callback below

    def pause(self, where, epoch):
        name = "{}{}".format(where, epoch)
        marker = os.path.join(self.folder or ".", name)
        if "{}:{}".format(where, epoch) not in self.points or \
                os.path.exists(marker):
            return
        with open(marker, "w") as f:
            f.write(name + "\n")
        deadline = time.monotonic() + HANG_SECONDS
        while not os.path.exists(marker + ".go") and \
                time.monotonic() < deadline:
            time.sleep(0.05)

    def callback(self):
        points = self

        class Pause(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                points.epoch = epoch + 1

            def on_train_batch_begin(self, batch, logs=None):
                if batch == 1:
                    points.pause("train", points.epoch)
        return Pause()

    def patch(self, keras_model):
        """Pauses in the evaluation (mrcnn.evaluation.evaluate.evaluate_model) and in
        the checkpoint write (keras_model.save_weights on the temporary)."""
        from mrcnn.evaluation import evaluate
        real_evaluate, real_save = evaluate.evaluate_model, \
            keras_model.save_weights

        def evaluate_model(*args, **kwargs):
            self.pause("eval", self.epoch)
            return real_evaluate(*args, **kwargs)

        def save_weights(filepath, *args, **kwargs):
            real_save(filepath, *args, **kwargs)
            if "_{:04d}.weights.h5".format(self.epoch) in str(filepath):
                self.pause("save", self.epoch)
        evaluate.evaluate_model = evaluate_model
        keras_model.save_weights = save_weights


class RecordEpochs(keras.callbacks.Callback):
    """Records the epochs run and the optimizer's learning rate."""

    def __init__(self):
        super().__init__()
        self.epochs = []
        self.learning_rates = []

    def on_epoch_begin(self, epoch, logs=None):
        rate = float(keras.ops.convert_to_numpy(
            self.model.optimizer.learning_rate))
        self.epochs.append(epoch + 1)
        self.learning_rates.append(rate)
        record("epoch", epoch=epoch + 1, learning_rate=rate)


def train(args):
    config = ResumeConfig()
    dataset = ShapesDataset()
    dataset.load_shapes(2, 64, 64, seed=7, max_shapes=2)
    dataset.prepare()
    model = modellib.MaskRCNN("training", config, args.model_dir)
    try:
        resumed_from = model.find_last()
    except FileNotFoundError:
        resumed_from = None
    if resumed_from:
        model.load_weights(resumed_from, by_name=True)
    record("start", resumed_from=resumed_from, initial_epoch=model.epoch,
           log_dir=model.log_dir, checkpoint_path=model.checkpoint_path)
    callbacks = [RecordEpochs()]
    if args.pause_epoch:
        callbacks.append(PauseMidEpoch(args.pause_epoch, args.marker))
    points = PausePoints(args.pause, args.markers)
    if args.pause:
        callbacks.append(points.callback())
        points.patch(model.keras_model)
    epochs_seen, history = [], None
    for learning_rate, epochs, layers in schedule(args):
        history = model.train(
            dataset, dataset if args.monitor else None,
            learning_rate=learning_rate, epochs=epochs, layers=layers,
            workers=1, custom_callbacks=callbacks,
            monitor="val_mask_ap50" if args.monitor else None)
        epochs_seen += [e + 1 for e in history.epoch]
    record("end", history_epochs=epochs_seen,
           epochs_begun=callbacks[0].epochs,
           learning_rates=callbacks[0].learning_rates,
           final_epoch=model.epoch, log_dir=model.log_dir,
           losses=[float(v) for v in history.history.get("loss", [])])


def schedule(args):
    """(learning rate, epoch to reach, layers) of each train() call."""
    if not args.fine_tune_epoch:
        return [(LEARNING_RATE, args.epochs, "all")]
    return [(LEARNING_RATE, args.fine_tune_epoch, "heads"),
            (LEARNING_RATE / 10, args.epochs, "all")]


def save_hang(args):
    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(64)(inputs))
    real_save = model.save_weights

    def save_then_hang(filepath, *a, **kw):
        real_save(filepath, *a, **kw)
        # What a kill leaves mid-write: a partial file at the temporary name.
        size = os.path.getsize(filepath)
        with open(filepath, "r+b") as f:
            f.truncate(size // 2)
        with open(args.marker, "w") as f:
            f.write(os.path.basename(filepath) + "\n")
        time.sleep(HANG_SECONDS)

    model.save_weights = save_then_hang
    weights_io.save_weights(model, args.path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    p = modes.add_parser("train")
    p.add_argument("model_dir")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--pause-epoch", type=int, default=0)
    p.add_argument("--marker")
    p.add_argument("--fine-tune-epoch", type=int, default=0)
    p.add_argument("--monitor", action="store_true")
    p.add_argument("--pause", nargs="*", default=[])
    p.add_argument("--markers")
    p = modes.add_parser("save-hang")
    p.add_argument("path")
    p.add_argument("--marker", required=True)
    args = parser.parse_args(argv)
    np.random.seed(0)
    if args.mode == "train":
        if args.pause_epoch and not args.marker:
            parser.error("--pause-epoch needs --marker")
        train(args)
    else:
        save_hang(args)


if __name__ == "__main__":
    main()
