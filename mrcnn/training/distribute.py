"""Training on several devices or machines through tf.distribute.

Which strategy a MaskRCNN builds and trains under:

- a ``distribute_strategy`` passed to ``MaskRCNN(...)``: that one;
- a ``TF_CONFIG`` environment variable naming several workers:
  ``MultiWorkerMirroredStrategy`` (synchronous data parallelism over
  machines, gradients all-reduced after every step);
- ``GPU_COUNT > 1``: ``MirroredStrategy`` over that many local GPUs (an
  error when TensorFlow sees fewer);
- otherwise the default strategy (one device, no replication).

The batch: the training feed yields global batches of ``BATCH_SIZE =
IMAGES_PER_GPU * GPU_COUNT`` images and Keras ``fit`` splits each one over
the replicas, so with MirroredStrategy every GPU gets IMAGES_PER_GPU images.
Under MultiWorkerMirroredStrategy BATCH_SIZE is the batch of the whole
cluster: set GPU_COUNT to the number of replicas of the cluster (workers x
GPUs per worker, one per CPU-only worker) so that each replica gets
IMAGES_PER_GPU images. Batch normalization (TRAIN_BN True) uses each
replica's own batch statistics, as matterport's multi-GPU model did.

The gradient: each replica computes the gradient of its loss divided by
the replica count; ``sum_over_replicas`` adds them up before clipping (see
:class:`GlobalGradientSGD`), so the step is that of the mean of the
replicas' losses. Each replica averages its losses over its own images'
anchors and ROIs (as matterport's multi-GPU model did), so that mean equals
the loss of the whole batch on one device when the images have equal counts
of positive anchors and ROIs, and is close to it otherwise;
tests/test_distribute.py checks that the two steps agree.
"""

import json
import os

import tensorflow as tf
import keras


def _multi_worker_cluster():
    """True when TF_CONFIG describes a cluster with more than one worker."""
    try:
        tf_config = json.loads(os.environ.get("TF_CONFIG", "") or "{}")
    except json.JSONDecodeError as e:
        raise ValueError("TF_CONFIG is not valid JSON: {}".format(e))
    cluster = tf_config.get("cluster", {})
    workers = cluster.get("worker", []) + cluster.get("chief", [])
    return len(workers) > 1


def select_strategy(config, strategy=None):
    """The strategy to build and train under: the given one, or one chosen
    from TF_CONFIG and config.GPU_COUNT (see the module docstring)."""
    if strategy is not None:
        return strategy
    if _multi_worker_cluster():
        # Must be created before TensorFlow runs any op in this process.
        return tf.distribute.MultiWorkerMirroredStrategy()
    if config.GPU_COUNT > 1:
        gpus = tf.config.list_logical_devices("GPU")
        if len(gpus) < config.GPU_COUNT:
            raise ValueError(
                "GPU_COUNT = {} but TensorFlow sees {} GPU(s): {}. Set "
                "GPU_COUNT = 1 to train on one device (CPU or GPU), or pass "
                "distribute_strategy= to MaskRCNN.".format(
                    config.GPU_COUNT, len(gpus), [g.name for g in gpus]))
        return tf.distribute.MirroredStrategy(
            devices=[g.name for g in gpus[:config.GPU_COUNT]])
    return tf.distribute.get_strategy()


def check_global_batch(config, strategy):
    """Raises unless BATCH_SIZE splits evenly over the strategy's replicas.

    Keras gives each replica BATCH_SIZE / num_replicas_in_sync images of
    every batch; an uneven split would give replicas different batch sizes.
    """
    replicas = strategy.num_replicas_in_sync
    if config.BATCH_SIZE % replicas:
        raise ValueError(
            "BATCH_SIZE = IMAGES_PER_GPU * GPU_COUNT = {} * {} = {} does not "
            "split over the {} replicas of {}: set GPU_COUNT to the number of "
            "replicas (workers x GPUs per worker for multi-worker "
            "training)".format(config.IMAGES_PER_GPU, config.GPU_COUNT,
                               config.BATCH_SIZE, replicas,
                               type(strategy).__name__))


@keras.saving.register_keras_serializable(package="mrcnn")
class GlobalGradientSGD(keras.optimizers.SGD):
    """SGD that receives gradients already summed over the replicas.

    Keras' optimizer clips each replica's gradient and only then sums them
    over the replicas, so with ``clipnorm`` the step of N replicas differs
    from the step of one device on the same batch (each share is clipped
    alone: the effective clip norm grows up to N times). The training step
    calls :func:`sum_over_replicas` first, so clipping (and the loss-scale
    optimizer's finite check under mixed_float16) sees the gradient of the
    global batch; this optimizer then skips Keras' own sum, which would
    otherwise multiply that gradient by N.
    """

    expects_summed_gradients = True

    def _all_reduce_sum_gradients(self, grads_and_vars):
        # Already summed by sum_over_replicas in the training step.
        return list(grads_and_vars)


def _expects_summed_gradients(optimizer):
    # A LossScaleOptimizer passes the gradients on to its inner optimizer.
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return getattr(inner, "expects_summed_gradients", False)


def sum_over_replicas(grads, optimizer):
    """Sums each replica's gradients over all replicas (all-reduce).

    grads: list of per-replica gradients (None for unconnected variables).
    optimizer: the optimizer that will apply them; only an optimizer that
        expects summed gradients (GlobalGradientSGD, possibly inside a
        LossScaleOptimizer) gets them summed here, any other sums them
        itself in apply().
    Returns the list with the same Nones, identical on every replica.
    """
    context = tf.distribute.get_replica_context()
    if (context is None or context.num_replicas_in_sync == 1
            or not _expects_summed_gradients(optimizer)):
        return grads
    present = [g for g in grads if g is not None]
    if not present:
        return grads
    summed = iter(context.all_reduce(tf.distribute.ReduceOp.SUM, present))
    return [None if g is None else next(summed) for g in grads]


def _keras_multi_worker(strategy):
    # The test Keras' fit uses to pick its multi-worker log reduction.
    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and strategy.extended._in_multi_worker_mode())


def logs_for_keras(logs):
    """The step's logs {name: scalar} in the shape Keras fit can reduce.

    Keras 3 reduces each log of a multi-worker step with
    ``strategy.reduce("MEAN", value, axis=0)``, which fails on scalars
    ("Invalid reduction dimension 0 for input with 0 dimensions",
    tensorflow/tensorflow#72388). There the values get shape [1], which that
    reduction turns into the scalar mean over all replicas; elsewhere they
    stay scalars.
    """
    if not _keras_multi_worker(tf.distribute.get_strategy()):
        return logs
    return {name: tf.reshape(value, [1]) for name, value in logs.items()}
