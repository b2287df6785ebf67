"""Subprocess side of tests/test_distribute.py.

Distribution needs a fresh process: logical CPU devices can only be set up
before TensorFlow initializes its devices, and MultiWorkerMirroredStrategy
must be created before TensorFlow runs any op. The tests launch

    python tests/_multiworker_worker.py mirrored OUT.npz
        one step on one device and one step under MirroredStrategy over two
        logical CPUs, from the same weights on the same batch;
    python tests/_multiworker_worker.py mirrored16 OUT.npz
        the same under mixed_float16, through the LossScaleOptimizer (its
        initial scale LOSS_SCALE, so that the first step is applied);
    python tests/_multiworker_worker.py worker OUT_DIR     (TF_CONFIG set)
        one worker of a MultiWorkerMirroredStrategy cluster training a few
        steps with MaskRCNN.train;

each writes what it saw to an .npz file that the test checks.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

from mrcnn import model as modellib  # noqa: E402
from samples.shapes.shapes import ShapesConfig, ShapesDataset  # noqa: E402

LEARNING_RATE = 0.01
# Small enough that the first float16 step's scaled gradients stay finite
# (Keras starts at 2 ** 15 and skips steps until the scale fits).
LOSS_SCALE = 2.0 ** 6
STRIDES = (4, 8, 16, 32, 64)


def tiny_backbone(input_image, stage5=True, train_bn=False):
    """Five strided convs standing in for ResNet: the tests are about
    distribution, and a small graph keeps compiling the step short.
    Returns [C1..C5] with strides 4, 4, 8, 16, 32."""
    x = input_image
    stages = []
    for i, stride in enumerate((4, 1, 2, 2, 2)):
        x = keras.layers.Conv2D(8, 3, strides=stride, padding="same",
                                activation="relu",
                                name="tiny_c{}".format(i + 1))(x)
        stages.append(x)
    return stages


def tiny_backbone_shapes(image_shape):
    return np.array([[int(np.ceil(image_shape[0] / s)),
                      int(np.ceil(image_shape[1] / s))] for s in STRIDES])


class DistConfig(ShapesConfig):
    """Tiny Mask R-CNN whose training step is deterministic.

    - TRAIN_BN False: batch norm would use per-replica statistics.
    - ROI_POSITIVE_RATIO 1.0 and TRAIN_ROIS_PER_IMAGE >= the proposal count:
      DetectionTargetLayer then keeps every positive proposal (or, with
      none, every proposal), so its random shuffle only reorders the ROIs,
      and every loss is a mean that does not depend on the order.
    """
    NAME = "dist"
    BACKBONE = staticmethod(tiny_backbone)
    COMPUTE_BACKBONE_SHAPE = staticmethod(tiny_backbone_shapes)
    TRAIN_BN = False
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    TOP_DOWN_PYRAMID_SIZE = 16
    RPN_CONV_DEPTH = 16
    FPN_CLASSIF_FC_LAYERS_SIZE = 32
    MASK_HEAD_CONV_DEPTH = 8
    PRE_NMS_LIMIT = 200
    POST_NMS_ROIS_TRAINING = 32
    POST_NMS_ROIS_INFERENCE = 16
    TRAIN_ROIS_PER_IMAGE = 32
    ROI_POSITIVE_RATIO = 1.0
    RPN_TRAIN_ANCHORS_PER_IMAGE = 32
    MAX_GT_INSTANCES = 4
    DETECTION_MAX_INSTANCES = 8
    MINI_MASK_SHAPE = (14, 14)
    STEPS_PER_EPOCH = 3
    VALIDATION_STEPS = 1


def dist_config(images_per_gpu, gpu_count, precision=None):
    config_class = type("DistConfig{}x{}".format(images_per_gpu, gpu_count),
                        (DistConfig,), {"IMAGES_PER_GPU": images_per_gpu,
                                        "GPU_COUNT": gpu_count,
                                        "MIXED_PRECISION": precision})
    return config_class()


def shapes_dataset(count, seed):
    dataset = ShapesDataset()
    dataset.load_shapes(count, 64, 64, seed=seed, max_shapes=2)
    dataset.prepare()
    return dataset


def twin_images_dataset(seed):
    """Two copies of one image: per-image losses are means over positive
    anchors and ROIs, so the mean over a global batch equals the mean of
    the replicas' losses only when images have equal counts of them."""
    dataset = ShapesDataset()
    dataset.load_shapes(1, 64, 64, seed=seed, max_shapes=2)
    info = {k: v for k, v in dataset.image_info[0].items() if k != "id"}
    dataset.add_image(info.pop("source"), image_id=1, path=info.pop("path"),
                      **info)
    dataset.prepare()
    return dataset


