"""The instance masks follow every imgaug augmenter that moves pixels, and
skip those that change pixel values only. The image itself is the
reference: each instance is painted into one channel of the image, so
after augmentation that channel's bright pixels are where its mask must
be."""
import warnings

import numpy as np
import pytest

from mrcnn._imgaug_compat import import_imgaug
from mrcnn.data import augment
from mrcnn.structures import instance_layers

iaa = import_imgaug().augmenters
PATHS = ("masks", "layers")


def augmented(path, augmenter, image, masks):
    """(image, masks [H, W, N]) after augmenter, the instances going
    through as N masks (augment_image_and_masks) or packed into label
    layers (augment_image_and_layers, what the feed uses for imgaug's own
    augmenters)."""
    if path == "masks":
        return augment.augment_image_and_masks(augmenter, image, masks)
    assert augment.layers_follow(augmenter)
    layers, layer_of = instance_layers.pack(masks)
    new_image, new_layers = augment.augment_image_and_layers(
        augmenter, image, layers)
    boxes, _ = instance_layers.boxes_of(new_layers, layer_of)
    return new_image, instance_layers.unpack(
        new_layers, layer_of, boxes, np.ones(len(layer_of), bool))


def painted_instances(size=96):
    """image [size, size, 3] uint8 with instance k painted 200 in channel k
    (off-centre shapes, so that turns and flips move them), masks
    [size, size, 3] bool."""
    yy, xx = np.mgrid[:size, :size]
    masks = np.stack([
        (yy >= 8) & (yy < 34) & (xx >= 10) & (xx < 50),          # top left
        (yy - 70) ** 2 + (xx - 30) ** 2 < 15 ** 2,               # bottom left
        (yy >= 20) & (yy < 80) & (xx >= 66) & (xx < 84),         # right bar
    ], axis=-1)
    return (masks * 200).astype(np.uint8), masks


def iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


MOVING = {
    "Rot90": lambda: iaa.Rot90(1),
    "Rot90 any": lambda: iaa.Rot90((1, 3)),
    "PerspectiveTransform": lambda: iaa.PerspectiveTransform(scale=0.15),
    "ElasticTransformation": lambda: iaa.ElasticTransformation(alpha=30,
                                                               sigma=6),
    "Jigsaw": lambda: iaa.Jigsaw(nb_rows=2, nb_cols=2),
    "ShearX": lambda: iaa.ShearX(25),
    "Affine": lambda: iaa.Affine(rotate=35, scale=0.9),
    "Fliplr": lambda: iaa.Fliplr(1.0),
    "CropAndPad": lambda: iaa.CropAndPad(percent=(-0.2, 0.2)),
    "KeepSizeByResize(Crop)": lambda: iaa.KeepSizeByResize(
        iaa.Crop(percent=0.2)),
    "Sometimes(Rot90)": lambda: iaa.Sometimes(1.0, iaa.Rot90(2)),
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", sorted(MOVING))
def test_masks_move_with_the_image(name, path):
    image, masks = painted_instances()
    for seed in range(3):
        augmenter = augment.seeded_copy(MOVING[name](), seed)
        new_image, new_masks = augmented(path, augmenter, image, masks)
        for k in range(masks.shape[-1]):
            painted = new_image[..., k] > 100
            if painted.sum() < 20:
                continue  # moved out of the image
            assert iou(painted, new_masks[..., k]) > 0.85, (name, seed, k)
    # the augmenter did move something (the test is not vacuous)
    assert not np.array_equal(new_masks, masks) or name == "CropAndPad"


@pytest.mark.parametrize("augmenter", [
    iaa.Multiply(0.5), iaa.GaussianBlur(2.0), iaa.AddToHueAndSaturation(30),
    iaa.LinearContrast(1.5), iaa.Sequential([iaa.Fliplr(1.0),
                                             iaa.GammaContrast(2.0)])],
    ids=lambda a: type(a).__name__)
@pytest.mark.parametrize("path", PATHS)
def test_photometric_augmenters_leave_the_masks(augmenter, path):
    image, masks = painted_instances()
    new_image, new_masks = augmented(
        path, augment.seeded_copy(augmenter, 0), image, masks)
    expected = masks[:, ::-1] if isinstance(augmenter, iaa.Sequential) \
        else masks
    np.testing.assert_array_equal(new_masks, expected)
    assert not np.array_equal(new_image, image)


def test_an_augmenter_of_unknown_kind_is_named_once(monkeypatch):
    monkeypatch.setattr(augment, "_warned_image_only", set())
    image, masks = painted_instances()
    shift = iaa.Lambda(func_images=lambda images, *args: [
        np.roll(i, 5, axis=1) for i in images])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            _, new_masks = augment.augment_image_and_masks(shift, image,
                                                           masks)
    said = [str(w.message) for w in caught if "Lambda" in str(w.message)]
    assert len(said) == 1 and "MASK_AUGMENTERS" in said[0]
    np.testing.assert_array_equal(new_masks, masks)  # image only, as said


def test_layers_follow_only_imgaugs_own_augmenters():
    """The label-layer path is taken only where imgaug itself moves
    segmentation maps; Lambda, WithChannels and augmenters from elsewhere
    go the per-mask way, which warns about them."""
    class Shift(iaa.meta.Augmenter):  # an augmenter of the user's own
        def _augment_batch_(self, batch, random_state, parents, hooks):
            return batch

        def get_parameters(self):
            return []
    assert augment.layers_follow(iaa.Sequential([
        iaa.Fliplr(0.5), iaa.SomeOf(1, [iaa.Affine(rotate=10),
                                        iaa.Multiply(1.2)])]))
    for other in (iaa.Lambda(func_images=lambda images, *a: images),
                  iaa.WithChannels(0, iaa.Add(10)),
                  iaa.Sequential([iaa.Fliplr(0.5), Shift()]), object()):
        assert not augment.layers_follow(other)
