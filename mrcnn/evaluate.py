"""Evaluation of Mask R-CNN detections.

* COCO metrics (pycocotools COCOeval) for any mrcnn Dataset: its ground
  truth is turned into an in-memory COCO object (dataset_to_coco) and the
  detections into COCO results (to_coco_results / build_coco_results).
* matterport's per-image mean of utils.compute_ap (compute_map, and mAP50 /
  mAP in evaluate_model).
* EvaluationCallback: evaluates during training every N epochs and logs the
  metrics to TensorBoard.

COCO ids: images and classes of the "coco" source keep their COCO ids, so
results also match an official annotation file; any other source uses the
internal dataset ids (image index, class index).
"""

import contextlib
import io
import os
import re
import time

import keras
import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from tqdm import tqdm

from mrcnn import utils

# Names of COCOeval.stats, in order.
COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl",
                   "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")

IOU_TYPES = ("bbox", "segm")


############################################################
#  Ids and small helpers
############################################################

def coco_image_id(dataset, image_id):
    """The id of a dataset image in COCO ground truth and results.

    The COCO id for images of the "coco" source, else the internal id.
    """
    info = dataset.image_info[image_id]
    if info.get("source") == "coco":
        return info["id"]
    return int(image_id)


def coco_category_id(dataset, class_id):
    """The COCO category id of an internal class id.

    The source's own id for "coco" classes, else the internal id.
    """
    class_id = int(class_id)
    if not 0 < class_id < len(dataset.class_info):
        raise ValueError("class id {} is not an object class of the dataset "
                         "(ids 1..{})".format(class_id,
                                              len(dataset.class_info) - 1))
    if dataset.class_info[class_id]["source"] == "coco":
        return dataset.get_source_class_id(class_id, "coco")
    return class_id


def _describe_image(dataset, image_id):
    """'image 3 (id 'a.jpg' of source 'balloon')' for error messages."""
    info = dataset.image_info[image_id]
    return "image {} (id {!r} of source {!r})".format(
        image_id, info.get("id"), info.get("source"))


@contextlib.contextmanager
def _stdout_unless(verbose):
    """Silences pycocotools' prints unless verbose."""
    if verbose:
        yield
    else:
        with contextlib.redirect_stdout(io.StringIO()):
            yield


def _encode_mask(mask):
    """Binary mask [height, width] -> COCO compressed RLE."""
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


############################################################
#  Detections -> COCO results
############################################################

def build_coco_results(dataset, image_ids, rois, class_ids, scores, masks):
    """Turns the detections of one image into COCO result dicts.

    As matterport's COCO sample, every detection is emitted for each id in
    image_ids, so pass a single id: [coco_image_id].
    rois: [N, (y1, x1, y2, x2)] pixels; class_ids: [N] internal ids;
    scores: [N]; masks: [height, width, N] binary, or None for boxes only.
    Returns: list of {"image_id", "category_id", "bbox": [x, y, w, h],
        "score", "segmentation": RLE} dicts.
    """
    if rois is None:
        return []
    rois = np.asarray(rois).reshape(-1, 4)
    count = rois.shape[0]
    lengths = {"class_ids": len(class_ids), "scores": len(scores)}
    if masks is not None:
        lengths["masks (last axis)"] = np.shape(masks)[-1]
    if any(n != count for n in lengths.values()):
        raise ValueError("detections of image {} disagree: rois has {} rows "
                         "but {}".format(list(image_ids), count, lengths))
    results = []
    for image_id in image_ids:
        if isinstance(image_id, np.integer):
            image_id = int(image_id)  # keeps results JSON-serializable
        for i in range(count):
            y1, x1, y2, x2 = (float(v) for v in np.around(rois[i], 1))
            result = {
                "image_id": image_id,
                "category_id": coco_category_id(dataset, class_ids[i]),
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "score": float(scores[i]),
            }
            if masks is not None:
                result["segmentation"] = _encode_mask(masks[:, :, i])
            results.append(result)
    return results


def to_coco_results(dataset, image_ids, detections):
    """COCO results for detections of several dataset images.

    image_ids: internal dataset image ids.
    detections: one model.detect() dict per image (rois, class_ids, scores,
        masks), in the order of image_ids.
    """
    if len(image_ids) != len(detections):
        raise ValueError("{} image ids but {} detection dicts".format(
            len(image_ids), len(detections)))
    results = []
    for image_id, detection in zip(image_ids, detections):
        results.extend(build_coco_results(
            dataset, [coco_image_id(dataset, image_id)], detection["rois"],
            detection["class_ids"], detection["scores"],
            detection.get("masks")))
    return results


