"""A class is the same class everywhere (mrcnn.structures.class_identity): datasets
loaded with a reference of class names get their ids from it by name, a
class the reference lacks is an error naming the file and the class, and
MaskRCNN.train refuses a dataset of another class count before any step.

The expected ids are worked out from the annotation files themselves: the
index of each region's label in the training set's class names."""

import json
import os

import numpy as np
import pytest
import skimage.io

from mrcnn.evaluation import coco_eval
from mrcnn.datasets import load_dataset

HEIGHT, WIDTH = 24, 32
# One image per entry; each tuple: the labels of its square regions.
TRAIN = [("cat", "dog"), ("fox",), ("dog", "fox", "cat")]
VAL_WITHOUT_DOG = [("fox", "cat"), ("fox",)]


def squares(count):
    """count disjoint 4x4 squares as (xs, ys) polygons."""
    return [([2 + 7 * i, 6 + 7 * i, 6 + 7 * i, 2 + 7 * i], [3, 3, 7, 7])
            for i in range(count)]


def save_image(path):
    image = np.random.RandomState(0).randint(0, 255, (HEIGHT, WIDTH, 3))
    skimage.io.imsave(str(path), image.astype(np.uint8), check_contrast=False)


def write_via(folder, images):
    """A VIA 2.x json; region attribute "kind" holds the label."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = {}
    for index, labels in enumerate(images):
        name = "img{}.png".format(index)
        save_image(folder / name)
        entries[name] = {"filename": name, "size": 0, "file_attributes": {},
                         "regions": [
            {"shape_attributes": {"name": "polygon", "all_points_x": xs,
                                  "all_points_y": ys},
             "region_attributes": {"kind": label}}
            for label, (xs, ys) in zip(labels, squares(len(labels)))]}
    path = folder / "via_region_data.json"
    path.write_text(json.dumps(entries))
    return path


def write_labelme(folder, images):
    folder.mkdir(parents=True, exist_ok=True)
    for index, labels in enumerate(images):
        name = "img{}.png".format(index)
        save_image(folder / name)
        shapes = [{"label": label, "shape_type": "polygon",
                   "points": [[x, y] for x, y in zip(xs, ys)],
                   "group_id": None}
                  for label, (xs, ys) in zip(labels, squares(len(labels)))]
        (folder / "img{}.json".format(index)).write_text(json.dumps({
            "shapes": shapes, "imagePath": name, "imageData": None,
            "imageHeight": HEIGHT, "imageWidth": WIDTH}))
    return folder


def write_coco(folder, images, category_ids):
    """A COCO json with the given {label: category id}."""
    folder.mkdir(parents=True, exist_ok=True)
    records, annotations = [], []
    for index, labels in enumerate(images):
        name = "img{}.png".format(index)
        save_image(folder / name)
        records.append({"id": index + 1, "file_name": name,
                        "height": HEIGHT, "width": WIDTH})
        for label, (xs, ys) in zip(labels, squares(len(labels))):
            annotations.append({
                "id": len(annotations) + 1, "image_id": index + 1,
                "category_id": category_ids[label], "iscrowd": 0,
                "segmentation": [[v for xy in zip(xs, ys) for v in xy]],
                "bbox": [min(xs), min(ys), 4, 4], "area": 16})
    path = folder / "annotations.json"
    path.write_text(json.dumps({
        "images": records, "annotations": annotations,
        "categories": [{"id": i, "name": n} for n, i in
                       category_ids.items()]}))
    return path


def load(fmt, path, **options):
    if fmt == "via":
        options.setdefault("class_attribute", "kind")
    return load_dataset(str(path), format=fmt, **options)


def write(fmt, folder, images, category_ids=None):
    if fmt == "via":
        return write_via(folder, images)
    if fmt == "labelme":
        return write_labelme(folder, images)
    return write_coco(folder, images, category_ids)


def label_ids(dataset, images, reference):
    """(ids the dataset's load_mask gives, ids expected by name): each
    image's regions in file order, a region's expected id being its label's
    index in reference."""
    got, expected = [], []
    for image_id, labels in enumerate(images):
        _, class_ids = dataset.load_mask(image_id)
        got.append(class_ids.tolist())
        expected.append([reference.index(label) for label in labels])
    return got, expected


# COCO: the validation file numbers its categories its own way.
TRAIN_CATEGORIES = {"cat": 1, "dog": 2, "fox": 3}
VAL_CATEGORIES = {"fox": 7, "cat": 9}


@pytest.mark.parametrize("fmt", ["via", "labelme", "coco"])
def test_a_val_set_lacking_a_class_gets_the_training_ids_by_name(
        tmp_path, fmt):
    train = load(fmt, write(fmt, tmp_path / "train", TRAIN,
                            TRAIN_CATEGORIES))
    val = load(fmt, write(fmt, tmp_path / "val", VAL_WITHOUT_DOG,
                          VAL_CATEGORIES),
               reference_classes=train.class_names)
    assert val.class_names == train.class_names
    assert val.num_classes == train.num_classes == 4
    got, expected = label_ids(val, VAL_WITHOUT_DOG, train.class_names)
    assert got == expected
    # The training set is numbered as before: its own names, by label.
    got, expected = label_ids(train, TRAIN, train.class_names)
    assert got == expected


def test_without_a_reference_a_val_set_lacking_a_class_is_numbered_its_own_way(
        tmp_path):
    """What the reference is for: alone, "fox" takes "dog"'s id."""
    train = load("via", write_via(tmp_path / "train", TRAIN))
    val = load("via", write_via(tmp_path / "val", VAL_WITHOUT_DOG))
    assert val.class_names != train.class_names
    assert (val.class_names.index("fox")
            == train.class_names.index("dog"))


def test_coco_categories_of_an_aligned_set_stay_distinct_integers(tmp_path):
    """pycocotools sorts category ids: the placeholder of the absent class
    must be an integer no category of the file has."""
    train = load("coco", write_coco(tmp_path / "train", TRAIN,
                                    TRAIN_CATEGORIES))
    val = load("coco", write_coco(tmp_path / "val", VAL_WITHOUT_DOG,
                                  VAL_CATEGORIES),
               reference_classes=train.class_names)
    ids = [coco_eval.coco_category_id(val, c)
           for c in range(1, val.num_classes)]
    assert all(isinstance(i, int) for i in ids)
    assert len(set(ids)) == len(ids)
    assert ids[val.class_names.index("fox") - 1] == VAL_CATEGORIES["fox"]
    assert ids[val.class_names.index("cat") - 1] == VAL_CATEGORIES["cat"]


@pytest.mark.parametrize("fmt", ["via", "labelme", "coco"])
def test_a_class_the_model_does_not_know_names_the_file_and_the_class(
        tmp_path, fmt):
    images = [("cat",), ("wolf", "cat")]
    path = write(fmt, tmp_path / "val", images, {"cat": 1, "wolf": 2})
    with pytest.raises(ValueError) as error:
        load(fmt, path, reference_classes=["BG", "cat", "dog"])
    message = str(error.value)
    assert "'wolf'" in message
    # The file holding the class: the one json, or LabelMe's own file.
    expected = tmp_path / "val" / "img1.json" if fmt == "labelme" else path
    assert str(expected) in message


def test_a_subset_picked_with_class_names_keeps_the_reference_ids(tmp_path):
    """class_names leaves classes out (with a warning); the ones kept still
    get the reference's ids."""
    train = load("via", write_via(tmp_path / "train", TRAIN))
    with pytest.warns(UserWarning, match="dog"):
        val = load("via", write_via(tmp_path / "val", TRAIN),
                   class_names=["fox", "cat"],
                   reference_classes=train.class_names)
    assert val.class_names == train.class_names
    got, _ = label_ids(val, TRAIN, train.class_names)
    kept = [[train.class_names.index(label) for label in labels
             if label != "dog"] for labels in TRAIN]
    assert got == kept


############################################################
#  MaskRCNN.train
############################################################

@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from mrcnn import model as modellib
    from tests.tiny import TinyConfig
    model = modellib.MaskRCNN("training", TinyConfig(),
                              str(tmp_path_factory.mktemp("logs")))
    return model


@pytest.mark.parametrize("role", ["training", "validation"])
def test_train_refuses_a_dataset_of_another_class_count_before_any_step(
        tiny_model, tmp_path, monkeypatch, role):
    from samples.shapes.shapes import ShapesDataset
    shapes = ShapesDataset()
    shapes.load_shapes(2, 64, 64, seed=1)
    shapes.prepare()
    two_classes = load("via", write_via(tmp_path / "d", [("cat",)]),
                       class_names=["cat"])
    assert shapes.num_classes == tiny_model.config.NUM_CLASSES == 4
    steps = []
    monkeypatch.setattr(tiny_model.keras_model, "fit",
                        lambda *a, **k: steps.append(a))
    train, val = ((two_classes, shapes) if role == "training"
                  else (shapes, two_classes))
    with pytest.raises(ValueError) as error:
        tiny_model.train(train, val, learning_rate=0.01, epochs=1,
                         layers="heads", workers=1)
    message = str(error.value)
    assert role in message and "2 classes" in message
    assert "NUM_CLASSES is 4" in message
    assert steps == []
    assert not os.path.exists(tiny_model.log_dir) or not any(
        name.endswith(".h5") for name in os.listdir(tiny_model.log_dir))
