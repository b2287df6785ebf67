"""CocoDataset: polygons, RLE (both kinds), crowd, class mapping, subsets."""
import json
import os

import numpy as np
import pytest
import skimage.io
from pycocotools import mask as mask_utils

from mrcnn.datasets import CocoDataset, load_dataset

SIZES = {1: (20, 30), 2: (16, 16), 5: (12, 10)}  # image id -> (h, w)
FILES = {1: "a.png", 2: "b.jpg", 5: "c.png"}


def uncompressed_rle(mask):
    """COCO's uncompressed RLE by hand: column-major runs, zeros first."""
    flat = mask.flatten(order="F").astype(int)
    counts, current, run = [], 0, 0
    for value in flat:
        if value != current:
            counts.append(run)
            current, run = value, 0
        run += 1
    counts.append(run)
    return {"counts": counts, "size": list(mask.shape)}


def hand_masks():
    """Expected instance masks of image 1, in annotation order."""
    h, w = SIZES[1]
    car = np.zeros((h, w), bool)
    car[1:4, 2:6] = True      # polygon x 2..6, y 1..4 (pixel i = [i, i+1))
    car[10:12, 10:14] = True  # its second part
    person = np.zeros((h, w), bool)
    person[5:8, 20:22] = True
    dog = np.zeros((h, w), bool)
    dog[12:18, 3:9] = True
    dog[14, 5] = False
    crowd = np.zeros((h, w), bool)
    crowd[0:4, 24:30] = True
    return [car, person, dog, crowd]


def write_coco(folder, image_dir=None):
    image_dir = image_dir or folder
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(folder, exist_ok=True)
    for image_id, name in FILES.items():
        image = np.random.RandomState(image_id).randint(
            0, 255, SIZES[image_id] + (3,)).astype(np.uint8)
        skimage.io.imsave(os.path.join(image_dir, name), image,
                          check_contrast=False)
    car, person, dog, crowd = hand_masks()
    dog_rle = mask_utils.encode(np.asfortranarray(dog.astype(np.uint8)))
    dog_rle["counts"] = dog_rle["counts"].decode("ascii")
    annotations = [
        {"id": 10, "image_id": 1, "category_id": 7, "iscrowd": 0,
         "segmentation": [[2, 1, 6, 1, 6, 4, 2, 4],
                          [10, 10, 14, 10, 14, 12, 10, 12]]},
        {"id": 11, "image_id": 1, "category_id": 3, "iscrowd": 0,
         "segmentation": uncompressed_rle(person)},
        {"id": 12, "image_id": 1, "category_id": 12, "iscrowd": 0,
         "segmentation": dog_rle},
        {"id": 13, "image_id": 1, "category_id": 3, "iscrowd": 1,
         "segmentation": uncompressed_rle(crowd)},
        # Image 5: under one pixel, a 2-point "polygon", and a real one.
        {"id": 14, "image_id": 5, "category_id": 12, "iscrowd": 0,
         "segmentation": [[0.1, 0.1, 0.4, 0.1, 0.3, 0.3]]},
        {"id": 15, "image_id": 5, "category_id": 7, "iscrowd": 0,
         "segmentation": [[1, 1, 5, 5]]},
        {"id": 16, "image_id": 5, "category_id": 12, "iscrowd": 0,
         "segmentation": [[0, 0, 4, 0, 4, 3, 0, 3]]},
    ]
    data = {
        "images": [{"id": i, "file_name": FILES[i], "height": SIZES[i][0],
                    "width": SIZES[i][1]} for i in FILES],
        "annotations": annotations,
        "categories": [{"id": 12, "name": "dog"}, {"id": 3, "name": "person"},
                       {"id": 7, "name": "car"}],
    }
    path = os.path.join(folder, "annotations.json")
    with open(path, "w") as f:
        json.dump(data, f)
    return path


def index_of(dataset, coco_id):
    return [info["id"] for info in dataset.image_info].index(coco_id)


def test_polygon_rle_and_crowd_masks_match_hand_drawn(tmp_path):
    path = write_coco(str(tmp_path))
    dataset = CocoDataset()
    coco = dataset.load_coco(path, str(tmp_path), return_coco=True)
    dataset.prepare()
    assert sorted(coco.getImgIds()) == [1, 2, 5] and dataset.coco is coco
    # Category ids 3, 7, 12 -> contiguous 1, 2, 3 (sorted by COCO id).
    assert dataset.class_names == ["BG", "person", "car", "dog"]
    assert [dataset.map_source_class_id("coco.{}".format(c))
            for c in (3, 7, 12)] == [1, 2, 3]
    assert dataset.get_source_class_id(3, "coco") == 12

    mask, class_ids = dataset.load_mask(index_of(dataset, 1))
    assert mask.dtype == bool and mask.shape == (20, 30, 4)
    for k, expected in enumerate(hand_masks()):
        np.testing.assert_array_equal(mask[..., k], expected, err_msg=str(k))
    # The crowd annotation comes back with a negative class id.
    assert class_ids.tolist() == [2, 1, 3, -1]
    assert class_ids.dtype == np.int32


