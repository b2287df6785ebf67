"""Mask R-CNN common utility functions and classes: matterport's
``mrcnn.utils``, as a face.

Every name of the original is here, with its semantics; the code lives in
the packages by subject:

* ``mrcnn.structures.dataset``: ``Dataset``.
* ``mrcnn.structures.boxes``: boxes of masks, IoU, NMS, box deltas,
  normalization.
* ``mrcnn.structures.masks``: mask IoU, mini masks, network masks.
* ``mrcnn.structures.resizing``: ``resize``, ``resize_image``,
  ``resize_mask``.
* ``mrcnn.structures.anchors``: anchor generation.
* ``mrcnn.structures.image_io``: image files to RGB uint8 for
  ``Dataset.load_image``.
* ``mrcnn.evaluation.matching``: ``compute_matches``, ``compute_ap`` and
  friends.
* ``mrcnn.weights.coco``: the COCO weights download.
* ``mrcnn.network.batch_slice`` and ``mrcnn.network.box_ops``:
  ``batch_slice`` and ``box_refinement_graph``, imported on first use so
  that ``import mrcnn.utils`` does not import TensorFlow.

Conventions:

* Boxes are ``(y1, x1, y2, x2)``. Pixel boxes are exclusive at the end:
  ``y2``/``x2`` are one past the last row/column of the object.
* Instance masks are ``[height, width, num_instances]`` arrays.
* Pairs of boxes or masks with an empty union get IoU 0 (matterport gave
  NaN there), matching ``mrcnn.network.box_ops.overlaps_graph``.
"""

# Re-exports: the original mrcnn.utils kept all of these in one file.
from mrcnn.structures.anchors import generate_anchors, generate_pyramid_anchors  # noqa: F401
from mrcnn.structures.boxes import (apply_box_deltas,  # noqa: F401
                                    box_refinement, compute_iou,
                                    compute_overlaps, denorm_boxes,
                                    extract_bboxes, non_max_suppression,
                                    norm_boxes, trim_zeros)
from mrcnn.structures.image_io import _to_rgb_uint8  # noqa: F401
from mrcnn.structures.masks import (compute_overlaps_masks,  # noqa: F401
                                    expand_mask, minimize_mask, mold_mask,
                                    unmold_mask)
from mrcnn.evaluation.matching import (compute_ap,  # noqa: F401
                                       compute_ap_range, compute_matches,
                                       compute_recall)
from mrcnn.structures.resizing import resize, resize_image, resize_mask  # noqa: F401

# The EXIF helpers' earlier home; they live in mrcnn.structures.orientation.
from mrcnn.structures.orientation import EXIF_ORIENTATION_TAG, exif_orientation  # noqa: F401

from mrcnn.structures.dataset import Dataset  # noqa: F401
from mrcnn.weights.coco import (COCO_MODEL_MD5, COCO_MODEL_SIZE,  # noqa: F401
                                COCO_MODEL_URL, WeightsDownloadError,
                                damaged_trained_weights,
                                download_trained_weights)


def __getattr__(name):
    """The TensorFlow helpers (batch_slice, box_refinement_graph) on first
    use, so that importing this module does not import TensorFlow."""
    if name == "box_refinement_graph":
        from mrcnn.network.box_ops import box_refinement_graph
        return box_refinement_graph
    if name == "batch_slice":
        from mrcnn.network.batch_slice import batch_slice
        return batch_slice
    raise AttributeError("module {!r} has no attribute {!r}".format(
        __name__, name))
