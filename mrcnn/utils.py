"""Mask R-CNN common utility functions and classes.

The numpy side of the library, with the names and semantics of matterport's
``mrcnn.utils``. This module keeps the ``Dataset`` base class, ``batch_slice``
and the COCO weights download; the numpy helpers live in modules by subject
and are re-exported here, so ``mrcnn.utils.X`` keeps working:

* ``mrcnn.box_utils``: boxes of masks, IoU, NMS, box deltas, normalization.
* ``mrcnn.mask_utils``: mask IoU, mini masks, network masks.
* ``mrcnn.resizing``: ``resize``, ``resize_image``, ``resize_mask``.
* ``mrcnn.anchors``: anchor generation.
* ``mrcnn.matching``: ``compute_matches``, ``compute_ap`` and friends.
* ``mrcnn.image_io``: image files to RGB uint8 for ``Dataset.load_image``.

Conventions:

* Boxes are ``(y1, x1, y2, x2)``. Pixel boxes are exclusive at the end:
  ``y2``/``x2`` are one past the last row/column of the object.
* Instance masks are ``[height, width, num_instances]`` arrays.
* Pairs of boxes or masks with an empty union get IoU 0 (matterport gave
  NaN there), matching ``mrcnn.box_ops.overlaps_graph``.

TensorFlow is imported only inside ``batch_slice`` (and on first use of
``box_refinement_graph``) so ``import mrcnn.utils`` stays light for
data-loading code.
"""

import logging
import os

import numpy as np

# Re-exports: the original mrcnn.utils kept all of these in one file.
from mrcnn.anchors import generate_anchors, generate_pyramid_anchors  # noqa: F401
from mrcnn.box_utils import (apply_box_deltas, box_refinement,  # noqa: F401
                             compute_iou, compute_overlaps, denorm_boxes,
                             extract_bboxes, non_max_suppression, norm_boxes,
                             trim_zeros)
from mrcnn import image_io
from mrcnn.image_io import _to_rgb_uint8  # noqa: F401
from mrcnn.mask_utils import (compute_overlaps_masks, expand_mask,  # noqa: F401
                              minimize_mask, mold_mask, unmold_mask)
from mrcnn.matching import (compute_ap, compute_ap_range,  # noqa: F401
                            compute_matches, compute_recall)
from mrcnn.resizing import resize, resize_image, resize_mask  # noqa: F401

from mrcnn import orientation  # noqa: E402
# The EXIF helpers' earlier home; they live in mrcnn.orientation.
from mrcnn.orientation import EXIF_ORIENTATION_TAG, exif_orientation  # noqa: F401

# URL of the COCO weights released with matterport's Mask R-CNN v2.0.
COCO_MODEL_URL = ("https://github.com/matterport/Mask_RCNN/releases/download/"
                  "v2.0/mask_rcnn_coco.h5")
# The release publishes no checksum. Its size and MD5 as published by
# others who download that file: the MD5 in NVIDIA/TensorRT's
# samples/opensource/sampleUffMaskRCNN/README.md ("The md5sum of model file
# is e98aaff6f99e307b5e2a8a3ff741a518") and alibaba/ai-matrix's
# macro_benchmark/Mask_RCNN/checksum.md5 (same value); the size in wget
# logs of that URL ("Length: 257557808 ... saved [257557808/257557808]")
# and in h5py's truncated-file errors ("stored_eof = 257557808").
COCO_MODEL_SIZE = 257557808
COCO_MODEL_MD5 = "e98aaff6f99e307b5e2a8a3ff741a518"


def __getattr__(name):
    """box_refinement_graph (a TensorFlow op, in mrcnn.box_ops) on first use,
    so that importing this module does not import TensorFlow."""
    if name == "box_refinement_graph":
        from mrcnn.box_ops import box_refinement_graph
        return box_refinement_graph
    raise AttributeError("module {!r} has no attribute {!r}".format(
        __name__, name))


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

        Decoded by mrcnn.image_io.read_image, the decoder of `mrcnn detect`
        too: grey, grey + alpha, palette and CMYK/YCCK files become RGB, an
        alpha channel is dropped, 16-bit images give their top byte
        (65535 -> 255), a multi-frame file its first frame (one warning).
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
        image = image_io.read_image(path, upright=self.apply_exif_orientation,
                                    where=where)
        if not self.apply_exif_orientation:
            orientation.warn_stored_frame(path,
                                          orientation.exif_orientation(path))
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
        the download is complete and checked: every byte the server
        announced, COCO_MODEL_SIZE bytes in all, MD5 COCO_MODEL_MD5 (see
        mrcnn.download.fetch). A stalled connection times out.
    Raises WeightsDownloadError (an OSError) saying which URL to fetch by
    hand when the download fails, e.g. without network or truncated;
    coco_model_path is then left as it was.
    """
    from mrcnn import download
    coco_model_path = os.fspath(coco_model_path)
    if verbose > 0:
        print("Downloading pretrained model to " + coco_model_path + " ...")
    try:
        download.fetch(COCO_MODEL_URL, coco_model_path, size=COCO_MODEL_SIZE,
                       md5=COCO_MODEL_MD5, verbose=False)
    except download.DownloadError as error:
        raise WeightsDownloadError(
            "Could not download the COCO weights from {} ({}). Download the "
            "file by hand and save it as {}".format(
                COCO_MODEL_URL, error.__cause__ or error,
                coco_model_path)) from error
    if verbose > 0:
        print("... done downloading pretrained model!")


def damaged_trained_weights(coco_model_path):
    """Why the COCO weights file at coco_model_path cannot be used ("missing",
    a wrong size, not HDF5), or None when it looks whole. Cheap: checks the
    size and the HDF5 signature, not the MD5."""
    from mrcnn import download
    return download.damaged_hdf5(os.fspath(coco_model_path), COCO_MODEL_SIZE)