############################################################
#  Dataset -> COCO ground truth
############################################################

def _coco_categories(dataset):
    """COCO category records for every object class of the dataset."""
    return [{"id": coco_category_id(dataset, class_id),
             "name": info["name"], "supercategory": info["source"]}
            for class_id, info in enumerate(dataset.class_info)
            if class_id > 0]


def _ground_truth_records(dataset, image_id, masks, class_ids,
                          first_annotation_id):
    """COCO image record and annotation records of one dataset image.

    masks: [height, width, N]; class_ids: [N], negative for crowd regions.
    Empty masks are dropped: no detection could ever match them.
    """
    masks = np.asarray(masks)
    class_ids = np.asarray(class_ids).reshape(-1)
    if masks.ndim != 3 or masks.shape[-1] != class_ids.shape[0]:
        raise ValueError("{}: load_mask returned masks of shape {} and {} "
                         "class ids; expected [height, width, N] and N".format(
                             _describe_image(dataset, image_id), masks.shape,
                             class_ids.shape[0]))
    coco_id = coco_image_id(dataset, image_id)
    image_record = {"id": coco_id, "height": int(masks.shape[0]),
                    "width": int(masks.shape[1]),
                    "file_name": str(dataset.image_info[image_id]
                                     .get("path", ""))}
    annotations = []
    for i, class_id in enumerate(class_ids):
        rle = _encode_mask(masks[:, :, i])
        area = float(mask_utils.area(rle))
        if area == 0:
            continue
        if not 0 < abs(int(class_id)) < len(dataset.class_info):
            raise ValueError("{}: instance {} has class id {}, not a class "
                             "of the dataset".format(
                                 _describe_image(dataset, image_id), i,
                                 class_id))
        annotations.append({
            "id": first_annotation_id + len(annotations),
            "image_id": coco_id,
            "category_id": coco_category_id(dataset, abs(int(class_id))),
            "segmentation": rle,
            "area": area,
            "bbox": [float(v) for v in mask_utils.toBbox(rle)],
            "iscrowd": int(class_id < 0),
        })
    return image_record, annotations


def _make_coco(images, annotations, categories):
    """An indexed in-memory pycocotools COCO object."""
    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations,
                    "categories": categories}
    with _stdout_unless(False):
        coco.createIndex()
    return coco


def dataset_to_coco(dataset, image_ids=None):
    """Builds COCO ground truth in memory from a prepared mrcnn Dataset.

    Uses dataset.load_mask, so any loader can be scored with COCOeval.
    Instances with a negative class id (crowd regions, as the COCO loader
    returns them) become iscrowd=1 annotations.
    image_ids: internal ids to include (default: all).
    Returns: pycocotools.coco.COCO
    """
    image_ids = dataset.image_ids if image_ids is None else image_ids
    images, annotations = [], []
    for image_id in image_ids:
        masks, class_ids = dataset.load_mask(image_id)
        image_record, records = _ground_truth_records(
            dataset, image_id, masks, class_ids, len(annotations) + 1)
        images.append(image_record)
        annotations.extend(records)
    return _make_coco(images, annotations, _coco_categories(dataset))


############################################################
#  COCOeval
############################################################

def _load_results(coco_gt, coco_results, iou_type):
    """COCO results object for COCOeval, without mutating the input."""
    if isinstance(coco_results, COCO):
        return coco_results
    results = [dict(result) for result in coco_results]
    if not results:
        # loadRes cannot take an empty list; no detections simply score 0.
        return _make_coco(list(coco_gt.dataset["images"]), [],
                          list(coco_gt.dataset["categories"]))
    known = set(coco_gt.getImgIds())
    unknown = {r["image_id"] for r in results} - known
    if unknown:
        raise ValueError("results refer to image ids missing from the ground "
                         "truth: {}".format(sorted(unknown, key=str)[:10]))
    if iou_type == "segm":
        if any("segmentation" not in r for r in results):
            raise ValueError("segm evaluation needs a 'segmentation' in "
                             "every result")
        # Without "bbox", loadRes takes each area from the mask, as
        # COCOeval's segm area ranges expect (with it, the box area).
        for result in results:
            result.pop("bbox", None)
    with _stdout_unless(False):
        return coco_gt.loadRes(results)


