"""COCO metrics for any mrcnn Dataset (pycocotools COCOeval).

Its ground truth is turned into an in-memory COCO object (dataset_to_coco)
and the detections into COCO results (to_coco_results /
build_coco_results); coco_evaluate runs COCOeval on them.

COCO ids: images and classes of the "coco" source keep their COCO ids, so
results also match an official annotation file; any other source uses the
internal dataset ids (image index, class index).
"""

import contextlib
import io

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

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
