"""Mask R-CNN configuration.

Subclass :class:`Config` and override the attributes that differ for your
data, exactly as with the original matterport ``mrcnn.config.Config``::

    class BalloonConfig(Config):
        NAME = "balloon"
        IMAGES_PER_GPU = 2
        NUM_CLASSES = 1 + 1  # background + balloon
        STEPS_PER_EPOCH = 100

Derived values (``BATCH_SIZE``, ``IMAGE_SHAPE``, ``IMAGE_META_SIZE``) are
computed in ``__init__`` and the whole configuration is checked there, so a
value that cannot work raises a ``ValueError`` naming the attribute: each
value's type and range (``mrcnn.config_checks``), then the values against
each other (``Config.validate``).
"""

import numpy as np

from mrcnn import config_checks
from mrcnn.constants import LOSS_NAMES, pyramid_size_error


class Config(object):
    """Base configuration class. Override the attributes in a subclass."""

    # Name of the configuration, used in log directory and checkpoint names.
    NAME = None  # Override in sub-classes

    # Number of GPUs to use. With more than one, training runs under
    # tf.distribute.MirroredStrategy.
    GPU_COUNT = 1

    # Images per GPU (or per CPU when there is no GPU).
    IMAGES_PER_GPU = 2

    # Training steps per epoch and validation steps at the end of each epoch.
    STEPS_PER_EPOCH = 1000
    VALIDATION_STEPS = 50

    # "resnet50", "resnet101", "resnet18" (a small backbone for quick CPU
    # training), or a callable ``backbone(input_image, stage5, train_bn)``
    # returning [C1, C2, C3, C4, C5]. A callable also needs
    # COMPUTE_BACKBONE_SHAPE(image_shape) returning the feature map shapes.
    BACKBONE = "resnet101"
    COMPUTE_BACKBONE_SHAPE = None

    # Strides of each level of the FPN pyramid (P2..P6).
    BACKBONE_STRIDES = [4, 8, 16, 32, 64]

    # Size of the fully-connected layers in the classification graph.
    FPN_CLASSIF_FC_LAYERS_SIZE = 1024

    # Size of the top-down layers used to build the feature pyramid.
    TOP_DOWN_PYRAMID_SIZE = 256

    # Number of classification classes (including background).
    NUM_CLASSES = 1  # Override in sub-classes

    # Length of square anchor side in pixels, one per pyramid level.
    RPN_ANCHOR_SCALES = (32, 64, 128, 256, 512)

    # Ratios (width/height) of anchors at each cell.
    RPN_ANCHOR_RATIOS = [0.5, 1, 2]

    # Anchor stride: 1 creates anchors for every cell of a feature map,
    # 2 for every other cell, and so on.
    RPN_ANCHOR_STRIDE = 1

    # Non-max suppression threshold to filter RPN proposals.
    RPN_NMS_THRESHOLD = 0.7

    # How many anchors per image to use for RPN training.
    RPN_TRAIN_ANCHORS_PER_IMAGE = 256

    # RPN training targets: an anchor is positive from this IoU with a GT
    # box (and the best anchors of each GT box always are), negative below
    # RPN_NEGATIVE_IOU with every box, neutral in between. 0.7 and 0.3 are
    # the paper's values. With one anchor scale an octave, a box half-way
    # between two scales reaches only about 0.5 with any anchor, so small
    # images with few anchor positions (e.g. 128 px) get only one positive
    # per box at 0.7; a lower positive IoU (0.5) trains the RPN much faster
    # there.
    RPN_POSITIVE_IOU = 0.7
    RPN_NEGATIVE_IOU = 0.3

    # ROIs kept after tf.nn.top_k and before non-maximum suppression.
    PRE_NMS_LIMIT = 6000

    # ROIs kept after non-maximum suppression (training and inference).
    POST_NMS_ROIS_TRAINING = 2000
    POST_NMS_ROIS_INFERENCE = 1000

    # Store instance masks at a lower resolution, cropped to their box.
    USE_MINI_MASK = True
    MINI_MASK_SHAPE = (56, 56)  # (height, width) of the mini-mask

    # Input image resizing: "none", "square", "pad64" or "crop"
    # (see mrcnn.utils.resize_image).
    IMAGE_RESIZE_MODE = "square"
    IMAGE_MIN_DIM = 800
    IMAGE_MAX_DIM = 1024
    # Minimum scaling ratio, checked after IMAGE_MIN_DIM (0 disables it).
    IMAGE_MIN_SCALE = 0

    # Number of color channels per image. RGB = 3, grayscale = 1, RGB-D = 4.
    IMAGE_CHANNEL_COUNT = 3

    # Image mean (RGB): one entry per channel, IMAGE_CHANNEL_COUNT in all
    # (checked). With C != 3 channels, load_weights(..., by_name=True) of
    # RGB weights adapts conv1 to C input channels (mrcnn.weights.channels).
    MEAN_PIXEL = np.array([123.7, 116.8, 103.9])

    # ROIs per image fed to the classifier/mask heads during training.
    TRAIN_ROIS_PER_IMAGE = 200

    # Fraction of positive ROIs used to train the classifier/mask heads.
    ROI_POSITIVE_RATIO = 0.33

    # Pooled ROIs.
    POOL_SIZE = 7
    MASK_POOL_SIZE = 14

    # Shape of the output mask. Changing it requires changing the mask head.
    MASK_SHAPE = [28, 28]

    # Maximum number of ground truth instances to use in one image.
    MAX_GT_INSTANCES = 100

    # Bounding box refinement standard deviation for RPN and final detections.
    RPN_BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])
    BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])

    # Max number of final detections.
    DETECTION_MAX_INSTANCES = 100

    # Minimum probability value to accept a detected instance.
    DETECTION_MIN_CONFIDENCE = 0.7

    # Non-maximum suppression threshold for detection.
    DETECTION_NMS_THRESHOLD = 0.3

    # Learning rate and momentum (SGD with momentum).
    LEARNING_RATE = 0.001
    LEARNING_MOMENTUM = 0.9

    # Weight decay regularization.
    WEIGHT_DECAY = 0.0001

    # Loss weights for more precise optimization: one for each of the five
    # losses, by name (mrcnn.constants.LOSS_NAMES: "rpn_class_loss",
    # "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss",
    # "mrcnn_mask_loss"), all 1.
    LOSS_WEIGHTS = {name: 1. for name in LOSS_NAMES}

    # Class imbalance. CLASS_LOSS_WEIGHTS: None (all ones, the original
    # loss) or NUM_CLASSES positive weights of the classifier loss, one per
    # target class, background first (`mrcnn check-dataset` suggests
    # some). CLASS_LOSS: "cross_entropy" or "focal", the focal form
    # (1 - p) ** CLASS_LOSS_GAMMA * cross entropy, which weighs down the
    # ROIs the classifier already gets right.
    CLASS_LOSS_WEIGHTS = None
    CLASS_LOSS = "cross_entropy"
    CLASS_LOSS_GAMMA = 2.0

    # Use RPN ROIs or externally generated ROIs for training.
    USE_RPN_ROIS = True

    # Train or freeze batch normalization layers. False keeps them in
    # inference mode (the usual choice with small batches); True and None
    # train them while training and use the moving statistics in inference.
    TRAIN_BN = False

    # Gradient norm clipping.
    GRADIENT_CLIP_NORM = 5.0

    # --- Additions of this implementation (not in the original API) ---

    # Channels of the 3x3 conv shared by the RPN over all pyramid levels.
    RPN_CONV_DEPTH = 512
    # Channels of the four 3x3 convs and the deconv of the mask head.
    MASK_HEAD_CONV_DEPTH = 256
    # Batch norm of the class and mask heads: None follows TRAIN_BN. False
    # keeps them in inference mode: useful when training from scratch with
    # TRAIN_BN = True, because the heads' batch statistics (sampled ROIs and
    # zero padding) differ from the ROIs they see in inference.
    HEAD_TRAIN_BN = None
    # How slowly trained batch norm's moving statistics (the ones inference
    # uses) follow the batch statistics: each step keeps this share of the
    # old average. 0.99 is Keras' default and the original's. Trained from
    # random weights the activations change faster than such an average
    # follows (a time constant of 100 steps): the model then fits its
    # training batches but detects nothing with the moving statistics.
    # 0.9 (torchvision's momentum of 0.1) follows within tens of steps.
    # Only layers that train their batch norm (TRAIN_BN, HEAD_TRAIN_BN) use it.
    BATCH_NORM_MOMENTUM = 0.99
    # Run the mask head in training on the positive ROIs alone (the only
    # ones its loss reads; inference runs it on detections). None: where
    # the heads' batch norm is frozen, which gives the same loss and
    # gradients for less work. True: also with trained batch norm, whose
    # statistics then come from the positive ROIs instead of all sampled
    # ROIs and their zero padding (less work; trained from scratch, one
    # shapes demo run reached mAP 0.86 with it in 1,300 steps, against
    # 0.93 without it in 1,400).
    # False: on every sampled ROI, as the original.
    MASK_HEAD_POSITIVE_ROIS = None
    # Also sample the ground-truth boxes as proposals for the heads (as
    # torchvision and detectron2 do). Off in the original; helps training
    # from scratch, when the young RPN proposes few positives.
    ADD_GT_TO_PROPOSALS = False
    # Fill all TRAIN_ROIS_PER_IMAGE slots with negatives beyond what
    # ROI_POSITIVE_RATIO asks for (as torchvision's sampler) instead of zero
    # padding. Off in the original; with trained head batch norm, zero
    # padding skews the statistics that inference then uses.
    ROI_FILL_WITH_NEGATIVES = False
    # None (float32), "mixed_float16" (GPU), "mixed_bfloat16" or "auto":
    # bfloat16 where the hardware computes it (CPUs with AVX512_BF16 or
    # AMX, GPUs of compute capability >= 8.0), float32 elsewhere (an AVX2
    # CPU emulates bfloat16, slower than float32). See mrcnn.runtime.
    MIXED_PRECISION = None
    # Cap log(dh) and log(dw) of the box deltas at log(1000 / 16) before
    # exp when proposals and detections are decoded, as torchvision does
    # (a box grows at most 62.5 times). None: on under "mixed_float16",
    # whose heads can overflow to inf early in training (an inf delta
    # makes a NaN box), off otherwise, which keeps the original's numbers.
    BBOX_DELTA_CLAMP = None
    # Let each convolution apply the batch norm after it wherever that uses
    # its moving statistics (inference, TRAIN_BN False, frozen layers): the
    # same numbers to float rounding, the normalization's passes saved.
    # Weights and layer names are unchanged. See mrcnn.network.backbone.
    FOLD_BATCH_NORM = True
    # TensorFlow's CPU threads. None: $MRCNN_CPU_THREADS if set, else the
    # cores this process may use (affinity mask and cgroup CPU quota).
    # Applied when the first MaskRCNN is built, before TensorFlow runs.
    CPU_THREADS = None
    # Let TensorFlow take GPU memory as it needs it instead of almost all
    # of it at once, so that a notebook and a training run can share a
    # GPU. None: $MRCNN_GPU_MEMORY_GROWTH=1 turns it on. Applied when the
    # first MaskRCNN is built, before TensorFlow sets the GPUs up.
    GPU_MEMORY_GROWTH = None

    def __init__(self):
        """Set values of computed attributes and check the configuration."""
        # Each value's type and range first: the derived values below would
        # fail obscurely on e.g. IMAGE_MAX_DIM = "abc".
        self._check_each_value()
        self.BATCH_SIZE = self.IMAGES_PER_GPU * self.GPU_COUNT

        if self.IMAGE_RESIZE_MODE == "crop":
            self.IMAGE_SHAPE = np.array([self.IMAGE_MIN_DIM, self.IMAGE_MIN_DIM,
                                         self.IMAGE_CHANNEL_COUNT])
        else:
            self.IMAGE_SHAPE = np.array([self.IMAGE_MAX_DIM, self.IMAGE_MAX_DIM,
                                         self.IMAGE_CHANNEL_COUNT])

        # image_id(1) + original_image_shape(3) + image_shape(3)
        # + window(4) + scale(1) + active_class_ids(NUM_CLASSES)
        self.IMAGE_META_SIZE = 1 + 3 + 3 + 4 + 1 + self.NUM_CLASSES
        self.validate()

    def _check_each_value(self):
        """ValueError naming the first attribute of the wrong type or out of
        range (mrcnn.config_checks)."""
        try:
            config_checks.check_values(self)
        except ValueError as error:
            raise ValueError("{} config: {}".format(
                type(self).__name__, error)) from None

    def validate(self):
        """Raise ValueError for a value of the wrong type or range, or for
        values that cannot work together."""
        def fail(message):
            raise ValueError("{} config: {}".format(
                type(self).__name__, message))

        self._check_each_value()
        self._validate_image(fail)
        self._validate_counts(fail)
        self._validate_rpn_and_heads(fail)
        self._validate_losses(fail)
        self._validate_class_loss(fail)
        self._validate_runtime(fail)

    def _validate_image(self, fail):
        """Resize mode, image sizes, channels and MEAN_PIXEL."""
        modes = ("none", "square", "pad64", "crop")
        if self.IMAGE_RESIZE_MODE not in modes:
            fail("IMAGE_RESIZE_MODE must be one of {}, got {!r}".format(
                modes, self.IMAGE_RESIZE_MODE))
        if self.IMAGE_RESIZE_MODE in ("square", "pad64", "crop"):
            dim_name = ("IMAGE_MIN_DIM" if self.IMAGE_RESIZE_MODE == "crop"
                        else "IMAGE_MAX_DIM")
            dim = getattr(self, dim_name)
            if not dim:
                fail("{} must be a positive int in {!r} resize mode".format(
                    dim_name, self.IMAGE_RESIZE_MODE))
            problem = pyramid_size_error(
                dim_name, dim, " in {!r} resize mode".format(
                    self.IMAGE_RESIZE_MODE))
            if problem:
                fail(problem)
        if self.IMAGE_MIN_DIM and self.IMAGE_MAX_DIM \
                and self.IMAGE_MIN_DIM > self.IMAGE_MAX_DIM \
                and self.IMAGE_RESIZE_MODE != "crop":
            fail("IMAGE_MIN_DIM ({}) is larger than IMAGE_MAX_DIM ({})".format(
                self.IMAGE_MIN_DIM, self.IMAGE_MAX_DIM))
        self._validate_channels(fail)

    def _validate_channels(self, fail):
        """One MEAN_PIXEL entry per image channel: numpy would broadcast a
        3-entry mean over a 1-channel image into 3 channels."""
        channels = self.IMAGE_CHANNEL_COUNT
        if isinstance(channels, bool) or not isinstance(
                channels, (int, np.integer)) or channels < 1:
            fail("IMAGE_CHANNEL_COUNT must be a positive int, got {!r}".format(
                channels))
        mean = np.asarray(self.MEAN_PIXEL)
        if mean.ndim != 1 or mean.shape[0] != channels:
            fail("MEAN_PIXEL has {} entries but IMAGE_CHANNEL_COUNT is {}: "
                 "give one mean per channel, e.g. MEAN_PIXEL = "
                 "np.array({})".format(
                     mean.size, channels,
                     [round(float(np.mean(mean)), 1)] * channels))

    def _validate_counts(self, fail):
        """Class count and the per-image / per-step counts."""
        if not isinstance(self.NUM_CLASSES, (int, np.integer)) \
                or self.NUM_CLASSES < 1:
            fail("NUM_CLASSES must be an int >= 1 (background counts), "
                 "got {!r}".format(self.NUM_CLASSES))
        for name in ("GPU_COUNT", "IMAGES_PER_GPU", "STEPS_PER_EPOCH",
                     "TRAIN_ROIS_PER_IMAGE", "MAX_GT_INSTANCES",
                     "DETECTION_MAX_INSTANCES", "POST_NMS_ROIS_TRAINING",
                     "POST_NMS_ROIS_INFERENCE", "RPN_TRAIN_ANCHORS_PER_IMAGE",
                     "PRE_NMS_LIMIT"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                fail("{} must be a positive int, got {!r}".format(name, value))

    def _validate_rpn_and_heads(self, fail):
        """Anchors, IoU thresholds, the mask head and the backbone."""
        if len(self.RPN_ANCHOR_SCALES) != len(self.BACKBONE_STRIDES):
            fail("RPN_ANCHOR_SCALES has {} entries but BACKBONE_STRIDES has {}: "
                 "one anchor scale per pyramid level".format(
                     len(self.RPN_ANCHOR_SCALES), len(self.BACKBONE_STRIDES)))
        if not 0 < self.RPN_NEGATIVE_IOU <= self.RPN_POSITIVE_IOU <= 1:
            fail("RPN IoU thresholds must satisfy 0 < RPN_NEGATIVE_IOU <= "
                 "RPN_POSITIVE_IOU <= 1, got {} and {}".format(
                     self.RPN_NEGATIVE_IOU, self.RPN_POSITIVE_IOU))
        if not 0 < self.ROI_POSITIVE_RATIO <= 1:
            fail("ROI_POSITIVE_RATIO must be in (0, 1], got {}".format(
                self.ROI_POSITIVE_RATIO))
        if list(self.MASK_SHAPE) != [2 * self.MASK_POOL_SIZE] * 2:
            fail("MASK_SHAPE {} must be twice MASK_POOL_SIZE ({}): the mask "
                 "head upsamples its pooled features once".format(
                     list(self.MASK_SHAPE), self.MASK_POOL_SIZE))
        if not callable(self.BACKBONE) and self.BACKBONE not in (
                "resnet18", "resnet50", "resnet101"):
            fail("BACKBONE must be 'resnet18', 'resnet50', 'resnet101' or a "
                 "callable, got {!r}".format(self.BACKBONE))
        if callable(self.BACKBONE) and self.COMPUTE_BACKBONE_SHAPE is None:
            fail("a callable BACKBONE also needs COMPUTE_BACKBONE_SHAPE")
        if self.MASK_HEAD_POSITIVE_ROIS not in (None, True, False):
            fail("MASK_HEAD_POSITIVE_ROIS must be None, True or False, got "
                 "{!r}".format(self.MASK_HEAD_POSITIVE_ROIS))

    def _validate_losses(self, fail):
        missing = set(self.LOSS_WEIGHTS) ^ set(LOSS_NAMES)
        if missing:
            fail("LOSS_WEIGHTS must have exactly the five loss names; "
                 "unexpected or missing: {}".format(sorted(missing)))

    def _validate_runtime(self, fail):
        """Precision and CPU threads."""
        if self.MIXED_PRECISION not in (None, "auto", "mixed_float16",
                                        "mixed_bfloat16"):
            fail("MIXED_PRECISION must be None, 'auto', 'mixed_float16' or "
                 "'mixed_bfloat16', got {!r}".format(self.MIXED_PRECISION))
        threads = self.CPU_THREADS
        if threads is not None and (isinstance(threads, bool) or not
                                    isinstance(threads, int) or threads < 1):
            fail("CPU_THREADS must be None or a positive integer, got "
                 "{!r}".format(self.CPU_THREADS))

    def _validate_class_loss(self, fail):
        if self.CLASS_LOSS not in ("cross_entropy", "focal"):
            fail("CLASS_LOSS must be 'cross_entropy' or 'focal', got "
                 "{!r}".format(self.CLASS_LOSS))
        gamma = self.CLASS_LOSS_GAMMA
        if isinstance(gamma, bool) or not isinstance(
                gamma, (int, float, np.integer, np.floating)) \
                or not 0 <= gamma < float("inf"):
            fail("CLASS_LOSS_GAMMA must be a number >= 0, got {!r}".format(
                gamma))
        weights = self.CLASS_LOSS_WEIGHTS
        if weights is None:
            return
        try:
            values = np.asarray(weights, dtype=np.float64)
        except (TypeError, ValueError):
            values = None
        if values is None or values.shape != (self.NUM_CLASSES,) \
                or not np.all(np.isfinite(values)) or np.any(values <= 0):
            fail("CLASS_LOSS_WEIGHTS must be None or {} positive finite "
                 "numbers (one per class, background first), got {!r}".format(
                     self.NUM_CLASSES, weights))

    def to_dict(self):
        return {a: getattr(self, a)
                for a in sorted(dir(self))
                if not a.startswith("__") and not callable(getattr(self, a))}

    def display(self):
        """Display Configuration values."""
        print("\nConfigurations:")
        for key, val in self.to_dict().items():
            print(f"{key:30} {val}")
        print("\n")
