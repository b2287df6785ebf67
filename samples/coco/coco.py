"""Mask R-CNN on MS COCO: training and COCO evaluation.

matterport's COCO sample on this library. The dataset folder has
matterport's layout::

    /path/to/coco/annotations/instances_train2014.json
    /path/to/coco/annotations/instances_minival2014.json
    /path/to/coco/train2014/*.jpg
    /path/to/coco/val2014/*.jpg      (minival and valminusminival images)

Usage: import the module, or run it from the command line:

    # Train a new model starting from pre-trained COCO weights
    python samples/coco/coco.py train --dataset=/path/to/coco/ --model=coco

    # Train a new model starting from ImageNet weights; download COCO first
    python samples/coco/coco.py train --dataset=/path/to/coco/ --model=imagenet --download=True

    # Continue training a model that you had trained earlier
    python samples/coco/coco.py train --dataset=/path/to/coco/ --model=/path/to/weights.h5

    # Continue training the last model you trained
    python samples/coco/coco.py train --dataset=/path/to/coco/ --model=last

    # Run COCO evaluation on the last model you trained
    python samples/coco/coco.py evaluate --dataset=/path/to/coco/ --model=last

``--download=True`` fetches the images and annotations that are missing
(several GB); without network it stops with a message saying what to put
where. ``--tiny`` swaps in a model small enough for a CPU smoke run.
"""

import argparse
import os
import sys
import time
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Root directory of the project; lets the script run without installing.
ROOT_DIR = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
if ROOT_DIR not in sys.path:
    sys.path.insert(0, ROOT_DIR)

from mrcnn.evaluation import evaluate as evaluation  # noqa: E402
from mrcnn.cli import commands as cli  # noqa: E402
from mrcnn.weights import download  # noqa: E402
from mrcnn.config import Config  # noqa: E402
from mrcnn.datasets import coco as coco_format  # noqa: E402
# matterport's coco.py defined this function; the library has it now.
from mrcnn.evaluation.evaluate import build_coco_results  # noqa: E402,F401

# Path to the COCO-trained weights file (downloaded there when missing).
COCO_MODEL_PATH = os.path.join(ROOT_DIR, cli.COCO_WEIGHTS_FILE)

# Directory to save logs and model checkpoints.
DEFAULT_LOGS_DIR = os.path.join(ROOT_DIR, "logs")
DEFAULT_DATASET_YEAR = "2014"

# Where the COCO files come from (used by --download only).
IMAGES_URL = "https://images.cocodataset.org/zips/{}{}.zip"
ANNOTATIONS_URL = "https://images.cocodataset.org/annotations/" \
    "annotations_trainval{}.zip"
# matterport's split of val2014 into minival and valminusminival.
MINIVAL_ANNOTATIONS_URLS = {
    "minival": "https://dl.dropboxusercontent.com/s/o43o90bna78omob/"
               "instances_minival2014.json.zip?dl=0",
    "valminusminival": "https://dl.dropboxusercontent.com/s/s3tw5zcg7395368/"
                       "instances_valminusminival2014.json.zip?dl=0",
}

# matterport's schedule: (layers, epoch to reach, learning rate factor).
TRAINING_STAGES = (("heads", 40, 1.0), ("4+", 120, 1.0), ("all", 160, 0.1))


############################################################
#  Configurations
############################################################

class CocoConfig(Config):
    """Configuration for training on MS COCO."""
    NAME = "coco"

    # A 12GB GPU holds two 1024x1024 images.
    IMAGES_PER_GPU = 2

    # Background + 80 COCO classes.
    NUM_CLASSES = 1 + 80


class CocoInferenceConfig(CocoConfig):
    """One image at a time, every detection kept (COCO ranks them)."""
    GPU_COUNT = 1
    IMAGES_PER_GPU = 1
    DETECTION_MIN_CONFIDENCE = 0


def make_config(inference=False, tiny=False, **overrides):
    """A CocoConfig (or CocoInferenceConfig) instance.

    tiny: apply mrcnn.cli.commands.TINY_SETTINGS first; overrides: further attribute
    values.
    """
    base = CocoInferenceConfig if inference else CocoConfig
    return cli.sample_config(base, inference=inference, tiny=tiny,
                             **overrides)