def test_tiny_and_degenerate_annotations_are_dropped(tmp_path):
    dataset = CocoDataset()
    dataset.load_coco(write_coco(str(tmp_path)), str(tmp_path))
    dataset.prepare()
    mask, class_ids = dataset.load_mask(index_of(dataset, 5))
    assert class_ids.tolist() == [3]
    expected = np.zeros((12, 10), bool)
    expected[0:3, 0:4] = True
    np.testing.assert_array_equal(mask[..., 0], expected)


def test_empty_images_kept_or_skipped(tmp_path):
    path = write_coco(str(tmp_path))
    kept = CocoDataset()
    kept.load_coco(path, str(tmp_path))
    kept.prepare()
    assert [i["id"] for i in kept.image_info] == [1, 2, 5]
    mask, class_ids = kept.load_mask(index_of(kept, 2))
    assert mask.shape == (16, 16, 0) and class_ids.shape == (0,)
    skipped = CocoDataset()
    skipped.load_coco(path, str(tmp_path), skip_empty=True)
    assert [i["id"] for i in skipped.image_info] == [1, 5]


def test_class_subset(tmp_path):
    path = write_coco(str(tmp_path))
    dataset = CocoDataset()
    dataset.load_coco(path, str(tmp_path), class_ids=[12, 3])
    dataset.prepare()
    assert dataset.class_names == ["BG", "person", "dog"]
    mask, class_ids = dataset.load_mask(index_of(dataset, 1))
    person, dog = hand_masks()[1:3]
    assert class_ids.tolist() == [1, 2, -1]
    np.testing.assert_array_equal(mask[..., 0], person)
    np.testing.assert_array_equal(mask[..., 1], dog)
    with pytest.raises(ValueError, match="no categories with ids \\[99\\]"):
        CocoDataset().load_coco(path, str(tmp_path), class_ids=[99])


def test_matterport_call_style(tmp_path):
    write_coco(str(tmp_path / "annotations"),
               image_dir=str(tmp_path / "train2017"))
    os.rename(tmp_path / "annotations" / "annotations.json",
              tmp_path / "annotations" / "instances_train2017.json")
    for call in (dict(year="2017"), dict()):
        dataset = CocoDataset()
        dataset.load_coco(str(tmp_path), "train", **call)
        dataset.prepare()
        assert dataset.num_images == 3
        assert dataset.image_reference(0) == str(
            tmp_path / "train2017" / "a.png")
    # matterport's positional year.
    dataset = CocoDataset()
    dataset.load_coco(str(tmp_path), "train", "2017")
    dataset.prepare()
    assert dataset.num_images == 3 and dataset.num_classes == 4
    # matterport's class_ids rule: only images that contain those classes.
    dataset = CocoDataset()
    coco = dataset.load_coco(str(tmp_path), "train", year="2017",
                             class_ids=[7], return_coco=True)
    assert [i["id"] for i in dataset.image_info] == [1, 5]
    assert len(coco.getImgIds()) == 3
    with pytest.raises(FileNotFoundError, match="instances_val2017.json"):
        CocoDataset().load_coco(str(tmp_path), "val", year="2017")
    # load_dataset finds the same layout from the subset name.
    assert load_dataset(tmp_path, subset="train").num_images == 3


def test_load_dataset_detects_coco_json(tmp_path):
    dataset = load_dataset(write_coco(str(tmp_path)))
    assert isinstance(dataset, CocoDataset)
    assert dataset.num_classes == 4
    assert dataset.load_image(0).shape == (20, 30, 3)


def test_rle_of_the_wrong_size_names_image_and_annotation(tmp_path):
    path = write_coco(str(tmp_path))
    with open(path) as f:
        data = json.load(f)
    data["annotations"][1]["segmentation"]["size"] = [21, 30]
    data["annotations"][1]["segmentation"]["counts"][-1] += 30
    with open(path, "w") as f:
        json.dump(data, f)
    dataset = load_dataset(path)
    with pytest.raises(ValueError, match="a.png.*annotation 11.*RLE size"):
        dataset.load_mask(index_of(dataset, 1))


def test_broken_json_is_named(tmp_path):
    (tmp_path / "x.json").write_text('{"images": [')
    with pytest.raises(ValueError, match="x.json: broken json"):
        CocoDataset().load_coco(str(tmp_path / "x.json"), str(tmp_path))
