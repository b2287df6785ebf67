"""Instances dropped on the way to training are named (mrcnn.structures.dropped): one
warning per image and cause naming the image and how many, then counts in
the epoch's log line; nothing at all for a clean dataset."""
import json
import logging

import numpy as np
import pytest
from PIL import Image

from mrcnn import data, utils
from mrcnn.structures import dropped
from mrcnn.datasets import (CocoDataset, LabelMeDataset, MasksDataset,
                            ViaDataset)
from tests import tiny

LOGGER = "mrcnn.structures.dropped"


class TinyConfig(tiny.TinyConfig):
    NAME = "dropped"
    NUM_CLASSES = 1 + 1
    IMAGES_PER_GPU = 1


CONFIG = TinyConfig()


class ListedDataset(utils.Dataset):
    """Images are noise files on disk; each carries the masks load_mask
    returns, as given."""

    def add(self, folder, name, masks):
        height, width = masks.shape[:2]
        path = folder / (name + ".png")
        pixels = np.random.default_rng(len(self.image_info)).integers(
            0, 256, (height, width, 3)).astype(np.uint8)
        Image.fromarray(pixels).save(path)
        self.add_image("listed", image_id=name, path=str(path), masks=masks)

    def load_mask(self, image_id):
        masks = self.image_info[image_id]["masks"]
        return masks, np.ones([masks.shape[-1]], np.int32)


def listed(tmp_path, *samples):
    dataset = ListedDataset()
    dataset.add_class("listed", 1, "thing")
    for name, masks in samples:
        dataset.add(tmp_path, name, masks)
    dataset.prepare()
    return dataset


def boxes(height, width, *corners):
    masks = np.zeros((height, width, len(corners)), bool)
    for k, (y1, x1, y2, x2) in enumerate(corners):
        masks[y1:y2, x1:x2, k] = True
    return masks


def drop_warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def assert_names_image(message, dataset, image_id, how_many, cause):
    info = dataset.image_info[image_id]
    assert "image {} ".format(image_id) in message
    assert repr(info["id"]) in message and repr(info["source"]) in message
    assert str(info["path"]) in message
    assert how_many in message
    assert dropped.CAUSES[cause] in message


def test_empty_mask_from_load_mask_is_dropped_and_named(tmp_path, caplog):
    masks = boxes(64, 64, (2, 2, 20, 20), (0, 0, 0, 0), (30, 30, 40, 40))
    dataset = listed(tmp_path, ("a", masks))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        _, _, class_ids, bbox, gt_masks = data.load_image_gt(
            dataset, CONFIG, 0)
        data.load_image_gt(dataset, CONFIG, 0)  # no second warning
    np.testing.assert_array_equal(bbox, [[2, 2, 20, 20], [30, 30, 40, 40]])
    assert gt_masks.shape == (64, 64, 2) and class_ids.tolist() == [1, 1]
    messages = drop_warnings(caplog)
    assert len(messages) == 1
    assert_names_image(messages[0], dataset, 0, "1 of the 3 instances",
                       "empty_in_load_mask")
    assert dropped.epoch_counts(dataset) == {"empty_in_load_mask": (2, 1)}


def test_instance_emptied_by_resizing_is_dropped_and_named(tmp_path,
                                                           caplog):
    # 256 px resized to 64 (scale 1/4, nearest neighbour): a single pixel
    # at (1, 1) falls between the sampled rows and columns.
    masks = boxes(256, 256, (1, 1, 2, 2), (100, 100, 180, 180))
    resized = utils.resize_mask(masks, 0.25, [(0, 0), (0, 0), (0, 0)])
    assert not resized[..., 0].any() and resized[..., 1].any()
    dataset = listed(tmp_path, ("big", masks))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        _, _, class_ids, bbox, _ = data.load_image_gt(dataset, CONFIG, 0)
    assert class_ids.tolist() == [1] and bbox.tolist() == [[25, 25, 45, 45]]
    messages = drop_warnings(caplog)
    assert len(messages) == 1
    assert_names_image(messages[0], dataset, 0, "1 of the 2 instances",
                       "empty_after_resize")


