"""The synthetic shapes dataset: squares, circles and triangles on plain
backgrounds, generated on the fly, and a configuration small enough to train
from random initialization on a CPU in minutes.

    from samples.shapes.shapes import ShapesConfig, ShapesDataset
    dataset = ShapesDataset()
    dataset.load_shapes(500, 128, 128)
    dataset.prepare()
"""

import numpy as np
import skimage.draw

from mrcnn import utils
from mrcnn.config import Config

SHAPES = ("square", "circle", "triangle")


class ShapesConfig(Config):
    """Small model for 128x128 images of up to four shapes."""
    NAME = "shapes"
    GPU_COUNT = 1
    IMAGES_PER_GPU = 4
    NUM_CLASSES = 1 + len(SHAPES)

    BACKBONE = "resnet18"
    TRAIN_BN = True  # random init: batch norm must learn its statistics
    ADD_GT_TO_PROPOSALS = True  # positives for the heads from step one
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    # Shapes of 20-64 px fall between the anchor scales: at the paper's 0.7
    # most get a single positive anchor and the RPN learns slowly from
    # scratch (mAP@0.5 0.33 against 0.63 after 1,100 steps, measured).
    RPN_POSITIVE_IOU = 0.5
    TOP_DOWN_PYRAMID_SIZE = 64
    RPN_CONV_DEPTH = 64
    FPN_CLASSIF_FC_LAYERS_SIZE = 256
    MASK_HEAD_CONV_DEPTH = 64
    PRE_NMS_LIMIT = 1000
    POST_NMS_ROIS_TRAINING = 300
    POST_NMS_ROIS_INFERENCE = 100
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    TRAIN_ROIS_PER_IMAGE = 16
    MAX_GT_INSTANCES = 8
    DETECTION_MAX_INSTANCES = 16
    DETECTION_MIN_CONFIDENCE = 0.7
    USE_MINI_MASK = True
    MINI_MASK_SHAPE = (28, 28)
    STEPS_PER_EPOCH = 100
    VALIDATION_STEPS = 5
    LEARNING_RATE = 0.01


class ShapesDataset(utils.Dataset):
    """Generates images of shapes on the fly from stored specifications."""

    def load_shapes(self, count, height, width, seed=None, max_shapes=4):
        """Adds `count` random images of the given size."""
        rng = np.random.default_rng(seed)
        for i, name in enumerate(SHAPES):
            self.add_class("shapes", i + 1, name)
        for image_id in range(count):
            bg_color, shapes = random_image(rng, height, width, max_shapes)
            self.add_image("shapes", image_id=image_id, path=None,
                           width=width, height=height,
                           bg_color=bg_color, shapes=shapes)

    def load_image(self, image_id):
        info = self.image_info[image_id]
        image = np.empty([info["height"], info["width"], 3], dtype=np.uint8)
        image[:] = np.array(info["bg_color"], dtype=np.uint8)
        for shape, color, dims in info["shapes"]:
            rr, cc = shape_pixels(shape, dims, image.shape[:2])
            image[rr, cc] = color
        return image

    def image_reference(self, image_id):
        info = self.image_info[image_id]
        return "shapes image {} ({})".format(
            image_id, ", ".join(s[0] for s in info["shapes"]))

    def load_mask(self, image_id):
        """Masks of the shapes; later shapes occlude earlier ones."""
        info = self.image_info[image_id]
        shapes = info["shapes"]
        height, width = info["height"], info["width"]
        mask = np.zeros([height, width, len(shapes)], dtype=bool)
        for i, (shape, _, dims) in enumerate(shapes):
            rr, cc = shape_pixels(shape, dims, (height, width))
            mask[rr, cc, i] = True
        visible = np.ones([height, width], dtype=bool)
        for i in range(len(shapes) - 1, -1, -1):
            mask[..., i] &= visible
            visible &= ~mask[..., i]
        keep = mask.reshape(-1, len(shapes)).any(axis=0) if shapes else []
        class_ids = np.array([self.class_names.index(s[0]) for s in shapes],
                             dtype=np.int32)
        return mask[..., keep], class_ids[keep]


def shape_pixels(shape, dims, image_shape):
    """Pixel rows and columns of a shape centred at (x, y) of size s."""
    x, y, s = dims
    if shape == "square":
        return skimage.draw.rectangle((y - s, x - s), (y + s - 1, x + s - 1),
                                      shape=image_shape)
    if shape == "circle":
        return skimage.draw.disk((y, x), s, shape=image_shape)
    # Equilateral-ish triangle pointing up.
    rows = [y - s, y + s * np.sin(np.radians(60)), y + s * np.sin(np.radians(60))]
    cols = [x, x - s / np.sin(np.radians(60)), x + s / np.sin(np.radians(60))]
    return skimage.draw.polygon(rows, cols, shape=image_shape)


def random_shape(rng, height, width):
    shape = SHAPES[rng.integers(len(SHAPES))]
    color = tuple(int(c) for c in rng.integers(0, 256, size=3))
    buffer = 20
    y = int(rng.integers(buffer, height - buffer))
    x = int(rng.integers(buffer, width - buffer))
    s = int(rng.integers(buffer // 2, height // 4))
    return shape, color, (x, y, s)


def random_image(rng, height, width, max_shapes=4):
    """A background color and 1..max_shapes shapes that overlap little."""
    bg_color = tuple(int(c) for c in rng.integers(0, 256, size=3))
    shapes, boxes = [], []
    for _ in range(int(rng.integers(1, max_shapes + 1))):
        shape, color, dims = random_shape(rng, height, width)
        # Keep shapes distinguishable from the background.
        if np.abs(np.array(color) - np.array(bg_color)).sum() < 90:
            color = tuple(int((c + 128) % 256) for c in color)
        shapes.append((shape, color, dims))
        x, y, s = dims
        boxes.append([y - s, x - s, y + s, x + s])
    keep = utils.non_max_suppression(np.array(boxes, dtype=np.float32),
                                     np.arange(len(shapes), dtype=np.float32),
                                     0.3)
    return bg_color, [shapes[i] for i in sorted(keep)]
