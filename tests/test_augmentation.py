"""imgaug on numpy 2 (mrcnn._imgaug_compat) and mask-safe augmentation in
mrcnn.data: masks follow the image through geometric augmenters only."""
import numpy as np
import pytest

from mrcnn import _imgaug_compat, data, utils
from mrcnn.config import Config
from mrcnn.data.augment import default_augmentation

imgaug = _imgaug_compat.import_imgaug()
import imgaug.augmenters as iaa  # noqa: E402


def two_shapes():
    """64x64 masks of an L shape and a bar, neither symmetric under any
    flip or rotation, and an image whose red channel is 200 on the L and
    green channel 200 on the bar."""
    mask = np.zeros((64, 64, 2), bool)
    mask[6:40, 8:22, 0] = True
    mask[26:40, 8:44, 0] = True
    mask[46:58, 30:60, 1] = True
    image = np.zeros((64, 64, 3), np.uint8)
    image[..., 0] = 200 * mask[..., 0]
    image[..., 1] = 200 * mask[..., 1]
    image[..., 2] = 40
    return image, mask


def dihedral(array):
    """The 8 flips/rotations of an [H, W, ...] array."""
    out = []
    for k in range(4):
        rotated = np.rot90(array, k)
        out += [rotated, np.fliplr(rotated)]
    return out


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_numpy_aliases_restored():
    assert np.sctypes["float"][:3] == [np.float16, np.float32, np.float64]
    assert np.uint8 in np.sctypes["uint"] and np.int64 in np.sctypes["int"]
    assert np.complex is complex
    assert imgaug.__version__ == "0.4.0"
    assert _imgaug_compat.import_imgaug() is imgaug


def test_classic_pattern_runs_on_images():
    augmentation = default_augmentation()
    augmentation.seed_(0)
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)
    for _ in range(20):
        out = augmentation.augment_image(image)
        assert out.shape == image.shape and out.dtype == np.uint8


def test_classic_pattern_keeps_image_and_masks_aligned():
    image, mask = two_shapes()
    transforms = [dihedral(mask[..., i]) for i in range(2)]
    color_only = geometric = 0
    for seed in range(40):
        augmentation = default_augmentation()
        augmentation.seed_(seed)
        new_image, new_mask = data.augment_image_and_masks(
            augmentation, image, mask)
        assert new_mask.dtype == bool and new_mask.shape == mask.shape
        # Masks moved by an exact flip/rotation, untouched by color or blur.
        moves = [k for k, t in enumerate(transforms[0])
                 if np.array_equal(t, new_mask[..., 0])]
        assert len(moves) == 1, seed
        np.testing.assert_array_equal(new_mask[..., 1],
                                      transforms[1][moves[0]])
        geometric += moves[0] != 0
        for channel in range(2):
            shown = new_image[..., channel]
            if set(np.unique(shown)) <= {0, 200}:
                # Only geometry: image and mask match pixel for pixel.
                np.testing.assert_array_equal(shown == 200,
                                              new_mask[..., channel])
                color_only += 1
            else:
                # Multiply and blur change values and soften edges.
                assert iou(shown > 80, new_mask[..., channel]) > 0.8, seed
    assert geometric >= 10 and color_only >= 10


def test_non_mask_augmenters_leave_masks_alone():
    image, mask = two_shapes()
    augmentation = iaa.Sequential([
        iaa.Fliplr(1.0), iaa.Invert(1.0), iaa.Add(100), iaa.Multiply(0.0),
        iaa.GaussianBlur(sigma=3.0), iaa.Dropout(0.5)])
    new_image, new_mask = data.augment_image_and_masks(augmentation, image,
                                                       mask)
    np.testing.assert_array_equal(new_mask, np.fliplr(mask))
    assert not new_image.any()  # Multiply(0) did reach the image


def test_subclasses_of_mask_augmenters_apply_to_masks():
    image, mask = two_shapes()
    new_image, new_mask = data.augment_image_and_masks(iaa.Rotate(90),
                                                       image, mask)
    np.testing.assert_array_equal(new_mask, np.rot90(mask, -1))
    np.testing.assert_array_equal(new_image[..., 0] == 200, new_mask[..., 0])
    assert data._is_mask_augmenter(iaa.Crop(px=2))
    assert not data._is_mask_augmenter(iaa.Multiply(1.2))


def test_size_changing_augmentation_is_refused():
    image, mask = two_shapes()
    with pytest.raises(ValueError, match="image 9.*keep the image size"):
        data.augment_image_and_masks(iaa.Resize(0.5), image, mask,
                                     "image 9")


def test_elastic_transformation_runs_with_opencv():
    image, mask = two_shapes()
    out = iaa.ElasticTransformation(alpha=20, sigma=4).augment_image(image)
    assert out.shape == image.shape
    _, new_mask = data.augment_image_and_masks(
        iaa.ElasticTransformation(alpha=20, sigma=4, order=0), image, mask)
    assert new_mask.shape == mask.shape


