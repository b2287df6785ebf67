"""Memory soak: RSS over many detect() calls and training steps, printed
as one JSON line.

Runs detect() on --images images, one call per image (sizes vary, as
photos do), then trains for --steps steps, sampling the resident set size
(RSS) and the Python heap (tracemalloc) every --interval images or steps.
After the first --warmup-fraction of each phase (traces, caches, allocator
pools) both should stay flat:

* detect_growth_mb / train_growth_mb: RSS at the end minus RSS at the end
  of the warm-up, in MB, and the same as a least-squares slope
  (detect_slope_mb_per_1000_images, train_slope_mb_per_100_steps). RSS
  moves in steps of tens of MB as malloc arenas grow and shrink;
* detect_heap_growth_mb / train_heap_growth_mb: the same for memory held
  by Python objects, free of allocator noise (a list that keeps every
  result shows here);
* detect_traces: how many times the detect tf.function was traced (a count
  that grows with the images means retracing, a classic leak);
* detect_rss_mb / train_rss_mb (and *_heap_mb): the samples.

    python benchmarks/soak.py                   # tiny model, 64 px
    python benchmarks/soak.py --size shapes     # the shapes demo model
    python benchmarks/soak.py --images 200 --steps 40   # a quick look
"""
import argparse
import contextlib
import gc
import json
import os
import sys
import tempfile
import time
import tracemalloc

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from mrcnn import model as modellib  # noqa: E402
from samples.shapes.shapes import ShapesConfig, ShapesDataset  # noqa: E402
from tests import tiny  # noqa: E402


class TinyConfig(tiny.TinyConfig):
    """The test suite's tiny model (tests/tiny.py): 64 px images, thin
    heads. soak_train() sets STEPS_PER_EPOCH to the sampling interval."""
    NAME = "soak"


class ShapesSoakConfig(ShapesConfig):
    """The shapes demo model (128 px)."""
    NAME = "soak"
    IMAGES_PER_GPU = 2
    VALIDATION_STEPS = 0


SIZES = {"tiny": TinyConfig, "shapes": ShapesSoakConfig}


def rss_mb():
    """Resident set size of this process in MB."""
    try:
        import psutil
        return psutil.Process().memory_info().rss / 2 ** 20
    except ImportError:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    raise RuntimeError("cannot read the RSS of this process")


class Samples(object):
    """RSS and Python-heap samples, in MB, taken after a garbage collection
    (to count what is still referenced, not garbage to come)."""

    def __init__(self, label):
        self.label = label
        self.rss = []
        self.heap = []

    def take(self, count=None):
        gc.collect()
        self.rss.append(round(rss_mb(), 1))
        self.heap.append(round(tracemalloc.get_traced_memory()[0] / 2 ** 20,
                               2))
        if count is not None:
            print("{} {:6d}  rss {:8.1f} MB  python heap {:7.2f} MB".format(
                self.label, count, self.rss[-1], self.heap[-1]),
                file=sys.stderr, flush=True)


def after_warmup(samples, warmup_fraction):
    """The samples from the end of the warm-up on (at least two)."""
    start = max(1, int(round(len(samples) * warmup_fraction)))
    return samples[min(start - 1, len(samples) - 2):]


def growth(samples, warmup_fraction):
    """The last sample minus the one at the end of the warm-up, in MB."""
    kept = after_warmup(samples, warmup_fraction)
    return round(kept[-1] - kept[0], 2)


def slope(samples, warmup_fraction, per_sample, per):
    """Least-squares growth after the warm-up, in MB per `per` units
    (images or steps) when samples are `per_sample` units apart."""
    kept = after_warmup(samples, warmup_fraction)
    fit = np.polyfit(np.arange(len(kept)) * per_sample, kept, 1)
    return round(float(fit[0]) * per, 2)


