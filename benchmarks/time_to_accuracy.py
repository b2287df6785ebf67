"""Time to accuracy: mrcnn against torchvision's Mask R-CNN, both trained
from random initialization for the same wall-clock budget, printed as one
JSON line, with a PNG of the two curves.

    python benchmarks/time_to_accuracy.py --minutes 25        # the race
    python benchmarks/time_to_accuracy.py --tiny --only mrcnn # a 1-minute check
    python benchmarks/time_to_accuracy.py --minutes 25 --only mrcnn \
        --set 'MIXED_PRECISION="auto"' --against race.json
        # this mrcnn beside the sides of an earlier run (race_report.py)

No pretrained weights can be downloaded here, so both start from random
weights. Same training images at the same input size (each image scaled so
that its longer side is --size, done once before training and given to
both as arrays, so that neither spends its budget decoding PNGs), the same
backbone depth (--backbone; ResNet18-FPN by default: a ResNet50 step
costs three to four times as much, too few steps in half an hour on 2
cores, an estimate from step times; see benchmarks/README.md),
the same anchor sizes (8..128 px, the nuclei are 7-40 px at 320), 100
detections per image from a score of 0.05 on both (COCO counts 100),
float32, --threads threads each (TensorFlow: that many intra-op threads,
one op at a time; torch: torch.set_num_threads), one after the other.

Each side trains with the recipe its own documentation gives for training
from scratch:

* mrcnn: mrcnn.config_presets.FROM_SCRATCH (batch norm trained in the
  backbone, frozen in the heads, ground-truth boxes among the proposals,
  negatives filling the ROI slots, anchors from 8 px, RPN positives at
  IoU 0.5, learning rate 0.01 for 2 images, linear warm-up from 0.1x over
  LEARNING_RATE_WARMUP steps, x0.1 for the last quarter of the budget),
  SGD with momentum 0.9, weight decay 1e-4, gradient norm clipped at 5
  (Config's), and flips (left-right, up-down) and 90-degree rotations;
* torchvision: see benchmarks/time_to_accuracy_torch.py (its reference
  scripts: SGD 0.02 per 16 images scaled to 2, warm-up from 0.001x, x0.1
  at 16/26 and 22/26 of the budget, horizontal flips, trained BatchNorm2d
  and all stages trainable as torchvision builds a model without weights).

The clock: each side's training time, from its first step (mrcnn's graph
tracing included) to the budget; it stops while the side is evaluated,
every --eval-every minutes and at the end, on every validation image, by
the same code: mrcnn.evaluation.coco_eval (pycocotools, mask AP@[.5:.95]
and AP50, at the validation images' own resolution; torchvision's masks
are thresholded at 0.5, as mrcnn's).

Data: --train (a masks folder, one PNG per instance, or any folder
mrcnn.datasets.load_dataset reads) and --val; without --val the training
folder is split by mrcnn.datasets.splits.split_dataset (sorted ids, every
5th to validation). Default: the 141 DSB2018 nuclei images of the shared
data folder (112 training, 29 validation).

torchvision runs in its own virtualenv, as a worker process driven over a
pipe (as benchmarks/compare_torchvision.py)::

    python3 -m venv benchmarks/.torch-venv
    benchmarks/.torch-venv/bin/pip install torch==2.14.1 torchvision==0.29.1
"""
import argparse
import contextlib
import json
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)
from pipe_worker import PipeClient  # noqa: E402
from race_report import (plot_curves, read_report,  # noqa: E402
                         summarize, with_earlier_sides)

TORCH_PYTHON = os.environ.get(
    "MRCNN_TORCH_PYTHON", os.path.join(HERE, ".torch-venv", "bin", "python"))