def _per_class_ap(evaluator, coco_gt, iou_index=None):
    """AP per class name, area "all", 100 detections; -1 where undefined.

    iou_index: None averages over IoU thresholds, else one threshold's index.
    """
    precision = evaluator.eval["precision"]  # [T, R, K, A, M]
    if iou_index is not None:
        precision = precision[iou_index:iou_index + 1]
    per_class = {}
    for k, category_id in enumerate(evaluator.params.catIds):
        values = precision[:, :, k, 0, -1]
        values = values[values > -1]
        name = coco_gt.cats[category_id]["name"]
        per_class[name] = float(values.mean()) if values.size else -1.0
    return per_class


def coco_evaluate(coco_gt, coco_results, iou_type="bbox", image_ids=None,
                  verbose=False):
    """Runs COCOeval and returns its metrics as a dict.

    coco_gt: pycocotools COCO ground truth (e.g. from dataset_to_coco).
    coco_results: list of result dicts (e.g. from to_coco_results), or a
        COCO results object.
    iou_type: "bbox" or "segm".
    image_ids: COCO image ids to score (default: every ground-truth image;
        an image without results then counts its instances as missed).
    verbose: print pycocotools' progress and summary table.
    Returns: {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10",
        "AR100", "ARs", "ARm", "ARl": float (-1 where undefined),
        "per_class": {class name: AP}, "per_class_AP50": {class name: AP}}
    """
    if iou_type not in IOU_TYPES:
        raise ValueError("iou_type must be one of {}, got {!r}".format(
            IOU_TYPES, iou_type))
    coco_dt = _load_results(coco_gt, coco_results, iou_type)
    evaluator = COCOeval(coco_gt, coco_dt, iou_type)
    evaluator.params.imgIds = (sorted(coco_gt.getImgIds()) if image_ids is None
                               else list(image_ids))
    with _stdout_unless(verbose):
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    metrics = {name: float(value)
               for name, value in zip(COCO_STAT_NAMES, evaluator.stats)}
    metrics["per_class"] = _per_class_ap(evaluator, coco_gt)
    iou_50 = int(np.argmin(np.abs(evaluator.params.iouThrs - 0.5)))
    metrics["per_class_AP50"] = _per_class_ap(evaluator, coco_gt, iou_50)
    return metrics


############################################################
#  Running a model over a dataset
############################################################

def _select_image_ids(dataset, image_ids, limit):
    image_ids = list(dataset.image_ids if image_ids is None else image_ids)
    return image_ids[:limit] if limit else image_ids


def _detect_one_batch(model, images):
    """model.detect on a batch, one image at a time if the batch is refused
    (e.g. images that do not resize to one shape)."""
    try:
        return model.detect(images, verbose=0)
    except ValueError:
        if len(images) == 1:
            raise
        return [model.detect([image], verbose=0)[0] for image in images]


def _detect_images(model, dataset, image_ids, batch_size, verbose):
    """Yields (image_id, detection dict) for each image, with progress."""
    with tqdm(total=len(image_ids), desc="Evaluating", unit="image",
              disable=not verbose) as progress:
        for start in range(0, len(image_ids), batch_size):
            batch_ids = image_ids[start:start + batch_size]
            images = [dataset.load_image(i) for i in batch_ids]
            detections = _detect_one_batch(model, images)
            for image_id, image, detection in zip(batch_ids, images,
                                                  detections):
                masks = detection.get("masks")
                if masks is not None and masks.shape[:2] != image.shape[:2]:
                    raise ValueError(
                        "model.detect returned masks of shape {} for {} of "
                        "shape {}; masks must match the original image"
                        .format(masks.shape, _describe_image(dataset,
                                                             image_id),
                                image.shape))
                yield image_id, detection
            progress.update(len(batch_ids))


def _ground_truth_for_ap(masks, class_ids):
    """(boxes, class_ids, masks) without crowd/empty instances, or None
    when nothing is left (AP is undefined for such an image)."""
    masks = np.asarray(masks).astype(bool)
    class_ids = np.asarray(class_ids).reshape(-1)
    keep = (class_ids > 0) & masks.any(axis=(0, 1))
    if not keep.any():
        return None
    masks = masks[:, :, keep]
    return utils.extract_bboxes(masks), class_ids[keep], masks


