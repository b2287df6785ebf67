"""Mask R-CNN common utility functions and classes.

The numpy side of the library, with the names and semantics of matterport's
``mrcnn.utils``: the ``Dataset`` base class, box and mask helpers, image
resizing, anchor generation, the evaluation helpers (``compute_ap`` and
friends) and the COCO weights download.

Conventions:

* Boxes are ``(y1, x1, y2, x2)``. Pixel boxes are exclusive at the end:
  ``y2``/``x2`` are one past the last row/column of the object.
* Instance masks are ``[height, width, num_instances]`` arrays.
* Pairs of boxes or masks with an empty union get IoU 0 (matterport gave
  NaN there), matching ``mrcnn.box_ops.overlaps_graph``.

TensorFlow is imported only inside ``batch_slice`` so ``import mrcnn.utils``
stays light for data-loading code.
"""

import logging
import os
import random
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings

import numpy as np
import scipy.ndimage
import skimage.io
import skimage.transform
import skimage.util

from mrcnn import orientation
# The EXIF helpers' earlier home; they live in mrcnn.orientation.
from mrcnn.orientation import EXIF_ORIENTATION_TAG, exif_orientation  # noqa: F401

# URL of the COCO weights released with matterport's Mask R-CNN v2.0.
COCO_MODEL_URL = ("https://github.com/matterport/Mask_RCNN/releases/download/"
                  "v2.0/mask_rcnn_coco.h5")


############################################################
#  Bounding Boxes
############################################################

def extract_bboxes(mask):
    """Computes the bounding box of each instance mask.

    mask: [height, width, num_instances]. Pixels are bool (or 0/1).
    Returns: [num_instances, (y1, x1, y2, x2)] int32 pixel boxes with y2, x2
        one past the last pixel. An empty mask gets the box (0, 0, 0, 0).
    """
    mask = np.asarray(mask).astype(bool)
    if mask.ndim != 3:
        raise ValueError("extract_bboxes expects a [height, width, "
                         "instances] mask, got shape {}".format(mask.shape))
    height, width = mask.shape[:2]
    rows = np.any(mask, axis=1)  # [height, N]: instance present in row y
    cols = np.any(mask, axis=0)  # [width, N]
    present = np.any(rows, axis=0)  # [N]
    y1 = np.argmax(rows, axis=0)
    y2 = height - np.argmax(rows[::-1], axis=0)
    x1 = np.argmax(cols, axis=0)
    x2 = width - np.argmax(cols[::-1], axis=0)
    boxes = np.stack([y1, x1, y2, x2], axis=1)
    boxes[~present] = 0
    return boxes.astype(np.int32)


def _safe_divide(numerator, denominator):
    """numerator / denominator, with 0 wherever the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.zeros(np.broadcast(numerator, denominator).shape)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def compute_iou(box, boxes, box_area, boxes_area):
    """IoU of one box against each box of an array.

    box: [y1, x1, y2, x2]
    boxes: [N, (y1, x1, y2, x2)]
    box_area: float, the area of ``box``.
    boxes_area: [N], the areas of ``boxes``.
    Returns: [N] IoU values. Passing the areas in avoids recomputing them
    when the function is called in a loop (as non_max_suppression does).
    """
    boxes = np.asarray(boxes)
    y1 = np.maximum(box[0], boxes[:, 0])
    y2 = np.minimum(box[2], boxes[:, 2])
    x1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[3], boxes[:, 3])
    intersection = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    union = box_area + np.asarray(boxes_area) - intersection
    return _safe_divide(intersection, union)


def _box_areas(boxes):
    """[N, (y1, x1, y2, x2)] -> [N] areas (negative sizes count as 0)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return (np.maximum(boxes[:, 2] - boxes[:, 0], 0)
            * np.maximum(boxes[:, 3] - boxes[:, 1], 0))


def compute_overlaps(boxes1, boxes2):
    """IoU of every box of boxes1 against every box of boxes2.

    boxes1: [N1, (y1, x1, y2, x2)], boxes2: [N2, (y1, x1, y2, x2)].
    Returns: [N1, N2] IoU matrix.
    """
    boxes1 = np.asarray(boxes1, dtype=np.float64).reshape(-1, 4)
    boxes2 = np.asarray(boxes2, dtype=np.float64).reshape(-1, 4)
    b1 = boxes1[:, None, :]  # [N1, 1, 4]
    b2 = boxes2[None, :, :]  # [1, N2, 4]
    height = np.minimum(b1[..., 2], b2[..., 2]) - np.maximum(b1[..., 0],
                                                             b2[..., 0])
    width = np.minimum(b1[..., 3], b2[..., 3]) - np.maximum(b1[..., 1],
                                                            b2[..., 1])
    intersection = np.maximum(height, 0) * np.maximum(width, 0)
    union = (_box_areas(boxes1)[:, None] + _box_areas(boxes2)[None, :]
             - intersection)
    return _safe_divide(intersection, union)