def default_train_dir():
    """$MRCNN_NUCLEI_DIR, else the first shared/data/nuclei/stage1_train in
    the repository or a folder above it (shared/ sits beside the clone)."""
    if os.environ.get("MRCNN_NUCLEI_DIR"):
        return os.environ["MRCNN_NUCLEI_DIR"]
    folder = ROOT
    for _ in range(4):
        candidate = os.path.join(folder, "shared", "data", "nuclei",
                                 "stage1_train")
        if os.path.isdir(candidate):
            return candidate
        folder = os.path.dirname(folder)
    return os.path.join(ROOT, "..", "shared", "data", "nuclei", "stage1_train")


DEFAULT_TRAIN = default_train_dir()
SIDES = ("mrcnn", "torchvision")
ANCHOR_SIZES = (8, 16, 32, 64, 128)
DETECTIONS = 100     # COCO's AP counts the 100 best of each image
MIN_SCORE = 0.05     # torchvision's default; detectron2 evaluates from it too
BATCH = 2
# --tiny: a few small images, a few seconds of training a side.
TINY = {"size": 64, "minutes": 0.2, "eval_every": 0.1, "images": 4}


############################################################
#  Data: the split, the resized training arrays, the validation set
############################################################

def load_data(train_dir, val_dir, limit=None):
    """(train, val) prepared datasets; val_dir None splits train_dir."""
    from mrcnn.datasets import load_dataset
    from mrcnn.datasets.splits import split_dataset, subset
    train = load_dataset(train_dir)
    if val_dir is None:
        train, val = split_dataset(train)
    else:
        val = load_dataset(val_dir, reference_classes=train.class_names)
    if limit:
        train = subset(train, [i["id"] for i in train.image_info[:limit]])
        val = subset(val, [i["id"] for i in val.image_info[:limit]])
    return train, val


def resized_arrays(dataset, size):
    """[(image [h, w, 3] uint8, masks [h, w, N] bool, class_ids [N])]: each
    image scaled so that its longer side is `size` (bilinear; masks nearest),
    instances that vanish dropped. Both sides train on these arrays."""
    from mrcnn import utils
    samples = []
    for image_id in dataset.image_ids:
        image = dataset.load_image(image_id)
        masks, class_ids = dataset.load_mask(image_id)
        scale = size / max(image.shape[:2])
        shape = tuple(int(round(d * scale)) for d in image.shape[:2])
        image = utils.resize(image, shape, preserve_range=True).astype(np.uint8)
        masks = utils.resize(masks.astype(np.uint8), shape, order=0,
                             preserve_range=True).astype(bool)
        keep = masks.any(axis=(0, 1))
        samples.append((image, masks[..., keep], class_ids[keep]))
    return samples


def arrays_dataset(samples, reference):
    """A prepared mrcnn Dataset serving `samples` from memory, with the
    classes of `reference`."""
    from mrcnn import utils

    class ArraysDataset(utils.Dataset):
        def load_image(self, image_id):
            return self.image_info[image_id]["arrays"][0]

        def load_mask(self, image_id):
            _, masks, class_ids = self.image_info[image_id]["arrays"]
            return masks, class_ids.astype(np.int32)

    dataset = ArraysDataset()
    dataset.class_info = [dict(c) for c in reference.class_info]
    # the classes' source, which marks them active for these images
    source = reference.image_info[0]["source"]
    for i, sample in enumerate(samples):
        dataset.add_image(source, image_id=i, path=None, arrays=sample)
    dataset.prepare()
    return dataset


############################################################
#  Evaluation: the same code for both sides
############################################################

class Validation(object):
    """The validation images in memory and their COCO ground truth."""

    def __init__(self, dataset):
        from mrcnn.evaluation import coco_eval
        self.dataset = dataset
        self.images = [dataset.load_image(i) for i in dataset.image_ids]
        self.coco_gt = coco_eval.dataset_to_coco(dataset)

    def score(self, detections):
        """{"mask_ap", "mask_ap50"} of one detect() dict per image (rois
        [N, (y1, x1, y2, x2)], class_ids, scores, masks [H, W, N])."""
        from mrcnn.evaluation import coco_eval
        results = coco_eval.to_coco_results(
            self.dataset, list(self.dataset.image_ids), detections)
        metrics = coco_eval.coco_evaluate(self.coco_gt, results, "segm")
        return {"mask_ap": round(metrics["AP"], 4),
                "mask_ap50": round(metrics["AP50"], 4)}