def _detection_args(detection):
    return (detection["rois"], detection["class_ids"], detection["scores"],
            detection["masks"])


def _batch_size(model, config):
    config = config if config is not None else getattr(model, "config", None)
    return max(1, int(getattr(config, "BATCH_SIZE", 1) or 1))


def compute_map(model, dataset, image_ids, iou_threshold=0.5):
    """matterport's mAP: the mean over images of utils.compute_ap.

    Ground truth comes from dataset.load_mask at the original image size,
    the same frame as model.detect's output. Crowd instances are ignored and
    images without ground truth are skipped (AP is undefined there).
    Returns: float (NaN when no image has ground truth).
    """
    aps = []
    for image_id, detection in _detect_images(
            model, dataset, list(image_ids), _batch_size(model, None), False):
        ground_truth = _ground_truth_for_ap(*dataset.load_mask(image_id))
        if ground_truth is None:
            continue
        ap = utils.compute_ap(*ground_truth, *_detection_args(detection),
                              iou_threshold=iou_threshold)[0]
        aps.append(ap)
    return float(np.mean(aps)) if aps else float("nan")


def evaluate_model(model, dataset, config=None, image_ids=None,
                   iou_types=("bbox", "segm"), limit=None, verbose=True):
    """Detects every image of a dataset and scores the detections.

    model: an inference-mode MaskRCNN (anything with detect(images,
        verbose) returning matterport's list of dicts).
    dataset: a prepared mrcnn Dataset with ground truth masks.
    config: images per detect() call come from config.BATCH_SIZE (default:
        model.config, else 1).
    image_ids: internal ids to evaluate (default all); limit: first N only.
    iou_types: COCO evaluations to run, among "bbox" and "segm".
    verbose: progress bar, COCO tables and a summary line.
    Returns: {"bbox": coco_evaluate dict, "segm": ..., "mAP50": mean
        per-image utils.compute_ap at IoU 0.5, "mAP": mean per-image
        utils.compute_ap_range over 0.5:0.95, "num_images": int,
        "seconds_per_image": float}
    """
    unknown = set(iou_types) - set(IOU_TYPES)
    if unknown:
        raise ValueError("unknown iou_types {}; use {}".format(
            sorted(unknown), IOU_TYPES))
    image_ids = _select_image_ids(dataset, image_ids, limit)
    gt_images, gt_annotations, results = [], [], []
    aps_50, aps_range = [], []
    start = time.perf_counter()
    for image_id, detection in _detect_images(
            model, dataset, image_ids, _batch_size(model, config), verbose):
        masks, class_ids = dataset.load_mask(image_id)
        image_record, records = _ground_truth_records(
            dataset, image_id, masks, class_ids, len(gt_annotations) + 1)
        gt_images.append(image_record)
        gt_annotations.extend(records)
        results.extend(to_coco_results(dataset, [image_id], [detection]))

        ground_truth = _ground_truth_for_ap(masks, class_ids)
        if ground_truth is not None:
            predicted = _detection_args(detection)
            aps_50.append(utils.compute_ap(*ground_truth, *predicted,
                                           iou_threshold=0.5)[0])
            aps_range.append(utils.compute_ap_range(*ground_truth,
                                                    *predicted, verbose=0))
    elapsed = time.perf_counter() - start

    coco_gt = _make_coco(gt_images, gt_annotations, _coco_categories(dataset))
    metrics = {
        "num_images": len(image_ids),
        "seconds_per_image": elapsed / max(len(image_ids), 1),
        "mAP50": float(np.mean(aps_50)) if aps_50 else float("nan"),
        "mAP": float(np.mean(aps_range)) if aps_range else float("nan"),
    }
    for iou_type in iou_types:
        metrics[iou_type] = coco_evaluate(coco_gt, results, iou_type,
                                          verbose=verbose)
    if verbose:
        print(format_metrics(metrics))
    return metrics


def format_metrics(metrics):
    """One line summary of an evaluate_model dict."""
    parts = ["{} images".format(metrics.get("num_images", "?"))]
    for iou_type in IOU_TYPES:
        if iou_type in metrics:
            parts.append("{} AP={:.3f} AP50={:.3f} AP75={:.3f}".format(
                iou_type, metrics[iou_type]["AP"], metrics[iou_type]["AP50"],
                metrics[iou_type]["AP75"]))
    parts.append("mAP50={:.3f} mAP={:.3f}".format(metrics["mAP50"],
                                                   metrics["mAP"]))
    return " | ".join(parts)