def compute_overlaps_masks(masks1, masks2):
    """IoU of every mask of masks1 against every mask of masks2.

    masks1: [height, width, N1], masks2: [height, width, N2]. Values above
        0.5 count as inside the mask.
    Returns: [N1, N2] IoU matrix (all zeros, of that shape, when either set
    is empty).
    """
    masks1 = np.asarray(masks1)
    masks2 = np.asarray(masks2)
    n1, n2 = masks1.shape[-1], masks2.shape[-1]
    if n1 == 0 or n2 == 0:
        return np.zeros((n1, n2))
    if masks1.shape[:-1] != masks2.shape[:-1]:
        raise ValueError("compute_overlaps_masks: mask sizes differ: {} vs {}"
                         .format(masks1.shape[:-1], masks2.shape[:-1]))
    flat1 = (masks1.reshape(-1, n1) > .5).astype(np.float32)
    flat2 = (masks2.reshape(-1, n2) > .5).astype(np.float32)
    area1 = flat1.sum(axis=0)
    area2 = flat2.sum(axis=0)
    intersections = flat1.T @ flat2
    union = area1[:, None] + area2[None, :] - intersections
    return _safe_divide(intersections, union)


def non_max_suppression(boxes, scores, threshold):
    """Greedy non-maximum suppression.

    boxes: [N, (y1, x1, y2, x2)]. Note that (y2, x2) lies outside the box.
    scores: [N] box scores.
    threshold: float. A box is dropped when its IoU with a higher-scoring
        kept box is above this.
    Returns: int32 indices of the kept boxes, best score first.
    """
    boxes = np.asarray(boxes)
    scores = np.asarray(scores)
    if boxes.shape[0] == 0:
        return np.zeros([0], dtype=np.int32)
    if boxes.dtype.kind != "f":
        boxes = boxes.astype(np.float32)
    areas = _box_areas(boxes)
    order = np.argsort(scores, kind="stable")[::-1]
    keep = []
    while order.size > 0:
        best, rest = order[0], order[1:]
        keep.append(best)
        iou = compute_iou(boxes[best], boxes[rest], areas[best], areas[rest])
        order = rest[iou <= threshold]
    return np.array(keep, dtype=np.int32)


def apply_box_deltas(boxes, deltas):
    """Applies refinement deltas to boxes.

    boxes: [N, (y1, x1, y2, x2)]. Note that (y2, x2) lies outside the box.
    deltas: [N, (dy, dx, log(dh), log(dw))]
    Returns: [N, (y1, x1, y2, x2)] float32.
    """
    boxes = np.asarray(boxes).astype(np.float32)
    deltas = np.asarray(deltas)
    height = boxes[:, 2] - boxes[:, 0]
    width = boxes[:, 3] - boxes[:, 1]
    center_y = boxes[:, 0] + 0.5 * height + deltas[:, 0] * height
    center_x = boxes[:, 1] + 0.5 * width + deltas[:, 1] * width
    height = height * np.exp(deltas[:, 2])
    width = width * np.exp(deltas[:, 3])
    y1 = center_y - 0.5 * height
    x1 = center_x - 0.5 * width
    return np.stack([y1, x1, y1 + height, x1 + width], axis=1).astype(
        np.float32)


def box_refinement(box, gt_box):
    """The deltas that turn each box into its ground-truth box.

    box, gt_box: [N, (y1, x1, y2, x2)]. (y2, x2) lies outside the box.
    Returns: [N, (dy, dx, log(dh), log(dw))] float32, the inverse of
    apply_box_deltas.
    """
    box = np.asarray(box).astype(np.float32)
    gt_box = np.asarray(gt_box).astype(np.float32)
    height = box[:, 2] - box[:, 0]
    width = box[:, 3] - box[:, 1]
    center_y = box[:, 0] + 0.5 * height
    center_x = box[:, 1] + 0.5 * width
    gt_height = gt_box[:, 2] - gt_box[:, 0]
    gt_width = gt_box[:, 3] - gt_box[:, 1]
    gt_center_y = gt_box[:, 0] + 0.5 * gt_height
    gt_center_x = gt_box[:, 1] + 0.5 * gt_width
    dy = (gt_center_y - center_y) / height
    dx = (gt_center_x - center_x) / width
    dh = np.log(gt_height / height)
    dw = np.log(gt_width / width)
    return np.stack([dy, dx, dh, dw], axis=1).astype(np.float32)


############################################################
#  Dataset
############################################################

