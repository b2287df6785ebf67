"""Mask R-CNN on the nuclei of the 2018 Data Science Bowl (stage 1).

matterport's nucleus sample on this library. The dataset folder has the
competition's layout, read by :class:`mrcnn.datasets.MasksDataset`::

    DATASET/stage1_train/<id>/images/<id>.png     (RGBA; alpha is dropped)
    DATASET/stage1_train/<id>/masks/<mask>.png    (one nucleus each)
    DATASET/stage1_test/<id>/images/<id>.png      (optional, no masks)

The dataset folder is --dataset, else $MRCNN_NUCLEI_DIR, else
``../shared/data/nuclei`` beside the project folder when it exists.

Train/validation split, fixed so that figures compare from run to run:
mrcnn.datasets.splits.every_nth_split, which the time-to-accuracy
benchmark uses too: the ids of stage1_train sorted, every 5th (the 1st,
6th, ...) to "val", the rest to "train" (29 and 112 of the 141 images of
the shared subset).

The model trains from scratch (no weights can be downloaded on the
machines this library is made on): ResNet18-FPN, 256 px crops of images
scaled x2, all layers, with the from-scratch settings of the README
(trained batch norm, ground-truth boxes among the heads' proposals). See
NucleusConfig for each value and why.

Usage: import the module, or run it from the command line:

    # Train from scratch (or --weights=imagenet / coco / a path)
    python samples/nucleus/nucleus.py train --dataset=/path/to/nuclei --weights=none

    # Resume training the last model you trained
    python samples/nucleus/nucleus.py train --dataset=/path/to/nuclei --weights=last

    # Detect on the validation images with the last model: writes
    # results/nucleus/submit_<time>/submission.csv and one PNG per image
    python samples/nucleus/nucleus.py detect --dataset=/path/to/nuclei --subset=val --weights=last

``--tiny`` swaps in a model and images small enough to train for a few
steps on a CPU in seconds (for tests and smoke runs; it learns nothing
useful), ``--epochs`` and ``--steps`` shorten training and ``--limit N``
detects on the first N images of the subset only.
"""

import argparse
import datetime
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Root directory of the project; lets the script run without installing.
ROOT_DIR = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
if ROOT_DIR not in sys.path:
    sys.path.insert(0, ROOT_DIR)

import numpy as np  # noqa: E402
import skimage.io  # noqa: E402

from mrcnn import visualize  # noqa: E402
from mrcnn.cli import commands as cli  # noqa: E402
from mrcnn.config import Config  # noqa: E402
from mrcnn.config_presets import from_scratch  # noqa: E402
from mrcnn.datasets import MasksDataset, splits  # noqa: E402
from samples.nucleus import submission  # noqa: E402

# Path to the COCO-trained weights file (downloaded there when missing).
COCO_WEIGHTS_PATH = os.path.join(ROOT_DIR, cli.COCO_WEIGHTS_FILE)

# Directory to save logs and model checkpoints.
DEFAULT_LOGS_DIR = os.path.join(ROOT_DIR, "logs")

# Where `detect` writes its submit_<time>/ folders.
RESULTS_DIR = os.path.join(ROOT_DIR, "results", "nucleus")

# The shared copy of the data beside the project folder (see SOURCE.md).
SHARED_DATASET_DIR = os.path.join(os.path.dirname(ROOT_DIR), "shared",
                                  "data", "nuclei")

# Subsets: the two sides of the split of stage1_train, stage1_train whole,
# and the test images (no masks).
SUBSETS = ("train", "val", "stage1_train", "stage1_test")


############################################################
#  Configurations
############################################################

