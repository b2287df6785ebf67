"""Tests of mrcnn.evaluation.evaluate against pycocotools and hand-worked values."""
import glob
import os

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mrcnn import utils
from mrcnn.evaluation import evaluate

# COCO interpolates precision at 101 recall points (0, 0.01, ..., 1).
# With precision 1 up to recall 0.5 and nothing beyond, 51 of them count.
HALF_RECALL_COCO_AP = 51 / 101


def rect_mask(shape, y1, x1, y2, x2):
    mask = np.zeros(shape, dtype=bool)
    mask[y1:y2, x1:x2] = True
    return mask


class InMemoryDataset(utils.Dataset):
    """Images of a constant value (their index) with given instance masks."""

    def __init__(self, entries, class_names=("a", "b"), source="toy",
                 image_ids=None):
        super().__init__()
        for class_id, name in enumerate(class_names, 1):
            self.add_class(source, class_id, name)
        for index, (masks, class_ids) in enumerate(entries):
            self.add_image(source,
                           image_id=(image_ids[index] if image_ids
                                     else "img{}".format(index)),
                           path="mem://{}".format(index),
                           masks=np.asarray(masks),
                           class_ids=np.asarray(class_ids, dtype=np.int32))
        self.prepare()

    def load_image(self, image_id):
        masks = self.image_info[image_id]["masks"]
        return np.full(masks.shape[:2] + (3,), image_id, dtype=np.uint8)

    def load_mask(self, image_id):
        info = self.image_info[image_id]
        return info["masks"].astype(bool), info["class_ids"]


def perfect_detection(masks, class_ids, keep=None):
    """detect()-style dict reproducing the ground truth (positive ids)."""
    masks = np.asarray(masks).astype(bool)
    class_ids = np.asarray(class_ids)
    keep = np.where(class_ids > 0)[0] if keep is None else np.asarray(keep)
    keep = keep.astype(np.int64)
    masks = masks[:, :, keep]
    return {"rois": utils.extract_bboxes(masks),
            "class_ids": class_ids[keep].astype(np.int32),
            "scores": np.linspace(0.99, 0.9, len(keep)).astype(np.float32),
            "masks": masks}


class FakeModel:
    """detect() looks detections up by the image's pixel value (its id)."""

    def __init__(self, detections_by_image):
        self.detections_by_image = detections_by_image
        self.calls = 0

    def detect(self, images, verbose=0):
        self.calls += 1
        return [self.detections_by_image[int(image[0, 0, 0])]
                for image in images]


def two_image_dataset():
    shape = (64, 64)
    entries = [
        (np.stack([rect_mask(shape, 2, 2, 20, 30),
                   rect_mask(shape, 30, 10, 60, 40),
                   rect_mask(shape, 5, 40, 25, 62)], axis=-1), [1, 2, 1]),
        (np.stack([rect_mask(shape, 10, 10, 50, 50)], axis=-1), [2]),
    ]
    return InMemoryDataset(entries)


def square_uncompressed_rle(size, top, left, side):
    """Column-major run lengths of a square, written out by hand."""
    first = left * size + top
    runs = [first]
    for _ in range(side - 1):
        runs += [side, size - side]
    rest = size - top - side + (size - left - side) * size
    runs += [side, rest]
    assert sum(runs) == size * size
    return {"size": [size, size], "counts": runs}


############################################################
#  Perfect and partial detections through evaluate_model
############################################################

def test_perfect_detections_score_one():
    dataset = two_image_dataset()
    model = FakeModel({i: perfect_detection(*dataset.load_mask(i))
                       for i in dataset.image_ids})
    metrics = evaluate.evaluate_model(model, dataset, verbose=False)
    for iou_type in ("bbox", "segm"):
        for name in ("AP", "AP50", "AP75", "AR100"):
            assert metrics[iou_type][name] == pytest.approx(1.0), (
                iou_type, name)
        assert metrics[iou_type]["per_class"] == {"a": 1.0, "b": 1.0}
    assert metrics["mAP50"] == pytest.approx(1.0)
    assert metrics["mAP"] == pytest.approx(1.0)
    assert metrics["num_images"] == 2


