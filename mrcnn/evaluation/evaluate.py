"""Evaluation of Mask R-CNN detections.

* COCO metrics (pycocotools COCOeval) for any mrcnn Dataset: its ground
  truth is turned into an in-memory COCO object (dataset_to_coco) and the
  detections into COCO results (to_coco_results / build_coco_results);
  these live in ``mrcnn.evaluation.coco_eval`` and are re-exported here.
* matterport's per-image mean of compute_ap (compute_map, and mAP50 /
  mAP in evaluate_model).
* Error analysis (mrcnn.evaluation.error_analysis): per-class AP comes with the COCO
  metrics, and evaluate_model adds a confusion matrix of the matched
  instances (metrics["confusion"]); mrcnn.visualize.plot_confusion_matrix
  and plot_per_class_ap draw them.
* EvaluationCallback: evaluates during training every N epochs and logs the
  metrics to TensorBoard.

COCO ids: images and classes of the "coco" source keep their COCO ids, so
results also match an official annotation file; any other source uses the
internal dataset ids (image index, class index).
"""

import os
import re
import time

import keras
import numpy as np
from tqdm import tqdm

from mrcnn.evaluation.matching import compute_ap, compute_ap_range
from mrcnn.structures.boxes import extract_bboxes
from mrcnn.evaluation import error_analysis
# Re-exports: the COCO half of the evaluation lives in mrcnn.evaluation.coco_eval.
from mrcnn.evaluation.coco_eval import (COCO_STAT_NAMES,  # noqa: F401
                                        IOU_TYPES, _coco_categories,
                                        _describe_image, _ground_truth_records,
                                        _make_coco, build_coco_results,
                                        coco_category_id, coco_evaluate,
                                        coco_image_id, dataset_to_coco,
                                        to_coco_results)


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
    return extract_bboxes(masks), class_ids[keep], masks


def _detection_args(detection):
    return (detection["rois"], detection["class_ids"], detection["scores"],
            detection["masks"])


def _batch_size(model, config):
    config = config if config is not None else getattr(model, "config", None)
    return max(1, int(getattr(config, "BATCH_SIZE", 1) or 1))


def compute_map(model, dataset, image_ids, iou_threshold=0.5):
    """matterport's mAP: the mean over images of compute_ap.

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
        ap = compute_ap(*ground_truth, *_detection_args(detection),
                              iou_threshold=iou_threshold)[0]
        aps.append(ap)
    return float(np.mean(aps)) if aps else float("nan")


def _image_aps(masks, class_ids, detection):
    """(AP at IoU 0.5, AP over 0.5:0.95) of one image by compute_ap,
    or None when it has no ground truth (AP undefined)."""
    ground_truth = _ground_truth_for_ap(masks, class_ids)
    if ground_truth is None:
        return None
    predicted = _detection_args(detection)
    return (compute_ap(*ground_truth, *predicted,
                             iou_threshold=0.5)[0],
            compute_ap_range(*ground_truth, *predicted, verbose=0))


def evaluate_model(model, dataset, config=None, image_ids=None,
                   iou_types=("bbox", "segm"), limit=None, verbose=True,
                   confusion_iou=0.5, confusion_iou_type="segm"):
    """Detects every image of a dataset and scores the detections.

    model: an inference-mode MaskRCNN (anything with detect(images,
        verbose) returning matterport's list of dicts).
    dataset: a prepared mrcnn Dataset with ground truth masks.
    config: images per detect() call come from config.BATCH_SIZE (default:
        model.config, else 1).
    image_ids: internal ids to evaluate (default all); limit: first N only.
    iou_types: COCO evaluations to run, among "bbox" and "segm".
    verbose: progress bar, COCO tables and a summary line.
    confusion_iou, confusion_iou_type: IoU threshold and kind ("segm":
        masks, "bbox": boxes) of the confusion matrix's matching.
    Returns: {"bbox": coco_evaluate dict (with "per_class" AP), "segm": ...,
        "confusion": error_analysis.confusion_summary dict, "mAP50": mean
        per-image compute_ap at IoU 0.5, "mAP": mean per-image
        compute_ap_range over 0.5:0.95, "num_images": int,
        "seconds_per_image": float}
    """
    unknown = set(iou_types) - set(IOU_TYPES)
    if unknown:
        raise ValueError("unknown iou_types {}; use {}".format(
            sorted(unknown), IOU_TYPES))
    image_ids = _select_image_ids(dataset, image_ids, limit)
    gt_images, gt_annotations, results = [], [], []
    aps = []  # (AP50, AP 0.5:0.95) per image with ground truth
    confusion = np.zeros((dataset.num_classes,) * 2, dtype=np.int64)
    start = time.perf_counter()
    for image_id, detection in _detect_images(
            model, dataset, image_ids, _batch_size(model, config), verbose):
        masks, class_ids = dataset.load_mask(image_id)
        image_record, records = _ground_truth_records(
            dataset, image_id, masks, class_ids, len(gt_annotations) + 1)
        gt_images.append(image_record)
        gt_annotations.extend(records)
        results.extend(to_coco_results(dataset, [image_id], [detection]))
        image_aps = _image_aps(masks, class_ids, detection)
        if image_aps is not None:
            aps.append(image_aps)
        confusion += error_analysis.image_confusion(
            class_ids, masks, detection, dataset.num_classes, confusion_iou,
            confusion_iou_type)
    elapsed = time.perf_counter() - start

    coco_gt = _make_coco(gt_images, gt_annotations, _coco_categories(dataset))
    metrics = {
        "num_images": len(image_ids),
        "seconds_per_image": elapsed / max(len(image_ids), 1),
        "mAP50": float(np.mean([a[0] for a in aps])) if aps else float("nan"),
        "mAP": float(np.mean([a[1] for a in aps])) if aps else float("nan"),
        "confusion": error_analysis.confusion_summary(
            confusion, dataset.class_names, confusion_iou, confusion_iou_type),
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
