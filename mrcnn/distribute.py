"""Choosing the tf.distribute strategy that a MaskRCNN builds and trains under.

GPU_COUNT > 1 uses MirroredStrategy over that many local GPUs; a TF_CONFIG
naming several workers uses MultiWorkerMirroredStrategy; otherwise the
default (no-op) strategy. Keras fit splits each global batch of
BATCH_SIZE = IMAGES_PER_GPU * GPU_COUNT images across the replicas.
"""

import json
import os

import tensorflow as tf


def _multi_worker_cluster():
    try:
        tf_config = json.loads(os.environ.get("TF_CONFIG", "") or "{}")
    except json.JSONDecodeError as e:
        raise ValueError("TF_CONFIG is not valid JSON: {}".format(e))
    workers = tf_config.get("cluster", {}).get("worker", [])
    return len(workers) > 1


def select_strategy(config, strategy=None):
    """The strategy to use: the given one, or one chosen from config/env."""
    if strategy is not None:
        return strategy
    if _multi_worker_cluster():
        return tf.distribute.MultiWorkerMirroredStrategy()
    if config.GPU_COUNT > 1:
        gpus = tf.config.list_logical_devices("GPU")
        if len(gpus) < config.GPU_COUNT:
            raise ValueError(
                "GPU_COUNT = {} but TensorFlow sees {} GPU(s): {}".format(
                    config.GPU_COUNT, len(gpus), [g.name for g in gpus]))
        return tf.distribute.MirroredStrategy(
            devices=[g.name for g in gpus[:config.GPU_COUNT]])
    return tf.distribute.get_strategy()
