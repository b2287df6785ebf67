"""imgaug augmentation of an image and, where safe, its instance masks."""

import numpy as np

# Augmenters that are safe to apply to masks: geometric ones that move mask
# pixels with the image. Others (color, blur, noise) touch the image only.
# Subclasses count too (imgaug's Rotate is an Affine, Crop a CropAndPad).
MASK_AUGMENTERS = ["Sequential", "SomeOf", "OneOf", "Sometimes",
                   "Fliplr", "Flipud", "CropAndPad",
                   "Affine", "PiecewiseAffine"]


def _is_mask_augmenter(augmenter):
    """True if augmenter (or a class it derives from) is in MASK_AUGMENTERS."""
    return any(cls.__name__ in MASK_AUGMENTERS
               for cls in type(augmenter).__mro__)


def _mask_hook(images, augmenter, parents, default):
    """imgaug activator: only mask-safe augmenters run on the masks."""
    return _is_mask_augmenter(augmenter)


def augment_image_and_masks(augmentation, image, mask, description="image"):
    """Applies an imgaug augmenter to an image and, where safe, its masks.

    The augmenter is made deterministic so the masks get the same geometric
    transform as the image; only MASK_AUGMENTERS run on the masks.
    image: [H, W, C] uint8; mask: [H, W, N] bool.
    Returns (image, mask) with unchanged shapes.
    """
    from mrcnn._imgaug_compat import import_imgaug
    imgaug = import_imgaug()
    det = augmentation.to_deterministic()
    new_image = det.augment_image(image)
    # imgaug has no bool support, hence the uint8 round trip.
    hooks = imgaug.HooksImages(activator=_mask_hook)
    new_mask = det.augment_image(mask.astype(np.uint8), hooks=hooks)
    if new_image.shape != image.shape or new_mask.shape != mask.shape:
        raise ValueError(
            "Augmentation changed the size of {} from {} to {} (masks {} to "
            "{}); use augmenters that keep the image size".format(
                description, image.shape, new_image.shape, mask.shape,
                new_mask.shape))
    return new_image, new_mask.astype(bool)
