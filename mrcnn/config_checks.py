"""The type and range of each value a :class:`mrcnn.config.Config` owns.

One rule per attribute, checked on its own before ``Config.__init__``
derives anything from it (``IMAGE_SHAPE`` from ``IMAGE_MAX_DIM``...), so a
value of the wrong kind (``IMAGE_MAX_DIM = "abc"``, ``TRAIN_BN = "no"``) or
out of range (``LEARNING_RATE = nan``, ``VALIDATION_STEPS = -3``) raises a
``ValueError`` naming the attribute instead of failing deep inside the
graph or, worse, silently (a NaN ``DETECTION_MIN_CONFIDENCE`` keeps no
detection). Checks across attributes (MASK_SHAPE against MASK_POOL_SIZE,
the IoU order...) stay in ``Config.validate``.

The command line (``mrcnn.cli.setup.parse_overrides``) runs the same rules
on ``--set`` values before it loads or builds anything.
"""

import math
import numbers

import numpy as np


def _is_int(value):
    # bool is an int subclass, but True is no step count.
    return isinstance(value, (numbers.Integral, np.integer)) \
        and not isinstance(value, (bool, np.bool_))


def _is_number(value):
    return (_is_int(value) or isinstance(value, (numbers.Real, np.floating))) \
        and not isinstance(value, (bool, np.bool_))


def _is_bool(value):
    return isinstance(value, (bool, np.bool_))


