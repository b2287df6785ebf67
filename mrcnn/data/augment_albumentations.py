"""albumentations augmentation of an image and its instance masks.

An optional path beside imgaug's (``pip install mrcnn-keras3[albumentations]``):
``augmentation=`` may be an ``albumentations.Compose`` (or a single
albumentations transform). albumentations itself moves the masks with the
image for geometric transforms and leaves them alone for photometric ones,
so no list of mask-safe transforms is needed here. Boxes are not passed to
albumentations: they are computed from the transformed masks afterwards,
as on the imgaug path, and instances cropped away are dropped there.

albumentations checks PyPI for a newer version when imported; set
NO_ALBUMENTATIONS_UPDATE=1 to stop it (offline machines, CI).
"""

import copy

import numpy as np


def is_albumentations(augmentation):
    """True for an albumentations transform or composition.

    Tells by the class's module, so that albumentations is never imported
    here (it stays optional).
    """
    return any(cls.__module__.split(".")[0] == "albumentations"
               for cls in type(augmentation).__mro__)


def seeded_copy(augmentation, seed):
    """A private copy of the transform with its own random seed (worker
    threads share none, and the same seed gives the same augmentation)."""
    transform = copy.deepcopy(augmentation)
    transform.set_random_seed(int(seed))
    return transform


def augment_with_albumentations(augmentation, image, mask):
    """Runs the transform on image [H, W, C] uint8 and mask [H, W, N] bool.

    Returns (image, mask [H', W', N] bool); the caller checks the sizes.
    """
    if mask.shape[-1] == 0:
        # No instances (albumentations cannot stack an empty mask list):
        # the image alone, and no masks at its new size.
        new_image = augmentation(image=image)["image"]
        return new_image, np.zeros(new_image.shape[:2] + (0,), bool)
    # albumentations takes masks first-axis-stacked, [N, H, W], as uint8.
    masks = np.ascontiguousarray(np.moveaxis(mask, -1, 0), dtype=np.uint8)
    result = augmentation(image=image, masks=masks)
    new_mask = np.moveaxis(np.asarray(result["masks"]), 0, -1).astype(bool)
    return result["image"], new_mask