class Dataset(object):
    """The base class for dataset classes.

    Subclass it, register classes with add_class() and images with
    add_image(), override load_mask() (and load_image() if the images are
    not files), then call prepare() before use::

        class CatsAndDogsDataset(Dataset):
            def load_cats_and_dogs(self):
                self.add_class("pets", 1, "cat")
                self.add_class("pets", 2, "dog")
                self.add_image("pets", image_id="cat1", path="cat1.jpg")
                ...

    Classes and images of several sources (datasets) can be mixed in one
    Dataset; prepare() gives every class and image a compact internal id.

    apply_exif_orientation: False (the default, as the original) uses the
    pixels of a photo as stored, ignoring its EXIF orientation tag, with one
    warning per tagged file. True turns them upright as photo viewers,
    browsers and LabelMe show them (see mrcnn.orientation): load_image()
    returns upright pixels, the sizes the loaders store in image_info are
    upright ones, and check-dataset checks annotations against that frame.
    Set it when the annotations were drawn on the upright view (a class
    attribute, or on the instance before loading); LabelMeDataset sets it.
    """

    apply_exif_orientation = False

    def __init__(self, class_map=None):
        self._image_ids = []
        self.image_info = []
        # Background is always the first class.
        self.class_info = [{"source": "", "id": 0, "name": "BG"}]
        self.source_class_ids = {}

    def add_class(self, source, class_id, class_name):
        """Registers a class; a repeated (source, class_id) is ignored."""
        if "." in source:
            raise ValueError("Source name cannot contain a dot: {!r}"
                             .format(source))
        for info in self.class_info:
            if info["source"] == source and info["id"] == class_id:
                return
        self.class_info.append(
            {"source": source, "id": class_id, "name": class_name})

    def add_image(self, source, image_id, path, **kwargs):
        """Registers an image; extra keyword arguments are stored with it."""
        image_info = {"id": image_id, "source": source, "path": path}
        image_info.update(kwargs)
        self.image_info.append(image_info)

    def image_reference(self, image_id):
        """A link or description of the image for debugging.

        Override for your dataset, e.g. to return a URL.
        """
        return ""

    def prepare(self, class_map=None):
        """Builds the internal ids and lookup tables. Call before use.

        class_map is accepted for compatibility and is not used.
        """
        def clean_name(name):
            """Keeps the text before the first comma of a class name."""
            return name.split(",")[0]

        self.num_classes = len(self.class_info)
        self.class_ids = np.arange(self.num_classes)
        self.class_names = [clean_name(c["name"]) for c in self.class_info]
        self.num_images = len(self.image_info)
        self._image_ids = np.arange(self.num_images)

        # "source.id" -> internal id
        self.class_from_source_map = {
            "{}.{}".format(info["source"], info["id"]): internal_id
            for info, internal_id in zip(self.class_info, self.class_ids)}
        self.image_from_source_map = {
            "{}.{}".format(info["source"], info["id"]): internal_id
            for info, internal_id in zip(self.image_info, self.image_ids)}

        # Sources in order of first appearance (BG's "" first).
        self.sources = list(dict.fromkeys(c["source"]
                                          for c in self.class_info))
        self.source_class_ids = {}
        for source in self.sources:
            # Background (index 0) belongs to every source.
            self.source_class_ids[source] = [
                i for i, info in enumerate(self.class_info)
                if i == 0 or info["source"] == source]

    def map_source_class_id(self, source_class_id):
        """Internal class id of a "source.class_id" string.

        For example, dataset.map_source_class_id("coco.12") -> 23
        """
        try:
            return self.class_from_source_map[source_class_id]
        except KeyError:
            raise KeyError("Unknown source class {!r}; expected one of {}"
                           .format(source_class_id,
                                   sorted(self.class_from_source_map)))

    def get_source_class_id(self, class_id, source):
        """The source's own id of internal class class_id."""
        info = self.class_info[class_id]
        if info["source"] != source:
            raise ValueError("Class {} ({!r}) belongs to source {!r}, not {!r}"
                             .format(class_id, info["name"], info["source"],
                                     source))
        return info["id"]

    @property
    def image_ids(self):
        return self._image_ids

    def source_image_link(self, image_id):
        """The path or URL of the image in its source."""
        return self.image_info[image_id]["path"]

    def load_image(self, image_id):
        """Loads an image as an RGB uint8 array of shape [H, W, 3].

        Grayscale images get three equal channels, an alpha channel is
        dropped and 16-bit (or float) images are rescaled to 8 bits.
        Pixels come as stored in the file, an EXIF orientation tag not
        applied (as in matterport, skimage and pycocotools), so annotations
        must be in the stored frame too; a tagged file gets one warning.
        With apply_exif_orientation they come upright instead ([W, H, 3]
        for orientations 5-8).
        Raises FileNotFoundError when the file is missing and ValueError when
        it cannot be decoded, both naming the file.
        """
        path = self.image_info[image_id]["path"]
        where = "image {} ({!r} of source {!r})".format(
            image_id, self.image_info[image_id]["id"],
            self.image_info[image_id]["source"])
        if not os.path.isfile(path):
            raise FileNotFoundError(
                "Image file not found: {} ({})".format(path, where))
        try:
            with warnings.catch_warnings():
                # imageio probing its plugins on an unknown file warns about
                # deprecated ones; the error below says what went wrong.
                warnings.simplefilter("ignore", DeprecationWarning)
                image = skimage.io.imread(path)
        except Exception as error:
            raise ValueError("Cannot read image file {} ({}): {}"
                             .format(path, where, error)) from error
        image = _to_rgb_uint8(image, path)
        tag = orientation.exif_orientation(path)
        if self.apply_exif_orientation:
            return np.ascontiguousarray(orientation.upright_pixels(image, tag))
        orientation.warn_stored_frame(path, tag)
        return image

    def load_mask(self, image_id):
        """Loads the instance masks of an image.

        Override this for your dataset. This default has no annotations and
        returns no instances, like the original: it never decodes the image
        and never touches a missing path.

        Returns:
            masks: bool array [height, width, 0] when the size is known
                (image_info height/width, else the header of an existing
                image file), else [0, 0, 0].
            class_ids: int32 array [0].
        """
        logging.warning("You are using the default load_mask(), maybe you "
                        "need to define your own one.")
        height, width = self._known_size(image_id) or (0, 0)
        return (np.zeros([height, width, 0], dtype=bool),
                np.zeros([0], dtype=np.int32))

    def _known_size(self, image_id):
        """(height, width) of an image without decoding its pixels, or None.

        From image_info when it has both sizes, else from the header of the
        image file when there is one (upright when apply_exif_orientation).
        """
        info = self.image_info[image_id]
        if info.get("height") is not None and info.get("width") is not None:
            return int(info["height"]), int(info["width"])
        path = info.get("path")
        if not isinstance(path, (str, os.PathLike)) \
                or not os.path.isfile(path):
            return None
        try:
            import PIL.Image
            with PIL.Image.open(path) as header:  # reads the header only
                width, height = header.size
        except Exception:  # not an image PIL knows: size unknown
            return None
        if self.apply_exif_orientation:
            return orientation.upright_size(height, width,
                                            orientation.exif_orientation(path))
        return height, width