def detection_images(config, count, seed=0):
    """`count` distinct shapes images in a few sizes around the model's."""
    side = config.IMAGE_MAX_DIM
    # The shapes generator needs sides over 40 pixels.
    sizes = [(side, side), (side * 3 // 4, side), (side, side * 3 // 4),
             (side * 5 // 4, side)]
    images = []
    for size_index, (height, width) in enumerate(sizes):
        dataset = ShapesDataset()
        dataset.load_shapes(count // len(sizes) + 1, height, width,
                            seed=seed + size_index)
        dataset.prepare()
        images += [dataset.load_image(i) for i in dataset.image_ids]
    rng = np.random.default_rng(seed)
    return [images[i] for i in rng.permutation(len(images))[:count]]


def soak_detect(config, model_dir, count, interval):
    """detect() on `count` images, one per call. Returns (Samples,
    seconds per image, number of traces of the detect function)."""
    inference_config = config.__class__()
    inference_config.IMAGES_PER_GPU = 1
    inference_config.BATCH_SIZE = 1
    model = modellib.MaskRCNN("inference", inference_config, model_dir)
    # Few distinct images cycled: the arrays themselves stay constant.
    images = detection_images(config, min(count, 64))
    samples = Samples("detect")
    samples.take()
    start = time.perf_counter()
    for i in range(count):
        model.detect([images[i % len(images)]])
        if (i + 1) % interval == 0:
            samples.take(i + 1)
    seconds = time.perf_counter() - start
    traces = model._detect_fn.experimental_get_tracing_count()
    return samples, seconds / count, traces


class SampleEvery(keras.callbacks.Callback):
    """Takes samples every `interval` training steps (over all epochs)."""

    def __init__(self, interval):
        super().__init__()
        self.interval = interval
        self.steps = 0
        self.samples = Samples("train ")
        self.started = None

    def on_train_begin(self, logs=None):
        self.samples.take()
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps % self.interval == 0:
            self.samples.take(self.steps)


def soak_train(config, model_dir, steps, interval):
    """train() for `steps` steps in epochs of `interval` steps (so each
    epoch also writes a checkpoint and reshuffles the feed). Returns
    (Samples, seconds per step)."""
    config = config.__class__()
    config.STEPS_PER_EPOCH = interval
    dataset = ShapesDataset()
    side = config.IMAGE_MAX_DIM
    dataset.load_shapes(4 * config.BATCH_SIZE, side, side, seed=1,
                        max_shapes=3)
    dataset.prepare()
    model = modellib.MaskRCNN("training", config, model_dir)
    sampler = SampleEvery(interval)
    epochs = max(1, steps // interval)
    model.train(dataset, None, learning_rate=0.005, epochs=epochs,
                layers="all", workers=1, custom_callbacks=[sampler])
    seconds = time.perf_counter() - sampler.started
    return sampler.samples, seconds / (epochs * interval)


def summary(name, samples, warmup, interval, per):
    """The JSON fields of one phase."""
    return {
        name + "_rss_mb": samples.rss,
        name + "_growth_mb": growth(samples.rss, warmup),
        "{}_slope_mb_per_{}".format(name, per): slope(
            samples.rss, warmup, interval, int(per.split("_")[0])),
        name + "_heap_mb": samples.heap,
        name + "_heap_growth_mb": growth(samples.heap, warmup),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--interval", type=int, default=0,
                        help="images/steps between samples (default: a "
                        "tenth of each phase)")
    parser.add_argument("--warmup-fraction", type=float, default=0.2)
    args = parser.parse_args()
    config = SIZES[args.size]()
    image_interval = args.interval or max(1, args.images // 10)
    step_interval = args.interval or max(1, args.steps // 10)
    tracemalloc.start()
    start_rss = round(rss_mb(), 1)
    # Progress bars and logs go to stderr: stdout gets the JSON line only.
    with tempfile.TemporaryDirectory() as model_dir, \
            contextlib.redirect_stdout(sys.stderr):
        detect_samples, detect_s, traces = soak_detect(
            config, model_dir, args.images, image_interval)
        train_samples, step_s = soak_train(config, model_dir, args.steps,
                                           step_interval)
    warmup = args.warmup_fraction
    result = {"size": args.size, "images": args.images, "steps": args.steps,
              "rss_start_mb": start_rss}
    result.update(summary("detect", detect_samples, warmup, image_interval,
                          "1000_images"))
    result.update({"detect_ms_per_image": round(1000 * detect_s, 1),
                   "detect_traces": int(traces)})
    result.update(summary("train", train_samples, warmup, step_interval,
                          "100_steps"))
    result.update({"train_ms_per_step": round(1000 * step_s, 1),
                   "warmup_fraction": warmup,
                   "cpus_allowed": len(os.sched_getaffinity(0))})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