def read_torch_detections(path):
    """A detect()-style dict from a file the torch worker wrote."""
    data = np.load(path)
    count, height, width = (int(v) for v in data["shape"])
    masks = np.unpackbits(data["masks"])[:count * height * width]
    return {"rois": data["boxes"], "scores": data["scores"],
            "class_ids": data["labels"].astype(np.int32),
            "masks": masks.reshape(count, height, width).transpose(1, 2, 0)
            .astype(bool)}


############################################################
#  mrcnn's side
############################################################

def mrcnn_config_class(args, num_classes):
    """The benchmark's Config: FROM_SCRATCH on the shared settings."""
    from mrcnn.config import Config
    from mrcnn.config_presets import from_scratch
    shared = dict(
        NAME="tta", NUM_CLASSES=num_classes, IMAGES_PER_GPU=BATCH,
        GPU_COUNT=1, IMAGE_MIN_DIM=args.size, IMAGE_MAX_DIM=args.size,
        BACKBONE=args.backbone, RPN_ANCHOR_SCALES=ANCHOR_SIZES,
        RPN_CONV_DEPTH=256, MAX_GT_INSTANCES=args.max_instances,
        DETECTION_MAX_INSTANCES=DETECTIONS,
        DETECTION_MIN_CONFIDENCE=MIN_SCORE, MIXED_PRECISION=None,
        CPU_THREADS=args.threads, STEPS_PER_EPOCH=1000, VALIDATION_STEPS=0)
    shared.update(args.mrcnn_set)
    return from_scratch(type("TimeToAccuracyConfig", (Config,), {}),
                        **shared)


def mrcnn_augmentation():
    """Flips both ways and quarter turns: nuclei have no up or left."""
    from mrcnn._imgaug_compat import import_imgaug
    iaa = import_imgaug().augmenters
    return iaa.Sequential([iaa.Fliplr(0.5), iaa.Flipud(0.5),
                           iaa.Rot90((0, 3))])


