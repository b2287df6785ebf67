"""Train a tiny model for two steps, then detect, with the installed wheel.

Run from a directory outside the source tree with the Python of a fresh
virtualenv holding the wheel: it must not need the repository's tests/ or
samples/ packages, so its config and dataset are defined here. It first
checks, in a fresh interpreter, that imgaug imports before mrcnn (the
wheel's import hook), then trains and detects.
Usage: python wheel_smoke.py WORK_DIR
"""

import os
import subprocess
import sys

import numpy as np

import mrcnn
from mrcnn import model as modellib, utils
from mrcnn.config import Config

SIZE = 64


class SmokeConfig(Config):
    NAME = "smoke"
    BACKBONE = "resnet18"
    NUM_CLASSES = 1 + 1
    GPU_COUNT = 1
    IMAGES_PER_GPU = 1
    IMAGE_MIN_DIM = SIZE
    IMAGE_MAX_DIM = SIZE
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    TOP_DOWN_PYRAMID_SIZE = 32
    RPN_CONV_DEPTH = 32
    FPN_CLASSIF_FC_LAYERS_SIZE = 64
    MASK_HEAD_CONV_DEPTH = 16
    PRE_NMS_LIMIT = 500
    POST_NMS_ROIS_TRAINING = 64
    POST_NMS_ROIS_INFERENCE = 32
    TRAIN_ROIS_PER_IMAGE = 16
    RPN_TRAIN_ANCHORS_PER_IMAGE = 32
    MAX_GT_INSTANCES = 4
    DETECTION_MAX_INSTANCES = 8
    DETECTION_MIN_CONFIDENCE = 0.0
    MINI_MASK_SHAPE = (14, 14)
    STEPS_PER_EPOCH = 2
    VALIDATION_STEPS = 0


class SquaresDataset(utils.Dataset):
    """Gray images with one bright square each, of class "square"."""

    def load_squares(self, count, seed=0):
        rng = np.random.default_rng(seed)
        self.add_class("squares", 1, "square")
        for i in range(count):
            side = int(rng.integers(16, 32))
            y, x = (int(v) for v in rng.integers(0, SIZE - side, size=2))
            self.add_image("squares", image_id=i, path=None,
                           box=(y, x, y + side, x + side))

    def load_image(self, image_id):
        y1, x1, y2, x2 = self.image_info[image_id]["box"]
        image = np.full((SIZE, SIZE, 3), 40, dtype=np.uint8)
        image[y1:y2, x1:x2] = 220
        return image

    def load_mask(self, image_id):
        y1, x1, y2, x2 = self.image_info[image_id]["box"]
        mask = np.zeros((SIZE, SIZE, 1), dtype=bool)
        mask[y1:y2, x1:x2, 0] = True
        return mask, np.array([1], dtype=np.int32)


# imgaug imported before mrcnn, as isort orders it, in a fresh interpreter:
# the wheel's mrcnn_imgaug_hook.pth must restore the numpy 2 names first.
IMGAUG_FIRST = """
import sys
from imgaug import augmenters as iaa
import numpy as np
image = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
assert np.array_equal(iaa.Fliplr(1.0)(image=image), image[:, ::-1])
assert "mrcnn" not in sys.modules
"""


def check_imgaug_first(work_dir):
    """Runs IMGAUG_FIRST from work_dir (outside the source tree; made
    here, as training would make it later)."""
    os.makedirs(work_dir, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", IMGAUG_FIRST], cwd=work_dir,
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit("importing imgaug before mrcnn failed:\n"
                         + done.stderr[-3000:])


def main(work_dir):
    installed_at = os.path.dirname(os.path.abspath(mrcnn.__file__))
    if not installed_at.startswith(os.path.abspath(sys.prefix) + os.sep):
        raise SystemExit("mrcnn was imported from {}, not from the wheel "
                         "installed in {}".format(installed_at, sys.prefix))
    check_imgaug_first(work_dir)
    dataset = SquaresDataset()
    dataset.load_squares(4)
    dataset.prepare()

    trainer = modellib.MaskRCNN("training", SmokeConfig(), work_dir)
    history = trainer.train(dataset, None, learning_rate=0.01, epochs=1,
                            layers="all")
    losses = history.history["loss"]
    if not np.all(np.isfinite(losses)):
        raise SystemExit("training loss is not finite: {}".format(losses))

    class InferenceConfig(SmokeConfig):
        pass

    detector = modellib.MaskRCNN("inference", InferenceConfig(), work_dir)
    detector.load_weights(detector.find_last(), by_name=True)
    image = dataset.load_image(0)
    [result] = detector.detect([image])
    count = len(result["class_ids"])
    if result["rois"].shape != (count, 4) \
            or result["masks"].shape != (SIZE, SIZE, count):
        raise SystemExit("unexpected detection shapes: rois {}, masks {}"
                         .format(result["rois"].shape, result["masks"].shape))
    print("wheel smoke test: mrcnn from {}; loss {:.3f}; {} detections"
          .format(installed_at, losses[-1], count))


if __name__ == "__main__":
    main(sys.argv[1])