############################################################
#  Dataset
############################################################

class CocoDownloadError(OSError):
    """A COCO file could not be downloaded (e.g. no network)."""


def download_file(url, path, verbose=True):
    """Download url to path; the file appears only once complete (every
    byte the server announced), and a stalled connection times out.

    Raises CocoDownloadError naming the URL and the target folder.
    """
    try:
        download.fetch(url, path, verbose=verbose)
    except download.DownloadError as error:
        raise CocoDownloadError(
            "could not download {} ({}); fetch it yourself and unzip it "
            "into {}".format(url, error.__cause__ or error,
                             os.path.dirname(os.path.abspath(path)))) \
            from error


def download_and_unzip(url, zip_path, extract_dir, verbose=True):
    """Download a zip (unless a valid one is already there) and extract it.

    The extraction checks each member's CRC-32 and puts each top-level
    folder in place whole (mrcnn.weights.download.extract_zip), so an interrupted
    run extracts again. A damaged zip left by an earlier run is deleted and
    downloaded again, once.
    """
    if os.path.exists(zip_path) and not zipfile.is_zipfile(zip_path):
        os.remove(zip_path)
    downloaded = not os.path.exists(zip_path)
    if downloaded:
        download_file(url, zip_path, verbose)
    if verbose:
        print("Unzipping", zip_path)
    try:
        download.extract_zip(zip_path, extract_dir)
    except (zipfile.BadZipFile, EOFError) as error:
        os.remove(zip_path)
        if downloaded:
            raise CocoDownloadError("{} from {} is not a valid zip file ({}); "
                                    "run again to download it again".format(
                                        zip_path, url, error))
        download_and_unzip(url, zip_path, extract_dir, verbose)


def coco_file_locations(data_dir, subset, year):
    """Where a subset's images and annotations live, and their URLs.

    Returns {"image_dir", "image_url", "annotation_file",
    "annotation_url"}; minival and valminusminival use the val images and
    matterport's own annotation files (2014 only).
    """
    image_subset = "val" if subset in MINIVAL_ANNOTATIONS_URLS else subset
    annotation_file = os.path.join(
        data_dir, "annotations", "instances_{}{}.json".format(subset, year))
    if subset in MINIVAL_ANNOTATIONS_URLS:
        if str(year) != "2014":
            raise ValueError("{} exists for the 2014 dataset only, not {}"
                             .format(subset, year))
        annotation_url = MINIVAL_ANNOTATIONS_URLS[subset]
    else:
        annotation_url = ANNOTATIONS_URL.format(year)
    return {
        "image_dir": os.path.join(data_dir, "{}{}".format(image_subset, year)),
        "image_url": IMAGES_URL.format(image_subset, year),
        "annotation_file": annotation_file,
        "annotation_url": annotation_url,
    }


class CocoDataset(coco_format.CocoDataset):
    """matterport's CocoDataset: load_coco(dataset_dir, subset, year)."""

    def load_coco(self, dataset_dir, subset, year=DEFAULT_DATASET_YEAR,
                  class_ids=None, class_map=None, return_coco=False,
                  auto_download=False):
        """Load a subset of the COCO dataset.

        dataset_dir: root directory of the COCO dataset.
        subset: "train", "val", "minival" or "valminusminival".
        year: "2014" or "2017".
        class_ids: COCO category ids to load (default all); images without
            any of them are left out.
        class_map: unused (matterport compatibility).
        return_coco: also return the pycocotools COCO object.
        auto_download: download the images and annotations that are
            missing first.
        """
        if auto_download:
            self.auto_download(dataset_dir, subset, year)
        return super().load_coco(dataset_dir, subset, class_ids=class_ids,
                                 return_coco=return_coco, year=str(year),
                                 class_map=class_map)

    def auto_download(self, dataDir, dataType, dataYear):  # noqa: N803
        """Download the COCO images and annotations that are missing.

        dataDir: root of the dataset; dataType: "train", "val", "minival"
        or "valminusminival"; dataYear: "2014" or "2017".
        Raises CocoDownloadError when a file cannot be downloaded.
        """
        where = coco_file_locations(dataDir, dataType, dataYear)
        if not os.path.isdir(where["image_dir"]) \
                or not os.listdir(where["image_dir"]):
            zip_path = where["image_dir"] + ".zip"
            download_and_unzip(where["image_url"], zip_path, dataDir)
        if not os.path.isfile(where["annotation_file"]):
            annotations_dir = os.path.dirname(where["annotation_file"])
            if dataType in MINIVAL_ANNOTATIONS_URLS:
                zip_path = where["annotation_file"] + ".zip"
                target = annotations_dir
            else:
                # The trainval zip holds an annotations/ folder itself.
                zip_path = os.path.join(
                    dataDir, "annotations_trainval{}.zip".format(dataYear))
                target = dataDir
            download_and_unzip(where["annotation_url"], zip_path, target)
            if not os.path.isfile(where["annotation_file"]):
                raise CocoDownloadError(
                    "{} did not contain {}".format(zip_path,
                                                   where["annotation_file"]))