def test_half_detections_give_recall_limited_ap():
    shape = (64, 64)
    masks = np.stack([rect_mask(shape, 0, 0, 20, 20),
                      rect_mask(shape, 0, 30, 20, 50),
                      rect_mask(shape, 30, 0, 50, 20),
                      rect_mask(shape, 30, 30, 50, 50)], axis=-1)
    dataset = InMemoryDataset([(masks, [1, 1, 1, 1])])
    model = FakeModel({0: perfect_detection(masks, [1, 1, 1, 1],
                                            keep=[0, 2])})
    metrics = evaluate.evaluate_model(model, dataset, verbose=False)
    for iou_type in ("bbox", "segm"):
        assert metrics[iou_type]["AP"] == pytest.approx(HALF_RECALL_COCO_AP)
        assert metrics[iou_type]["AR100"] == pytest.approx(0.5)
    # VOC-style area: precision 1 over recall 0..0.5, then 0.
    assert metrics["mAP50"] == pytest.approx(0.5)
    assert metrics["mAP"] == pytest.approx(0.5)
    assert evaluate.compute_map(model, dataset, [0]) == pytest.approx(0.5)


def test_limit_and_image_ids_select_images():
    dataset = two_image_dataset()
    model = FakeModel({i: perfect_detection(*dataset.load_mask(i))
                       for i in dataset.image_ids})
    metrics = evaluate.evaluate_model(model, dataset, limit=1,
                                      iou_types=("bbox",), verbose=False)
    assert metrics["num_images"] == 1 and "segm" not in metrics
    assert model.calls == 1
    # Class "b" has one instance in image 0: it alone scores class b.
    assert metrics["bbox"]["per_class"]["b"] == pytest.approx(1.0)


def test_no_detections_score_zero():
    dataset = two_image_dataset()
    empty = {"rois": np.zeros((0, 4), np.int32),
             "class_ids": np.zeros((0,), np.int32),
             "scores": np.zeros((0,), np.float32),
             "masks": np.zeros((64, 64, 0), bool)}
    model = FakeModel({0: empty, 1: empty})
    metrics = evaluate.evaluate_model(model, dataset, verbose=False)
    assert metrics["bbox"]["AP"] == 0.0 and metrics["segm"]["AP"] == 0.0
    assert metrics["mAP50"] == 0.0


def test_detect_masks_of_wrong_size_raise():
    dataset = two_image_dataset()
    bad = perfect_detection(*dataset.load_mask(0))
    bad["masks"] = bad["masks"][:32]
    with pytest.raises(ValueError, match="image 0"):
        evaluate.evaluate_model(FakeModel({0: bad}), dataset, limit=1,
                                verbose=False)


############################################################
#  coco_evaluate against COCOeval run directly
############################################################