class AugConfig(Config):
    NAME = "aug"
    NUM_CLASSES = 3
    IMAGES_PER_GPU = 2
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    RPN_TRAIN_ANCHORS_PER_IMAGE = 32
    MINI_MASK_SHAPE = (14, 14)
    MAX_GT_INSTANCES = 4


class ShapesDataset(utils.Dataset):
    """The two_shapes() image, num_images times."""

    def __init__(self, num_images=1):
        super().__init__()
        self.add_class("shapes", 1, "ell")
        self.add_class("shapes", 2, "bar")
        for i in range(num_images):
            self.add_image("shapes", image_id=i, path=None)
        self.prepare()

    def load_image(self, image_id):
        return two_shapes()[0]

    def load_mask(self, image_id):
        return two_shapes()[1], np.array([1, 2], np.int32)


def test_load_image_gt_flips_boxes():
    dataset = ShapesDataset()
    _, _, ids, bbox, _ = data.load_image_gt(dataset, AugConfig(), 0)
    np.testing.assert_array_equal(bbox, [[6, 8, 40, 44], [46, 30, 58, 60]])
    image, _, flipped_ids, flipped, mask = data.load_image_gt(
        dataset, AugConfig(), 0, augmentation=iaa.Fliplr(1.0))
    expected = bbox.copy()
    expected[:, 1], expected[:, 3] = 64 - bbox[:, 3], 64 - bbox[:, 1]
    np.testing.assert_array_equal(flipped, expected)
    np.testing.assert_array_equal(flipped_ids, ids)
    np.testing.assert_array_equal(image[..., 0] == 200, mask[..., 0])


def test_load_image_gt_drops_instances_moved_out():
    # Shifting 34 px right moves the bar (x 30..59) out of the image and
    # cuts the L (x 8..43) to x 42..63.
    _, _, ids, bbox, mask = data.load_image_gt(
        ShapesDataset(), AugConfig(), 0,
        augmentation=iaa.Affine(translate_px={"x": 34}))
    np.testing.assert_array_equal(ids, [1])
    np.testing.assert_array_equal(bbox, [[6, 42, 40, 64]])
    assert mask.shape == (64, 64, 1)


def test_feed_augmentation_is_reproducible():
    dataset = ShapesDataset(num_images=6)
    augmentation = default_augmentation()

    def masks(seed):
        feed = data.MaskRCNNDataset(dataset, AugConfig(), seed=seed,
                                    augmentation=augmentation)
        return [feed[i]["input_gt_masks"] for i in range(len(feed))]

    first, again, other = masks(1), masks(1), masks(2)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    unaugmented = data.MaskRCNNDataset(
        dataset, AugConfig(), seed=1, augmentation=augmentation,
        no_augmentation_sources=["shapes"])
    plain = unaugmented[0]["input_gt_boxes"][0, :2]
    np.testing.assert_array_equal(plain, [[6, 8, 40, 44], [46, 30, 58, 60]])


@pytest.mark.parametrize("count", [1, 128, 129, 300])
def test_masks_of_more_instances_than_opencv_channels_follow_the_image(count):
    """OpenCV, which imgaug calls for flips, takes at most 128 channels: an
    image of 129 or more instances (nuclei: up to 199) failed with
    "invalid count". Every instance must get the image's transform, as
    numpy's own flips and quarter turns give it."""
    rng = np.random.default_rng(count)
    mask = rng.random((32, 48, count)) < 0.3
    image = rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)
    for augmenter, expected in [
            (iaa.Fliplr(1.0), lambda a: a[:, ::-1]),
            (iaa.Flipud(1.0), lambda a: a[::-1]),
            (iaa.Sequential([iaa.Fliplr(1.0), iaa.Flipud(1.0)]),
             lambda a: a[::-1, ::-1])]:
        new_image, new_mask = data.augment_image_and_masks(
            augmenter, image, mask)
        np.testing.assert_array_equal(new_image, expected(image))
        np.testing.assert_array_equal(new_mask, expected(mask))


def test_many_instances_do_not_warn_once_an_image():
    """imgaug takes a mask block of more than 32 channels for a batch put
    the wrong way round and warns (SuspiciousSingleImageShapeWarning),
    once per augmented image: here the channels are instances on purpose,
    so nothing is said; an image itself of such a shape still warns."""
    import warnings
    from imgaug.augmenters.base import SuspiciousSingleImageShapeWarning
    rng = np.random.default_rng(0)
    mask = rng.random((32, 48, 64)) < 0.3
    image = rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data.augment_image_and_masks(iaa.Fliplr(1.0), image, mask)
    assert not [w for w in caught
                if issubclass(w.category, SuspiciousSingleImageShapeWarning)]
    with pytest.warns(SuspiciousSingleImageShapeWarning):
        iaa.Fliplr(1.0).augment_image(mask.astype(np.uint8))
