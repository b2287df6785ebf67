"""The measurements of benchmarks/gpu_check.sh, one JSON line a step.

Steps, run in one process in the order given (``--out DIR`` also writes
DIR/<step>.json):

    python benchmarks/gpu_check.py device
        TensorFlow's view of the machine: version, CUDA and cuDNN it was
        built with, the GPUs (name, compute capability) and whether an op
        placed on a GPU really runs there.
    python benchmarks/gpu_check.py detect --size 1024 --repeats 10
        detect() on one image, ResNet50-FPN, random weights, 81 classes:
        the first call (tracing included) and the median of --repeats
        warm calls, for float32 and mixed_float16.
    python benchmarks/gpu_check.py train --size 1024 --images 2 --repeats 10
        a training step (every layer trained, one batch repeated from
        memory): the median of --repeats warm steps, float32 and
        mixed_float16.
    python benchmarks/gpu_check.py summary DIR/*.json
        merges the steps' JSON lines (the file name names the step:
        device, tests, detect, train, feed) into the one line the script
        prints, with whether the feed keeps up with the fastest step.

Timing code comes from benchmarks/inference.py and benchmarks/train_step.py.
"""
import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import mrcnn  # noqa: E402,F401  (before TensorFlow: runtime.prefer_onednn)

PRECISIONS = (None, "mixed_float16")
# A model small enough for the CPU check of the script (--tiny).
TINY = dict(TOP_DOWN_PYRAMID_SIZE=32, RPN_CONV_DEPTH=32,
            FPN_CLASSIF_FC_LAYERS_SIZE=64, MASK_HEAD_CONV_DEPTH=16,
            POST_NMS_ROIS_TRAINING=64, POST_NMS_ROIS_INFERENCE=32,
            TRAIN_ROIS_PER_IMAGE=16, RPN_TRAIN_ANCHORS_PER_IMAGE=32,
            MAX_GT_INSTANCES=4, DETECTION_MAX_INSTANCES=8,
            PRE_NMS_LIMIT=500)


def device_report():
    """TensorFlow's build and the GPUs it sees."""
    import tensorflow as tf

    build = tf.sysconfig.get_build_info()
    gpus = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        gpus.append({"name": details.get("device_name", gpu.name),
                     "compute_capability": list(
                         details.get("compute_capability", ()))})
    report = {
        "tensorflow": tf.__version__,
        "built_with_cuda": tf.test.is_built_with_cuda(),
        "cuda": build.get("cuda_version"),
        "cudnn": build.get("cudnn_version"),
        "gpus": gpus,
    }
    if gpus:
        with tf.device("/GPU:0"):
            product = tf.matmul(tf.ones([4, 4]), tf.ones([4, 4]))
        report["op_ran_on"] = product.device
    return report


def _policy_name(precision):
    return precision or "float32"


def time_detect(size, repeats, precision, backbone, tiny, model_dir):
    """(first detect() s, median warm detect() s) of one image."""
    from inference import make_config, median_seconds, random_image
    from mrcnn import model as modellib

    config = make_config(backbone, size, mixed_precision=precision,
                         **(TINY if tiny else {}))
    model = modellib.MaskRCNN("inference", config, model_dir=model_dir)
    image = random_image(size)
    start = time.perf_counter()
    model.detect([image])
    first = time.perf_counter() - start
    return first, median_seconds(lambda: model.detect([image]), repeats)


def step_timer():
    """A Keras callback whose seconds() are the wall times between the
    ends of consecutive training steps, each end waited for (its loss
    read back to the host)."""
    import keras

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.ends = []

        def on_train_batch_end(self, batch, logs=None):
            if logs:
                float(next(iter(logs.values())))  # waits for the step
            self.ends.append(time.perf_counter())

        def seconds(self):
            return [b - a for a, b in zip(self.ends, self.ends[1:])]
    return StepTimer()