def flatten_metrics(metrics, prefix=""):
    """{"bbox": {"AP": 0.5}} -> {"bbox/AP": 0.5}; keeps numbers only."""
    flat = {}
    for key, value in metrics.items():
        name = prefix + str(key)
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, name + "/"))
        elif isinstance(value, (int, float, np.number)):
            flat[name] = float(value)
    return flat


############################################################
#  Training callback
############################################################

def copy_weights_by_name(source_model, target_model):
    """Copies weights between Keras models layer by layer, matched by name.

    Layers without weights or missing from the source are left alone.
    Returns the number of layers copied; raises when none could be, or when
    a shared layer name holds weights of different shapes.
    """
    source_layers = {layer.name: layer for layer in source_model.layers}
    copied = 0
    for layer in target_model.layers:
        source = source_layers.get(layer.name)
        if source is None or not layer.weights:
            continue
        values = source.get_weights()
        expected = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != expected:
            raise ValueError("layer {!r}: training weights have shapes {} but "
                             "the inference layer expects {}".format(
                                 layer.name, [v.shape for v in values],
                                 expected))
        layer.set_weights(values)
        copied += 1
    if not copied:
        raise ValueError("no layer with weights shares a name between the "
                         "training and the inference model")
    return copied


class EvaluationCallback(keras.callbacks.Callback):
    """Evaluates the model being trained every `every` epochs.

    The training model cannot detect, so the callback copies its weights
    (by layer name) into an inference MaskRCNN, runs evaluate_model on the
    dataset, prints a summary line, adds "eval_*" entries to the epoch logs
    (so History / ModelCheckpoint can use them) and, with log_dir, writes
    the metrics as TensorBoard scalars under log_dir/eval.

    inference_model_factory_or_model: an inference MaskRCNN (anything with
        .keras_model and .detect), or a no-argument callable returning one;
        the callable is called once, at the first evaluation.
    dataset: prepared mrcnn Dataset; limit: evaluate its first N images.
    """

    def __init__(self, inference_model_factory_or_model, dataset, every=1,
                 limit=None, log_dir=None, iou_types=("bbox", "segm")):
        super().__init__()
        source = inference_model_factory_or_model
        if not hasattr(source, "detect") and not callable(source):
            raise TypeError("expected an inference model (with .detect and "
                            ".keras_model) or a callable returning one, got "
                            "{!r}".format(type(source).__name__))
        if int(every) < 1:
            raise ValueError("every must be >= 1, got {}".format(every))
        self._inference_source = source
        self._inference_model = source if hasattr(source, "detect") else None
        self.dataset = dataset
        self.every = int(every)
        self.limit = limit
        self.log_dir = log_dir
        self.iou_types = tuple(iou_types)
        self.history = []  # (epoch, metrics) per evaluation
        self._writer = None

    def inference_model(self):
        """The inference model, built from the factory on first use."""
        if self._inference_model is None:
            self._inference_model = self._inference_source()
        return self._inference_model

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        inference = self.inference_model()
        copy_weights_by_name(self.model, inference.keras_model)
        metrics = evaluate_model(inference, self.dataset,
                                 iou_types=self.iou_types, limit=self.limit,
                                 verbose=False)
        self.history.append((epoch, metrics))
        print("\nEpoch {} evaluation: {}".format(epoch + 1,
                                                 format_metrics(metrics)))
        scalars = flatten_metrics(metrics)
        if logs is not None:
            for name, value in scalars.items():
                logs["eval_" + name.replace("/", "_")] = value
        if self.log_dir:
            self._write_summaries(scalars, epoch)

    def _write_summaries(self, scalars, step):
        import tensorflow as tf  # lazy: only needed for TensorBoard logs

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(
                os.path.join(self.log_dir, "eval"))
        # tf.summary.scalar needs the tensorboard package; writing the same
        # record (a float32 tagged for the "scalars" plugin) does not.
        metadata = tf.compat.v1.SummaryMetadata()
        metadata.plugin_data.plugin_name = "scalars"
        with self._writer.as_default():
            for name, value in scalars.items():
                # Class names may hold characters summary names reject.
                tag = re.sub(r"[^A-Za-z0-9_./-]", "_", name)
                tf.summary.write(tag, tf.constant(value, tf.float32),
                                 step=step, metadata=metadata)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