def test_augmentation_drops_are_named_then_counted_per_epoch(tmp_path,
                                                             caplog):
    iaa = pytest.importorskip("imgaug.augmenters")
    # Shifted 40 px right, the instance at columns 30..39 leaves the
    # 64 px image and the one at columns 0..9 stays.
    shift = iaa.Affine(translate_px={"x": 40})
    masks = boxes(64, 64, (10, 30, 20, 40), (10, 0, 40, 10))
    dataset = listed(tmp_path, ("shifted", masks))
    feed = data.MaskRCNNDataset(dataset, CONFIG, shuffle=False,
                                augmentation=shift)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        batch = feed[0]
        feed.on_epoch_end()
        feed[0]
        feed[0]
        feed.on_epoch_end()
    assert np.count_nonzero(batch["input_gt_class_ids"]) == 1
    messages = drop_warnings(caplog)
    assert len(messages) == 3, messages
    assert_names_image(messages[0], dataset, 0, "1 of the 2 instances",
                       "empty_after_augmentation")
    assert messages[1] == ("Epoch 1: dropped 1 instances: 1 "
                           "empty_after_augmentation (1 image)")
    assert messages[2] == ("Epoch 2: dropped 2 instances: 2 "
                           "empty_after_augmentation (1 image)")


def test_clean_dataset_drops_nothing_and_says_nothing(tmp_path, caplog):
    iaa = pytest.importorskip("imgaug.augmenters")
    dataset = listed(tmp_path, ("a", boxes(64, 64, (2, 2, 20, 20))),
                     ("b", boxes(128, 96, (10, 10, 90, 60),
                                 (0, 0, 128, 96))))
    feed = data.MaskRCNNDataset(dataset, CONFIG, shuffle=False,
                                augmentation=iaa.Fliplr(1.0))
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        for idx in range(len(feed)):
            feed[idx]
        feed.on_epoch_end()
        generator = data.data_generator(dataset, CONFIG, shuffle=False)
        for _ in range(3):
            next(generator)
    assert drop_warnings(caplog) == []
    assert dropped.epoch_counts(dataset) == {}


# ------------------------------------------------------------ loaders

def save_noise(path, height, width):
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3))
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return str(path)


def via_rect(x, y, width, height):
    return {"shape_attributes": {"name": "rect", "x": x, "y": y,
                                 "width": width, "height": height},
            "region_attributes": {}}


def via_polygon(xs, ys):
    return {"shape_attributes": {"name": "polygon", "all_points_x": xs,
                                 "all_points_y": ys},
            "region_attributes": {}}


def test_via_shapes_outside_or_without_area_are_named(tmp_path, caplog):
    save_noise(tmp_path / "a.png", 40, 50)
    regions = [via_rect(5, 5, 10, 10),
               via_rect(60, 5, 10, 10),              # right of the image
               via_polygon([-30, -20, -25], [1, 1, 9]),  # left of it
               via_polygon([3, 9], [3, 9])]          # two points: no area
    (tmp_path / "via.json").write_text(json.dumps(
        {"a.png1": {"filename": "a.png", "regions": regions}}))
    dataset = ViaDataset()
    dataset.load_via(str(tmp_path / "via.json"))
    dataset.prepare()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        masks, _ = dataset.load_mask(0)
    assert masks.shape == (40, 50, 1)
    messages = drop_warnings(caplog)
    assert len(messages) == 2
    assert_names_image(messages[0], dataset, 0, "1 of the 4 instances",
                       "no_area")
    assert_names_image(messages[1], dataset, 0, "2 of the 4 instances",
                       "outside_image")


def test_labelme_shape_outside_is_named(tmp_path, caplog):
    save_noise(tmp_path / "b.png", 20, 30)
    shapes = [{"label": "cat", "points": [[1, 1], [5, 1], [5, 4]],
               "shape_type": "polygon", "group_id": None},
              {"label": "cat", "points": [[40, 25], [45, 30]],
               "shape_type": "rectangle", "group_id": None}]
    (tmp_path / "b.json").write_text(json.dumps(
        {"shapes": shapes, "imagePath": "b.png", "imageData": None}))
    dataset = LabelMeDataset()
    dataset.load_labelme(str(tmp_path))
    dataset.prepare()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        masks, _ = dataset.load_mask(0)
    assert masks.shape == (20, 30, 1)
    messages = drop_warnings(caplog)
    assert len(messages) == 1
    assert_names_image(messages[0], dataset, 0, "1 of the 2 instances",
                       "outside_image")


