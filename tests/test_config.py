"""Config.validate: each rule raises a ValueError naming the config class
and the field."""
import numpy as np
import pytest

from mrcnn.config import Config


class Base(Config):
    NAME = "check"
    NUM_CLASSES = 3


@pytest.mark.parametrize("overrides, message", [
    ({"IMAGE_RESIZE_MODE": "stretch"}, "IMAGE_RESIZE_MODE must be one of"),
    ({"IMAGE_MAX_DIM": 1000}, "IMAGE_MAX_DIM = 1000 must be divisible by 64 "
     "in 'square' resize mode .*, e.g. 1024"),
    ({"IMAGE_RESIZE_MODE": "crop", "IMAGE_MIN_DIM": 100},
     "IMAGE_MIN_DIM = 100 must be divisible by 64"),
    ({"IMAGE_MIN_DIM": 1088}, r"IMAGE_MIN_DIM \(1088\) is larger than "
     r"IMAGE_MAX_DIM \(1024\)"),
    ({"IMAGE_CHANNEL_COUNT": 0}, "IMAGE_CHANNEL_COUNT must be a positive int"),
    ({"IMAGE_CHANNEL_COUNT": 1}, "MEAN_PIXEL has 3 entries but "
     r"IMAGE_CHANNEL_COUNT is 1: .*np.array\(\[114.8\]\)"),
    ({"MEAN_PIXEL": np.zeros((1, 3))}, "MEAN_PIXEL has 3 entries"),
    ({"NUM_CLASSES": 0}, "NUM_CLASSES must be an int >= 1"),
    ({"IMAGES_PER_GPU": 0}, "IMAGES_PER_GPU must be a positive int"),
    ({"PRE_NMS_LIMIT": 10.5}, "PRE_NMS_LIMIT must be a positive int"),
    ({"RPN_ANCHOR_SCALES": (32, 64)}, "RPN_ANCHOR_SCALES has 2 entries but "
     "BACKBONE_STRIDES has 5"),
    ({"RPN_NEGATIVE_IOU": 0.8}, "RPN IoU thresholds must satisfy 0 < "
     "RPN_NEGATIVE_IOU <= RPN_POSITIVE_IOU <= 1, got 0.8 and 0.7"),
    ({"ROI_POSITIVE_RATIO": 0}, r"ROI_POSITIVE_RATIO must be in \(0, 1\]"),
    ({"MASK_SHAPE": [56, 56]}, "MASK_SHAPE .* must be twice MASK_POOL_SIZE"),
    ({"BACKBONE": "vgg"}, "BACKBONE must be 'resnet18'"),
    ({"BACKBONE": lambda *a: None}, "a callable BACKBONE also needs "
     "COMPUTE_BACKBONE_SHAPE"),
    ({"LOSS_WEIGHTS": {"rpn_class_loss": 1.0}}, "LOSS_WEIGHTS must have "
     "exactly the five loss names"),
    ({"CLASS_LOSS": "hinge"}, "CLASS_LOSS must be"),
    ({"MIXED_PRECISION": "float16"}, "MIXED_PRECISION must be None"),
    ({"CPU_THREADS": True}, "CPU_THREADS must be None or a positive integer"),
    ({"MASK_HEAD_POSITIVE_ROIS": "yes"}, "MASK_HEAD_POSITIVE_ROIS must be "
     "None, True or False"),
])
def test_each_rule_names_its_field(overrides, message):
    config_class = type("Bad", (Base,), overrides)
    with pytest.raises(ValueError, match="Bad config: " + message):
        config_class()


def test_the_defaults_are_valid():
    config = Base()
    assert config.BATCH_SIZE == 2
    assert list(config.IMAGE_SHAPE) == [1024, 1024, 3]
    assert config.IMAGE_META_SIZE == 12 + 3
    four = type("Four", (Base,), {"IMAGE_CHANNEL_COUNT": 4,
                                  "MEAN_PIXEL": np.array([1, 2, 3, 4])})()
    assert list(four.IMAGE_SHAPE) == [1024, 1024, 4]


@pytest.mark.parametrize("train_bn, head_train_bn, positives, expected", [
    (False, None, None, True),   # frozen: same loss, less work
    (True, None, None, False),   # trained statistics of all sampled ROIs
    (True, False, None, True),
    (True, None, True, True),    # asked for: statistics of the positives
    (False, None, False, False),  # asked for: every ROI, as the original
])
def test_mask_head_runs_on_positive_rois_when_frozen_or_asked(
        train_bn, head_train_bn, positives, expected):
    from mrcnn.network.architecture import mask_head_on_positives

    config = type("Heads", (Base,), {
        "TRAIN_BN": train_bn, "HEAD_TRAIN_BN": head_train_bn,
        "MASK_HEAD_POSITIVE_ROIS": positives})()
    assert mask_head_on_positives(config) is expected


# ---------------------------------------------------------------------------
# Each value's type and range (mrcnn.config_checks), before anything is
# derived from it.

NAN = float("nan")