def install_batch_probe(model):
    """Counts the images each replica's train steps receive.

    Returns a sync-on-read variable: strategy.experimental_local_results()
    gives one count per local replica.
    """
    keras_model = model.keras_model
    with model.strategy.scope():
        seen = tf.Variable(
            0.0, trainable=False,
            synchronization=tf.VariableSynchronization.ON_READ,
            aggregation=tf.VariableAggregation.SUM)
    train_step = keras_model.train_step

    def counting_train_step(data):
        inputs = keras.utils.unpack_x_y_sample_weight(data)[0]
        seen.assign_add(tf.cast(tf.shape(inputs["input_image"])[0],
                                tf.float32))
        return train_step(data)

    keras_model.train_step = counting_train_step
    return seen


def per_replica_counts(model, probe):
    return np.array([float(v.numpy()) for v in
                     model.strategy.experimental_local_results(probe)])


def one_fit_step(model, dataset):
    """One SGD step with Keras fit on the first batch of the feed.

    Returns (losses dict, images per replica, the batch fed, the loss
    scale after the step or 0 without loss scaling).
    """
    feed = modellib.MaskRCNNDataset(dataset, model.config, shuffle=False,
                                    steps=1, seed=0)
    probe = install_batch_probe(model)
    model.set_trainable(".*", verbose=0)
    model.compile(LEARNING_RATE, model.config.LEARNING_MOMENTUM)
    optimizer = model.keras_model.optimizer
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    if scaled:
        optimizer.initial_scale = LOSS_SCALE  # read when it is built
    history = model.keras_model.fit(feed, epochs=1, steps_per_epoch=1,
                                    verbose=0, shuffle=False)
    losses = {k: v[-1] for k, v in history.history.items()}
    scale = float(optimizer.dynamic_scale.numpy()) if scaled else 0.0
    return losses, per_replica_counts(model, probe), feed[0], scale


def run_mirrored(out_path, precision=None):
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    keras.utils.set_random_seed(1)
    model_dir = os.path.join(os.path.dirname(out_path), "logs")
    dataset = twin_images_dataset(seed=5)

    single = modellib.MaskRCNN("training", dist_config(2, 1, precision),
                               model_dir)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    mirrored = modellib.MaskRCNN("training", dist_config(1, 2, precision),
                                 model_dir, distribute_strategy=strategy)
    initial = single.keras_model.get_weights()
    mirrored.keras_model.set_weights(initial)

    results = {"replicas": np.array(strategy.num_replicas_in_sync)}
    for name, model in (("single", single), ("mirrored", mirrored)):
        losses, counts, batch, scale = one_fit_step(model, dataset)
        results[name + "_loss_scale"] = np.array(scale)
        results[name + "_loss_names"] = np.array(sorted(losses))
        results[name + "_losses"] = np.array([losses[k] for k in
                                              sorted(losses)])
        results[name + "_images_per_replica"] = counts
        results[name + "_feed_batch"] = np.array(
            batch["input_image"].shape[0])
        results[name + "_batch_images"] = batch["input_image"]
        for i, w in enumerate(model.keras_model.get_weights()):
            results["{}_w{}".format(name, i)] = w
    for i, w in enumerate(initial):
        results["initial_w{}".format(i)] = w
    results["weight_count"] = np.array(len(initial))
    np.savez(out_path, **results)


def run_worker(out_dir):
    task = json.loads(os.environ["TF_CONFIG"])["task"]
    index = int(task["index"])
    # Different seeds for weights and data on each worker: equal weights at
    # the end can only come from the strategy (initial values broadcast,
    # gradients all-reduced), not from both workers doing the same thing.
    keras.utils.set_random_seed(100 + index)
    config = dist_config(images_per_gpu=1, gpu_count=2)  # 2 replicas in all
    model = modellib.MaskRCNN(
        "training", config, os.path.join(out_dir, "logs{}".format(index)))
    strategy_name = type(model.strategy).__name__
    initial = model.keras_model.get_weights()
    probe = install_batch_probe(model)
    dataset = shapes_dataset(4, seed=7 + index)
    history = model.train(dataset, None, learning_rate=LEARNING_RATE,
                          epochs=1, layers="all", workers=1)
    final = model.keras_model.get_weights()
    np.savez(os.path.join(out_dir, "worker{}.npz".format(index)),
             strategy=np.array(strategy_name),
             replicas=np.array(model.strategy.num_replicas_in_sync),
             images_per_replica=per_replica_counts(model, probe),
             loss=np.array(history.history["loss"]),
             weight_count=np.array(len(final)),
             **{"initial_w{}".format(i): w for i, w in enumerate(initial)},
             **{"final_w{}".format(i): w for i, w in enumerate(final)})


if __name__ == "__main__":
    mode, target = sys.argv[1], sys.argv[2]
    if mode == "mirrored":
        run_mirrored(target)
    elif mode == "mirrored16":
        run_mirrored(target, "mixed_float16")
    elif mode == "worker":
        run_worker(target)
    else:
        sys.exit("unknown mode {!r}: use 'mirrored', 'mirrored16' or "
                 "'worker'".format(mode))
