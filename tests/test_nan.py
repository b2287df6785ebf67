"""Numeric faults: a non-finite loss stops training, names the loss and the
batch's images, and leaves the last good checkpoint as the last one."""

import os
import re

import h5py
import keras
import numpy as np
import pytest

from mrcnn import model as modellib
from mrcnn.training.trainer import NonFiniteLossError
from samples.shapes.shapes import ShapesDataset
from tests import tiny

POISONED_IMAGE = 1


class TinyConfig(tiny.TinyConfig):
    NAME = "nan"


class PoisonedShapes(ShapesDataset):
    """Shapes whose image POISONED_IMAGE turns bad once ``poisoned`` is set.

    The pixels stay finite (NaN pixels are refused by load_image_gt), but
    alternate between the largest float32 values of either sign, which
    overflow inside the first convolution as exploding activations do.
    """
    poisoned = False

    def load_image(self, image_id):
        image = super().load_image(image_id)
        if self.poisoned and image_id == POISONED_IMAGE:
            huge = np.finfo(np.float32).max
            signs = np.indices(image.shape).sum(axis=0) % 2 * 2 - 1
            return (signs * huge).astype(np.float32)
        return image


class PoisonFromEpoch(keras.callbacks.Callback):
    """Sets dataset.poisoned when epoch `first` (1-based) begins. Keras
    builds a batch before its epoch begins only for the first epoch (to
    infer the input signature), so epochs before `first` stay clean."""

    def __init__(self, dataset, first):
        super().__init__()
        self.dataset = dataset
        self.first = first
        self.epochs_begun = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs_begun.append(epoch + 1)
        self.dataset.poisoned = epoch + 1 >= self.first


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """Trains 3 epochs of 2 steps on 4 images; epoch 2 meets the bad image.

    Returns (model, raised error, the poisoning callback).
    """
    config = TinyConfig()
    dataset = PoisonedShapes()
    dataset.load_shapes(config.STEPS_PER_EPOCH * config.BATCH_SIZE, 64, 64,
                        seed=5, max_shapes=2)
    dataset.prepare()
    model = modellib.MaskRCNN("training", config,
                              str(tmp_path_factory.mktemp("logs")))
    poison = PoisonFromEpoch(dataset, first=2)
    with pytest.raises(NonFiniteLossError) as info:
        model.train(dataset, None, learning_rate=0.01, epochs=3,
                    layers="all", workers=1, custom_callbacks=[poison])
    return model, info.value, poison


def test_error_names_loss_epoch_and_batch_images(stopped_run):
    _, error, poison = stopped_run
    message = str(error)
    assert poison.epochs_begun == [1, 2]  # epoch 3 never started
    assert "of epoch 2" in message
    # "<loss name>=nan" (or inf) for at least one loss.
    assert re.search(r"\b(loss|\w+_loss)=(nan|inf|-inf)\b", message), message
    match = re.search(r"batch image ids: \[([\d, ]+)\]", message)
    assert match, message
    image_ids = [int(i) for i in match.group(1).split(",")]
    assert POISONED_IMAGE in image_ids
    assert len(image_ids) == TinyConfig().BATCH_SIZE


def test_last_good_checkpoint_stays_the_last(stopped_run):
    model, _, _ = stopped_run
    files = sorted(os.listdir(model.log_dir))
    checkpoints = [f for f in files if f.endswith(".weights.h5")]
    # Epoch 1 was saved; the broken epoch 2 was not, nor any temporary.
    assert checkpoints == ["mask_rcnn_nan_0001.weights.h5"], files
    last = model.find_last()
    assert os.path.basename(last) == "mask_rcnn_nan_0001.weights.h5"
    with h5py.File(last, "r") as f:
        arrays = []
        f.visititems(lambda name, obj: arrays.append(obj[()])
                     if isinstance(obj, h5py.Dataset) else None)
    assert arrays and all(np.all(np.isfinite(a)) for a in arrays)


def test_training_resumes_from_the_good_checkpoint(stopped_run):
    model, _, _ = stopped_run
    # Loading the last checkpoint restores finite weights and the epoch
    # count, so train(..., epochs=3) reruns epochs 2 and 3.
    model.load_weights(model.find_last(), by_name=True)
    assert model.epoch == 1
    assert all(np.all(np.isfinite(w)) for w in
               model.keras_model.get_weights())