def budget_callback(budget_s, eval_every_s, evaluate, learning_rate):
    """A Keras callback that sets the rate each step, evaluates with the
    clock paused and stops training when the budget is spent."""
    import keras
    from mrcnn import config_presets

    class Budget(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start, self.paused, self.steps = time.perf_counter(), 0.0, 0
            self.next_eval = min(eval_every_s, budget_s)

        def clock(self):
            return time.perf_counter() - self.start - self.paused

        def on_train_batch_begin(self, batch, logs=None):
            warm = min(1.0, self.steps / config_presets.LEARNING_RATE_WARMUP)
            rate = learning_rate * (0.1 + 0.9 * warm)
            if self.clock() >= config_presets.LEARNING_RATE_DROP_AT * budget_s:
                rate = learning_rate / 10
            self.model.optimizer.learning_rate = rate

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            clock = self.clock()
            if clock < self.next_eval:
                return
            pause = time.perf_counter()
            evaluate(clock, self.steps, (logs or {}).get("loss"))
            self.paused += time.perf_counter() - pause
            self.next_eval = min(self.next_eval + eval_every_s, budget_s)
            if clock >= budget_s:
                self.model.stop_training = True

    return Budget()


def run_mrcnn(args, train, validation, log):
    """Trains mrcnn for the budget; returns its curve."""
    from mrcnn import model as modellib
    from mrcnn.evaluation.evaluate import copy_weights_by_name
    config_class = mrcnn_config_class(args, train.num_classes)
    config = config_class()
    inference_config = type("Inference", (config_class,),
                            {"IMAGES_PER_GPU": 1})()
    with tempfile.TemporaryDirectory() as model_dir:
        model = modellib.MaskRCNN("training", config, model_dir)
        inference = modellib.MaskRCNN("inference", inference_config, model_dir)
        curve = []

        def evaluate(clock, steps, loss):
            copy_weights_by_name(model.keras_model, inference.keras_model)
            detections = [inference.detect([image])[0]
                          for image in validation.images]
            point = dict(minutes=round(clock / 60, 3), steps=steps,
                         loss=loss, **validation.score(detections))
            curve.append(point)
            log("mrcnn", point)
        model.train(train, None, learning_rate=config.LEARNING_RATE,
                    epochs=10 ** 6, layers="all",
                    augmentation=mrcnn_augmentation(),
                    custom_callbacks=[budget_callback(
                        args.minutes * 60, args.eval_every * 60, evaluate,
                        config.LEARNING_RATE)])
    return curve, config.to_dict()


############################################################
#  torchvision's side (a worker in the torch virtualenv)
############################################################

class TorchClient(PipeClient):
    """Starts benchmarks/time_to_accuracy_torch.py and calls it."""

    def __init__(self, threads, python):
        from compare_torchvision import torch_environment
        super().__init__(
            [python, os.path.join(HERE, "time_to_accuracy_torch.py"),
             str(threads)], torch_environment())


def write_torch_inputs(samples, validation, work_dir):
    """The training arrays and validation images as .npz files for the
    worker: (training files, validation files)."""
    train_files, val_files = [], []
    for i, (image, masks, class_ids) in enumerate(samples):
        from mrcnn import utils
        boxes = utils.extract_bboxes(masks)[:, [1, 0, 3, 2]]  # x1 y1 x2 y2
        train_files.append(os.path.join(work_dir, "train{}.npz".format(i)))
        np.savez(train_files[-1], image=image, boxes=boxes.astype(np.float32),
                 labels=class_ids, masks=masks.transpose(2, 0, 1))
    for i, image in enumerate(validation.images):
        val_files.append(os.path.join(work_dir, "val{}.npz".format(i)))
        np.savez(val_files[-1], image=image)
    return train_files, val_files


def run_torchvision(args, samples, validation, log):
    """Trains torchvision's model for the budget; returns its curve."""
    settings = {"backbone": args.backbone, "size": args.size,
                "anchor_sizes": ANCHOR_SIZES, "detections": DETECTIONS,
                "min_score": MIN_SCORE, "batch": BATCH, "seed": args.seed,
                "num_classes": validation.dataset.num_classes,
                "budget_seconds": args.minutes * 60}
    curve = []
    with tempfile.TemporaryDirectory() as work_dir:
        train_files, val_files = write_torch_inputs(samples, validation,
                                                    work_dir)
        torch = TorchClient(args.threads, args.torch_python)
        try:
            recipe = torch.call("setup", settings=settings,
                                train_files=train_files)
            clock = 0.0
            while clock < args.minutes * 60:
                until = min(clock + args.eval_every * 60, args.minutes * 60)
                state = torch.call("train", until_seconds=until)
                clock = state["clock"]
                files = torch.call("detect", image_files=val_files,
                                   out_dir=work_dir)["files"]
                point = dict(minutes=round(clock / 60, 3),
                             steps=state["steps"], loss=state["loss"],
                             **validation.score([read_torch_detections(f)
                                                 for f in files]))
                curve.append(point)
                log("torchvision", point)
        finally:
            torch.close()
    return curve, dict(settings, **recipe)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", default=DEFAULT_TRAIN,
                        help="training folder (default: the nuclei)")
    parser.add_argument("--val", default=None,
                        help="validation folder (default: split --train)")
    parser.add_argument("--minutes", type=float, default=25.0,
                        help="training budget of each side, minutes")
    parser.add_argument("--eval-every", type=float, default=5.0,
                        help="minutes of training between evaluations")
    parser.add_argument("--size", type=int, default=320,
                        help="longer image side in training and inference")
    parser.add_argument("--backbone", default="resnet18",
                        choices=("resnet18", "resnet50"))
    parser.add_argument("--only", choices=SIDES, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-instances", type=int, default=200,
                        help="mrcnn's MAX_GT_INSTANCES (nuclei: up to 199)")
    parser.add_argument("--images", type=int, default=None,
                        help="use the first N training and validation images")
    parser.add_argument("--set", action="append", default=[],
                        metavar="KEY=JSON", help="mrcnn Config value over "
                        "the preset's (experiments), repeatable")
    parser.add_argument("--out", default=os.path.join(HERE, "out"),
                        help="folder of the PNG")
    parser.add_argument("--tiny", action="store_true",
                        help="a few small images, seconds of training")
    parser.add_argument("--torch-python", default=TORCH_PYTHON)
    parser.add_argument("--against", action="append", default=[],
                        metavar="REPORT", help="a file holding an earlier "
                        "run's JSON line: its sides go beside this run's "
                        "(same size, backbone, data and budget), "
                        "repeatable")
    args = parser.parse_args(argv)
    if args.tiny:
        args.size, args.minutes = TINY["size"], TINY["minutes"]
        args.eval_every = TINY["eval_every"]
        args.images = args.images or TINY["images"]
    args.mrcnn_set = {k: json.loads(v) for k, v in
                      (pair.split("=", 1) for pair in args.set)}
    return args


