"""Mask R-CNN on the balloon dataset, and the color splash effect.

matterport's balloon sample on this library: the dataset is a VIA
annotation file per subset (``dataset_dir/{train,val}/via_region_data.json``
with the images beside it), read by :class:`mrcnn.datasets.ViaDataset`.

Usage: import the module, or run it from the command line:

    # Train a new model starting from pre-trained COCO weights
    python samples/balloon/balloon.py train --dataset=/path/to/balloon --weights=coco

    # Resume training a model that you had trained earlier
    python samples/balloon/balloon.py train --dataset=/path/to/balloon --weights=last

    # Train a new model starting from ImageNet weights, or from scratch
    python samples/balloon/balloon.py train --dataset=/path/to/balloon --weights=imagenet
    python samples/balloon/balloon.py train --dataset=/path/to/balloon --weights=none

    # Apply color splash to an image
    python samples/balloon/balloon.py splash --weights=/path/to/weights.h5 --image=<URL or path>

    # Apply color splash to a video using the last weights you trained
    python samples/balloon/balloon.py splash --weights=last --video=<path>

``--tiny`` swaps in a model and images small enough to train for a few
steps on a CPU in seconds (for tests and smoke runs; it learns nothing
useful), ``--epochs`` and ``--steps`` shorten training.
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
import skimage.color  # noqa: E402
import skimage.io  # noqa: E402
import skimage.util  # noqa: E402

from mrcnn import visualize  # noqa: E402
from mrcnn.cli import commands as cli  # noqa: E402
from mrcnn.config import Config  # noqa: E402
from mrcnn.datasets import ViaDataset  # noqa: E402

# Path to the COCO-trained weights file (downloaded there when missing).
COCO_WEIGHTS_PATH = os.path.join(ROOT_DIR, cli.COCO_WEIGHTS_FILE)

# Directory to save logs and model checkpoints.
DEFAULT_LOGS_DIR = os.path.join(ROOT_DIR, "logs")


############################################################
#  Configurations
############################################################

class BalloonConfig(Config):
    """Configuration for training on the balloon dataset."""
    NAME = "balloon"

    # A 12GB GPU holds two 1024x1024 images.
    IMAGES_PER_GPU = 2

    # Background + balloon.
    NUM_CLASSES = 1 + 1

    STEPS_PER_EPOCH = 100

    # Skip detections with < 90% confidence.
    DETECTION_MIN_CONFIDENCE = 0.9


class BalloonInferenceConfig(BalloonConfig):
    """One image at a time for detection."""
    GPU_COUNT = 1
    IMAGES_PER_GPU = 1


def make_config(inference=False, tiny=False, **overrides):
    """A BalloonConfig (or BalloonInferenceConfig) instance.

    tiny: apply mrcnn.cli.commands.TINY_SETTINGS first (a quick CPU smoke run).
    overrides: further attribute values, e.g. STEPS_PER_EPOCH=10.
    """
    base = BalloonInferenceConfig if inference else BalloonConfig
    return cli.sample_config(base, inference=inference, tiny=tiny,
                             **overrides)


############################################################
#  Dataset
############################################################

class BalloonDataset(ViaDataset):
    """The balloon images and their VIA polygons, one class "balloon"."""

    def load_balloon(self, dataset_dir, subset):
        """Load a subset of the balloon dataset.

        dataset_dir: root directory of the dataset (holding train/ and val/).
        subset: "train" or "val".
        """
        if subset not in ("train", "val"):
            raise ValueError("balloon subset must be 'train' or 'val', got "
                             "{!r}".format(subset))
        # With no class attribute and one class name, every region is a
        # balloon; the images are registered under the "balloon" source.
        self.load_via(dataset_dir, subset, class_names=["balloon"],
                      source="balloon")
        # Like matterport's loader, leave out images without any region.
        self.image_info = [info for info in self.image_info
                           if info["polygons"]]


def load_subset(dataset_dir, subset):
    """A prepared BalloonDataset of one subset."""
    dataset = BalloonDataset()
    dataset.load_balloon(dataset_dir, subset)
    dataset.prepare()
    return dataset


############################################################
#  Training
############################################################

def train(model, dataset_dir, epochs=30, layers="heads", learning_rate=None,
          augmentation=None):
    """Train the model on dataset_dir's train subset, validating on val.

    The dataset is small and starts from COCO weights, so training the
    heads only is enough (matterport's choice); pass layers="all" to
    fine-tune everything. Returns the Keras History.
    """
    dataset_train, dataset_val = load_datasets(dataset_dir)
    return train_on(model, dataset_train, dataset_val, epochs=epochs,
                    layers=layers, learning_rate=learning_rate,
                    augmentation=augmentation)


def load_datasets(dataset_dir):
    """The prepared (train, val) BalloonDatasets of dataset_dir."""
    return load_subset(dataset_dir, "train"), load_subset(dataset_dir, "val")


def train_on(model, dataset_train, dataset_val, epochs=30, layers="heads",
             learning_rate=None, augmentation=None):
    """train() on datasets that are already loaded."""
    print("Training network {} on {} images ({} for validation)".format(
        layers, dataset_train.num_images, dataset_val.num_images))
    learning_rate = learning_rate or model.config.LEARNING_RATE
    return model.train(dataset_train, dataset_val,
                       learning_rate=learning_rate, epochs=epochs,
                       layers=layers, augmentation=augmentation)


############################################################
#  Color splash
############################################################

def color_splash(image, mask):
    """Grayscale copy of the image with the detected instances in color.

    image: RGB image [height, width, 3].
    mask: instance masks [height, width, instance count].
    Returns a uint8 RGB image [height, width, 3].
    """
    return visualize.color_splash(np.asarray(image), mask).astype(np.uint8)


def read_rgb_image(path):
    """An image file (or URL) as RGB uint8 [height, width, 3].

    Raises FileNotFoundError or ValueError naming the file.
    """
    if "://" not in str(path) and not os.path.isfile(path):
        raise FileNotFoundError("image file not found: {}".format(path))
    try:
        image = skimage.io.imread(path)
    except Exception as error:
        raise ValueError("cannot read image {}: {}".format(path, error)) \
            from error
    if image.ndim == 2:
        image = skimage.color.gray2rgb(image)
    if image.ndim != 3 or image.shape[-1] < 3:
        raise ValueError("image {} has shape {}; expected [height, width, 3]"
                         .format(path, image.shape))
    image = image[..., :3]
    if image.dtype != np.uint8:
        image = skimage.util.img_as_ubyte(image)
    return image


def video_backend():
    """"opencv" or "imageio" when one can read and write videos, else None.

    OpenCV (opencv-python-headless) is preferred; imageio needs its ffmpeg
    or pyav plugin for video.
    """
    try:
        import cv2  # noqa: F401
        return "opencv"
    except ImportError:
        pass
    for plugin_module in ("imageio_ffmpeg", "av"):
        try:
            __import__(plugin_module)
            return "imageio"
        except ImportError:
            continue
    return None


def splash_file_name(out_dir, source_path, extension):
    """out_dir/splash_<source name>_<timestamp><extension>."""
    stem = os.path.splitext(os.path.basename(str(source_path)))[0]
    return os.path.join(out_dir, "splash_{}_{:%Y%m%dT%H%M%S}{}".format(
        stem, datetime.datetime.now(), extension))


def splash_image(model, image_path, out_dir="."):
    """Detect balloons in an image and save its color splash as PNG.

    Returns the written file's path.
    """
    print("Running on {}".format(image_path))
    image = read_rgb_image(image_path)
    r = model.detect([image], verbose=1)[0]
    splash = color_splash(image, r["masks"])
    os.makedirs(out_dir, exist_ok=True)
    file_name = splash_file_name(out_dir, image_path, ".png")
    skimage.io.imsave(file_name, splash, check_contrast=False)
    print("Saved to", file_name)
    return file_name


def _splash_frames(model, frames):
    """Yields the color splash of each RGB frame."""
    for count, frame in enumerate(frames, start=1):
        r = model.detect([frame], verbose=0)[0]
        print("frame {}: {} instances".format(count, len(r["class_ids"])))
        yield color_splash(frame, r["masks"])


def splash_video_opencv(model, video_path, file_name):
    """Color splash of each frame with OpenCV, written as MJPG AVI.

    Returns the number of frames written.
    """
    import cv2
    capture = cv2.VideoCapture(video_path)
    if not capture.isOpened():
        raise ValueError("cannot open video {}".format(video_path))
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    writer = cv2.VideoWriter(file_name, cv2.VideoWriter_fourcc(*"MJPG"),
                             fps, (width, height))
    if not writer.isOpened():
        capture.release()
        raise ValueError("cannot write video {}".format(file_name))

    def frames():
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            yield np.ascontiguousarray(bgr[..., ::-1])  # OpenCV is BGR

    count = 0
    try:
        for splash in _splash_frames(model, frames()):
            writer.write(np.ascontiguousarray(splash[..., ::-1]))
            count += 1
    finally:
        writer.release()
        capture.release()
    return count


def splash_video_imageio(model, video_path, file_name):
    """Color splash of each frame with imageio (ffmpeg or pyav plugin).

    Returns the number of frames written.
    """
    import imageio.v2 as imageio
    try:
        reader = imageio.get_reader(video_path)
    except Exception as error:
        raise ValueError("cannot open video {}: {}".format(video_path,
                                                           error)) from error
    fps = reader.get_meta_data().get("fps", 30.0)
    count = 0
    with reader, imageio.get_writer(file_name, fps=fps) as writer:
        frames = (np.asarray(f)[..., :3] for f in reader)
        for splash in _splash_frames(model, frames):
            writer.append_data(splash)
            count += 1
    return count


def splash_video(model, video_path, out_dir=".", backend=None):
    """Color splash of every frame of a video.

    Returns the written file's path, or None (after printing why) when no
    video backend is installed.
    """
    backend = backend or video_backend()
    if backend is None:
        print("Video splash skipped for {}: no video backend. Install "
              "opencv-python-headless, or imageio with its ffmpeg plugin "
              "(pip install imageio[ffmpeg]).".format(video_path))
        return None
    if not os.path.isfile(video_path):
        raise FileNotFoundError("video file not found: {}".format(video_path))
    os.makedirs(out_dir, exist_ok=True)
    if backend == "opencv":
        file_name = splash_file_name(out_dir, video_path, ".avi")
        count = splash_video_opencv(model, video_path, file_name)
    else:
        file_name = splash_file_name(out_dir, video_path, ".mp4")
        count = splash_video_imageio(model, video_path, file_name)
    if count == 0:
        raise ValueError("video {} has no frame that {} can decode".format(
            video_path, backend))
    print("Saved {} frames to {}".format(count, file_name))
    return file_name


def detect_and_color_splash(model, image_path=None, video_path=None,
                            out_dir="."):
    """Color splash of an image or a video, written to out_dir.

    Returns the written file's path (None when a video was skipped for
    lack of a video backend).
    """
    if bool(image_path) == bool(video_path):
        raise ValueError("pass either image_path or video_path")
    if image_path:
        return splash_image(model, image_path, out_dir)
    return splash_video(model, video_path, out_dir)


############################################################
#  Command line
############################################################

def load_model_weights(model, weights, coco_path=COCO_WEIGHTS_PATH):
    """Load --weights (coco, imagenet, last, none or a path) into the model;
    returns the file (None: none).

    The COCO heads have 81 classes and the balloon ones 2, so COCO weights
    load without them (mrcnn.cli.commands.load_weights_arg).
    """
    return cli.load_weights_arg(model, weights, coco_path)


def build_parser():
    parser = argparse.ArgumentParser(
        description="Train Mask R-CNN to detect balloons.")
    parser.add_argument("command", metavar="<command>",
                        choices=["train", "splash"],
                        help="'train' or 'splash'")
    parser.add_argument("--dataset", metavar="/path/to/balloon/dataset/",
                        help="Directory of the Balloon dataset")
    cli.add_sample_arguments(parser, "--weights", DEFAULT_LOGS_DIR)
    parser.add_argument("--image", metavar="path or URL to image",
                        help="Image to apply the color splash effect on")
    parser.add_argument("--video", metavar="path to video",
                        help="Video to apply the color splash effect on")
    parser.add_argument("--out", default=".",
                        help="Directory for splash outputs (default: .)")
    parser.add_argument("--epochs", type=int, default=30,
                        help="Epoch number to train up to (default 30)")
    parser.add_argument("--layers", default="heads",
                        help="heads, 3+, 4+, 5+ or all (default heads)")
    return parser


def check_arguments(parser, args):
    if args.command == "train" and not args.dataset:
        parser.error("Argument --dataset is required for training")
    if args.command == "splash" and not (args.image or args.video):
        parser.error("Provide --image or --video to apply color splash")


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    check_arguments(parser, args)
    print("Weights: ", args.weights)
    print("Dataset: ", args.dataset)
    print("Logs: ", args.logs)

    model = cli.sample_model(make_config, args,
                             inference=args.command == "splash")
    try:
        # Bad weights, dataset or image paths end here with a message
        # naming the file; errors during training keep their traceback.
        load_model_weights(model, args.weights)
        if args.command == "train":
            datasets = load_datasets(args.dataset)
        else:
            written = detect_and_color_splash(
                model, image_path=args.image, video_path=args.video,
                out_dir=args.out)
            return 0 if written else 1
    except (OSError, ValueError) as error:
        return cli.report_error("balloon.py", args.command, error)
    train_on(model, *datasets, epochs=args.epochs, layers=args.layers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
