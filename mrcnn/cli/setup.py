"""What the command line and the samples share: configs from --set values,
the run config file beside the checkpoints, the --weights choices, the
samples' arguments and models, and loading datasets and weights with the
errors a user reads (CliError).
"""

import json
import os
import sys

from mrcnn import atomic_files, config_presets
from mrcnn.network.layer_names import CLASS_SPECIFIC_LAYERS

RUN_CONFIG = "run_config.json"

# Config attributes a user can set with --set KEY=VALUE (JSON values, and
# true/false/yes/no for the booleans: see parse_setting).
OVERRIDABLE = (
    "BACKBONE", "IMAGES_PER_GPU", "GPU_COUNT", "STEPS_PER_EPOCH",
    "VALIDATION_STEPS", "IMAGE_MIN_DIM", "IMAGE_MAX_DIM", "IMAGE_RESIZE_MODE",
    "IMAGE_MIN_SCALE", "RPN_ANCHOR_SCALES", "RPN_ANCHOR_RATIOS",
    "TRAIN_ROIS_PER_IMAGE", "MAX_GT_INSTANCES", "DETECTION_MIN_CONFIDENCE",
    "DETECTION_MAX_INSTANCES", "LEARNING_RATE", "TRAIN_BN", "USE_MINI_MASK",
    "POST_NMS_ROIS_TRAINING", "POST_NMS_ROIS_INFERENCE", "PRE_NMS_LIMIT",
    "TOP_DOWN_PYRAMID_SIZE", "RPN_CONV_DEPTH", "FPN_CLASSIF_FC_LAYERS_SIZE",
    "MASK_HEAD_CONV_DEPTH", "MINI_MASK_SHAPE", "WEIGHT_DECAY",
    "RPN_TRAIN_ANCHORS_PER_IMAGE", "MIXED_PRECISION", "DETECTION_NMS_THRESHOLD",
    "CPU_THREADS", "CLASS_LOSS_WEIGHTS", "CLASS_LOSS", "CLASS_LOSS_GAMMA",
    "RPN_POSITIVE_IOU", "RPN_NEGATIVE_IOU",
    # Training from scratch (see the README): the proposals, batch norm and
    # optimizer knobs that the shapes demo and samples/nucleus set.
    "ADD_GT_TO_PROPOSALS", "HEAD_TRAIN_BN", "ROI_FILL_WITH_NEGATIVES",
    "MASK_HEAD_POSITIVE_ROIS", "LEARNING_MOMENTUM", "GRADIENT_CLIP_NORM",
    "RPN_NMS_THRESHOLD", "ROI_POSITIVE_RATIO", "MEAN_PIXEL",
    "BATCH_NORM_MOMENTUM",
)

COCO_CLASS_NAMES = [
    'BG', 'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus',
    'train', 'truck', 'boat', 'traffic light', 'fire hydrant', 'stop sign',
    'parking meter', 'bench', 'bird', 'cat', 'dog', 'horse', 'sheep', 'cow',
    'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella', 'handbag',
    'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball', 'kite',
    'baseball bat', 'baseball glove', 'skateboard', 'surfboard',
    'tennis racket', 'bottle', 'wine glass', 'cup', 'fork', 'knife', 'spoon',
    'bowl', 'banana', 'apple', 'sandwich', 'orange', 'broccoli', 'carrot',
    'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch', 'potted plant',
    'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote',
    'keyboard', 'cell phone', 'microwave', 'oven', 'toaster', 'sink',
    'refrigerator', 'book', 'clock', 'vase', 'scissors', 'teddy bear',
    'hair drier', 'toothbrush']

# Class-specific layers that do not fit a dataset with other classes (the
# COCO weights' heads have 81 classes).
HEAD_LAYERS = CLASS_SPECIFIC_LAYERS

# File name of matterport's COCO-trained weights.
COCO_WEIGHTS_FILE = "mask_rcnn_coco.h5"