def main(argv=None):
    args = parse_args(argv)
    for path in args.against:
        read_report(path)  # a wrong file fails now, not after the budget
    sides = [args.only] if args.only else list(SIDES)
    if "torchvision" in sides and not os.path.exists(args.torch_python):
        raise SystemExit(
            "time_to_accuracy: no torch interpreter at {}; create it with: "
            "python3 -m venv benchmarks/.torch-venv && benchmarks/.torch-venv"
            "/bin/pip install torch==2.14.1 torchvision==0.29.1, or run "
            "--only mrcnn".format(args.torch_python))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from inference import configure_threads
    from mrcnn import runtime
    configure_threads(args.threads)
    report = {"benchmark": "time_to_accuracy", "date": time.strftime(
        "%Y-%m-%d %H:%M"), "threads": args.threads,
        "cpu": runtime.cpu_summary(), "load_average_before": [
            round(v, 2) for v in os.getloadavg()]}
    train, val = load_data(args.train, args.val, args.images)
    samples = resized_arrays(train, args.size)
    validation = Validation(val)

    def log(side, point):
        print("{}: {}".format(side, json.dumps(point)), file=sys.stderr,
              flush=True)
    curves = {}
    if "mrcnn" in sides:
        # Keras' progress goes to stderr: stdout is the one JSON line.
        with contextlib.redirect_stdout(sys.stderr):
            curves["mrcnn"] = run_mrcnn(
                args, arrays_dataset(samples, train), validation, log)
    if "torchvision" in sides:
        curves["torchvision"] = run_torchvision(args, samples, validation, log)
    report.update(
        sides=summarize(curves), budget_minutes=args.minutes,
        eval_every_minutes=args.eval_every, size=args.size,
        backbone=args.backbone, train_dir=os.path.abspath(args.train),
        val_dir=args.val and os.path.abspath(args.val),
        split=None if args.val else "mrcnn.datasets.splits.split_dataset",
        train_images=len(samples), val_images=len(validation.images),
        onednn_max_cpu_isa=os.environ.get(runtime.ONEDNN_ISA_ENV),
        load_average_after=[round(v, 2) for v in os.getloadavg()])
    report = with_earlier_sides(report, args.against)
    os.makedirs(args.out, exist_ok=True)
    report["png"] = os.path.join(args.out, "time_to_accuracy.png")
    plot_curves(report["sides"], report["png"])
    print(json.dumps(report, default=_jsonable))


def _jsonable(value):
    """numpy values and tuples of the recipe as JSON."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


if __name__ == "__main__":
    main()
