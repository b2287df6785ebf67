"""Named sets of Config values for common situations, applied on top of
any Config subclass. The defaults of Config stay matterport's.

    from mrcnn.config import Config
    from mrcnn.config_presets import from_scratch

    class NucleusConfig(Config):
        NAME = "nucleus"
        NUM_CLASSES = 1 + 1

    config = from_scratch(NucleusConfig)()   # a subclass with the preset

On the command line: ``mrcnn train --preset from-scratch --weights none``
(``--set`` values still win over the preset's).

FROM_SCRATCH gathers what the shapes demo (samples/shapes) needed to learn
from random initialization, and what torchvision and detectron2 do by
default, each value with the reason it is there; the nucleus sample and
benchmarks/time_to_accuracy.py use it. Its race against torchvision on the
DSB2018 nuclei is measured in benchmarks/README.md.
"""

# Training from random initialization (no pretrained backbone).
FROM_SCRATCH = {
    # A small backbone learns more in the same CPU time; its batch norm
    # must learn its statistics, since random weights have none worth
    # freezing (as the shapes demo and torchvision's from-scratch models).
    "BACKBONE": "resnet18",
    "TRAIN_BN": True,
    # ... and its moving statistics, which inference uses, must keep up
    # with weights that change fast: at Keras' 0.99 (a 100-step average) a
    # model that fitted its training batches detected nothing on the very
    # same images (DSB2018 nuclei, step 40: mask loss 0.3 with batch
    # statistics, 10.7 with the moving ones). 0.9 is torchvision's.
    "BATCH_NORM_MOMENTUM": 0.9,
    # The heads' batch statistics come from the sampled ROIs and their
    # padding, which differ from the detections of inference: keep the
    # heads' batch norm on its moving statistics.
    "HEAD_TRAIN_BN": False,
    # A young RPN proposes nothing near the objects: the ground-truth boxes
    # give the heads positives from the first step (torchvision and
    # detectron2 always do this).
    "ADD_GT_TO_PROPOSALS": True,
    # Negatives fill the ROI slots the positives leave (torchvision's
    # sampler) instead of zero rows.
    "ROI_FILL_WITH_NEGATIVES": True,
    # Anchors from 8 px: small objects (nuclei, cells, parts) are common
    # where no pretrained model fits; the RPN's positives at IoU 0.5
    # rather than 0.7 give it many more targets early on.
    "RPN_ANCHOR_SCALES": (8, 16, 32, 64, 128),
    "RPN_POSITIVE_IOU": 0.5,
    # Random weights take a larger rate than fine-tuning's 0.001; the
    # benchmark warms it up over the first steps (see LEARNING_RATE_WARMUP
    # below) and drops it tenfold for the last quarter.
    "LEARNING_RATE": 0.01,
}

# Not Config values: the schedule that goes with FROM_SCRATCH, for code
# that drives its own learning rate (benchmarks/time_to_accuracy.py):
# linear warm-up from 0.1 x LEARNING_RATE over this many steps, then
# LEARNING_RATE until LEARNING_RATE_DROP_AT of the training time, then a
# tenth of it.
LEARNING_RATE_WARMUP = 100
LEARNING_RATE_DROP_AT = 0.75

PRESETS = {"from-scratch": FROM_SCRATCH}


def preset_values(name):
    """The Config values of a preset by name ("from-scratch"); ValueError
    naming the known presets for any other name."""
    try:
        return dict(PRESETS[name])
    except KeyError:
        raise ValueError("unknown preset {!r}; known presets: {}".format(
            name, ", ".join(sorted(PRESETS)))) from None


def with_preset(config_class, name, **overrides):
    """A subclass of config_class (not an instance) with the preset's
    values and then `overrides` (attribute=value) set; its name is the
    class's own, so that logs read the same."""
    values = preset_values(name)
    values.update(overrides)
    return type(config_class.__name__, (config_class,), values)


def from_scratch(config_class, **overrides):
    """config_class with FROM_SCRATCH (then overrides) applied: a subclass
    to instantiate, e.g. ``from_scratch(MyConfig, LEARNING_RATE=0.02)()``."""
    return with_preset(config_class, "from-scratch", **overrides)
