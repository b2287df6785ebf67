"""Instances packed into label layers (mrcnn.structures.instance_layers)
give back the masks, boxes and mini masks of the [H, W, N] functions; the
training feed's two ways (per mask, per layer) give the same ground
truth."""
import random

import numpy as np
import pytest

from mrcnn.data import loading
from mrcnn.structures import dropped, instance_layers
from mrcnn.structures.boxes import extract_bboxes
from mrcnn.structures.masks import minimize_mask
from mrcnn._imgaug_compat import import_imgaug

iaa = import_imgaug().augmenters


def random_instances(rng, shape=(70, 90), count=12):
    """Bool masks [H, W, count]: ellipses and boxes that overlap, one
    nested in another, one touching the border."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    masks = []
    for k in range(count):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        ry, rx = rng.uniform(2, 15, 2)
        masks.append(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1)
    masks.append((yy >= 30) & (yy < 36) & (xx >= 40) & (xx < 44))
    masks.append((yy >= 25) & (yy < 40) & (xx >= 35) & (xx < 50))
    masks.append((yy < 5) & (xx >= shape[1] - 7))
    masks = np.stack(masks, axis=-1)
    return masks[..., masks.any(axis=(0, 1))]


def test_pack_and_unpack_give_every_mask_back_exactly():
    rng = np.random.default_rng(0)
    masks = random_instances(rng)
    layers, layer_of = instance_layers.pack(masks)
    assert layers.shape[-1] > 1          # the overlaps needed more layers
    for index in range(layers.shape[-1]):  # no two instances share a layer
        for i in np.flatnonzero(layer_of == index):  # pixel
            assert np.array_equal(layers[..., index] == i + 1, masks[..., i])
    boxes, present = instance_layers.boxes_of(layers, layer_of)
    np.testing.assert_array_equal(boxes, extract_bboxes(masks))
    assert present.all()
    keep = np.ones(masks.shape[-1], bool)
    np.testing.assert_array_equal(
        instance_layers.unpack(layers, layer_of, boxes, keep), masks)
    np.testing.assert_array_equal(
        instance_layers.minimize(layers, layer_of, boxes, keep, (28, 28)),
        minimize_mask(boxes, masks, (28, 28)))
    keep[[1, 4]] = False
    np.testing.assert_array_equal(
        instance_layers.unpack(layers, layer_of, boxes, keep),
        masks[..., keep])


def test_an_instance_wiped_out_is_absent_with_an_empty_box():
    masks = random_instances(np.random.default_rng(1))
    layers, layer_of = instance_layers.pack(masks)
    layers[layers == 3] = 0  # instance 2 gone (as if warped out)
    boxes, present = instance_layers.boxes_of(layers, layer_of)
    assert not present[2] and present.sum() == masks.shape[-1] - 1
    assert (boxes[2] == 0).all()


class ArraysDataset(object):
    """What load_image_gt needs of a dataset: one image and its masks."""
    num_classes = 3

    def __init__(self, image, masks):
        self.image, self.masks = image, masks
        self.image_info = [{"source": "test", "id": 0, "path": "made.png"}]
        self.source_class_ids = {"test": [0, 1, 2]}

    def load_image(self, image_id):
        return self.image

    def load_mask(self, image_id):
        count = self.masks.shape[-1]
        return self.masks, (np.arange(count) % 2 + 1).astype(np.int32)

    def image_reference(self, image_id):
        return "made.png"


def both_ways(config, dataset, augmentation, monkeypatch, mini=True):
    """load_image_gt's result by the label layers and by per-mask masks
    (the layer path switched off), same seed."""
    results, packed = [], []
    pack = instance_layers.pack
    monkeypatch.setattr(instance_layers, "pack",
                        lambda mask: packed.append(1) or pack(mask))
    for layered in (True, False):
        monkeypatch.setattr(loading, "PACK_INSTANCES", layered)
        np.random.seed(5)
        random.seed(5)  # crop mode's crop
        results.append(loading.load_image_gt(
            dataset, config, 0, augmentation=augmentation and
            augmentation.deepcopy(), use_mini_mask=mini))
        assert len(packed) == 1  # the first way packed, the second not
    return results


@pytest.mark.parametrize("mode", ["square", "pad64", "crop", "none",
                                  "shrink"])
@pytest.mark.parametrize("augmentation", [
    None, iaa.Fliplr(1.0), iaa.Sequential([iaa.Flipud(1.0), iaa.Rot90(1)])],
    ids=["none", "fliplr", "flipud_rot90"])
@pytest.mark.parametrize("mini", [True, False])
def test_both_ways_give_the_same_ground_truth(mode, augmentation, mini,
                                              monkeypatch):
    """Resizing picks pixels by the same nearest-neighbour rule, flips and
    quarter turns are exact: the same image, boxes, class ids and masks."""
    from tests.tiny import TinyConfig
    config = type("C", (TinyConfig,), {
        "IMAGE_RESIZE_MODE": "square" if mode == "shrink" else mode,
        "IMAGE_MIN_DIM": 64, "IMAGE_MAX_DIM": 128, "IMAGE_MIN_SCALE": 0,
        "NUM_CLASSES": 3})()
    rng = np.random.default_rng(2)
    # Rot90 keeps an oblong image's size by resizing it back (bilinear
    # for the masks, nearest for the layers): unresized, square only.
    # "shrink": scaled down (the masks are packed after resizing).
    shape = {"none": (80, 80), "shrink": (300, 390)}.get(mode, (70, 90))
    masks = random_instances(rng, shape=shape)
    image = rng.integers(0, 255, shape + (3,)).astype(np.uint8)
    dataset = ArraysDataset(image, masks)
    layered, per_mask = both_ways(config, dataset, augmentation,
                                  monkeypatch, mini)
    for a, b in zip(layered, per_mask):
        np.testing.assert_array_equal(a, b)


def test_an_affine_warp_agrees_within_its_interpolation(monkeypatch):
    """Affine warps interpolate: the layers by nearest neighbour, the
    masks bilinearly then at 0.5. Each instance's box within 2 pixels."""
    from tests.tiny import TinyConfig
    config = type("C", (TinyConfig,), {
        "NUM_CLASSES": 3, "IMAGE_MIN_DIM": 128, "IMAGE_MAX_DIM": 128})()
    rng = np.random.default_rng(3)
    masks = random_instances(rng, shape=(128, 128), count=10)
    image = rng.integers(0, 255, (128, 128, 3)).astype(np.uint8)
    dataset = ArraysDataset(image, masks)
    affine = iaa.Affine(rotate=17, scale=1.1, translate_px=5)
    layered, per_mask = both_ways(config, dataset, affine, monkeypatch,
                                  mini=False)
    np.testing.assert_array_equal(layered[0], per_mask[0])  # the image
    np.testing.assert_array_equal(layered[2], per_mask[2])  # class ids
    assert np.abs(layered[3] - per_mask[3]).max() <= 2
    for k in range(layered[4].shape[-1]):
        a, b = layered[4][..., k], per_mask[4][..., k]
        assert (a & b).sum() / (a | b).sum() > 0.8


def test_instances_warped_out_are_dropped_and_reported(monkeypatch):
    from tests.tiny import TinyConfig
    config = type("C", (TinyConfig,), {
        "NUM_CLASSES": 3, "IMAGE_MIN_DIM": 128, "IMAGE_MAX_DIM": 128})()
    yy, xx = np.mgrid[:128, :128]
    masks = np.stack([(yy < 20) & (xx < 20),
                      (yy < 20) & (xx >= 30) & (xx < 50),
                      (yy > 60) & (xx > 60), (yy > 100) & (xx > 100)], -1)
    dataset = ArraysDataset(np.zeros((128, 128, 3), np.uint8), masks)
    reports = []
    monkeypatch.setattr(dropped, "report",
                        lambda *args: reports.append(args[2:]))
    shift = iaa.Affine(translate_px={"x": 70, "y": 70})
    layered, per_mask = both_ways(config, dataset, shift, monkeypatch)
    assert len(layered[2]) == len(per_mask[2]) == 2
    np.testing.assert_array_equal(layered[3], per_mask[3])
    drops = [r for r in reports if r[1] > 0]
    assert drops == [("empty_after_augmentation", 2, 4)] * 2