# Config values of a model and images small enough to train a few steps on
# a CPU in seconds (the samples' --tiny; it learns nothing useful).
TINY_SETTINGS = {
    "BACKBONE": "resnet18",
    "IMAGES_PER_GPU": 1,
    "IMAGE_MIN_DIM": 64,
    "IMAGE_MAX_DIM": 64,
    "RPN_ANCHOR_SCALES": (8, 16, 32, 64, 128),
    "TOP_DOWN_PYRAMID_SIZE": 32,
    "RPN_CONV_DEPTH": 32,
    "FPN_CLASSIF_FC_LAYERS_SIZE": 64,
    "MASK_HEAD_CONV_DEPTH": 16,
    "PRE_NMS_LIMIT": 500,
    "POST_NMS_ROIS_TRAINING": 64,
    "POST_NMS_ROIS_INFERENCE": 32,
    "TRAIN_ROIS_PER_IMAGE": 16,
    "RPN_TRAIN_ANCHORS_PER_IMAGE": 32,
    "MAX_GT_INSTANCES": 8,
    "DETECTION_MAX_INSTANCES": 8,
    "MINI_MASK_SHAPE": (14, 14),
    "STEPS_PER_EPOCH": 2,
    "VALIDATION_STEPS": 1,
}


# The names `mrcnn train --preset` takes.
PRESET_NAMES = tuple(sorted(config_presets.PRESETS))


def preset_overrides(preset, overrides):
    """The Config values of `preset` (a name of PRESET_NAMES, or None for
    none) with the --set `overrides` over them, as one overrides dict: the
    run config records them all, so that detect and evaluate rebuild the
    same model."""
    values = config_presets.preset_values(preset) if preset else {}
    values.update(overrides)
    return values


class CliError(Exception):
    """A user error: printed without a traceback, exit status 2."""


# --set spellings of True and False for the settings that are booleans
# (Python's bool("no") is True, so "no" must never reach Config as text).
BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True,
              "false": False, "no": False, "off": False, "0": False}
# (Every OVERRIDABLE key whose mrcnn.config_checks rule is "bool": a test
# holds the two lists together.)
BOOL_SETTINGS = ("TRAIN_BN", "USE_MINI_MASK", "ADD_GT_TO_PROPOSALS",
                 "HEAD_TRAIN_BN", "ROI_FILL_WITH_NEGATIVES",
                 "MASK_HEAD_POSITIVE_ROIS")


def parse_overrides(pairs):
    """--set KEY=VALUE pairs as {KEY: value}: keys limited to OVERRIDABLE,
    values parsed by parse_setting and checked by mrcnn.config_checks before
    anything is loaded or built (CliError naming the key)."""
    from mrcnn import config_checks
    overrides = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise CliError("--set takes KEY=VALUE, got {!r}".format(pair))
        key, value = pair.split("=", 1)
        key = key.strip().upper()
        if key not in OVERRIDABLE:
            raise CliError("--set: {} cannot be set from the command line; "
                           "settable: {}".format(key, ", ".join(OVERRIDABLE)))
        overrides[key] = parse_setting(key, value)
        try:
            config_checks.check_value(key, overrides[key])
        except ValueError as e:
            raise CliError("--set {}: {}".format(pair, e))
    return overrides


def parse_setting(key, text):
    """A --set value: true/false/yes/no/on/off/1/0 for the boolean
    settings (null/none: None where allowed), else JSON (numbers, lists,
    null, and NaN / Infinity, which the checks then refuse), else the
    text itself."""
    word = text.strip().lower()
    if key in BOOL_SETTINGS and word in BOOL_WORDS:
        return BOOL_WORDS[word]
    if word in ("none", "null"):
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def make_config(name, num_classes, overrides, inference=False):
    """A Config subclass instance with the given values."""
    from mrcnn.config import Config
    # bfloat16 where the hardware has it, float32 elsewhere (mrcnn.runtime);
    # --set MIXED_PRECISION=null forces float32.
    attrs = {"NAME": name, "NUM_CLASSES": int(num_classes),
             "MIXED_PRECISION": "auto"}
    attrs.update(overrides)
    for key in ("RPN_ANCHOR_SCALES", "MINI_MASK_SHAPE"):
        if key in attrs:
            attrs[key] = tuple(attrs[key])
    if "MEAN_PIXEL" in attrs:  # an array as Config's own; JSON gives a list
        import numpy as np
        attrs["MEAN_PIXEL"] = np.array(attrs["MEAN_PIXEL"], dtype=np.float64)
    if inference:
        attrs.update(GPU_COUNT=1, IMAGES_PER_GPU=1)
    try:
        return type("CliConfig", (Config,), attrs)()
    except ValueError as e:  # Config.validate names the bad --set value
        raise CliError(str(e))


