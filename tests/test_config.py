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
    from mrcnn.architecture import mask_head_on_positives

    config = type("Heads", (Base,), {
        "TRAIN_BN": train_bn, "HEAD_TRAIN_BN": head_train_bn,
        "MASK_HEAD_POSITIVE_ROIS": positives})()
    assert mask_head_on_positives(config) is expected