def time_train_step(size, images, repeats, precision, backbone, tiny,
                    model_dir):
    """(first step s, median warm step s) of a batch repeated from memory."""
    from mrcnn.data import MaskRCNNDataset
    from train_step import (build_training_model, make_train_config,
                            repeated_batch_feed, shapes_dataset)

    config = make_train_config(backbone, size, images,
                               mixed_precision=precision,
                               **(TINY if tiny else {}))
    model = build_training_model(config, model_dir)
    dataset = shapes_dataset(max(4, images), size)
    batch = MaskRCNNDataset(dataset, config, shuffle=False, steps=1,
                            workers=1, seed=0)[0]
    start = time.perf_counter()
    model.keras_model.fit(repeated_batch_feed(batch, 1, 1), epochs=1,
                          verbose=0)
    first = time.perf_counter() - start
    times = step_timer()
    model.keras_model.fit(repeated_batch_feed(batch, repeats + 1, 1),
                          epochs=1, verbose=0, callbacks=[times])
    return first, statistics.median(times.seconds())


def measure(step, args):
    """{precision: {first_s, warm_s} or {error}} for detect or train."""
    results = {}
    precisions = args.train_precisions if step == "train" else PRECISIONS
    for precision in precisions:
        name = _policy_name(precision)
        try:
            if step == "detect":
                first, warm = time_detect(args.size, args.repeats, precision,
                                          args.backbone, args.tiny,
                                          args.model_dir)
            else:
                first, warm = time_train_step(
                    args.size, args.images, args.repeats, precision,
                    args.backbone, args.tiny, args.model_dir)
            results[name] = {"first_s": round(first, 3),
                             "warm_median_s": round(warm, 4)}
        except Exception as error:  # reported in the JSON line, not lost
            results[name] = {"error": "{}: {}".format(
                type(error).__name__, str(error)[:300])}
        free_models()
    return results


def free_models():
    """Drops the graphs and GPU memory of the models measured so far."""
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()


def summary(paths):
    """The steps' JSON objects (one file each, named by step) merged, with
    whether the feed keeps up with the fastest training step."""
    report = {}
    for path in paths:
        name = os.path.splitext(os.path.basename(path))[0]
        try:
            with open(path) as handle:
                lines = [line for line in handle.read().splitlines()
                         if line.strip().startswith("{")]
            report[name] = json.loads(lines[-1]) if lines else None
        except (OSError, ValueError) as error:
            report[name] = {"error": str(error)}
    train, feed = report.get("train") or {}, report.get("feed") or {}
    steps = [v["warm_median_s"] for v in train.get("steps", {}).values()
             if isinstance(v, dict) and "warm_median_s" in v]
    feed_rate = feed.get("feed_images_per_s")
    if steps and feed_rate:
        needed = train["images_per_step"] / min(steps)
        report["feed_keeps_up"] = {
            "train_images_per_s": round(needed, 2),
            "feed_images_per_s": feed_rate,
            "keeps_up": feed_rate >= needed}
    return report


def run_step(step, args):
    """The JSON object of one step."""
    if step == "device":
        return device_report()
    report = {"backbone": args.backbone, "image_size": args.size,
              "repeats": args.repeats}
    if step == "train":
        report["images_per_step"] = args.images
    report["steps" if step == "train" else "detect"] = measure(step, args)
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("steps", nargs="+",
                        help="device, detect and/or train (in this "
                             "process, one JSON line each); or summary "
                             "followed by the step files")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--tiny", action="store_true",
                        help="thin FPN and heads, few ROIs (the CPU check)")
    parser.add_argument("--train-precisions", nargs="+",
                        default=["float32", "mixed_float16"],
                        choices=["float32", "mixed_float16"])
    parser.add_argument("--out", default=None,
                        help="write each step's line to OUT/<step>.json too")
    parser.add_argument("--model-dir", default="/tmp/mrcnn_gpu_check_logs")
    args = parser.parse_args()

    args.train_precisions = [None if name == "float32" else name
                             for name in args.train_precisions]
    if args.steps[0] == "summary":
        print(json.dumps(summary(args.steps[1:])))
        return
    for step in args.steps:
        if step not in ("device", "detect", "train"):
            parser.error("unknown step {!r}".format(step))
    for step in args.steps:
        line = json.dumps(run_step(step, args))
        print(line, flush=True)
        if args.out:
            with open(os.path.join(args.out, step + ".json"), "w") as handle:
                handle.write(line + "\n")


if __name__ == "__main__":
    main()