class Rule(object):
    """What one attribute may hold.

    kind: "int", "number" (int or float, never NaN or infinite), "bool",
        "numbers" (a non-empty sequence of numbers) or "ints".
    low, high: inclusive bounds of the value (or of each entry); None for
        no bound. low_open, high_open: that bound itself is excluded
        (> low, < high).
    none_ok: None is allowed (the original lets it mean "off" or "auto").
    length: for sequences, the exact number of entries (None: any >= 1).
    words: the rule in words for error messages, when the generated ones
        would say less.
    """

    def __init__(self, kind, low=None, high=None, low_open=False,
                 none_ok=False, length=None, words=None, high_open=False):
        self.kind, self.low, self.high = kind, low, high
        self.low_open, self.none_ok, self.length = low_open, none_ok, length
        self.high_open = high_open
        self.words = words

    def describe(self):
        """The rule in words, for error messages."""
        if self.words:
            return self.words
        if self.kind == "bool":
            return "None, True or False" if self.none_ok else "True or False"
        if self.kind in ("int", "number"):
            words = self._scalar_words()
        else:
            words = "a sequence of {}{}".format(
                "" if self.length is None else "{} ".format(self.length),
                "ints" if self.kind == "ints" else "finite numbers")
            if (self.low, self.high) != (None, None):
                words += ", each " + self._bounds_words()
        return ("None or " if self.none_ok else "") + words

    def _scalar_words(self):
        noun = "int" if self.kind == "int" else "finite number"
        if self.low == 1 and self.kind == "int" and self.high is None:
            return "a positive int"
        if self.low == 0 and self.low_open and self.high is None:
            return "a positive " + noun
        return "{} {} {}".format("an" if noun == "int" else "a", noun,
                                 self._bounds_words())

    def _bounds_words(self):
        if self.low is not None and self.high is not None:
            return "in {}{}, {}{}".format(
                "(" if self.low_open else "[", self.low, self.high,
                ")" if self.high_open else "]")
        if self.low is not None:
            return "{} {}".format(">" if self.low_open else ">=", self.low)
        return "{} {}".format("<" if self.high_open else "<=", self.high)

    def accepts(self, value):
        """True when value follows the rule."""
        if value is None:
            return self.none_ok
        if self.kind == "bool":
            return _is_bool(value)
        if self.kind in ("int", "number"):
            return self._scalar_ok(value, self.kind == "int")
        return self._sequence_ok(value, self.kind == "ints")

    def _scalar_ok(self, value, integer):
        if not (_is_int(value) if integer else _is_number(value)):
            return False
        if not math.isfinite(float(value)):
            return False
        if self.low is not None and (
                value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is None:
            return True
        return value < self.high if self.high_open else value <= self.high

    def _sequence_ok(self, value, integer):
        if isinstance(value, (str, bytes, dict)):
            return False
        try:
            entries = list(np.asarray(value, dtype=object).ravel()) \
                if isinstance(value, np.ndarray) else list(value)
        except TypeError:
            return False
        if not entries or (self.length is not None
                           and len(entries) != self.length):
            return False
        return all(self._scalar_ok(v, integer) for v in entries)


def _positive_int(none_ok=False):
    return Rule("int", low=1, none_ok=none_ok)


def _fraction(low_open=False):
    return Rule("number", low=0, high=1, low_open=low_open)


_POSITIVE_INTS = (
    "GPU_COUNT", "IMAGES_PER_GPU", "STEPS_PER_EPOCH",
    "FPN_CLASSIF_FC_LAYERS_SIZE", "TOP_DOWN_PYRAMID_SIZE",
    "RPN_ANCHOR_STRIDE", "RPN_TRAIN_ANCHORS_PER_IMAGE", "PRE_NMS_LIMIT",
    "POST_NMS_ROIS_TRAINING", "POST_NMS_ROIS_INFERENCE",
    "TRAIN_ROIS_PER_IMAGE", "POOL_SIZE", "MASK_POOL_SIZE", "MAX_GT_INSTANCES",
    "DETECTION_MAX_INSTANCES", "RPN_CONV_DEPTH", "MASK_HEAD_CONV_DEPTH",
    "IMAGE_CHANNEL_COUNT")
_BOOLS = ("USE_MINI_MASK", "USE_RPN_ROIS", "ADD_GT_TO_PROPOSALS",
          "ROI_FILL_WITH_NEGATIVES", "FOLD_BATCH_NORM")

# Attribute name -> Rule. The attributes with a set of allowed values or a
# shape given by other attributes (NAME, BACKBONE, COMPUTE_BACKBONE_SHAPE,
# IMAGE_RESIZE_MODE, MIXED_PRECISION, CLASS_LOSS, CLASS_LOSS_WEIGHTS,
# LOSS_WEIGHTS, MASK_SHAPE) are checked by Config.validate.
RULES = dict(
    {name: _positive_int() for name in _POSITIVE_INTS},
    **{name: Rule("bool") for name in _BOOLS},
    NUM_CLASSES=Rule("int", low=1, words="an int >= 1 (background counts)"),
    # 0: no validation at the end of each epoch (`mrcnn train` without a
    # validation set).
    VALIDATION_STEPS=Rule("int", low=0),
    # resize_image treats a false IMAGE_MIN_DIM / IMAGE_MIN_SCALE as "off".
    IMAGE_MIN_DIM=Rule("int", low=0, none_ok=True),
    IMAGE_MAX_DIM=_positive_int(none_ok=True),
    IMAGE_MIN_SCALE=Rule("number", low=0, none_ok=True),
    BACKBONE_STRIDES=Rule("ints", low=1),
    RPN_ANCHOR_SCALES=Rule("numbers", low=0, low_open=True),
    RPN_ANCHOR_RATIOS=Rule("numbers", low=0, low_open=True),
    MINI_MASK_SHAPE=Rule("ints", low=1, length=2),
    MEAN_PIXEL=Rule("numbers"),
    RPN_BBOX_STD_DEV=Rule("numbers", low=0, low_open=True, length=4),
    BBOX_STD_DEV=Rule("numbers", low=0, low_open=True, length=4),
    RPN_NMS_THRESHOLD=_fraction(),
    DETECTION_NMS_THRESHOLD=_fraction(),
    # Above 1 keeps no detection at all: allowed, as a deliberate "none"
    # (NaN did the same silently, and is refused).
    DETECTION_MIN_CONFIDENCE=Rule("number", low=0),
    RPN_POSITIVE_IOU=_fraction(low_open=True),
    RPN_NEGATIVE_IOU=_fraction(low_open=True),
    ROI_POSITIVE_RATIO=Rule("number", low=0, high=1, low_open=True,
                            words="in (0, 1]"),
    LEARNING_RATE=Rule("number", low=0, low_open=True),
    LEARNING_MOMENTUM=_fraction(),
    # 1 would never update the moving statistics; 0 keeps the last batch's.
    BATCH_NORM_MOMENTUM=Rule("number", low=0, high=1, high_open=True),
    WEIGHT_DECAY=Rule("number", low=0),
    # None: no clipping (Keras' clipnorm=None).
    GRADIENT_CLIP_NORM=Rule("number", low=0, low_open=True, none_ok=True),
    CLASS_LOSS_GAMMA=Rule("number", low=0),
    # None follows the other setting (see Config); True/False are explicit.
    TRAIN_BN=Rule("bool", none_ok=True),
    HEAD_TRAIN_BN=Rule("bool", none_ok=True),
    MASK_HEAD_POSITIVE_ROIS=Rule("bool", none_ok=True),
    GPU_MEMORY_GROWTH=Rule("bool", none_ok=True),
    BBOX_DELTA_CLAMP=Rule("bool", none_ok=True),
    CPU_THREADS=Rule("int", low=1, none_ok=True,
                     words="None or a positive integer"),
)


def check_value(name, value):
    """Raises ValueError naming `name` when `value` breaks its rule; names
    without a rule pass."""
    rule = RULES.get(name)
    if rule is not None and not rule.accepts(value):
        raise ValueError("{} must be {}, got {!r}".format(
            name, rule.describe(), value))


def check_values(config):
    """Checks every attribute of `config` that has a rule; the first bad
    one raises ValueError naming it."""
    for name in RULES:
        check_value(name, getattr(config, name))
