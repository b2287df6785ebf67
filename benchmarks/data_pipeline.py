"""Speed of the training data pipeline, printed as one JSON line.

* feed_images_per_s: load_image_gt + build_rpn_targets for 1024x1024
  images with 30 instances (square mode, mini masks, default anchors).
* rpn_targets_ms: build_rpn_targets alone over the 261,888 default anchors
  with 30 GT boxes (median of several runs), next to
* dense_iou_ms: the anchors x boxes IoU matrix (utils.compute_overlaps) that
  a brute-force implementation starts with.

Measure one core with::

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/data_pipeline.py

Targets: rpn_targets_ms <= 25, feed_images_per_s >= 10.

* whole_feed: the feed as training runs it, from files on disk: decode
  (JPEG image, PNG instance labels), resize to 1024 px (square mode),
  augment with imgaug (a left-right flip and an affine: scale, rotation,
  translation), RPN targets and mini masks, molded and batched
  (BATCH_SIZE 2) by ``MaskRCNNDataset`` with ``use_multiprocessing=True``.
  For each count in ``--feed-workers`` the process is pinned to that many
  cores (worker processes inherit it), the pool is started and warmed up,
  then ``--feed-batches`` batches are taken as Keras' enqueuer takes them
  (workers + 1 threads asking in order): ``images_per_s``, per core, wall
  and CPU seconds (user, system; the parent and its workers). The same
  with threads (``use_multiprocessing=False``) at the largest count is
  the baseline. ``stage_ms``: the mean time of each stage per image, in
  this process, one image at a time. The images are written by
  benchmarks/feed_data.py (``--feed-images`` files of 640x480 to 1024x768
  with ``--instances`` polygons each) into a temporary folder, or read
  from a VIA dataset folder (``--data``, or ``$MRCNN_BENCH_DATA``; e.g.
  the balloon set, whose train subset is used).

Targets: whole_feed images_per_s >= 8 a core, and 2 workers >= 1.8x one.
``--quick`` checks the script in a minute (few images and batches: the
figures mean nothing).
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))

import numpy as np  # noqa: E402

from mrcnn import data, utils  # noqa: E402
from mrcnn.config import Config  # noqa: E402
import whole_feed  # noqa: E402  (benchmarks/whole_feed.py)


class BenchConfig(Config):
    NAME = "bench"
    NUM_CLASSES = 1 + 2
    IMAGES_PER_GPU = 1  # defaults otherwise: square 1024, mini masks


class SyntheticDataset(utils.Dataset):
    """In-memory 1024x1024 images with random ellipses as instances.

    Pixels and masks are drawn once, so the benchmark measures the pipeline,
    not image decoding.
    """

    def __init__(self, num_images, instances, size=1024, seed=0):
        super().__init__()
        self.add_class("synthetic", 1, "round")
        self.add_class("synthetic", 2, "long")
        rng = np.random.default_rng(seed)
        self._arrays = [self._draw(rng, instances, size)
                        for _ in range(num_images)]
        for i in range(num_images):
            self.add_image("synthetic", image_id=i, path=None)
        self.prepare()

    @staticmethod
    def _draw(rng, instances, size):
        image = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
        mask = np.zeros((size, size, instances), dtype=bool)
        yy, xx = np.ogrid[:size, :size]
        for i in range(instances):
            cy, cx = rng.uniform(0, size, 2)
            ry, rx = rng.uniform(10, 150, 2)
            inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
            mask[..., i] = inside
            image[inside] = rng.integers(60, 256, 3, dtype=np.uint8)
        class_ids = rng.integers(1, 3, instances).astype(np.int32)
        return image, mask, class_ids

    def load_image(self, image_id):
        return self._arrays[image_id][0]

    def load_mask(self, image_id):
        _, mask, class_ids = self._arrays[image_id]
        return mask, class_ids


def median_ms(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3,
                        help="passes over the images for the feed timing")
    parser.add_argument("--repeats", type=int, default=21,
                        help="runs of build_rpn_targets for the median")
    whole_feed.add_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.images, args.rounds, args.repeats = 2, 1, 3
    load_before = [round(v, 2) for v in os.getloadavg()]

    config = BenchConfig()
    dataset = SyntheticDataset(args.images, instances=30)
    anchors, _ = data._training_anchors(config)
    rng = np.random.default_rng(0)

    def feed_one(image_id):
        image, _, class_ids, boxes, _ = data.load_image_gt(
            dataset, config, image_id, use_mini_mask=config.USE_MINI_MASK)
        data.build_rpn_targets(image.shape, anchors, class_ids, boxes, config,
                               rng=rng)
        return class_ids, boxes

    class_ids, boxes = feed_one(0)  # warm-up; builds the anchor index
    start = time.perf_counter()
    for _ in range(args.rounds):
        for image_id in dataset.image_ids:
            feed_one(image_id)
    feed_seconds = time.perf_counter() - start
    images_per_s = args.rounds * len(dataset.image_ids) / feed_seconds

    rpn_ms = median_ms(lambda: data.build_rpn_targets(
        None, anchors, class_ids, boxes, config, rng=rng), args.repeats)
    writable = np.array(anchors)  # a plain array: content checked per call
    data.build_rpn_targets(None, writable, class_ids, boxes, config, rng=rng)
    rpn_writable_ms = median_ms(lambda: data.build_rpn_targets(
        None, writable, class_ids, boxes, config, rng=rng), args.repeats)
    index_build_ms = median_ms(lambda: data._AnchorIndex(anchors), 3)
    dense_ms = median_ms(lambda: utils.compute_overlaps(anchors, boxes), 5)

    report = {
        "feed_images_per_s": round(images_per_s, 2),
        "feed_ms_per_image": round(1000 / images_per_s, 1),
        "rpn_targets_ms": round(rpn_ms, 2),
        "rpn_targets_writable_anchors_ms": round(rpn_writable_ms, 2),
        "anchor_index_build_ms": round(index_build_ms, 1),
        "dense_iou_ms": round(dense_ms, 1),
        "num_anchors": int(len(anchors)),
        "gt_boxes": int(len(boxes)),
        "image_size": int(config.IMAGE_MAX_DIM),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cpus_allowed": len(os.sched_getaffinity(0)),
    }
    report["whole_feed"] = whole_feed.measure(args)
    report["cpu"] = whole_feed.cpu_description()
    report["load_average_before"] = load_before
    report["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