def write_run_config(log_dir, name, class_names, overrides):
    """Writes RUN_CONFIG (name, class names, --set overrides) in log_dir,
    atomically. Its class names are the run's reference: `evaluate` and
    `detect` read them back, and number datasets by them."""
    atomic_files.write_json(os.path.join(log_dir, RUN_CONFIG), {
        "name": name, "class_names": list(class_names),
        "overrides": overrides}, indent=2)


def read_run_config(weights_path):
    """The RUN_CONFIG beside a weights file as a dict, or None."""
    path = os.path.join(os.path.dirname(os.path.abspath(weights_path)),
                        RUN_CONFIG)
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return None


def find_last_checkpoint(logs, name):
    """Newest checkpoint of runs named `name` under `logs`."""
    from mrcnn.training import checkpoints
    try:
        return checkpoints.find_last_checkpoint(logs, name)
    except FileNotFoundError:
        raise CliError("no checkpoint of {!r} under {}; train first or pass "
                       "--weights PATH".format(name, logs))


def weights_file(weights, coco_path, find_last):
    """The file a --weights value names, as (kind, path).

    weights: "coco", "imagenet", "last", "none" (in any case) or a path.
    coco_path: where the COCO-trained weights are; downloaded there when
        missing or damaged (wrong size, not HDF5).
    find_last: called for "last"; returns the newest checkpoint (e.g. a
        MaskRCNN's find_last).
    kind is "coco", "imagenet", "last", "none" or "path"; path is None for
    "none". Raises an OSError saying what to fetch when a download fails
    (no network), FileNotFoundError for a path that does not exist.
    """
    from mrcnn import utils
    from mrcnn.weights import loading as weights_io
    choice = weights.lower()
    if choice == "none":
        return "none", None
    if choice == "last":
        return "last", find_last()
    if choice == "coco":
        # A file cut short by an earlier interrupted download (or copied
        # half) is fetched again rather than trusted forever.
        damage = utils.damaged_trained_weights(coco_path)
        if damage is not None:
            if damage != "missing":
                print("{} is damaged ({}); downloading it again".format(
                    coco_path, damage))
            utils.download_trained_weights(coco_path)
        return "coco", coco_path
    if choice == "imagenet":
        return "imagenet", weights_io.get_imagenet_weights()
    if not os.path.exists(weights):
        raise FileNotFoundError("weights file not found: {}".format(weights))
    return "path", weights


def resolve_weights(weights, logs, name):
    """Maps coco|imagenet|last|none|PATH to (kind, path) for `mrcnn`: the
    COCO weights live in `logs`, and errors are CliErrors."""
    if weights is None:
        return "none", None
    try:  # downloads fail offline with a message saying what to fetch
        return weights_file(weights, os.path.join(logs, COCO_WEIGHTS_FILE),
                            lambda: find_last_checkpoint(logs, name))
    except OSError as e:
        raise CliError(str(e))


def heads_to_exclude(kind, skip_heads_of=("coco",)):
    """HEAD_LAYERS when weights of this kind (see weights_file) must not
    load the class-specific heads, else None."""
    return HEAD_LAYERS if kind in skip_heads_of else None


