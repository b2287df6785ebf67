"""The Keras model that trains Mask R-CNN, and its callbacks.

The losses are outputs of the graph (loss layers), so ``train_step`` only
weighs and sums them, adds weight decay, and applies clipped SGD updates.
Each loss is tracked by name, so the progress bar, the History and
TensorBoard all show ``rpn_class_loss`` ... ``mrcnn_mask_loss``.
"""

import contextlib
import logging
import math
import os

import tensorflow as tf
import keras

from mrcnn import runtime
from mrcnn.constants import LOSS_NAMES
from mrcnn.training import checkpoints
from mrcnn.training import distribute
from mrcnn.training import termination
from mrcnn.weights import loading as weights_io
from mrcnn.data import MaskRCNNDataset

logger = logging.getLogger(__name__)

# Regular expressions on layer names for the `layers` argument of
# MaskRCNN.train() (apply_trainable matches them in full).
LAYER_REGEX = {
    "heads": r"(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "3+": r"(res3.*)|(bn3.*)|(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "4+": r"(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "5+": r"(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "all": ".*",
}


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss."""


def _is_decayed(variable):
    """L2 decay applies to kernels and biases, never to BN gamma and beta."""
    name = variable.path if hasattr(variable, "path") else variable.name
    leaf = name.split("/")[-1].split(":")[0]
    return leaf not in ("gamma", "beta")


class MaskRCNNTrainingModel(keras.Model):
    """Functional Mask R-CNN training graph with a loss-summing train_step.

    The last five outputs of the graph are the loss layers, in LOSS_NAMES
    order. ``loss_weights`` maps those names to weights; ``weight_decay`` is
    the L2 factor (as the original: decay * sum(w^2) / size(w) per weight).
    """

    def __init__(self, inputs, outputs, loss_weights=None, weight_decay=0.0,
                 name="mask_rcnn", **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self.mrcnn_loss_weights = dict(loss_weights or {n: 1.0 for n in LOSS_NAMES})
        self.weight_decay = float(weight_decay)
        self.loss_trackers = {n: keras.metrics.Mean(name=n)
                              for n in ("loss",) + LOSS_NAMES}

    @property
    def metrics(self):
        # Only our trackers: Keras resets them each epoch, and calling
        # compile() again (heads first, then all) never stacks them.
        return list(self.loss_trackers.values())

    def _unpack(self, data):
        # The feed yields a dict of named inputs (x only); fit/evaluate may
        # wrap it as (x,), (x, None) or (x, None, None).
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return x

    def _named_losses(self, inputs, training):
        outputs = self(inputs, training=training)
        named = {}
        for name, value in zip(LOSS_NAMES, outputs[-len(LOSS_NAMES):]):
            named[name] = tf.reduce_mean(tf.cast(value, tf.float32))
        return named

    def _weight_decay_loss(self):
        if not self.weight_decay:
            return tf.constant(0.0)
        terms = [tf.reduce_sum(tf.square(tf.cast(w, tf.float32)))
                 / tf.cast(tf.size(w), tf.float32)
                 for w in self.trainable_weights if _is_decayed(w)]
        if not terms:
            return tf.constant(0.0)
        return self.weight_decay * tf.add_n(terms)

    def _weighted_total(self, named):
        weighted = [named[n] * self.mrcnn_loss_weights.get(n, 1.0) for n in LOSS_NAMES]
        return tf.add_n(weighted) + self._weight_decay_loss()

    def _update_trackers(self, named, total):
        self.loss_trackers["loss"].update_state(total)
        for name in LOSS_NAMES:
            self.loss_trackers[name].update_state(named[name])
        return distribute.logs_for_keras(
            {name: tracker.result()
             for name, tracker in self.loss_trackers.items()})

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Under a tf.distribute strategy Keras would take the first batch
        # off the feed (that batch is then never trained on) and average it
        # over the replicas to build the model, which fails on the bool
        # gt masks. The functional graph is built already: only the
        # optimizer still needs its variables, created under the strategy.
        if self._compile_loss is not None or self._compile_metrics is not None:
            return super()._maybe_symbolic_build(iterator, data_batch)
        if self.optimizer is not None and not self.optimizer.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)

    def train_step(self, data):
        inputs = self._unpack(data)
        variables = self.trainable_variables
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            named = self._named_losses(inputs, training=True)
            total = self._weighted_total(named)
            # Replica gradients are summed; dividing by the replica count
            # makes them the gradient of the global batch's mean loss.
            scaled = self.optimizer.scale_loss(total / replicas)
        grads = tape.gradient(scaled, variables)
        # The global batch's gradient on every replica before clipping, so
        # N replicas step as one device would (see mrcnn.training.distribute).
        grads = distribute.sum_over_replicas(grads, self.optimizer)
        self.optimizer.apply(grads, variables)
        return self._update_trackers(named, total)

    def test_step(self, data):
        inputs = self._unpack(data)
        named = self._named_losses(inputs, training=False)
        return self._update_trackers(named, self._weighted_total(named))


class CheckpointCallback(keras.callbacks.Callback):
    """Saves the weights after every epoch, atomically.

    ``path_template`` has an ``{epoch:04d}`` field filled with the 1-based
    epoch number. The file is written under a temporary name and renamed,
    so an interrupted write never leaves a broken checkpoint behind.
    """

    def __init__(self, path_template):
        super().__init__()
        self.path_template = path_template

    def on_epoch_end(self, epoch, logs=None):
        if logs and not all(math.isfinite(float(v)) for k, v in logs.items()
                            if k.endswith("loss")):
            logger.error("Epoch %d ended with a non-finite loss; its weights "
                         "are not saved.", epoch + 1)
            return
        path = self.path_template.format(epoch=epoch + 1)
        try:
            # A SIGTERM meanwhile waits: the finished epoch is kept.
            with termination.writing():
                weights_io.save_weights(self.model, path)
        except weights_io.WeightsWriteError as error:
            raise CheckpointSaveError(epoch + 1, path, error) from error


class CheckpointSaveError(OSError):
    """An epoch's checkpoint could not be written (disk full ...); the
    previous checkpoints are untouched. ``path``: the checkpoint's path;
    ``errno``: the cause's."""

    def __init__(self, epoch, path, cause):
        folder = os.path.dirname(path)
        earlier = (checkpoints.epoch_checkpoints(folder)
                   if os.path.isdir(folder) else [])
        original = cause.__cause__ or cause
        super().__init__(*weights_io.error_args(
            "Epoch {} finished but its checkpoint {} could not be saved "
            "({}: {}). The previous checkpoints are intact{}; fix the cause "
            "and resume from the last one (model.find_last())".format(
                epoch, path, type(original).__name__, original,
                " (last: {})".format(earlier[-1]) if earlier else
                " (there are none yet)"), cause))
        self.path = path


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training on a NaN or infinite loss, naming the loss.

    ``feed`` (the training PyDataset) lets the error message name the image
    ids of the offending batch. The last good checkpoint stays the last one
    on disk because the epoch in progress is never saved.
    """

    def __init__(self, feed=None):
        super().__init__()
        self.feed = feed
        self.error = None

    def on_train_batch_end(self, batch, logs=None):
        if not logs:
            return
        bad = [k for k, v in logs.items()
               if k.endswith("loss") and not math.isfinite(float(v))]
        if not bad:
            return
        image_ids = None
        if self.feed is not None and hasattr(self.feed, "image_ids_of_batch"):
            try:
                image_ids = self.feed.image_ids_of_batch(batch)
            except Exception:  # naming the images is best effort
                image_ids = None
        message = "Non-finite loss ({}) at step {} of epoch {}".format(
            ", ".join("{}={}".format(k, logs[k]) for k in bad), batch + 1,
            getattr(self, "_epoch", 0) + 1)
        if image_ids is not None:
            message += "; batch image ids: {}".format(list(image_ids))
        message += ". Training stopped; the last finished epoch's checkpoint " \
                   "is kept."
        logger.error(message)
        self.error = NonFiniteLossError(message)
        self.model.stop_training = True

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch


def apply_trainable(keras_model, layer_regex, verbose=0, indent=0):
    """Sets layer.trainable by a full regex match on the layer name.

    Nested models (rpn_model) are walked into rather than switched as a
    whole, so the match decides for each of their layers. Returns the names
    of the layers with weights that are trainable afterwards.
    """
    import re
    trainable_names = []
    for layer in keras_model.layers:
        if isinstance(layer, keras.Model):
            layer.trainable = True
            trainable_names += apply_trainable(layer, layer_regex, verbose,
                                               indent + 4)
            continue
        if not layer.weights:
            continue
        trainable = bool(re.fullmatch(layer_regex, layer.name))
        layer.trainable = trainable
        if trainable:
            trainable_names.append(layer.name)
            if verbose > 0:
                print("{}{:20}   ({})".format(" " * indent, layer.name,
                                              layer.__class__.__name__))
    return trainable_names


def layers_with_weights(keras_model):
    """The layers of keras_model that have weights, in order, nested models
    (rpn_model) walked into rather than listed."""
    layers = []
    stack = list(keras_model.layers)
    while stack:
        layer = stack.pop(0)
        if isinstance(layer, keras.Model):
            stack = list(layer.layers) + stack
        elif layer.weights:
            layers.append(layer)
    return layers


def checkpoint_template(log_dir, name):
    """Checkpoint path pattern of a run, with an {epoch} field (1-based)."""
    return os.path.join(log_dir, "mask_rcnn_{}_{{epoch:04d}}.weights.h5".format(
        name.lower()))


def training_feeds(config, train_dataset, val_dataset, augmentation=None,
                   no_augmentation_sources=None, workers=None,
                   use_multiprocessing=False):
    """The MaskRCNNDataset feeds of MaskRCNN.train().

    workers: data-loading threads, or processes with use_multiprocessing
        (default: one per available core, at most 4).
    use_multiprocessing: build batches in spawned worker processes, which
        scale with cores (threads share about one); the datasets and the
        augmentation must then be picklable (see MaskRCNNDataset).
    Returns (train_feed of STEPS_PER_EPOCH batches, val_feed of
    VALIDATION_STEPS batches or None without val_dataset or steps).
    Validation images are not augmented.
    """
    workers = workers or min(4, runtime.available_cores())
    train_feed = MaskRCNNDataset(
        train_dataset, config, shuffle=True, augmentation=augmentation,
        no_augmentation_sources=no_augmentation_sources,
        steps=config.STEPS_PER_EPOCH, workers=workers,
        use_multiprocessing=use_multiprocessing)
    val_feed = None
    if val_dataset is not None and config.VALIDATION_STEPS:
        val_feed = MaskRCNNDataset(
            val_dataset, config, shuffle=True,
            steps=config.VALIDATION_STEPS, workers=workers,
            use_multiprocessing=use_multiprocessing)
    return train_feed, val_feed


def fit_callbacks(log_dir, checkpoint_path, train_feed, custom_callbacks=None):
    """TensorBoard, the non-finite loss stop and checkpoints, then the
    caller's callbacks. Returns (callbacks, the StopOnNonFiniteLoss, whose
    .error train() raises after fit)."""
    os.makedirs(log_dir, exist_ok=True)
    stop_on_nan = StopOnNonFiniteLoss(train_feed)
    callbacks = [
        keras.callbacks.TensorBoard(log_dir=log_dir, histogram_freq=0,
                                    write_graph=False),
        stop_on_nan,
        CheckpointCallback(checkpoint_path),
    ] + list(custom_callbacks or [])
    return callbacks, stop_on_nan


@contextlib.contextmanager
def closing_feeds(*feeds):
    """Ends the feeds' worker processes when the block ends, however it
    ends (the SIGTERM of mrcnn.training.termination included)."""
    try:
        yield
    finally:
        for feed in feeds:
            if feed is not None:
                feed.close()
