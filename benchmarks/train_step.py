"""Speed of a Mask R-CNN training step, printed as one JSON line.

ResNet50-FPN, 512x512 images, 2 images per step, every layer trained
(SGD with momentum, as MaskRCNN.train compiles it), the default
configuration otherwise with the anchor scales halved for the half-size
images and ADD_GT_TO_PROPOSALS on (random weights propose nothing near
the ground truth). Measured with keras_model.fit, as MaskRCNN.train runs it:

* feed_steps_per_s: batches from the real data feed, MaskRCNNDataset over
  the synthetic shapes dataset (images drawn, resized, molded, RPN targets
  built on the fly by MaskRCNN.train's worker threads);
* memory_steps_per_s: one batch of that feed repeated from memory;
* feed_vs_memory: their ratio, the median over the rounds of each
  round's ratio (target >= 0.9: the feed keeps up with the model);
* step_ms: one step from memory (median over --rounds);
* peak_rss_mb: the process's peak resident memory.

The two kinds of runs alternate (--rounds of --steps steps each), so that
the load of a shared machine weighs on both alike. Run it with::

    python benchmarks/train_step.py
    python benchmarks/train_step.py --steps 5 --rounds 3 --backbone resnet101

benchmarks/compare_torchvision.py reuses these helpers.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
import mrcnn  # noqa: E402,F401  (before TensorFlow: runtime.prefer_onednn)


def make_train_config(backbone="resnet50", size=512, images=2,
                      num_classes=4, mixed_precision=None, **overrides):
    """The default Config at `size` pixels (anchor scales scaled along)."""
    from mrcnn.config import Config

    scale = size / 1024.0
    attributes = dict(
        NAME="bench_train", BACKBONE=backbone, NUM_CLASSES=num_classes,
        IMAGES_PER_GPU=images, IMAGE_MIN_DIM=size, IMAGE_MAX_DIM=size,
        RPN_ANCHOR_SCALES=tuple(int(s * scale)
                                for s in Config.RPN_ANCHOR_SCALES),
        MIXED_PRECISION=mixed_precision, STEPS_PER_EPOCH=1,
        VALIDATION_STEPS=1,
        # Random weights propose no box near the ground truth: without the
        # GT boxes among the proposals (as torchvision always adds them)
        # the heads would train on background ROIs only.
        ADD_GT_TO_PROPOSALS=True)
    attributes.update(overrides)
    return type("TrainBenchConfig", (Config,), attributes)()


def shapes_dataset(count, size, seed=0):
    """The synthetic shapes dataset (num_classes 4) at size x size."""
    from samples.shapes.shapes import ShapesDataset
    dataset = ShapesDataset()
    dataset.load_shapes(count, size, size, seed=seed)
    dataset.prepare()
    return dataset


def build_training_model(config, model_dir):
    """A MaskRCNN in training mode, every layer trainable, compiled as
    MaskRCNN.train compiles it."""
    from mrcnn import model as modellib
    model = modellib.MaskRCNN("training", config, model_dir=model_dir)
    model.set_trainable(".*", verbose=0)
    model.compile(config.LEARNING_RATE, config.LEARNING_MOMENTUM)
    return model


def repeated_batch_feed(batch, steps, workers=2):
    """A PyDataset that yields `batch` `steps` times (data from memory),
    prefetched by `workers` threads like MaskRCNNDataset's batches (with
    one worker Keras fetches synchronously, which costs more per step)."""
    import keras

    class RepeatedBatch(keras.utils.PyDataset):
        def __len__(self):
            return steps

        def __getitem__(self, index):
            return batch
    return RepeatedBatch(workers=workers)


def seconds_per_step(keras_model, feed, steps):
    """Wall time of keras_model.fit over `steps` batches, per step."""
    start = time.perf_counter()
    keras_model.fit(feed, epochs=1, steps_per_epoch=steps, verbose=0,
                    shuffle=False)
    return (time.perf_counter() - start) / steps


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=3,
                        help="training steps per timed run")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating (memory, feed) runs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=None,
                        help="feed threads (default: as MaskRCNN.train)")
    parser.add_argument("--mixed-precision", default=None,
                        choices=[None, "mixed_bfloat16"])
    parser.add_argument("--model-dir", default="/tmp/mrcnn_bench_logs")
    args = parser.parse_args()

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from inference import configure_threads
    configure_threads(args.threads)
    from mrcnn.data import MaskRCNNDataset

    load_before = os.getloadavg()
    config = make_train_config(args.backbone, args.size,
                               mixed_precision=args.mixed_precision)
    dataset = shapes_dataset(64, args.size)
    model = build_training_model(config, args.model_dir)
    workers = args.workers or max(1, min(4, os.cpu_count() or 1))
    feed = MaskRCNNDataset(dataset, config, shuffle=True, steps=args.steps,
                           workers=workers, seed=0)
    memory = repeated_batch_feed(feed[0], args.steps, workers)

    start = time.perf_counter()
    seconds_per_step(model.keras_model, memory, 1)  # traces the step
    first_step_s = time.perf_counter() - start
    seconds_per_step(model.keras_model, feed, 1)  # starts the feed once
    memory_times, feed_times = [], []
    for _ in range(args.rounds):
        memory_times.append(seconds_per_step(model.keras_model, memory,
                                             args.steps))
        feed_times.append(seconds_per_step(model.keras_model, feed,
                                           args.steps))
        feed.on_epoch_end()
    memory_step = statistics.median(memory_times)
    feed_step = statistics.median(feed_times)
    # Per round: the two runs of a round saw about the same machine load.
    ratios = [m / f for m, f in zip(memory_times, feed_times)]
    print(json.dumps({
        "date": time.strftime("%Y-%m-%d"),
        "backbone": args.backbone, "image_size": args.size,
        "images_per_step": config.BATCH_SIZE,
        "mixed_precision": args.mixed_precision,
        "threads": args.threads, "feed_workers": workers,
        "first_step_s": round(first_step_s, 1),
        "step_ms": round(1000 * memory_step, 1),
        "memory_steps_per_s": round(1 / memory_step, 4),
        "feed_steps_per_s": round(1 / feed_step, 4),
        "feed_vs_memory": round(statistics.median(ratios), 3),
        "feed_vs_memory_rounds": [round(r, 3) for r in ratios],
        "memory_step_ms_runs": [round(1000 * t, 1) for t in memory_times],
        "feed_step_ms_runs": [round(1000 * t, 1) for t in feed_times],
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
    }))


if __name__ == "__main__":
    main()