def run_cocoeval(gt_dict, results, iou_type):
    gt = COCO()
    gt.dataset = gt_dict
    gt.createIndex()
    evaluator = COCOeval(gt, gt.loadRes(results), iou_type)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return evaluator.stats


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_shifted_box_matches_direct_cocoeval(iou_type):
    size = 64
    # Ground truth: a 20x20 square at rows/cols 10..29. Detection: the same
    # square 4 rows lower -> IoU = 16*20 / (2*400 - 320) = 2/3.
    gt_mask = rect_mask((size, size), 10, 10, 30, 30)
    det_mask = rect_mask((size, size), 14, 10, 34, 30)
    dataset = InMemoryDataset([(gt_mask[..., None], [1])],
                              class_names=("a",))
    detection = {"rois": np.array([[14, 10, 34, 30]]),
                 "class_ids": np.array([1]), "scores": np.array([0.9]),
                 "masks": det_mask[..., None]}
    ours = evaluate.coco_evaluate(
        evaluate.dataset_to_coco(dataset),
        evaluate.to_coco_results(dataset, [0], [detection]), iou_type)

    gt_dict = {
        "images": [{"id": 0, "height": size, "width": size}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [{
            "id": 1, "image_id": 0, "category_id": 1, "iscrowd": 0,
            "area": 400, "bbox": [10, 10, 20, 20],
            "segmentation": square_uncompressed_rle(size, 10, 10, 20)}]}
    if iou_type == "bbox":
        results = [{"image_id": 0, "category_id": 1, "score": 0.9,
                    "bbox": [10, 14, 20, 20]}]
    else:
        rle = mask_utils.frPyObjects(
            square_uncompressed_rle(size, 14, 10, 20), size, size)
        results = [{"image_id": 0, "category_id": 1, "score": 0.9,
                    "segmentation": rle}]
    direct = run_cocoeval(gt_dict, results, iou_type)

    got = [ours[name] for name in evaluate.COCO_STAT_NAMES]
    np.testing.assert_allclose(got, direct)
    # Hand check: matched at IoU 0.50, 0.55, 0.60, 0.65 -> 4 of 10.
    assert ours["AP"] == pytest.approx(0.4)
    assert ours["AP50"] == pytest.approx(1.0) and ours["AP75"] == 0.0
    assert ours["APs"] == pytest.approx(0.4) and ours["APl"] == -1.0
    assert ours["per_class"] == {"a": pytest.approx(0.4)}


def test_per_class_ap():
    shape = (64, 64)
    masks = np.stack([rect_mask(shape, 0, 0, 20, 20),
                      rect_mask(shape, 30, 30, 60, 60),
                      rect_mask(shape, 0, 30, 20, 60)], axis=-1)
    class_ids = [1, 1, 2]
    dataset = InMemoryDataset([(masks, class_ids)],
                              class_names=("a", "b", "c"))
    # Both "a" instances found, the "b" one missed, no "c" anywhere.
    detection = perfect_detection(masks, class_ids, keep=[0, 1])
    results = evaluate.to_coco_results(dataset, [0], [detection])
    metrics = evaluate.coco_evaluate(evaluate.dataset_to_coco(dataset),
                                     results, "segm")
    assert metrics["per_class"] == {"a": 1.0, "b": 0.0, "c": -1.0}
    assert metrics["per_class_AP50"] == {"a": 1.0, "b": 0.0, "c": -1.0}
    assert metrics["AP"] == pytest.approx(0.5)  # mean over a and b


def test_crowd_regions_are_ignored():
    shape = (64, 64)
    person = rect_mask(shape, 0, 0, 20, 20)
    crowd = rect_mask(shape, 30, 30, 60, 60)
    dataset = InMemoryDataset([(np.stack([person, crowd], -1), [1, -1])],
                              class_names=("person",))
    coco_gt = evaluate.dataset_to_coco(dataset)
    assert sorted(a["iscrowd"] for a in coco_gt.dataset["annotations"]) == [
        0, 1]
    # One detection on the person, a better-scored one inside the crowd.
    detection = {"rois": np.array([[30, 30, 45, 45], [0, 0, 20, 20]]),
                 "class_ids": np.array([1, 1]),
                 "scores": np.array([0.95, 0.9]),
                 "masks": np.stack([rect_mask(shape, 30, 30, 45, 45),
                                    person], -1)}
    results = evaluate.to_coco_results(dataset, [0], [detection])
    assert evaluate.coco_evaluate(coco_gt, results, "segm")["AP"] == (
        pytest.approx(1.0))

    # The same ground truth without the crowd flag scores lower, so the
    # flag is what made the crowd region harmless.
    for annotation in coco_gt.dataset["annotations"]:
        annotation["iscrowd"] = 0
    coco_gt.createIndex()
    assert evaluate.coco_evaluate(coco_gt, results, "segm")["AP"] < 0.99


def test_unknown_result_image_raises():
    dataset = two_image_dataset()
    results = [{"image_id": 99, "category_id": 1, "score": 0.5,
                "bbox": [0, 0, 5, 5]}]
    with pytest.raises(ValueError, match="99"):
        evaluate.coco_evaluate(evaluate.dataset_to_coco(dataset), results)


def test_bad_load_mask_names_the_image():
    shape = (32, 32)
    dataset = InMemoryDataset([(np.zeros(shape + (2,), bool), [1])])
    with pytest.raises(ValueError, match="image 0 .*img0"):
        evaluate.dataset_to_coco(dataset)


############################################################
#  Results format
############################################################

def test_build_coco_results_round_trip():
    rng = np.random.default_rng(0)
    masks = rng.random((40, 50, 3)) > 0.6
    rois = np.array([[1, 2, 30, 40], [0, 0, 10, 10], [5, 6, 7, 8]])
    dataset = InMemoryDataset([], class_names=("a", "b"))
    results = evaluate.build_coco_results(
        dataset, [7], rois, np.array([1, 2, 1]),
        np.array([0.9, 0.8, 0.7], np.float32), masks)
    assert len(results) == 3
    for i, result in enumerate(results):
        np.testing.assert_array_equal(
            mask_utils.decode(result["segmentation"]), masks[:, :, i])
        y1, x1, y2, x2 = rois[i]
        assert result["bbox"] == [x1, y1, x2 - x1, y2 - y1]
        assert result["image_id"] == 7
    assert [r["category_id"] for r in results] == [1, 2, 1]
    assert results[1]["score"] == pytest.approx(0.8)
    assert evaluate.build_coco_results(dataset, [7], None, None, None,
                                       None) == []


def test_coco_source_keeps_coco_ids():
    shape = (32, 32)
    dataset = utils.Dataset()
    dataset.add_class("coco", 18, "dog")
    dataset.add_class("coco", 3, "car")
    dataset.add_image("coco", image_id=397133, path="x.jpg", height=32,
                      width=32)
    dataset.prepare()
    dataset.load_mask = lambda image_id: (
        rect_mask(shape, 2, 2, 12, 12)[..., None], np.array([2]))
    detection = perfect_detection(*dataset.load_mask(0))
    results = evaluate.to_coco_results(dataset, [0], [detection])
    assert results[0]["category_id"] == 3 and results[0]["image_id"] == 397133
    coco_gt = evaluate.dataset_to_coco(dataset)
    assert coco_gt.getImgIds() == [397133]
    assert sorted(coco_gt.getCatIds()) == [3, 18]
    assert evaluate.coco_evaluate(coco_gt, results, "segm")["AP"] == (
        pytest.approx(1.0))


def test_mismatched_detection_lengths_raise():
    dataset = InMemoryDataset([], class_names=("a",))
    with pytest.raises(ValueError, match="rois has 2 rows"):
        evaluate.build_coco_results(dataset, [0], np.zeros((2, 4)),
                                    np.array([1]), np.array([0.5, 0.4]),
                                    None)


############################################################
#  Training callback
############################################################

def _gate_detector(dataset):
    """Inference stand-in: perfect detections only when its "gate" layer
    holds the trained weights (all ones)."""
    import keras

    inputs = keras.Input((2,))
    keras_model = keras.Model(
        inputs, keras.layers.Dense(1, name="gate",
                                   kernel_initializer="zeros")(inputs))
    perfect = {i: perfect_detection(*dataset.load_mask(i))
               for i in dataset.image_ids}
    empty = {"rois": np.zeros((0, 4)), "class_ids": np.zeros((0,), int),
             "scores": np.zeros((0,)), "masks": np.zeros((64, 64, 0), bool)}

    class GateModel:
        def detect(self, images, verbose=0):
            trained = np.all(keras_model.get_layer("gate").get_weights()[0]
                             == 1)
            return [perfect[int(image[0, 0, 0])] if trained else empty
                    for image in images]

    model = GateModel()
    model.keras_model = keras_model
    return model


def _training_model(kernel_size=2):
    import keras

    inputs = keras.Input((kernel_size,))
    hidden = keras.layers.Dense(1, name="gate", kernel_initializer="ones")(
        inputs)
    outputs = keras.layers.Dense(1, name="training_only")(hidden)
    return keras.Model(inputs, outputs)


def test_evaluation_callback_copies_weights_and_logs(tmp_path):
    import tensorflow as tf

    dataset = two_image_dataset()
    inference = _gate_detector(dataset)
    factory_calls = []

    def factory():
        factory_calls.append(1)
        return inference

    callback = evaluate.EvaluationCallback(factory, dataset, every=2,
                                           log_dir=str(tmp_path))
    callback.set_model(_training_model())
    logs = {}
    callback.on_epoch_end(0, logs)  # not an evaluation epoch
    assert logs == {} and callback.history == [] and factory_calls == []

    callback.on_epoch_end(1, logs)
    assert factory_calls == [1]
    assert logs["eval_segm_AP"] == pytest.approx(1.0)
    assert logs["eval_bbox_AP"] == pytest.approx(1.0)
    assert logs["eval_mAP50"] == pytest.approx(1.0)
    callback.on_epoch_end(3, logs)
    assert factory_calls == [1]  # the factory runs once
    callback.on_train_end()

    events = glob.glob(os.path.join(str(tmp_path), "eval", "events.*"))
    assert events
    logged = {}
    for path in events:
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                logged[(value.tag, event.step)] = float(
                    tf.make_ndarray(value.tensor))
    assert logged[("segm/AP", 1)] == pytest.approx(1.0)
    assert logged[("bbox/per_class/a", 3)] == pytest.approx(1.0)


def test_evaluation_callback_rejects_mismatched_layers():
    dataset = two_image_dataset()
    callback = evaluate.EvaluationCallback(_gate_detector(dataset), dataset)
    callback.set_model(_training_model(kernel_size=3))
    with pytest.raises(ValueError, match="gate"):
        callback.on_epoch_end(0, {})
    with pytest.raises(TypeError):
        evaluate.EvaluationCallback(42, dataset)


############################################################
#  Real loaders
############################################################

def test_coco_loader_scores_like_its_annotation_file(tmp_path):
    """dataset_to_coco of a CocoDataset evaluates exactly like the json."""
    import json

    from mrcnn.datasets import CocoDataset

    square = [[4, 4, 24, 4, 24, 24, 4, 24]]
    crowd = mask_utils.encode(np.asfortranarray(
        rect_mask((48, 48), 30, 30, 46, 46).astype(np.uint8)))
    crowd["counts"] = crowd["counts"].decode("ascii")
    gt = {
        "images": [{"id": 42, "width": 48, "height": 48, "file_name": "a"},
                   {"id": 7, "width": 48, "height": 48, "file_name": "b"}],
        "categories": [{"id": 5, "name": "cat"}, {"id": 9, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 42, "category_id": 5, "iscrowd": 0,
             "segmentation": square, "area": 400, "bbox": [4, 4, 20, 20]},
            {"id": 2, "image_id": 42, "category_id": 9, "iscrowd": 1,
             "segmentation": crowd, "area": 256, "bbox": [30, 30, 16, 16]},
            {"id": 3, "image_id": 7, "category_id": 9, "iscrowd": 0,
             "segmentation": [[2, 2, 14, 2, 14, 40, 2, 40]], "area": 456,
             "bbox": [2, 2, 12, 38]}]}
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(gt))
    dataset = CocoDataset()
    dataset.load_coco(str(path), image_dir=str(tmp_path))
    dataset.prepare()

    # Image 42: the cat shifted; a dog inside the crowd. Image 7: nothing.
    cat, dog = (dataset.map_source_class_id("coco.5"),
                dataset.map_source_class_id("coco.9"))
    detections = {
        42: {"rois": np.array([[6, 4, 26, 24], [32, 32, 40, 40]]),
             "class_ids": np.array([cat, dog]),
             "scores": np.array([0.8, 0.9]),
             "masks": np.stack([rect_mask((48, 48), 6, 4, 26, 24),
                                rect_mask((48, 48), 32, 32, 40, 40)], -1)},
        7: {"rois": np.zeros((0, 4)), "class_ids": np.zeros((0,), int),
            "scores": np.zeros((0,)), "masks": np.zeros((48, 48, 0), bool)}}
    ids = list(dataset.image_ids)
    results = evaluate.to_coco_results(
        dataset, ids, [detections[dataset.image_info[i]["id"]] for i in ids])

    ours = evaluate.coco_evaluate(evaluate.dataset_to_coco(dataset), results,
                                  "segm")
    official = evaluate.coco_evaluate(COCO(str(path)), results, "segm")
    for name in evaluate.COCO_STAT_NAMES:
        assert ours[name] == pytest.approx(official[name]), name
    assert ours["per_class"] == pytest.approx(official["per_class"])
    assert ours["per_class"]["dog"] == 0.0  # the crowd dog is not found
    assert 0 < ours["per_class"]["cat"] < 1


def test_balloon_ground_truth_round_trip(balloon_path):
    from mrcnn.datasets import load_dataset

    dataset = load_dataset(str(balloon_path), subset="val")
    ids = list(dataset.image_ids[:2])
    coco_gt = evaluate.dataset_to_coco(dataset, ids)
    instances = sum(dataset.load_mask(i)[0].any(axis=(0, 1)).sum()
                    for i in ids)
    assert len(coco_gt.dataset["annotations"]) == instances > 0
    detections = [perfect_detection(*dataset.load_mask(i)) for i in ids]
    results = evaluate.to_coco_results(dataset, ids, detections)
    for iou_type in ("bbox", "segm"):
        metrics = evaluate.coco_evaluate(coco_gt, results, iou_type)
        assert metrics["AP"] == pytest.approx(1.0)
        assert metrics["per_class"] == {
            dataset.class_names[1]: pytest.approx(1.0)}
