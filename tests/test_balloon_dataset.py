"""A user-written VIA balloon Dataset (matterport balloon.py style) on the
real balloon data (skipped with a reason when the data is absent).

Counts come from the JSON annotations; pixels are decoded for a handful of
images only, to keep the test fast.
"""
import json
import os
import shutil

import numpy as np
import PIL.Image
import pytest
import skimage.draw

from mrcnn import utils

EXPECTED = {"train": (61, 255), "val": (13, 50)}  # images, instances


class BalloonDataset(utils.Dataset):
    """Balloons annotated with the VGG Image Annotator (VIA 1.x or 2.x)."""

    def load_balloon(self, dataset_dir, subset):
        """Registers the images of dataset_dir/subset ("train" or "val")."""
        self.add_class("balloon", 1, "balloon")
        assert subset in ["train", "val"]
        dataset_dir = os.path.join(dataset_dir, subset)
        with open(os.path.join(dataset_dir, "via_region_data.json")) as f:
            annotations = json.load(f)
        for annotation in annotations.values():
            regions = annotation["regions"]
            # VIA 1.x stores regions as a dict, VIA 2.x as a list.
            if isinstance(regions, dict):
                regions = list(regions.values())
            if not regions:
                continue  # unannotated image
            polygons = [r["shape_attributes"] for r in regions]
            image_path = os.path.join(dataset_dir, annotation["filename"])
            # The JSON has no image size: read it from the file header only.
            with PIL.Image.open(image_path) as image:
                width, height = image.size
            self.add_image("balloon", image_id=annotation["filename"],
                           path=image_path, width=width, height=height,
                           polygons=polygons)

    def load_mask(self, image_id):
        """One bool mask per polygon, all of class "balloon"."""
        info = self.image_info[image_id]
        if info["source"] != "balloon":
            return super().load_mask(image_id)
        mask = np.zeros([info["height"], info["width"],
                         len(info["polygons"])], dtype=bool)
        for i, polygon in enumerate(info["polygons"]):
            # Some points lie at x == width or y == height: pass the shape
            # so they are clipped to the image.
            rows, cols = skimage.draw.polygon(
                polygon["all_points_y"], polygon["all_points_x"],
                shape=mask.shape[:2])
            mask[rows, cols, i] = True
        return mask, np.ones([mask.shape[-1]], dtype=np.int32)

    def image_reference(self, image_id):
        info = self.image_info[image_id]
        if info["source"] == "balloon":
            return info["path"]
        return super().image_reference(image_id)


def load_subset(path, subset):
    dataset = BalloonDataset()
    dataset.load_balloon(str(path), subset)
    dataset.prepare()
    return dataset


@pytest.mark.parametrize("subset", ["train", "val"])
def test_balloon_counts(balloon_path, subset):
    dataset = load_subset(balloon_path, subset)
    num_images, num_instances = EXPECTED[subset]
    assert dataset.num_images == num_images
    assert sum(len(info["polygons"]) for info in dataset.image_info) \
        == num_instances
    assert dataset.class_names == ["BG", "balloon"]
    assert dataset.num_classes == 2
    assert dataset.source_class_ids["balloon"] == [0, 1]


def polygon_area(xs, ys):
    """Shoelace formula."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    return 0.5 * abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1)))


@pytest.mark.parametrize("subset", ["train", "val"])
def test_every_polygon_has_area_inside_the_image(balloon_path, subset):
    # Geometry only (pixels are rasterized for a few images below).
    dataset = load_subset(balloon_path, subset)
    for info in dataset.image_info:
        for polygon in info["polygons"]:
            xs, ys = polygon["all_points_x"], polygon["all_points_y"]
            assert polygon["name"] == "polygon"
            assert polygon_area(xs, ys) >= 1, info["path"]
            assert 0 <= min(xs) and max(xs) <= info["width"], info["path"]
            assert 0 <= min(ys) and max(ys) <= info["height"], info["path"]


def edge_touching_image(dataset):
    """An image with a polygon point at x == width or y == height."""
    for image_id, info in enumerate(dataset.image_info):
        for polygon in info["polygons"]:
            if max(polygon["all_points_x"]) >= info["width"] or \
                    max(polygon["all_points_y"]) >= info["height"]:
                return image_id
    return None


def test_masks_and_images_of_a_few_images(balloon_path):
    train = load_subset(balloon_path, "train")
    val = load_subset(balloon_path, "val")
    edge_id = edge_touching_image(train)
    assert edge_id is not None  # the data has 7 such images
    samples = [(train, 0), (train, edge_id),
               (val, 0), (val, val.num_images - 1)]
    for dataset, image_id in samples:
        image = dataset.load_image(image_id)
        mask, class_ids = dataset.load_mask(image_id)
        name = dataset.image_reference(image_id)
        assert image.dtype == np.uint8 and image.ndim == 3 \
            and image.shape[2] == 3, name
        assert mask.shape[:2] == image.shape[:2], name
        assert mask.dtype == bool and mask.shape[2] >= 1, name
        assert class_ids.tolist() == [1] * mask.shape[2], name
        assert np.all(mask.sum(axis=(0, 1)) > 0), name
        boxes = utils.extract_bboxes(mask)
        height, width = image.shape[:2]
        assert np.all(boxes[:, 0] < boxes[:, 2]) and \
            np.all(boxes[:, 1] < boxes[:, 3]), name
        assert np.all(boxes >= 0) and np.all(boxes[:, 2] <= height) \
            and np.all(boxes[:, 3] <= width), name


def test_regions_as_list_vs_dict(balloon_path, tmp_path):
    # The same annotation saved the VIA 2.x way (regions as a list) loads to
    # the same masks as the original VIA 1.x dict.
    source_dir = balloon_path / "val"
    with open(source_dir / "via_region_data.json") as f:
        annotations = json.load(f)
    key, annotation = next(iter(annotations.items()))
    as_list = dict(annotation, regions=list(annotation["regions"].values()))
    target_dir = tmp_path / "val"
    target_dir.mkdir()
    shutil.copy(source_dir / annotation["filename"], target_dir)
    with open(target_dir / "via_region_data.json", "w") as f:
        json.dump({key: as_list}, f)

    original = load_subset(balloon_path, "val")
    copy = load_subset(tmp_path, "val")
    assert copy.num_images == 1
    original_id = [info["id"] for info in original.image_info].index(
        annotation["filename"])
    np.testing.assert_array_equal(copy.load_mask(0)[0],
                                  original.load_mask(original_id)[0])
