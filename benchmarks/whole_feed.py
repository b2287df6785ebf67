"""The whole training feed's speed for benchmarks/data_pipeline.py (see
its docstring): images/s with 1, 2, ... worker processes, each count
pinned to as many cores, against threads; user and system CPU; the time
of each stage."""

import concurrent.futures
import contextlib
import os
import tempfile
import time

import numpy as np

from mrcnn import data
from mrcnn.config import Config
from mrcnn.data import feed as feed_module
from mrcnn.data import loading
from mrcnn.structures import dropped, instance_layers

import feed_data

# The functions of one image's way through the feed, timed in place: the
# modules call them through these module attributes.
STAGES = (
    ("resize_image", loading, "resize_image_for_config"),
    ("resize_masks", loading, "resize_mask"),
    ("augment", loading, "augment_image_and_masks"),
    ("pack_instances", instance_layers, "pack"),
    ("augment_layers", loading, "augment_image_and_layers"),
    ("layer_boxes", instance_layers, "boxes_of"),
    ("layer_mini_masks", instance_layers, "minimize"),
    ("drop_empty", dropped, "drop_empty"),
    ("boxes", loading, "extract_bboxes"),
    ("mini_masks", loading, "minimize_mask"),
    ("rpn_targets", feed_module, "_rpn_targets"),
    ("mold", feed_module, "_molded_images"),
)


def add_arguments(parser):
    parser.add_argument("--feed-workers", default="1,2",
                        help="worker counts of the whole-feed timing, "
                             "comma separated ('' skips it)")
    parser.add_argument("--feed-batches", type=int, default=40,
                        help="batches of 2 images timed per worker count")
    parser.add_argument("--feed-images", type=int, default=32,
                        help="image files written (without --data)")
    parser.add_argument("--instances", type=int, default=30,
                        help="polygons per written image")
    parser.add_argument("--data", default=os.environ.get("MRCNN_BENCH_DATA"),
                        help="a VIA dataset folder to read instead (its "
                             "train subset), e.g. the balloon set")
    parser.add_argument("--no-threads", action="store_true",
                        help="skip the threads baseline")
    parser.add_argument("--quick", action="store_true",
                        help="a check of the script, not a measurement")


def cpu_description():
    """CPU model, the flags that matter, and the cores this process may
    use."""
    from mrcnn import runtime
    model = ""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    flags = runtime.cpu_flags()
    return {"model": model, "cores_allowed": len(os.sched_getaffinity(0)),
            "flags": sorted(f for f in runtime.REPORTED_FLAGS if f in flags)}


def _augmentation():
    from mrcnn._imgaug_compat import import_imgaug
    iaa = import_imgaug().augmenters
    return iaa.Sequential([
        iaa.Fliplr(0.5),
        iaa.Affine(scale=(0.8, 1.2), rotate=(-15, 15),
                   translate_percent={"x": (-0.1, 0.1), "y": (-0.1, 0.1)}),
    ])


class FeedConfig(Config):
    """Square 1024 px and mini masks (the defaults), 2 images a batch;
    module level, so that worker processes can unpickle it."""
    NAME = "feed"
    IMAGES_PER_GPU = 2

    def __init__(self, num_classes):
        self.NUM_CLASSES = num_classes
        super().__init__()


def _cpu_seconds(pids):
    """(user, system) CPU seconds of this process and of pids so far."""
    times = os.times()
    user, system = times.user, times.system
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open("/proc/{}/stat".format(pid)) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended: its time is lost, so say how many were read
        user += int(fields[11]) / tick
        system += int(fields[12]) / tick
    return user, system


@contextlib.contextmanager
def _pinned(cores):
    """This process (and the workers it starts) on its first `cores`
    allowed CPUs."""
    allowed = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, allowed[:cores])
    try:
        yield len(allowed[:cores])
    finally:
        os.sched_setaffinity(0, allowed)


