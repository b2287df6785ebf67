"""Image files for benchmarks/data_pipeline.py's whole-feed timing.

:func:`write_polygon_set` writes JPEG photos-like images with a few dozen
polygon instances each, and one PNG label image per photo (instance k has
value k; later polygons cover earlier ones, as objects in front do), into
a folder; :class:`PolygonFileDataset` reads them back as a mrcnn Dataset,
decoding both files at every load as a dataset of files on disk does.
The classes live at module level so that spawned worker processes can
import them.
"""

import json
import os

import cv2
import numpy as np

from mrcnn import utils
from mrcnn.structures.image_io import read_image

# Sizes of the written images (height, width): the long side 1024 (square
# mode pads only) and smaller photos that are scaled up to 1024 px.
SIZES = ((768, 1024), (1024, 768), (600, 800), (480, 640))
CLASS_NAMES = ("round", "long", "spiky")


def _polygon(rng, height, width):
    """A star-shaped polygon of 8-24 vertices, [K, (x, y)] int32 pixels."""
    count = int(rng.integers(8, 25))
    cy, cx = rng.uniform(0, height), rng.uniform(0, width)
    radius = rng.uniform(12, min(height, width) / 5)
    angles = np.sort(rng.uniform(0, 2 * np.pi, count))
    radii = radius * rng.uniform(0.5, 1.0, count)
    xs = np.clip(cx + radii * np.cos(angles), 0, width - 1)
    ys = np.clip(cy + radii * np.sin(angles), 0, height - 1)
    return np.stack([xs, ys], axis=1).round().astype(np.int32)


def _draw(rng, height, width, instances):
    """(RGB uint8 image, uint8 label image, class ids [instances])."""
    noise = rng.integers(0, 255, (height // 8, width // 8, 3), np.uint8)
    image = cv2.resize(noise, (width, height),
                       interpolation=cv2.INTER_CUBIC)  # smooth texture
    labels = np.zeros((height, width), np.uint8)
    for k in range(1, instances + 1):
        points = _polygon(rng, height, width)
        colour = [int(v) for v in rng.integers(0, 256, 3)]
        cv2.fillPoly(image, [points], colour)
        cv2.fillPoly(labels, [points], k)
    class_ids = rng.integers(1, len(CLASS_NAMES) + 1, instances)
    return image, labels, class_ids.astype(np.int32)


def write_polygon_set(folder, images, instances, seed=0):
    """Writes images/*.jpg, labels/*.png and classes.json into folder."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    os.makedirs(os.path.join(folder, "labels"), exist_ok=True)
    classes = {}
    for i in range(images):
        height, width = SIZES[i % len(SIZES)]
        image, labels, class_ids = _draw(rng, height, width, instances)
        name = "{:04d}".format(i)
        cv2.imwrite(os.path.join(folder, "images", name + ".jpg"),
                    image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        cv2.imwrite(os.path.join(folder, "labels", name + ".png"), labels)
        classes[name] = class_ids.tolist()
    with open(os.path.join(folder, "classes.json"), "w") as handle:
        json.dump(classes, handle)


class PolygonFileDataset(utils.Dataset):
    """The set written by write_polygon_set, read from its files."""

    def load_folder(self, folder):
        with open(os.path.join(folder, "classes.json")) as handle:
            classes = json.load(handle)
        for class_id, name in enumerate(CLASS_NAMES, start=1):
            self.add_class("polygons", class_id, name)
        for name in sorted(classes):
            self.add_image(
                "polygons", image_id=name,
                path=os.path.join(folder, "images", name + ".jpg"),
                labels=os.path.join(folder, "labels", name + ".png"),
                class_ids=classes[name])
        self.prepare()
        return self

    def load_image(self, image_id):
        return read_image(self.image_info[image_id]["path"])

    def load_mask(self, image_id):
        info = self.image_info[image_id]
        labels = cv2.imread(info["labels"], cv2.IMREAD_UNCHANGED)
        ids = np.arange(1, len(info["class_ids"]) + 1, dtype=np.uint8)
        return (labels[..., None] == ids,
                np.asarray(info["class_ids"], np.int32))