class NucleusConfig(from_scratch(Config)):
    """Training from scratch on a 2-core CPU: the values of the library's
    from-scratch preset (mrcnn.config_presets.FROM_SCRATCH: ResNet18,
    trained batch norm, ground truth among the proposals, RPN positives at
    IoU 0.5, learning rate 0.01), then every value of this data set here,
    with its reason (the class body wins over the preset)."""
    NAME = "nucleus"
    NUM_CLASSES = 1 + 1  # background + nucleus
    IMAGES_PER_GPU = 2

    # 112 training images, 29 validation images (see the split above).
    STEPS_PER_EPOCH = 112 // IMAGES_PER_GPU
    VALIDATION_STEPS = max(1, 29 // IMAGES_PER_GPU)

    # --- Network size for a CPU (the preset's ResNet18, narrower) ---
    TOP_DOWN_PYRAMID_SIZE = 128
    RPN_CONV_DEPTH = 128
    FPN_CLASSIF_FC_LAYERS_SIZE = 512
    MASK_HEAD_CONV_DEPTH = 128

    # --- Images: random 256 px crops of the image scaled x2 ---
    # Nuclei are 6-100 px across (median 18) in images of 256-1388 px:
    # doubled (as matterport's sample did) they are 12-200 px, and a crop
    # keeps a step cheap.
    IMAGE_RESIZE_MODE = "crop"
    IMAGE_MIN_DIM = 256
    IMAGE_MAX_DIM = 256
    IMAGE_MIN_SCALE = 2.0
    # Mean RGB of the training images (split of the time), pixel-weighted (the images are
    # mostly dark fluorescence; Config's ImageNet mean is far off).
    MEAN_PIXEL = np.array([27.7, 25.6, 30.8])

    # --- Many small objects ---
    # The anchor report (inspect_nucleus_data.ipynb; mrcnn.data.anchor_fit)
    # on every sixth training image, whole and scaled x2 (565 nuclei):
    # 95 % of the boxes have an anchor at IoU >= 0.5 with these scales,
    # 78 % with the preset's and matterport's (8, ..., 128); the report
    # suggests no better.
    RPN_ANCHOR_SCALES = (16, 32, 64, 128, 256)
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    RPN_NMS_THRESHOLD = 0.9  # dense nuclei: keep neighbouring proposals
    PRE_NMS_LIMIT = 3000
    POST_NMS_ROIS_TRAINING = 1000
    POST_NMS_ROIS_INFERENCE = 2000
    TRAIN_ROIS_PER_IMAGE = 128
    # A crop holds at most a few hundred nuclei; the full stage 1 training
    # set has an image with 375 (this subset: 199).
    MAX_GT_INSTANCES = 400
    DETECTION_MAX_INSTANCES = 400
    # Keep every detection: the competition's score is an IoU sweep and
    # with two classes a detection's score is >= 0.5 anyway.
    DETECTION_MIN_CONFIDENCE = 0
    # Nuclei are small: 28 px mini-masks hold their outline.
    MINI_MASK_SHAPE = (28, 28)


class NucleusInferenceConfig(NucleusConfig):
    """Whole images, one at a time: padded to a multiple of 64 after the
    same x2 scaling as in training."""
    GPU_COUNT = 1
    IMAGES_PER_GPU = 1
    IMAGE_RESIZE_MODE = "pad64"
    RPN_NMS_THRESHOLD = 0.7


# --tiny on top of mrcnn.cli.commands.TINY_SETTINGS: native scale (64 px
# crops in training, the images as they are in detect) and room for the
# dozens of nuclei of an image.
TINY_NUCLEUS_SETTINGS = {"IMAGE_MIN_SCALE": 0, "MAX_GT_INSTANCES": 100,
                         "DETECTION_MAX_INSTANCES": 32}


def make_config(inference=False, tiny=False, **overrides):
    """A NucleusConfig (or NucleusInferenceConfig) instance.

    tiny: apply TINY_SETTINGS and TINY_NUCLEUS_SETTINGS first.
    overrides: further attribute values, e.g. STEPS_PER_EPOCH=10.
    """
    base = NucleusInferenceConfig if inference else NucleusConfig
    attrs = dict(TINY_NUCLEUS_SETTINGS) if tiny else {}
    attrs.update(overrides)
    return cli.sample_config(base, inference=inference, tiny=tiny, **attrs)


############################################################
#  Dataset
############################################################

class NucleusDataset(MasksDataset):
    """The nuclei images and their mask PNGs, one class "nucleus"."""

    def load_nucleus(self, dataset_dir, subset):
        """Add the images of one subset.

        dataset_dir: the folder holding stage1_train/ (and stage1_test/).
        subset: "train" or "val" (the split of stage1_train), or
            "stage1_train" / "stage1_test" whole.
        Raises ValueError for another subset, FileNotFoundError naming a
        missing folder.
        """
        if subset not in SUBSETS:
            raise ValueError("nucleus subset must be one of {}, got {!r}"
                             .format(", ".join(SUBSETS), subset))
        folder = "stage1_train" if subset in ("train", "val") else subset
        self.load_masks(os.path.join(os.fspath(dataset_dir), folder),
                        layout="instances", class_names=["nucleus"],
                        source="nucleus")
        if subset in ("train", "val"):
            train_ids, val_ids = splits.every_nth_split(
                [info["id"] for info in self.image_info])
            keep = set(val_ids if subset == "val" else train_ids)
            self.image_info = [info for info in self.image_info
                               if info["id"] in keep]


def load_subset(dataset_dir, subset):
    """A prepared NucleusDataset of one subset."""
    dataset = NucleusDataset()
    dataset.load_nucleus(dataset_dir, subset)
    dataset.prepare()
    return dataset


def default_dataset_dir():
    """$MRCNN_NUCLEI_DIR, else the shared copy when it exists, else None."""
    if os.environ.get("MRCNN_NUCLEI_DIR"):
        return os.environ["MRCNN_NUCLEI_DIR"]
    return SHARED_DATASET_DIR if os.path.isdir(SHARED_DATASET_DIR) else None


############################################################
#  Training
############################################################

def augmentation():
    """matterport's nucleus augmentation (imgaug): up to two of flips,
    a quarter turn, brightness and blur per image
    (mrcnn.data.augment.default_augmentation)."""
    from mrcnn.data.augment import default_augmentation
    return default_augmentation()


def load_datasets(dataset_dir):
    """The prepared (train, val) NucleusDatasets of dataset_dir."""
    return load_subset(dataset_dir, "train"), load_subset(dataset_dir, "val")


def train(model, dataset_dir, epochs=40, layers="all", augment=True):
    """Train on the train side of the split, validating on val.

    From scratch every layer trains (layers="all"); from ImageNet or COCO
    weights, "heads" first and then "all" is matterport's schedule.
    Returns the Keras History.
    """
    dataset_train, dataset_val = load_datasets(dataset_dir)
    return train_on(model, dataset_train, dataset_val, epochs=epochs,
                    layers=layers, augment=augment)


def train_on(model, dataset_train, dataset_val, epochs=40, layers="all",
             augment=True):
    """train() on datasets that are already loaded."""
    print("Training network {} on {} images ({} for validation)".format(
        layers, dataset_train.num_images, dataset_val.num_images))
    return model.train(dataset_train, dataset_val,
                       learning_rate=model.config.LEARNING_RATE,
                       epochs=epochs, layers=layers,
                       augmentation=augmentation() if augment else None)


############################################################
#  Detection
############################################################

def detection_picture(image, masks):
    """The image beside itself with each instance blended in its own
    color: uint8 [height, 2 * width, 3]. masks: [height, width, N]."""
    colors = visualize.random_colors(masks.shape[-1])
    overlay = visualize.apply_masks_fast(image, masks, colors)
    return np.concatenate([image, overlay], axis=1).astype(np.uint8)


def detect(model, dataset_dir, subset="val", out_dir=RESULTS_DIR,
           limit=None):
    """Detect nuclei in a subset's images; write the submission.

    Writes out_dir/submit_<YYYYmmddTHHMMSS>/submission.csv (one row per
    nucleus, overlaps removed, see samples.nucleus.submission) and
    <image id>.png (the image beside its detections, overlaps removed).
    limit: detect on the first `limit` images only (None: all).
    Returns the submit folder.
    """
    dataset = load_subset(dataset_dir, subset)
    submit_dir = os.path.join(out_dir, "submit_{:%Y%m%dT%H%M%S}".format(
        datetime.datetime.now()))
    os.makedirs(submit_dir, exist_ok=True)
    rows = []
    for image_id in dataset.image_ids[:limit]:
        source_id = dataset.image_info[image_id]["id"]
        image = dataset.load_image(image_id)
        r = model.detect([image], verbose=0)[0]
        masks, _ = submission.non_overlapping(r["masks"], r["scores"])
        rows += submission.encode_rows(source_id, masks)
        skimage.io.imsave(os.path.join(submit_dir, source_id + ".png"),
                          detection_picture(image, masks),
                          check_contrast=False)
        print("{}: {} nuclei".format(source_id, masks.shape[-1]))
    csv_path = os.path.join(submit_dir, "submission.csv")
    submission.write_submission(csv_path, rows)
    print("Saved to", submit_dir)
    return submit_dir


############################################################
#  Command line
############################################################

def load_model_weights(model, weights, coco_path=COCO_WEIGHTS_PATH):
    """Load --weights (coco, imagenet, last, none or a path) into the model;
    returns the file (None: none). COCO weights load without their
    81-class heads (mrcnn.cli.commands.load_weights_arg)."""
    return cli.load_weights_arg(model, weights, coco_path)


def build_parser():
    parser = argparse.ArgumentParser(
        description="Mask R-CNN for nuclei counting and segmentation")
    parser.add_argument("command", metavar="<command>",
                        choices=["train", "detect"],
                        help="'train' or 'detect'")
    parser.add_argument("--dataset", metavar="/path/to/nuclei/",
                        default=default_dataset_dir(),
                        help="Folder holding stage1_train/ (default: "
                             "$MRCNN_NUCLEI_DIR, else ../shared/data/nuclei)")
    parser.add_argument("--subset", default="val", choices=SUBSETS,
                        help="Subset to detect on (default: val)")
    cli.add_sample_arguments(parser, "--weights", DEFAULT_LOGS_DIR)
    parser.add_argument("--out", default=RESULTS_DIR,
                        help="Folder of detect's submit_<time>/ folders "
                             "(default: results/nucleus)")
    parser.add_argument("--limit", type=int, default=None,
                        help="detect: the first N images only")
    parser.add_argument("--epochs", type=int, default=40,
                        help="Epoch number to train up to (default 40)")
    parser.add_argument("--layers", default="all",
                        help="heads, 3+, 4+, 5+ or all (default all)")
    parser.add_argument("--no-augment", action="store_true",
                        help="train without the imgaug augmentation")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.dataset:
        parser.error("no dataset: pass --dataset or set MRCNN_NUCLEI_DIR")
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be a positive number of images")
    print("Weights: ", args.weights)
    print("Dataset: ", args.dataset)
    print("Logs: ", args.logs)

    model = cli.sample_model(make_config, args,
                             inference=args.command == "detect")
    try:
        # Bad weights or dataset paths end here with a message naming the
        # file; errors during training keep their traceback.
        load_model_weights(model, args.weights)
        if args.command == "train":
            datasets = load_datasets(args.dataset)
        else:
            detect(model, args.dataset, args.subset, args.out, args.limit)
            return 0
    except (OSError, ValueError) as error:
        return cli.report_error("nucleus.py", args.command, error)
    train_on(model, *datasets, epochs=args.epochs, layers=args.layers,
             augment=not args.no_augment)
    return 0


if __name__ == "__main__":
    sys.exit(main())
