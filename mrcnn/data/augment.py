"""Augmentation of an image and, where safe, its instance masks.

imgaug augmenters (the original API) run here; albumentations transforms
are handed to ``mrcnn.data.augment_albumentations``.
"""

import warnings

import numpy as np

from mrcnn.data.augment_albumentations import (augment_with_albumentations,
                                               is_albumentations,
                                               seeded_copy as _seeded_albu)

# Augmenters the masks go through as well as the image, by class name (the
# original's list; subclasses count too: imgaug's Rotate is an Affine, Crop
# a CropAndPad). Add the name of your own geometric augmenter here.
MASK_AUGMENTERS = ["Sequential", "SomeOf", "OneOf", "Sometimes",
                   "Fliplr", "Flipud", "CropAndPad",
                   "Affine", "PiecewiseAffine"]
# ... and every augmenter of imgaug's modules that move pixels: the list
# above left out Rot90, PerspectiveTransform, ElasticTransformation,
# Jigsaw, the crops and pads to a size, and more, which then turned the
# image and left its masks where they were (silently: a square image kept
# its size). Photometric modules (arithmetic, blur, color, contrast, ...)
# change pixel values only: the masks skip them.
MOVING_MODULES = ("geometric", "flip", "size", "pooling")
# imgaug augmenters that may or may not move pixels: applied to the image
# only, with a warning (as augmenters from outside imgaug).
UNSURE_AUGMENTERS = ("Lambda", "WithChannels")
_warned_image_only = set()


def _is_mask_augmenter(augmenter):
    """True if the masks must go through augmenter: its class (or one it
    derives from) is in MASK_AUGMENTERS or comes from one of imgaug's
    MOVING_MODULES. False for imgaug's photometric augmenters, and, with a
    warning naming it (once a class), for any other."""
    classes = type(augmenter).__mro__
    if any(cls.__name__ in MASK_AUGMENTERS for cls in classes):
        return True
    if any(cls.__module__.rsplit(".", 1)[-1] in MOVING_MODULES
           and cls.__module__.startswith("imgaug.") for cls in classes):
        return True
    name = type(augmenter).__name__
    unsure = (not type(augmenter).__module__.startswith("imgaug.")
              or name in UNSURE_AUGMENTERS)
    if unsure and name not in _warned_image_only:
        _warned_image_only.add(name)
        warnings.warn(
            "augmenter {} runs on the image only: the instance masks do not "
            "follow it. If it moves pixels, add its class name to "
            "mrcnn.data.augment.MASK_AUGMENTERS, or the masks will no "
            "longer match the image".format(name), stacklevel=2)
    return False


def _mask_hook(images, augmenter, parents, default):
    """imgaug activator: only mask-safe augmenters run on the masks."""
    return _is_mask_augmenter(augmenter)


def seeded_copy(augmentation, seed):
    """A private copy of an imgaug augmenter or albumentations transform,
    seeded with seed (an int): the same seed gives the same augmentation."""
    if is_albumentations(augmentation):
        return _seeded_albu(augmentation, seed)
    augmenter = augmentation.deepcopy()
    augmenter.seed_(int(seed))
    return augmenter


# Instance masks given to imgaug in one call (OpenCV's channel limit).
MASK_CHANNELS_PER_CALL = 128


def augment_image_and_masks(augmentation, image, mask, description="image"):
    """Applies an augmentation to an image and, where safe, its masks.

    augmentation: an imgaug augmenter or an albumentations transform
        (e.g. ``albumentations.Compose``). imgaug's is made deterministic so
        the masks get the same geometric transform as the image, and only
        MASK_AUGMENTERS run on the masks; albumentations applies its
        geometric transforms to the masks and its photometric ones to the
        image only.
    image: [H, W, C] uint8; mask: [H, W, N] bool.
    Returns (image, mask) with unchanged shapes; raises ValueError naming
    `description` when the augmentation changed the size.
    """
    if is_albumentations(augmentation):
        new_image, new_mask = augment_with_albumentations(augmentation,
                                                          image, mask)
    else:
        new_image, new_mask = _augment_with_imgaug(augmentation, image, mask)
    if new_image.shape != image.shape or new_mask.shape != mask.shape:
        raise ValueError(
            "Augmentation changed the size of {} from {} to {} (masks {} to "
            "{}); use augmenters that keep the image size".format(
                description, image.shape, new_image.shape, mask.shape,
                new_mask.shape))
    return new_image, new_mask


