"""Checks of a COCO instances json, without decoding images."""

import os

from mrcnn.datasets import coco as coco_format
from mrcnn.datasets import instances
from mrcnn.datasets.check import common
from mrcnn.datasets.check.problem import ERROR, WARNING, Collector


def check_coco_json(data, json_path, image_dir=None,
                    apply_exif_orientation=None):
    """Problems of parsed COCO json. apply_exif_orientation: read the
    images in their EXIF-upright frame (default: stored, as pycocotools)."""
    out = Collector(json_path)
    if image_dir is None:
        image_dir = coco_format.default_image_dir(json_path)
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key, []), list):
            out.add(ERROR, json_path, "'{}' must be a list".format(key))
            return out.problems
    categories = _coco_categories(data, out)
    images = _coco_images(data, os.fspath(image_dir),
                          bool(apply_exif_orientation), out)
    extents = {}
    for index, annotation in enumerate(data.get("annotations", [])):
        extent = _check_coco_annotation(annotation, index, images,
                                        categories, out)
        if extent is not None:
            extents.setdefault(annotation["image_id"], []).append(extent)
    for image_id, image_extents in extents.items():
        path, height, width, tag = images[image_id]
        common.check_frame(
            instances.union_extent(image_extents), height, width, tag,
            bool(apply_exif_orientation),
            lambda severity, message, path=path: out.add(
                severity, path, "{}: {}".format(json_path, message)))
    return out.problems


def _coco_categories(data, out):
    categories = {}
    for category in data.get("categories", []):
        if not isinstance(category, dict) or "id" not in category:
            out.add(ERROR, out.json_path, "category without id: {!r}".format(
                category))
        elif not isinstance(category.get("name"), str):
            out.add(ERROR, out.json_path, "category {!r} has no name".format(
                category["id"]))
        elif category["id"] in categories:
            out.add(ERROR, out.json_path, "category id {} appears twice"
                    .format(category["id"]))
        else:
            categories[category["id"]] = category.get("name")
    if not categories:
        out.add(ERROR, out.json_path, "no categories")
    return categories



def _coco_images(data, image_dir, upright, out):
    """{image id: (path, height, width, EXIF orientation)} after checking
    each record; the size is the json's, else the file's frame."""
    images = {}
    for record in data.get("images", []):
        if not isinstance(record, dict) or "id" not in record \
                or "file_name" not in record:
            out.add(ERROR, out.json_path, "image record without id or "
                                          "file_name: {!r}".format(record))
            continue
        path = os.path.normpath(os.path.join(image_dir, record["file_name"]))
        if record["id"] in images:
            out.add(ERROR, path, "{}: image id {} appears twice".format(
                out.json_path, record["id"]))
            continue

        def report(severity, message, path=path):
            out.add(severity, path, "{}: {}".format(out.json_path, message))

        height, width, tag = common.image_frame(path, upright, report)
        size = (record.get("height"), record.get("width"))
        if height is not None and None not in size \
                and (height, width) != tuple(size):
            out.add(ERROR, path, "{}: json says {}x{} (height x width) but "
                    "the file is {}x{}{}".format(
                        out.json_path, size[0], size[1], height, width,
                        " upright" if upright and tag != 1 else ""))
        images[record["id"]] = (path, size[0] or height, size[1] or width,
                                tag)
    return images


def _check_coco_annotation(annotation, index, images, categories, out):
    """Reports an annotation's problems; returns its polygons' extent (None
    for an RLE or unusable polygons)."""
    ann_id = annotation.get("id", "#{}".format(index)) \
        if isinstance(annotation, dict) else "#{}".format(index)
    if not isinstance(annotation, dict) \
            or annotation.get("image_id") not in images:
        out.add(ERROR, out.json_path, "annotation {} refers to unknown image "
                "id {!r}".format(ann_id, annotation.get("image_id")
                                 if isinstance(annotation, dict) else None))
        return None
    path, height, width, _ = images[annotation["image_id"]]

    def report(severity, message):
        out.add(severity, path, "{}: annotation {}: {}".format(
            out.json_path, ann_id, message))

    if annotation.get("category_id") not in categories:
        report(ERROR, "unknown category id {!r}".format(
            annotation.get("category_id")))
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, list):
        return _check_coco_polygons(segmentation, height, width, report)
    if isinstance(segmentation, dict):
        _check_coco_rle(segmentation, height, width,
                        bool(annotation.get("iscrowd")), report)
    else:
        report(ERROR, "no segmentation (polygon list or RLE dict)")
    return None


def _check_coco_polygons(polygons, height, width, report):
    """Reports the polygons' problems; returns the extent of the readable
    ones (None when there is none)."""
    usable, extents = 0, []
    for number, polygon in enumerate(polygons):
        what = "polygon {}".format(number)
        if not isinstance(polygon, list) or len(polygon) % 2:
            report(ERROR, "{}: expected a flat list [x1, y1, x2, y2, ...]"
                   .format(what))
            continue
        points = common.check_points(report, polygon[0::2], polygon[1::2],
                                     height, width, what)
        if points is None:
            continue
        extents.append(instances.points_extent(*points))
        if len(polygon) < 6:
            report(WARNING, "{}: fewer than 3 points (no area; dropped)"
                   .format(what))
        else:
            usable += 1
    if not usable and polygons:
        report(WARNING, "no usable polygon (annotation dropped)")
    return instances.union_extent(extents)

def _check_coco_rle(rle, height, width, crowd, report):
    if "counts" not in rle or "size" not in rle:
        report(ERROR, "RLE needs 'counts' and 'size'")
        return
    if height is not None and list(rle["size"]) != [height, width]:
        if crowd:
            report(WARNING, "crowd RLE size {} differs from the image "
                            "{}x{}: the whole image is ignored".format(
                                rle["size"], height, width))
        else:
            report(ERROR, "RLE size {} differs from the image size "
                          "[{}, {}]".format(rle["size"], height, width))
        return
    try:
        coco_format.ann_to_mask({"segmentation": rle}, *rle["size"])
    except Exception as error:  # noqa: BLE001
        report(ERROR, "RLE cannot be decoded: {}".format(error))

