"""Tiled inference on a large image against detect() on it downscaled,
printed as one JSON line.

Each mode runs in a fresh process of its own, so that peak memory is the
mode's:

* tiled: MaskRCNN.detect_tiled on the full image (default 6,000 x 4,000)
  with tiles of IMAGE_MAX_DIM px and --overlap, full_masks=False (masks
  as crops: memory follows the tile);
* downscaled: the image resized to fit IMAGE_MAX_DIM, then detect() (one
  molded image, masks at the downscaled size).

For each: seconds (after one warm-up call on a tile, so tracing is not
counted), seconds_per_megapixel of the original image, peak_rss_mb,
detections (and tiles, for the tiled mode). Weights are random and
DETECTION_MIN_CONFIDENCE 0, so every tile gives DETECTION_MAX_INSTANCES
detections: the merge works on its worst case. Run it with::

    python benchmarks/tiled_inference.py                  # ResNet50, 1024 px
    python benchmarks/tiled_inference.py --tiny           # seconds, a check
"""
import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))

import numpy as np  # noqa: E402

from inference import configure_threads, make_config, peak_rss_mb  # noqa: E402

# A model and image small enough to run in seconds (checks the script).
TINY = {"backbone": "resnet18", "tile": 64, "width": 300, "height": 200,
        "overrides": dict(TOP_DOWN_PYRAMID_SIZE=32, RPN_CONV_DEPTH=32,
                          FPN_CLASSIF_FC_LAYERS_SIZE=64,
                          MASK_HEAD_CONV_DEPTH=16, PRE_NMS_LIMIT=500,
                          POST_NMS_ROIS_INFERENCE=32,
                          DETECTION_MAX_INSTANCES=8,
                          RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128))}


def blob_image(height, width, seed=0):
    """uint8 [height, width, 3] of smooth 16 px random blocks."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (-(-height // 16), -(-width // 16), 3))
    return np.kron(small, np.ones((16, 16, 1)))[:height, :width].astype(
        np.uint8)


def downscale(image, max_dim):
    """The image resized so that its long side is max_dim."""
    import skimage.transform
    scale = max_dim / max(image.shape[:2])
    shape = [max(1, round(d * scale)) for d in image.shape[:2]]
    return skimage.transform.resize(image, shape, order=1,
                                    preserve_range=True,
                                    anti_aliasing=True).astype(np.uint8)


def run_mode(args):
    """The measurements of one mode, in this process."""
    configure_threads(args.threads)
    from mrcnn import model as modellib
    from mrcnn.inference import tiling

    overrides = TINY["overrides"] if args.tiny else {}
    config = make_config(args.backbone, args.tile, num_classes=81,
                         **overrides)
    model = modellib.MaskRCNN("inference", config, model_dir=args.model_dir)
    image = blob_image(args.height, args.width)
    model.detect([image[:args.tile, :args.tile]])  # warm-up: tracing
    start = time.perf_counter()
    if args.mode == "tiled":
        result = model.detect_tiled([image], overlap=args.overlap,
                                    full_masks=False)[0]
        extra = {"tiles": len(tiling.tile_windows(
            image.shape, *tiling.check_tile(args.tile, args.overlap))),
            "overlap": args.overlap}
    else:
        small = downscale(image, args.tile)
        result = model.detect([small])[0]
        extra = {"downscaled_to": list(small.shape[:2])}
    seconds = time.perf_counter() - start
    megapixels = args.height * args.width / 1e6
    return dict(extra, seconds=round(seconds, 2),
                seconds_per_megapixel=round(seconds / megapixels, 3),
                peak_rss_mb=round(peak_rss_mb(), 1),
                detections=len(result["class_ids"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=6000)
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--tile", type=int, default=1024,
                        help="tile size and IMAGE_MAX_DIM")
    parser.add_argument("--overlap", type=int, default=256)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tiny", action="store_true",
                        help="tiny model, 300x200 image, 64 px tiles")
    parser.add_argument("--model-dir", default="/tmp/mrcnn_bench_logs")
    parser.add_argument("--mode", choices=["tiled", "downscaled"],
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tiny:
        for key in ("backbone", "tile", "width", "height"):
            setattr(args, key, TINY[key])
        args.overlap = min(args.overlap, args.tile // 4)

    if args.mode:  # child process: one mode
        print(json.dumps(run_mode(args)))
        return

    report = {"date": time.strftime("%Y-%m-%d"), "backbone": args.backbone,
              "image": [args.height, args.width], "tile": args.tile,
              "threads": args.threads, "tiny": args.tiny,
              "load_average_before": [round(v, 2) for v in os.getloadavg()]}
    for mode in ("tiled", "downscaled"):
        command = [sys.executable, os.path.abspath(__file__), "--mode", mode,
                   "--width", str(args.width), "--height", str(args.height),
                   "--tile", str(args.tile), "--overlap", str(args.overlap),
                   "--backbone", args.backbone, "--threads",
                   str(args.threads), "--model-dir", args.model_dir]
        if args.tiny:
            command.append("--tiny")
        completed = subprocess.run(command, stdout=subprocess.PIPE,
                                   check=True, text=True)
        report[mode] = json.loads(completed.stdout.strip().splitlines()[-1])
    report["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