def test_coco_polygon_outside_is_named(tmp_path, caplog):
    save_noise(tmp_path / "c.png", 16, 16)
    coco = {"images": [{"id": 7, "file_name": "c.png", "height": 16,
                        "width": 16}],
            "categories": [{"id": 1, "name": "dog"}],
            "annotations": [
                {"id": 1, "image_id": 7, "category_id": 1, "iscrowd": 0,
                 "segmentation": [[1, 1, 8, 1, 8, 8]]},
                {"id": 2, "image_id": 7, "category_id": 1, "iscrowd": 0,
                 "segmentation": [[1, 20, 8, 20, 8, 30]]}]}
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    dataset = CocoDataset()
    dataset.load_coco(str(tmp_path / "coco.json"), str(tmp_path))
    dataset.prepare()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        masks, _ = dataset.load_mask(0)
    assert masks.shape == (16, 16, 1)
    messages = drop_warnings(caplog)
    assert len(messages) == 1
    assert_names_image(messages[0], dataset, 0, "1 of the 2 instances",
                       "outside_image")


def test_empty_mask_file_is_named(tmp_path, caplog):
    (tmp_path / "n1" / "images").mkdir(parents=True)
    (tmp_path / "n1" / "masks").mkdir()
    save_noise(tmp_path / "n1" / "images" / "n1.png", 8, 8)
    full = np.zeros((8, 8), np.uint8)
    full[2:5, 2:5] = 255
    Image.fromarray(full).save(tmp_path / "n1" / "masks" / "full.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(
        tmp_path / "n1" / "masks" / "zero.png")
    dataset = MasksDataset()
    dataset.load_masks(str(tmp_path))
    dataset.prepare()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        masks, _ = dataset.load_mask(0)
    assert masks.shape == (8, 8, 1)
    messages = drop_warnings(caplog)
    assert len(messages) == 1
    assert_names_image(messages[0], dataset, 0, "1 of the 2 instances",
                       "empty_mask_file")


def test_unknown_cause_is_refused():
    with pytest.raises(ValueError, match="unknown drop cause"):
        dropped.report(utils.Dataset(), 0, "lost", 1)


# ------------------------------------------------------- check-dataset

def test_check_dataset_counts_drops_by_cause(tmp_path, caplog, capsys):
    from mrcnn.cli import commands as cli
    from mrcnn.datasets import check_dataset, check_path, dropped_counts
    save_noise(tmp_path / "a.png", 40, 50)
    save_noise(tmp_path / "b.png", 40, 50)
    (tmp_path / "via_region_data.json").write_text(json.dumps({
        "a.png1": {"filename": "a.png", "regions": [
            via_rect(5, 5, 10, 10), via_rect(60, 5, 10, 10),
            via_rect(-40, 5, 10, 10)]},
        "b.png1": {"filename": "b.png", "regions": [
            via_rect(5, 5, 10, 10), via_polygon([3, 9], [3, 9])]}}))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        problems = check_path(str(tmp_path))
    assert drop_warnings(caplog) == []  # reported as problems instead
    assert dropped_counts(problems) == {"outside_image": (2, 1),
                                        "no_area": (1, 1)}
    counted = [p for p in problems if p.cause]
    assert sorted((p.file, p.message) for p in counted) == [
        (str(tmp_path / "a.png"), "2 instances dropped in training: "
         + dropped.CAUSES["outside_image"]),
        (str(tmp_path / "b.png"), "1 instance dropped in training: "
         + dropped.CAUSES["no_area"])]

    assert cli.main(["check-dataset", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "dropped in training: 1 instance(s) of 1 image(s): no_area" in out
    assert ("dropped in training: 2 instance(s) of 1 image(s): "
            "outside_image") in out

    # With a config, also what resizing to its input drops.
    masks = boxes(256, 256, (1, 1, 2, 2), (100, 100, 180, 180))
    resized = listed(tmp_path, ("big", masks))
    assert dropped_counts(check_dataset(resized)) == {}
    assert dropped_counts(check_dataset(resized, CONFIG)) == {
        "empty_after_resize": (1, 1)}