def _time_feed(dataset, config, workers, batches, processes):
    """images/s of one feed, batches taken as Keras' enqueuer does."""
    feed = data.MaskRCNNDataset(
        dataset, config, augmentation=_augmentation(), seed=0,
        steps=batches + workers, workers=workers,
        use_multiprocessing=processes)
    threads = feed.workers
    try:
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(feed.__getitem__, range(workers)))  # warm-up
            pids = ([p.pid for p in feed.worker_pool().processes()]
                    if processes else [])
            cpu_before = _cpu_seconds(pids)
            start = time.perf_counter()
            list(pool.map(feed.__getitem__,
                          range(workers, workers + batches)))
            wall = time.perf_counter() - start
            cpu_after = _cpu_seconds(pids)
    finally:
        feed.close()
    images = batches * config.BATCH_SIZE
    return {"images_per_s": round(images / wall, 2),
            "wall_s": round(wall, 2),
            "user_s": round(cpu_after[0] - cpu_before[0], 2),
            "system_s": round(cpu_after[1] - cpu_before[1], 2)}


def _stage_ms(dataset, config, images):
    """Mean ms per image of each stage (and decoding) over `images` loads,
    one at a time in this process."""
    totals = {name: 0.0 for name in ("decode_image", "load_mask")}
    totals.update({name: 0.0 for name, _, _ in STAGES})
    originals = []

    def timed(name, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                totals[name] += time.perf_counter() - start
        return wrapper

    for name, module, attribute in STAGES:
        originals.append((module, attribute, getattr(module, attribute)))
        setattr(module, attribute, timed(name, getattr(module, attribute)))
    dataset.load_image = timed("decode_image", dataset.load_image)
    dataset.load_mask = timed("load_mask", dataset.load_mask)
    feed = data.MaskRCNNDataset(dataset, config, augmentation=_augmentation(),
                                seed=1, steps=images)
    try:
        feed[0]  # warm-up, then the counts start again
        for name in totals:
            totals[name] = 0.0
        start = time.perf_counter()
        for idx in range(1, images // config.BATCH_SIZE + 1):
            feed[idx]
        total = time.perf_counter() - start
    finally:
        for module, attribute, function in originals:
            setattr(module, attribute, function)
        del dataset.load_image, dataset.load_mask
    count = (images // config.BATCH_SIZE) * config.BATCH_SIZE
    stages = {name: round(1000 * value / count, 1)
              for name, value in totals.items()}
    stages["total"] = round(1000 * total / count, 1)
    return stages


def _dataset(args, folder):
    if args.data:
        from mrcnn.datasets import load_dataset
        return load_dataset(args.data, subset="train"), args.data
    feed_data.write_polygon_set(folder, args.feed_images, args.instances)
    return (feed_data.PolygonFileDataset().load_folder(folder),
            "{} written JPEG+PNG, {} polygons each".format(
                args.feed_images, args.instances))


def measure(args):
    """The whole_feed part of the report (None when skipped)."""
    counts = [int(c) for c in args.feed_workers.split(",") if c.strip()]
    if not counts:
        return None
    if args.quick:
        args.feed_batches, args.feed_images = 2, 4
        args.instances = min(args.instances, 8)
    with tempfile.TemporaryDirectory(prefix="mrcnn-feed-") as folder:
        dataset, source = _dataset(args, folder)
        config = FeedConfig(dataset.num_classes)
        report = {"data": source, "image_size": int(config.IMAGE_MAX_DIM),
                  "batch_size": config.BATCH_SIZE,
                  "batches": args.feed_batches, "processes": {}}
        for workers in counts:
            with _pinned(workers) as cores:
                result = _time_feed(dataset, config, workers,
                                    args.feed_batches, processes=True)
            result["cores"] = cores
            result["images_per_s_per_core"] = round(
                result["images_per_s"] / cores, 2)
            report["processes"][str(workers)] = result
        if 1 in counts:  # images/s of N workers over one worker's
            one = report["processes"]["1"]["images_per_s"]
            report["scaling_vs_1"] = {
                str(n): round(report["processes"][str(n)]["images_per_s"]
                              / one, 2) for n in counts if n != 1}
        if not args.no_threads:
            with _pinned(counts[-1]):
                report["threads"] = _time_feed(
                    dataset, config, counts[-1], args.feed_batches,
                    processes=False)
            report["threads"]["workers"] = counts[-1]
        report["stage_ms"] = _stage_ms(dataset, config,
                                       max(4, min(16, len(dataset.image_ids))))
    return report
