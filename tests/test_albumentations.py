"""albumentations as `augmentation=`: the same transform through imgaug and
albumentations gives the same image, masks and boxes; photometric
transforms leave the masks alone; instances moved out are dropped."""
import albumentations as A
import numpy as np
import pytest

from mrcnn import data
from mrcnn._imgaug_compat import import_imgaug
from tests.test_augmentation import AugConfig, ShapesDataset, two_shapes

import_imgaug()
import imgaug.augmenters as iaa  # noqa: E402


def ground_truth(augmentation):
    """(image, class_ids, boxes, masks) of load_image_gt on two_shapes()."""
    image, _, class_ids, bbox, mask = data.load_image_gt(
        ShapesDataset(), AugConfig(), 0, augmentation=augmentation)
    return image, class_ids, bbox, mask


@pytest.mark.parametrize("imgaug_flip, albumentations_flip, numpy_flip", [
    (iaa.Fliplr(1.0), A.HorizontalFlip(p=1.0), np.fliplr),
    (iaa.Flipud(1.0), A.VerticalFlip(p=1.0), np.flipud),
])
def test_same_flip_through_both_libraries(imgaug_flip, albumentations_flip,
                                          numpy_flip):
    by_imgaug = ground_truth(imgaug_flip)
    by_albumentations = ground_truth(A.Compose([albumentations_flip]))
    for left, right in zip(by_imgaug, by_albumentations):
        np.testing.assert_array_equal(left, right)
    # And both are the flip itself.
    image, mask = two_shapes()
    np.testing.assert_array_equal(by_albumentations[0], numpy_flip(image))
    np.testing.assert_array_equal(by_albumentations[3], numpy_flip(mask))
    # A single transform, without Compose, works too.
    single = ground_truth(albumentations_flip)
    np.testing.assert_array_equal(single[2], by_imgaug[2])


def test_hand_computed_flipped_boxes():
    _, ids, bbox, _ = ground_truth(A.Compose([A.HorizontalFlip(p=1.0)]))
    # Unflipped: [6, 8, 40, 44] and [46, 30, 58, 60] in a 64-wide image.
    np.testing.assert_array_equal(bbox, [[6, 20, 40, 56], [46, 4, 58, 34]])
    np.testing.assert_array_equal(ids, [1, 2])


def test_photometric_transforms_touch_the_image_only():
    image, mask = two_shapes()
    new_image, new_mask = data.augment_image_and_masks(
        A.Compose([A.HorizontalFlip(p=1.0), A.InvertImg(p=1.0)]), image, mask)
    np.testing.assert_array_equal(new_mask, np.fliplr(mask))
    np.testing.assert_array_equal(new_image, 255 - np.fliplr(image))


def test_instances_moved_out_are_dropped_as_with_imgaug():
    # 34 px right: the bar (x 30..59) leaves, the L (x 8..43) is cut to
    # x 42..63 (see test_augmentation).
    shift = A.Compose([A.Affine(translate_px={"x": 34, "y": 0}, p=1.0)])
    _, ids, bbox, mask = ground_truth(shift)
    np.testing.assert_array_equal(ids, [1])
    np.testing.assert_array_equal(bbox, [[6, 42, 40, 64]])
    assert mask.shape == (64, 64, 1)
    _, imgaug_ids, imgaug_bbox, imgaug_mask = ground_truth(
        iaa.Affine(translate_px={"x": 34}))
    np.testing.assert_array_equal(imgaug_ids, ids)
    np.testing.assert_array_equal(imgaug_mask, mask)


def test_image_without_instances():
    image, _ = two_shapes()
    empty = np.zeros((64, 64, 0), bool)
    new_image, new_mask = data.augment_image_and_masks(
        A.Compose([A.HorizontalFlip(p=1.0)]), image, empty)
    assert new_mask.shape == (64, 64, 0)
    np.testing.assert_array_equal(new_image, np.fliplr(image))


def test_size_changing_transform_is_refused():
    image, mask = two_shapes()
    with pytest.raises(ValueError, match="image 4.*keep the image size"):
        data.augment_image_and_masks(A.Compose([A.Resize(32, 32)]), image,
                                     mask, "image 4")


def test_feed_augmentation_is_reproducible():
    dataset = ShapesDataset(num_images=6)
    augmentation = A.Compose([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5),
                              A.RandomBrightnessContrast(p=0.5)])

    def batches(seed):
        feed = data.MaskRCNNDataset(dataset, AugConfig(), seed=seed,
                                    augmentation=augmentation)
        return [feed[i] for i in range(len(feed))]

    first, again, other = batches(1), batches(1), batches(2)
    for key in ("input_image", "input_gt_masks", "input_gt_boxes"):
        assert all(np.array_equal(a[key], b[key])
                   for a, b in zip(first, again))
    assert not all(np.array_equal(a["input_gt_masks"], b["input_gt_masks"])
                   for a, b in zip(first, other))


def test_seeded_copies_are_independent():
    augmentation = A.Compose([A.HorizontalFlip(p=0.5)])
    copy = data.seeded_copy(augmentation, 5)
    assert copy is not augmentation
    image, mask = two_shapes()
    flips = [data.augment_image_and_masks(data.seeded_copy(augmentation, 5),
                                          image, mask)[1] for _ in range(3)]
    assert all(np.array_equal(flips[0], f) for f in flips)