def _to_rgb_uint8(image, path):
    """Converts a decoded image to RGB uint8 [H, W, 3]; path is for errors."""
    image = np.asarray(image)
    if image.ndim == 4:  # multi-frame file (GIF, TIFF stack): first frame
        image = image[0]
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 2, 3, 4):
        raise ValueError("Image file {} has unsupported shape {}"
                         .format(path, image.shape))
    channels = image.shape[-1]
    if channels in (1, 2):  # gray or gray + alpha
        image = np.repeat(image[..., :1], 3, axis=-1)
    else:  # RGB or RGBA
        image = image[..., :3]
    return _to_uint8(image, path)


def _to_uint8(image, path):
    """Rescales pixel values to uint8 (e.g. 16-bit 65535 -> 255)."""
    if image.dtype == np.uint8:
        return image
    if image.dtype.kind in "iu" and image.dtype != np.uint16:
        # e.g. int32 from 16-bit grayscale files: treat as 16 bit if it fits
        if image.min() < 0 or image.max() > 65535:
            raise ValueError("Image file {} has pixel values outside 0..65535 "
                             "({}..{})".format(path, image.min(), image.max()))
        image = image.astype(np.uint16)
    if image.dtype.kind == "f" and (image.min() < 0 or image.max() > 1):
        raise ValueError("Image file {} has float pixels outside [0, 1]"
                         .format(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "possible precision loss"
        return skimage.util.img_as_ubyte(image)


############################################################
#  Resizing
############################################################

def resize(image, output_shape, order=1, mode="constant", cval=0, clip=True,
           preserve_range=False, anti_aliasing=False,
           anti_aliasing_sigma=None):
    """skimage.transform.resize with matterport's defaults.

    Anti-aliasing is off by default (skimage turns it on), so results match
    the original library.
    """
    return skimage.transform.resize(
        image, output_shape, order=order, mode=mode, cval=cval, clip=clip,
        preserve_range=preserve_range, anti_aliasing=anti_aliasing,
        anti_aliasing_sigma=anti_aliasing_sigma)


def _pad_to_multiple(size, multiple):
    """(before, after) padding that brings size up to a multiple, centred."""
    total = (-size) % multiple
    return total // 2, total - total // 2


def resize_image(image, min_dim=None, max_dim=None, min_scale=None,
                 mode="square"):
    """Resizes an image keeping its aspect ratio.

    image: [height, width, channels] (any dtype; it is preserved).
    min_dim: scale up so the short side is at least this (never down).
    max_dim: in "square" mode, the long side stays at most this.
    min_scale: the image is scaled by at least this factor.
    mode:
        none: no resizing or padding; the image is returned as is.
        square: resize, then zero-pad to [max_dim, max_dim].
        pad64: resize (min_dim, min_scale; max_dim is ignored), then pad each
            side up to a multiple of 64. min_dim must be a multiple of 64.
        crop: resize (min_dim, min_scale), then take a random
            [min_dim, min_dim] crop (using Python's ``random``).

    Returns:
        image: the resized image.
        window: (y1, x1, y2, x2) of the image inside the result; the rest is
            padding.
        scale: the resize factor.
        padding: [(top, bottom), (left, right), (0, 0)] padding added.
        crop: (y, x, h, w) of the crop in "crop" mode, else None.
    """
    image = np.asarray(image)
    image_dtype = image.dtype
    h, w = image.shape[:2]
    window = (0, 0, h, w)
    scale = 1
    padding = [(0, 0), (0, 0), (0, 0)]
    crop = None
    if mode not in ("none", "square", "pad64", "crop"):
        raise ValueError("Mode {} not supported".format(mode))
    if mode == "none":
        return image, window, scale, padding, crop

    if min_dim:
        scale = max(1, min_dim / min(h, w))  # scale up only
    if min_scale and scale < min_scale:
        scale = min_scale
    if max_dim and mode == "square":
        image_max = max(h, w)
        if round(image_max * scale) > max_dim:
            scale = max_dim / image_max
    if scale != 1:
        new_h, new_w = round(h * scale), round(w * scale)
        if min(new_h, new_w) < 1:
            # Nothing of the image would be left (and masks could not
            # follow): an aspect ratio beyond max_dim : 0.5.
            raise ValueError(
                "resize_image: a {}x{} image scaled by {:.4g} (to fit "
                "max_dim={}) would be {}x{} pixels; crop or split such "
                "elongated images".format(h, w, scale, max_dim, new_h, new_w))
        image = resize(image, (new_h, new_w), preserve_range=True)

    h, w = image.shape[:2]
    if mode == "square":
        if not max_dim or max(h, w) > max_dim:
            raise ValueError("square mode needs max_dim >= the resized image "
                             "size, got max_dim={} for {}x{}"
                             .format(max_dim, h, w))
        top_pad = (max_dim - h) // 2
        left_pad = (max_dim - w) // 2
        padding = [(top_pad, max_dim - h - top_pad),
                   (left_pad, max_dim - w - left_pad), (0, 0)]
        image = np.pad(image, padding[:image.ndim], mode="constant",
                       constant_values=0)
        window = (top_pad, left_pad, h + top_pad, w + left_pad)
    elif mode == "pad64":
        if not min_dim or min_dim % 64 != 0:
            raise ValueError("Minimum dimension must be a multiple of 64, "
                             "got min_dim={}".format(min_dim))
        top_pad, bottom_pad = _pad_to_multiple(h, 64)
        left_pad, right_pad = _pad_to_multiple(w, 64)
        padding = [(top_pad, bottom_pad), (left_pad, right_pad), (0, 0)]
        image = np.pad(image, padding[:image.ndim], mode="constant",
                       constant_values=0)
        window = (top_pad, left_pad, h + top_pad, w + left_pad)
    elif mode == "crop":
        if not min_dim or h < min_dim or w < min_dim:
            raise ValueError("crop mode needs min_dim <= the resized image "
                             "size, got min_dim={} for {}x{}"
                             .format(min_dim, h, w))
        y = random.randint(0, h - min_dim)
        x = random.randint(0, w - min_dim)
        crop = (y, x, min_dim, min_dim)
        image = image[y:y + min_dim, x:x + min_dim]
        window = (0, 0, min_dim, min_dim)
    return image.astype(image_dtype), window, scale, padding, crop


def resize_mask(mask, scale, padding, crop=None):
    """Resizes masks like resize_image resized their image.

    mask: [height, width, num_instances].
    scale, padding, crop: as returned by resize_image.
    Returns: the resized masks, same dtype as the input (bool stays bool).
    """
    mask = np.asarray(mask)
    if scale != 1:
        # zoom the masks as float: nearest neighbour (order=0) keeps them
        # binary, and scipy/skimage refuse to interpolate bool arrays.
        zoomed = scipy.ndimage.zoom(mask.astype(np.float32),
                                    zoom=[scale, scale, 1], order=0)
        mask = (zoomed > 0.5) if mask.dtype == bool else zoomed.astype(
            mask.dtype)
    if crop is not None:
        y, x, h, w = crop
        return mask[y:y + h, x:x + w]
    return np.pad(mask, padding, mode="constant", constant_values=0)


############################################################
#  Masks
############################################################

def minimize_mask(bbox, mask, mini_shape):
    """Crops each mask to its box and resizes it to mini_shape.

    Mini masks save memory during training; expand_mask reverses this.
    bbox: [N, (y1, x1, y2, x2)] pixel boxes, e.g. from extract_bboxes.
    mask: [height, width, N].
    mini_shape: (height, width) of the mini masks.
    Returns: bool [mini_height, mini_width, N].
    Raises ValueError for a box of zero area (an instance with no pixels),
    naming the instance.
    """
    mini_shape = tuple(int(d) for d in mini_shape)
    mini_mask = np.zeros(mini_shape + (mask.shape[-1],), dtype=bool)
    for i in range(mask.shape[-1]):
        y1, x1, y2, x2 = (int(v) for v in bbox[i][:4])
        cropped = mask[y1:y2, x1:x2, i]
        if cropped.size == 0:
            raise ValueError(
                "minimize_mask: instance {} has a box of zero area {}; drop "
                "empty instances before minimizing masks"
                .format(i, (y1, x1, y2, x2)))
        small = resize(cropped.astype(np.float32), mini_shape)
        mini_mask[:, :, i] = np.around(small).astype(bool)
    return mini_mask


def expand_mask(bbox, mini_mask, image_shape):
    """Pastes mini masks back at their boxes in full-size masks.

    The inverse of minimize_mask.
    bbox: [N, (y1, x1, y2, x2)] pixel boxes.
    mini_mask: [mini_height, mini_width, N].
    image_shape: (height, width, ...) of the full image.
    Returns: bool [height, width, N]. An instance whose box has zero area
    gets an empty mask.
    """
    num_instances = mini_mask.shape[-1]
    mask = np.zeros(tuple(int(d) for d in image_shape[:2]) + (num_instances,),
                    dtype=bool)
    for i in range(num_instances):
        y1, x1, y2, x2 = (int(v) for v in bbox[i][:4])
        if y2 <= y1 or x2 <= x1:
            continue
        full = resize(mini_mask[:, :, i].astype(np.float32),
                      (y2 - y1, x2 - x1))
        mask[y1:y2, x1:x2, i] = np.around(full).astype(bool)
    return mask


def unmold_mask(mask, bbox, image_shape):
    """Turns a network mask into a full-image bool mask.

    mask: [height, width] float mask from the mask head (e.g. 28x28).
    bbox: (y1, x1, y2, x2) pixel box the mask belongs to.
    image_shape: (height, width, ...) of the image.
    Returns: bool [height, width]; pixels with mask value >= 0.5 are set.
    A box of zero area gives an empty mask.
    """
    threshold = 0.5
    y1, x1, y2, x2 = (int(v) for v in bbox[:4])
    full_mask = np.zeros(tuple(int(d) for d in image_shape[:2]), dtype=bool)
    if y2 <= y1 or x2 <= x1:
        return full_mask
    resized = resize(np.asarray(mask, dtype=np.float32), (y2 - y1, x2 - x1))
    full_mask[y1:y2, x1:x2] = resized >= threshold
    return full_mask


############################################################
#  Anchors
############################################################

def generate_anchors(scales, ratios, shape, feature_stride, anchor_stride):
    """Anchor boxes for one feature map.

    scales: 1D array of anchor sizes in pixels, e.g. [32, 64, 128].
    ratios: 1D array of width/height ratios, e.g. [0.5, 1, 2].
    shape: [height, width] of the feature map.
    feature_stride: stride of the feature map relative to the image.
    anchor_stride: place anchors every anchor_stride feature-map cells.
    Returns: [num_cells * len(scales) * len(ratios), (y1, x1, y2, x2)] pixel
    anchors, ordered by cell row, then column, then ratio, then scale (the
    order of the RPN outputs). Anchor centres sit at cell * feature_stride.
    """
    # Every (ratio, scale) combination, ratio-major.
    scales, ratios = np.meshgrid(np.array(scales), np.array(ratios))
    scales = scales.flatten()
    ratios = ratios.flatten()
    heights = scales / np.sqrt(ratios)  # [A]
    widths = scales * np.sqrt(ratios)

    shifts_y = np.arange(0, shape[0], anchor_stride) * feature_stride
    shifts_x = np.arange(0, shape[1], anchor_stride) * feature_stride
    centers_x, centers_y = np.meshgrid(shifts_x, shifts_y)  # [rows, cols]
    centers = np.stack([centers_y.ravel(), centers_x.ravel()], axis=1)
    sizes = np.stack([heights, widths], axis=1)  # [A, 2]

    # Pair every cell with every anchor shape, cell-major: [cells * A, 2]
    num_cells, num_shapes = len(centers), len(sizes)
    centers = np.repeat(centers, num_shapes, axis=0)
    sizes = np.tile(sizes, (num_cells, 1))
    return np.concatenate([centers - 0.5 * sizes, centers + 0.5 * sizes],
                          axis=1)


def generate_pyramid_anchors(scales, ratios, feature_shapes, feature_strides,
                             anchor_stride):
    """Anchors for every level of a feature pyramid.

    scales: one anchor size per level, e.g. (32, 64, 128, 256, 512).
    ratios, anchor_stride: as in generate_anchors.
    feature_shapes: [levels, (height, width)] of the feature maps.
    feature_strides: one stride per level.
    Returns: [N, (y1, x1, y2, x2)] pixel anchors, level by level, in the
    order of the scales.
    """
    anchors = [generate_anchors(scales[i], ratios, feature_shapes[i],
                                feature_strides[i], anchor_stride)
               for i in range(len(scales))]
    return np.concatenate(anchors, axis=0)


############################################################
#  Box normalization
############################################################

def norm_boxes(boxes, shape):
    """Pixel boxes to normalized coordinates.

    boxes: [N, (y1, x1, y2, x2)] in pixels.
    shape: (height, width) of the image.
    Returns: [N, (y1, x1, y2, x2)] float32 normalized. In pixel coordinates
    (y2, x2) is outside the box; in normalized coordinates it is inside, so
    (y2, x2) are shifted by one pixel.
    """
    h, w = shape[:2]
    scale = np.array([h - 1, w - 1, h - 1, w - 1])
    shift = np.array([0, 0, 1, 1])
    return np.divide((np.asarray(boxes) - shift), scale).astype(np.float32)


def denorm_boxes(boxes, shape):
    """Normalized boxes to int32 pixel boxes; the inverse of norm_boxes."""
    h, w = shape[:2]
    scale = np.array([h - 1, w - 1, h - 1, w - 1])
    shift = np.array([0, 0, 1, 1])
    return np.around(np.multiply(boxes, scale) + shift).astype(np.int32)


def trim_zeros(x):
    """Drops the all-zero rows of a 2D array (the padding of box tensors).

    x: [rows, columns].
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError("trim_zeros expects a 2D array, got shape {}"
                         .format(x.shape))
    return x[~np.all(x == 0, axis=1)]


############################################################
#  Evaluation
############################################################

def compute_matches(gt_boxes, gt_class_ids, gt_masks,
                    pred_boxes, pred_class_ids, pred_scores, pred_masks,
                    iou_threshold=0.5, score_threshold=0.0):
    """Matches predictions to ground truth by mask IoU.

    Predictions are visited from the highest score down; each takes the
    unmatched ground-truth instance of the same class with the highest IoU,
    if that IoU is at least iou_threshold. As in matterport, ground-truth
    candidates whose IoU is below score_threshold are ignored.

    gt_boxes: [N, (y1, x1, y2, x2)] (all-zero padding rows are dropped).
    gt_class_ids: [N]; gt_masks: [height, width, N].
    pred_boxes: [M, (y1, x1, y2, x2)]; pred_class_ids, pred_scores: [M];
    pred_masks: [height, width, M].

    Returns:
        gt_match: [N] index of the matched prediction, -1 if none.
        pred_match: [M] index of the matched ground truth, -1 if none; in
            order of decreasing score.
        overlaps: [M, N] mask IoUs, predictions in order of decreasing score.
    """
    gt_boxes = trim_zeros(np.asarray(gt_boxes).reshape(-1, 4))
    gt_masks = np.asarray(gt_masks)[..., :gt_boxes.shape[0]]
    pred_boxes = trim_zeros(np.asarray(pred_boxes).reshape(-1, 4))
    pred_scores = np.asarray(pred_scores)[:pred_boxes.shape[0]]
    order = np.argsort(pred_scores, kind="stable")[::-1]
    pred_class_ids = np.asarray(pred_class_ids)[order]
    pred_masks = np.asarray(pred_masks)[..., order]

    overlaps = compute_overlaps_masks(pred_masks, gt_masks)

    pred_match = -1 * np.ones([len(order)])
    gt_match = -1 * np.ones([gt_boxes.shape[0]])
    for i in range(len(order)):
        candidates = np.argsort(overlaps[i], kind="stable")[::-1]
        candidates = candidates[overlaps[i, candidates] >= score_threshold]
        for j in candidates:
            if gt_match[j] > -1:
                continue  # already taken by a better-scored prediction
            if overlaps[i, j] < iou_threshold:
                break  # the rest overlap even less
            if pred_class_ids[i] == gt_class_ids[j]:
                gt_match[j] = i
                pred_match[i] = j
                break
    return gt_match, pred_match, overlaps


def compute_ap(gt_boxes, gt_class_ids, gt_masks,
               pred_boxes, pred_class_ids, pred_scores, pred_masks,
               iou_threshold=0.5):
    """Average precision at one IoU threshold (PASCAL VOC style, all points).

    Arguments as in compute_matches.

    Returns:
        mAP: the area under the interpolated precision-recall curve.
        precisions: interpolated precisions, padded with a 0 at each end.
        recalls: recalls, padded with 0 at the start and 1 at the end.
        overlaps: [pred_boxes, gt_boxes] mask IoUs.
    An image without ground truth has recall 0 and so AP 0 (matterport
    returned NaN).
    """
    gt_match, pred_match, overlaps = compute_matches(
        gt_boxes, gt_class_ids, gt_masks,
        pred_boxes, pred_class_ids, pred_scores, pred_masks,
        iou_threshold)

    true_positives = np.cumsum(pred_match > -1)
    precisions = true_positives / (np.arange(len(pred_match)) + 1)
    recalls = _safe_divide(true_positives, len(gt_match))

    precisions = np.concatenate([[0], precisions, [0]])
    recalls = np.concatenate([[0], recalls, [1]])
    # Each precision becomes the best precision at this or a higher recall.
    precisions = np.maximum.accumulate(precisions[::-1])[::-1]

    # Area under the step curve, summed where recall changes.
    steps = np.where(recalls[:-1] != recalls[1:])[0] + 1
    mAP = np.sum((recalls[steps] - recalls[steps - 1]) * precisions[steps])
    return mAP, precisions, recalls, overlaps


def compute_ap_range(gt_box, gt_class_id, gt_mask,
                     pred_box, pred_class_id, pred_score, pred_mask,
                     iou_thresholds=None, verbose=1):
    """Mean AP over IoU thresholds (default 0.5:0.95 in steps of 0.05)."""
    if iou_thresholds is None:
        iou_thresholds = np.arange(0.5, 1.0, 0.05)
    aps = []
    for iou_threshold in iou_thresholds:
        ap, _, _, _ = compute_ap(
            gt_box, gt_class_id, gt_mask,
            pred_box, pred_class_id, pred_score, pred_mask,
            iou_threshold=iou_threshold)
        if verbose:
            print("AP @{:.2f}:\t {:.3f}".format(iou_threshold, ap))
        aps.append(ap)
    mean_ap = np.array(aps).mean()
    if verbose:
        print("AP @{:.2f}-{:.2f}:\t {:.3f}".format(
            iou_thresholds[0], iou_thresholds[-1], mean_ap))
    return mean_ap


def compute_recall(pred_boxes, gt_boxes, iou):
    """Recall of the ground-truth boxes at an IoU threshold.

    pred_boxes: [N, (y1, x1, y2, x2)]; gt_boxes: [M, (y1, x1, y2, x2)].
    iou: IoU threshold.
    Returns:
        recall: fraction of ground-truth boxes that are the best match of
            some prediction with IoU >= iou.
        positive_ids: indices of the predictions with IoU >= iou.
    """
    overlaps = compute_overlaps(pred_boxes, gt_boxes)
    if overlaps.size == 0:
        return 0.0, np.zeros([0], dtype=np.int64)
    iou_max = np.max(overlaps, axis=1)
    iou_argmax = np.argmax(overlaps, axis=1)
    positive_ids = np.where(iou_max >= iou)[0]
    matched_gt_boxes = iou_argmax[positive_ids]
    recall = len(set(matched_gt_boxes)) / np.asarray(gt_boxes).shape[0]
    return recall, positive_ids


############################################################
#  TensorFlow helper
############################################################

def batch_slice(inputs, graph_fn, batch_size, names=None):
    """Runs graph_fn on each item of a batch and stacks the results.

    For ops that only work on one item at a time.

    inputs: a tensor or list of tensors, each with the batch as first axis.
    graph_fn: called with one slice of each input; returns a tensor or a
        list/tuple of tensors.
    batch_size: number of items (the batch axis must be known).
    names: optional names of the stacked outputs.
    Returns: a tensor, or a list of tensors when graph_fn returns several.
    """
    import tensorflow as tf  # lazily: keep `import mrcnn.utils` light

    if not isinstance(inputs, list):
        inputs = [inputs]
    per_item = []
    for i in range(batch_size):
        outputs = graph_fn(*[x[i] for x in inputs])
        if not isinstance(outputs, (tuple, list)):
            outputs = [outputs]
        per_item.append(outputs)
    # [items][outputs] -> [outputs][items]
    per_output = list(zip(*per_item))
    if names is None:
        names = [None] * len(per_output)
    result = [tf.stack(o, axis=0, name=n) for o, n in zip(per_output, names)]
    if len(result) == 1:
        result = result[0]
    return result


############################################################
#  Weights download
############################################################

class WeightsDownloadError(OSError):
    """The COCO weights could not be downloaded."""


def download_trained_weights(coco_model_path, verbose=1):
    """Downloads the COCO-trained weights from matterport's release.

    coco_model_path: where to save the .h5 file. The file appears only once
        the download is complete (written to a temporary file, then renamed).
    Raises WeightsDownloadError (an OSError) saying which URL to fetch by
    hand when the download fails, e.g. without network.
    """
    coco_model_path = os.fspath(coco_model_path)
    folder = os.path.dirname(os.path.abspath(coco_model_path))
    os.makedirs(folder, exist_ok=True)
    if verbose > 0:
        print("Downloading pretrained model to " + coco_model_path + " ...")
    fd, tmp_path = tempfile.mkstemp(
        dir=folder, prefix=os.path.basename(coco_model_path) + ".",
        suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, \
                urllib.request.urlopen(COCO_MODEL_URL) as response:
            shutil.copyfileobj(response, out)
        os.replace(tmp_path, coco_model_path)
    except (urllib.error.URLError, OSError, ValueError) as error:
        _remove_quietly(tmp_path)
        raise WeightsDownloadError(
            "Could not download the COCO weights from {} ({}). Download the "
            "file by hand and save it as {}".format(
                COCO_MODEL_URL, error, coco_model_path)) from error
    except BaseException:
        _remove_quietly(tmp_path)
        raise
    if verbose > 0:
        print("... done downloading pretrained model!")


def _remove_quietly(path):
    """Deletes a file if it exists."""
    try:
        os.remove(path)
    except OSError:
        pass