@pytest.mark.parametrize("name, value", [
    ("LEARNING_RATE", NAN), ("LEARNING_RATE", 0), ("LEARNING_RATE", "0.01"),
    ("DETECTION_MIN_CONFIDENCE", NAN), ("DETECTION_MIN_CONFIDENCE", -0.1),
    ("VALIDATION_STEPS", -3), ("STEPS_PER_EPOCH", 2.0),
    ("TRAIN_BN", "no"), ("TRAIN_BN", 0), ("USE_MINI_MASK", "false"),
    ("IMAGE_MAX_DIM", "abc"), ("IMAGE_MIN_DIM", -64),
    ("IMAGE_MIN_SCALE", float("inf")), ("WEIGHT_DECAY", -1e-4),
    ("LEARNING_MOMENTUM", NAN), ("GRADIENT_CLIP_NORM", 0),
    ("RPN_NMS_THRESHOLD", 1.2), ("DETECTION_NMS_THRESHOLD", NAN),
    ("RPN_ANCHOR_RATIOS", [0.5, -1, 2]), ("RPN_ANCHOR_RATIOS", "1"),
    ("RPN_ANCHOR_SCALES", (32, 64, NAN, 256, 512)),
    ("MINI_MASK_SHAPE", (56,)), ("BACKBONE_STRIDES", [4, 8, 16, 32, 0]),
    ("BBOX_STD_DEV", np.array([0.1, 0.1, 0.2])),
    ("MEAN_PIXEL", np.array([123.7, NAN, 103.9])),
    ("NUM_CLASSES", True), ("POOL_SIZE", 0), ("CLASS_LOSS_GAMMA", NAN),
    # 1 would never update the moving statistics.
    ("BATCH_NORM_MOMENTUM", 1), ("BATCH_NORM_MOMENTUM", -0.1),
])
def test_a_value_of_the_wrong_type_or_range_is_named(name, value):
    """Each of these was accepted, or failed far from the config (a NaN
    confidence kept no detection; IMAGE_MAX_DIM = "abc" failed in numpy)."""
    from mrcnn import config_checks
    config_class = type("Bad", (Base,), {name: value})
    with pytest.raises(ValueError, match="Bad config: {} must be ".format(
            name)):
        config_class()
    with pytest.raises(ValueError, match=name):
        config_checks.check_value(name, value)


@pytest.mark.parametrize("name, value", [
    ("TRAIN_BN", None), ("TRAIN_BN", True), ("TRAIN_BN", np.bool_(False)),
    ("VALIDATION_STEPS", 0), ("DETECTION_MIN_CONFIDENCE", 0),
    ("DETECTION_MIN_CONFIDENCE", 1.01), ("IMAGE_MIN_SCALE", None),
    ("IMAGE_MIN_DIM", None), ("IMAGE_MIN_DIM", 0), ("STEPS_PER_EPOCH",
                                                   np.int64(7)),
    ("GRADIENT_CLIP_NORM", None), ("LEARNING_RATE", np.float32(0.02)),
    ("RPN_ANCHOR_SCALES", np.array([8, 16, 32, 64, 128])),
    ("RPN_ANCHOR_RATIOS", (1,)), ("MINI_MASK_SHAPE", [14, 14]),
    ("HEAD_TRAIN_BN", False), ("CPU_THREADS", None),
    ("BATCH_NORM_MOMENTUM", 0), ("BATCH_NORM_MOMENTUM", 0.9),
])
def test_values_the_original_allows_are_kept(name, value):
    config = type("Good", (Base,), {name: value})()
    assert getattr(config, name) is value


def test_square_mode_needs_an_image_max_dim():
    """None is allowed for IMAGE_MAX_DIM alone ("none" resize mode), not
    where the resize uses it."""
    type("NoResize", (Base,), {"IMAGE_RESIZE_MODE": "none",
                               "IMAGE_MAX_DIM": None})()
    with pytest.raises(ValueError, match="IMAGE_MAX_DIM must be a positive "
                       "int in 'square' resize mode"):
        type("Square", (Base,), {"IMAGE_MAX_DIM": None})()


def test_every_rule_names_a_config_attribute():
    """A misspelt rule would check nothing: each one names an attribute
    that Config defines."""
    from mrcnn import config_checks
    assert set(config_checks.RULES) <= set(vars(Config))


def test_the_samples_and_tiny_settings_pass_the_checks():
    """No configuration the project ships is refused by the new checks."""
    from mrcnn.cli import commands as cli
    from samples.balloon import balloon
    from samples.coco import coco
    from samples.shapes import shapes
    for config_class in (balloon.BalloonConfig, balloon.BalloonInferenceConfig,
                         coco.CocoConfig, coco.CocoInferenceConfig,
                         shapes.ShapesConfig):
        config_class()
    cli.make_config("tiny", 3, dict(cli.TINY_SETTINGS))
    cli.make_config("tiny", 3, dict(cli.TINY_SETTINGS), inference=True)


def test_validate_checks_values_set_after_init():
    config = Base()
    config.LEARNING_RATE = float("nan")
    with pytest.raises(ValueError, match="Base config: LEARNING_RATE"):
        config.validate()