def _ignore_suspicious_shapes(imgaug):
    """Ignores imgaug's warning about many-channel single images in the
    current warnings context (nothing where an imgaug version lacks it)."""
    base = getattr(getattr(imgaug, "augmenters", None), "base", None)
    category = getattr(base, "SuspiciousSingleImageShapeWarning", None)
    if category is not None:
        warnings.simplefilter("ignore", category)


def _augment_with_imgaug(augmentation, image, mask):
    """imgaug on image [H, W, C] and, through MASK_AUGMENTERS only, mask
    [H, W, N] bool. Returns (image, mask bool), sizes unchecked."""
    from mrcnn._imgaug_compat import import_imgaug
    imgaug = import_imgaug()
    det = augmentation.to_deterministic()
    new_image = det.augment_image(image)
    # imgaug has no bool support, hence the uint8 round trip; OpenCV, which
    # imgaug calls for flips and warps, takes at most 128 channels, so the
    # instances go through in blocks of that many (the same transform:
    # det is deterministic).
    hooks = imgaug.HooksImages(activator=_mask_hook)
    with warnings.catch_warnings():
        # A mask block of more than 32 channels is what imgaug's
        # SuspiciousSingleImageShapeWarning takes for an image batch put
        # the wrong way round; here it is one image's instances, on
        # purpose, and the warning would come once per augmented image.
        _ignore_suspicious_shapes(imgaug)
        blocks = [det.augment_image(mask[..., i:i + MASK_CHANNELS_PER_CALL]
                                    .astype(np.uint8), hooks=hooks)
                  for i in range(0, max(1, mask.shape[-1]),
                                 MASK_CHANNELS_PER_CALL)]
    new_mask = np.concatenate(blocks, axis=-1) if blocks else mask
    return new_image, new_mask.astype(bool)


def layers_follow(augmentation):
    """True when imgaug itself moves label layers (segmentation maps)
    through every augmenter of augmentation: all of them are imgaug's own
    and none is of UNSURE_AUGMENTERS. Then augment_image_and_layers gives
    the masks the image's geometry; otherwise (albumentations, augmenters
    of your own, Lambda) augment_image_and_masks decides per augmenter."""
    if is_albumentations(augmentation):
        return False
    try:
        children = augmentation.get_all_children(flat=True)
    except AttributeError:  # not an imgaug augmenter
        return False
    for augmenter in [augmentation] + list(children):
        kind = type(augmenter)
        if not kind.__module__.startswith("imgaug.") \
                or kind.__name__ in UNSURE_AUGMENTERS:
            return False
    return True


def augment_image_and_layers(augmentation, image, layers,
                             description="image"):
    """imgaug on an image and its instances packed as label layers.

    augmentation: an imgaug augmenter for which layers_follow() is True.
    image: [H, W, C] uint8; layers: [H, W, L] int32 label images
        (mrcnn.structures.instance_layers).
    The layers go through as imgaug segmentation maps: every augmenter
    that moves pixels moves them too, by nearest neighbour (so labels stay
    labels), and photometric ones leave them alone. One warp for all
    instances, where augment_image_and_masks warps each instance's mask.
    Returns (image, layers) with unchanged shapes; raises ValueError naming
    `description` when the augmentation changed the size.
    """
    from mrcnn._imgaug_compat import import_imgaug
    imgaug = import_imgaug()
    segmaps = imgaug.augmentables.segmaps.SegmentationMapsOnImage(
        layers, shape=image.shape)
    det = augmentation.to_deterministic()
    new_image, new_segmaps = det.augment(image=image,
                                         segmentation_maps=segmaps)
    new_layers = new_segmaps.get_arr()
    if new_image.shape != image.shape or new_layers.shape != layers.shape:
        raise ValueError(
            "Augmentation changed the size of {} from {} to {}; use "
            "augmenters that keep the image size".format(
                description, image.shape, new_image.shape))
    return new_image, new_layers.astype(np.int32, copy=False)


def default_augmentation():
    """matterport's augmentation of its nucleus sample, which `mrcnn train
    --augment` uses too (imgaug): up to two of a left-right flip, an
    up-down flip, a quarter turn, brightness x0.8-1.5 and a blur of sigma
    up to 5, per image."""
    from mrcnn._imgaug_compat import import_imgaug
    iaa = import_imgaug().augmenters
    return iaa.SomeOf((0, 2), [
        iaa.Fliplr(0.5),
        iaa.Flipud(0.5),
        iaa.OneOf([iaa.Affine(rotate=90), iaa.Affine(rotate=180),
                   iaa.Affine(rotate=270)]),
        iaa.Multiply((0.8, 1.5)),
        iaa.GaussianBlur(sigma=(0.0, 5.0)),
    ])