def validation_subset(year):
    """matterport's validation subset: minival for 2014, val otherwise."""
    return "minival" if str(year) == "2014" else "val"


############################################################
#  COCO Evaluation
############################################################

def evaluate_coco(model, dataset, coco, eval_type="bbox", limit=0,
                  image_ids=None):
    """Detect the dataset's images and score them with COCOeval.

    model: an inference-mode MaskRCNN.
    dataset: a prepared CocoDataset; coco: its pycocotools COCO object
        (ground truth).
    eval_type: "bbox", "segm", or "both" (one detection pass for the two).
    limit: evaluate the first `limit` images only (0: all).
    image_ids: internal image ids to evaluate (default all).
    Returns the metrics dict of mrcnn.evaluation.evaluate.coco_evaluate (AP, AP50,
    ..., per_class) after printing COCOeval's summary; for "both",
    {"bbox": metrics, "segm": metrics}.
    """
    eval_types = ("bbox", "segm") if eval_type == "both" else (eval_type,)
    if not set(eval_types) <= set(evaluation.IOU_TYPES):
        raise ValueError("eval_type must be 'bbox', 'segm' or 'both', got "
                         "{!r}".format(eval_type))
    image_ids = list(dataset.image_ids if image_ids is None else image_ids)
    if limit:
        image_ids = image_ids[:limit]
    coco_image_ids = [evaluation.coco_image_id(dataset, i) for i in image_ids]

    start = time.time()
    detections = [model.detect([dataset.load_image(i)], verbose=0)[0]
                  for i in image_ids]
    t_prediction = time.time() - start
    results = evaluation.to_coco_results(dataset, image_ids, detections)

    start_eval = time.time()
    metrics = {}
    for name in eval_types:
        print("COCO {} evaluation".format(name))
        metrics[name] = evaluation.coco_evaluate(
            coco, results, name, image_ids=coco_image_ids, verbose=True)
    print("Prediction time: {:.2f}. Average {:.2f}/image".format(
        t_prediction, t_prediction / max(len(image_ids), 1)))
    print("Evaluation time: {:.2f}".format(time.time() - start_eval))
    return metrics if eval_type == "both" else metrics[eval_type]


############################################################
#  Training
############################################################

def load_training_sets(dataset_dir, year, auto_download=False):
    """matterport's training data: train (+ valminusminival for 2014), and
    the validation subset. Returns prepared (train, val) datasets."""
    dataset_train = CocoDataset()
    dataset_train.load_coco(dataset_dir, "train", year=year,
                            auto_download=auto_download)
    if str(year) == "2014":
        dataset_train.load_coco(dataset_dir, "valminusminival", year=year,
                                auto_download=auto_download)
    dataset_train.prepare()
    dataset_val = CocoDataset()
    dataset_val.load_coco(dataset_dir, validation_subset(year), year=year,
                          auto_download=auto_download)
    dataset_val.prepare()
    return dataset_train, dataset_val


def train(model, dataset_train, dataset_val, stages=TRAINING_STAGES,
          augmentation="flip"):
    """matterport's three stages: the heads, then ResNet stage 4 and up,
    then everything at a tenth of the learning rate.

    stages: (layers, epoch to reach, learning rate factor) tuples.
    augmentation: "flip" (left-right flips, half the images), an imgaug
        augmenter, or None.
    """
    if augmentation == "flip":
        from mrcnn._imgaug_compat import import_imgaug
        augmentation = import_imgaug().augmenters.Fliplr(0.5)
    for layers, epochs, factor in stages:
        print("Training network {} up to epoch {}".format(layers, epochs))
        model.train(dataset_train, dataset_val,
                    learning_rate=model.config.LEARNING_RATE * factor,
                    epochs=epochs, layers=layers, augmentation=augmentation)