def load_weights_arg(model, weights, coco_path, skip_heads_of=("coco",)):
    """Loads a --weights value into a MaskRCNN by layer name, printing what
    it loads; the plumbing of the matterport-style samples.

    weights, coco_path: as for weights_file ("last" is model.find_last()).
    skip_heads_of: the kinds of weights whose class-specific heads
        (HEAD_LAYERS) are left out: by default those of the COCO weights,
        which fit COCO's 81 classes only; () loads every layer.
    Returns the file loaded, or None for "none" (random weights). Errors
    are those of weights_file and model.load_weights (OSError,
    ValueError), each naming the file.
    """
    kind, path = weights_file(weights, coco_path, model.find_last)
    if path is None:
        print("Starting from random weights")
        return None
    print("Loading weights", path)
    model.load_weights(path, by_name=True,
                       exclude=heads_to_exclude(kind, skip_heads_of))
    return path


def sample_config(base, inference=False, tiny=False, **overrides):
    """An instance of the Config subclass `base`, or of a subclass of it
    with TINY_SETTINGS (tiny) and then the overrides applied.

    inference: keep one image per call whatever TINY_SETTINGS say.
    overrides: further attribute values, e.g. STEPS_PER_EPOCH=10.
    """
    attrs = dict(TINY_SETTINGS) if tiny else {}
    if inference:
        attrs["IMAGES_PER_GPU"] = 1
    attrs.update(overrides)
    if not attrs:
        return base()
    return type(base.__name__, (base,), attrs)()


def add_sample_arguments(parser, weights_option, logs):
    """Adds the options the matterport-style samples share: the weights
    (--weights, or --model for coco.py) to start from, --logs (default
    `logs`), --steps and --tiny; see sample_model."""
    parser.add_argument(weights_option, required=True,
                        metavar="/path/to/weights.h5",
                        help="Path to weights .h5 file or "
                             "'coco', 'imagenet', 'last' or 'none'")
    parser.add_argument("--logs", default=logs,
                        metavar="/path/to/logs/",
                        help="Logs and checkpoints directory "
                             "(default=logs/)")
    parser.add_argument("--steps", type=int, default=None,
                        help="Steps per epoch (default: the config's)")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny model and 64px images: a quick smoke run")


def sample_model(make_config, args, inference=False):
    """The MaskRCNN a sample's command line runs, after displaying its
    config: make_config(inference=..., tiny=args.tiny) with --steps as
    STEPS_PER_EPOCH when given, checkpoints under args.logs."""
    from mrcnn import model as modellib
    overrides = {"STEPS_PER_EPOCH": args.steps} if args.steps else {}
    config = make_config(inference=inference, tiny=args.tiny, **overrides)
    config.display()
    return modellib.MaskRCNN(mode="inference" if inference else "training",
                             config=config, model_dir=args.logs)


def report_error(prog, command, error):
    """Prints "<prog> <command>: error: <error>" to stderr (no traceback);
    returns the exit status of a user error, 2."""
    print("{} {}: error: {}".format(prog, command, error), file=sys.stderr)
    return 2


def load_weights(model, path, exclude=None):
    """model.load_weights by name; a broken or mismatched file is a
    CliError naming it."""
    try:
        model.load_weights(path, by_name=True, exclude=exclude)
    except (OSError, ValueError) as e:
        raise CliError("cannot load weights {}: {}".format(path, e))


def loader_options(args):
    """Loader keyword arguments from --class-attribute, --classes and
    --default-class (only those given)."""
    options = {}
    if getattr(args, "class_attribute", None):
        options["class_attribute"] = args.class_attribute
    if getattr(args, "classes", None):
        options["class_names"] = [c.strip() for c in args.classes.split(",")]
    if getattr(args, "default_class", None):
        options["default_class"] = args.default_class
    return options


def load_dataset(path, fmt, subset=None, options=None, reference=None):
    """A prepared Dataset of a folder or file (mrcnn.datasets.load_dataset)
    in format fmt (None: detected), its class ids by name from the class
    names `reference` when given; loader errors become CliError."""
    from mrcnn import datasets
    try:
        return datasets.load_dataset(path, format=fmt, subset=subset,
                                     reference_classes=reference,
                                     **(options or {}))
    except (FileNotFoundError, ValueError) as e:
        raise CliError(str(e))
    except TypeError as e:  # an option this format's loader doesn't take
        raise CliError("{} (option not supported by this dataset format)"
                       .format(e))
