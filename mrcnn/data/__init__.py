"""Training data: image loading, target building and the Keras data feed.

The functions keep the names, arguments and semantics of the data half of
matterport's ``mrcnn/model.py`` (``mrcnn.model`` re-exports them). One
module a subject:

* ``meta``: ``compose_image_meta`` / ``parse_image_meta``, ``mold_image`` /
  ``unmold_image`` (the image meta vector and pixel normalization) and
  ``compute_backbone_shapes``.
* ``loading``: ``load_image_gt``, the image, meta, class ids, boxes and
  masks of one dataset image, checked, resized and optionally augmented.
* ``augment``: imgaug on an image and, for geometric augmenters, its masks;
  ``augment_albumentations``: the same with an albumentations transform.
* ``anchor_index`` and ``rpn_targets``: ``build_rpn_targets``, anchor labels
  and box deltas for the RPN, exact without the dense IoU matrix.
* ``detection_targets``: ``build_detection_targets`` /
  ``generate_random_rois``, numpy twins of the detection-target layer.
* ``feed``: ``MaskRCNNDataset`` (alias ``DataSequence``), a thread-safe
  ``keras.utils.PyDataset`` giving one dict of model inputs per batch.
* ``workers``: the feed's spawned worker processes
  (``use_multiprocessing=True``), ``FeedWorkerError``.
* ``generator``: matterport's Python ``data_generator``.

Log records come from the ``mrcnn.data.*`` loggers, children of
``mrcnn.data``.
"""

from mrcnn.data.anchor_index import _AnchorIndex  # noqa: F401
from mrcnn.data.augment import (MASK_AUGMENTERS,  # noqa: F401
                                _is_mask_augmenter, augment_image_and_masks,
                                seeded_copy)
from mrcnn.data.detection_targets import (build_detection_targets,  # noqa: F401
                                          generate_random_rois)
from mrcnn.data.feed import (DataSequence, MaskRCNNDataset,  # noqa: F401
                             _training_anchors)
from mrcnn.data.generator import data_generator  # noqa: F401
from mrcnn.data.loading import (LARGE_IMAGE_SIDE, describe_image,  # noqa: F401
                                load_image_gt)
from mrcnn.data.meta import (compose_image_meta,  # noqa: F401
                             compute_backbone_shapes, mold_image,
                             parse_image_meta, unmold_image)
from mrcnn.data.rpn_targets import RPN_CROWD_IOU, build_rpn_targets  # noqa: F401