############################################################
#  Command line
############################################################

def str2bool(text):
    """argparse type for --download=True/False (matterport's spelling)."""
    value = str(text).strip().lower()
    if value in ("true", "1", "yes", "y"):
        return True
    if value in ("false", "0", "no", "n"):
        return False
    raise argparse.ArgumentTypeError("expected True or False, got {!r}"
                                     .format(text))


def parse_stages(text):
    """'40,120,160' -> TRAINING_STAGES with those epochs."""
    try:
        epochs = [int(v) for v in text.split(",")]
    except ValueError:
        epochs = []
    if len(epochs) != len(TRAINING_STAGES):
        raise argparse.ArgumentTypeError(
            "expected {} comma-separated epoch numbers, got {!r}".format(
                len(TRAINING_STAGES), text))
    return tuple((layers, epoch, factor) for (layers, _, factor), epoch
                 in zip(TRAINING_STAGES, epochs))


def load_model_weights(model, choice, coco_path=COCO_MODEL_PATH):
    """Load --model (coco, imagenet, last, none or a path) into the model,
    every layer (COCO weights fit COCO's 81 classes); returns the file
    (None: none)."""
    return cli.load_weights_arg(model, choice, coco_path, skip_heads_of=())


def build_parser():
    parser = argparse.ArgumentParser(
        description="Train Mask R-CNN on MS COCO.")
    parser.add_argument("command", metavar="<command>",
                        choices=["train", "evaluate"],
                        help="'train' or 'evaluate' on MS COCO")
    parser.add_argument("--dataset", required=True,
                        metavar="/path/to/coco/",
                        help="Directory of the MS-COCO dataset")
    parser.add_argument("--year", default=DEFAULT_DATASET_YEAR,
                        metavar="<year>",
                        help="Year of the MS-COCO dataset (2014 or 2017) "
                             "(default=2014)")
    cli.add_sample_arguments(parser, "--model", DEFAULT_LOGS_DIR)
    parser.add_argument("--limit", type=int, default=500,
                        metavar="<image count>",
                        help="Images to use for evaluation (default=500, "
                             "0: all)")
    parser.add_argument("--download", type=str2bool, default=False,
                        metavar="<True|False>",
                        help="Automatically download and unzip MS-COCO "
                             "files (default=False)")
    parser.add_argument("--eval-type", default="bbox",
                        choices=["bbox", "segm", "both"],
                        help="COCO evaluation type (default bbox)")
    parser.add_argument("--stage-epochs", type=parse_stages,
                        default=TRAINING_STAGES, metavar="H,F,A",
                        help="epochs to reach with the heads, 4+ and all "
                             "stages (default 40,120,160)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    print("Command: ", args.command)
    print("Model: ", args.model)
    print("Dataset: ", args.dataset)
    print("Year: ", args.year)
    print("Logs: ", args.logs)
    print("Auto Download: ", args.download)

    model = cli.sample_model(make_config, args,
                             inference=args.command == "evaluate")
    try:
        # Missing files and failed downloads end here with a message
        # naming the file; errors during training keep their traceback.
        load_model_weights(model, args.model)
        if args.command == "train":
            datasets = load_training_sets(args.dataset, args.year,
                                          args.download)
        else:
            dataset_val = CocoDataset()
            coco = dataset_val.load_coco(
                args.dataset, validation_subset(args.year), year=args.year,
                return_coco=True, auto_download=args.download)
            dataset_val.prepare()
    except (OSError, ValueError) as error:
        return cli.report_error("coco.py", args.command, error)
    if args.command == "train":
        train(model, *datasets, stages=args.stage_epochs)
        return 0
    print("Running COCO evaluation on {} images.".format(
        min(args.limit, dataset_val.num_images) if args.limit
        else dataset_val.num_images))
    evaluate_coco(model, dataset_val, coco, args.eval_type,
                  limit=int(args.limit))
    return 0


if __name__ == "__main__":
    sys.exit(main())
