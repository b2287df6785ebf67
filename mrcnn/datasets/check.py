"""Find what is wrong with a dataset before training on it.

Three levels, each returning a list of :class:`Problem`:

* :func:`check_annotation_file` reads one COCO / VIA / LabelMe json and finds
  what a loader would choke on (broken json, unknown image file or class,
  NaN or out-of-range coordinates) without decoding any image;
* :func:`check_dataset` reads every image and mask of a prepared
  :class:`mrcnn.utils.Dataset` (any subclass, yours too) and checks what
  training relies on;
* :func:`check_path` does both for a path, detecting its format; this is
  what ``mrcnn check-dataset PATH`` runs.

A problem with severity "error" stops training or corrupts it; a
"warning" is worth a look (clipped points, images without instances).
"""

import dataclasses
import hashlib
import os
import warnings

import numpy as np

from mrcnn.datasets import coco as coco_format
from mrcnn.datasets import labelme as labelme_format
from mrcnn.datasets import masks as mask_tools
from mrcnn.datasets import via as via_format

ERROR = "error"
WARNING = "warning"


@dataclasses.dataclass(frozen=True)
class Problem:
    """One problem: severity ("error" | "warning"), file (the image file or
    annotation file, or an image reference where there is no file), and
    message (what is wrong)."""

    severity: str
    file: str
    message: str

    def __post_init__(self):
        if self.severity not in (ERROR, WARNING):
            raise ValueError("severity must be 'error' or 'warning', not {!r}"
                             .format(self.severity))

    @property
    def is_error(self):
        return self.severity == ERROR

    def __str__(self):
        return "{}: {}: {}".format(self.severity, self.file, self.message)


def has_errors(problems):
    """True when any problem is an error (the dataset is unusable)."""
    return any(p.is_error for p in problems)


# ---------------------------------------------------------------------------
# Prepared datasets
# ---------------------------------------------------------------------------

def check_dataset(dataset):
    """Read every image and mask of a prepared Dataset; list the problems.

    Errors: unreadable or missing images, images that are not [H, W, 3],
    image_info sizes that differ from the file, masks that fail to load,
    masks whose size differs from the image, mask/class-id count mismatch,
    class ids 0 or out of range, empty instance masks, the same file listed
    twice. Warnings: images with no instances, identical image files under
    two names, non-bool masks.
    """
    if not hasattr(dataset, "class_from_source_map"):
        return [Problem(ERROR, type(dataset).__name__,
                        "dataset is not prepared: call prepare() first")]
    problems = []
    name = type(dataset).__name__
    if dataset.num_images == 0:
        problems.append(Problem(ERROR, name, "dataset has no images"))
    if dataset.num_classes < 2:
        problems.append(Problem(ERROR, name,
                                "dataset has no classes besides BG"))
    seen = {"paths": {}, "hashes": {}}
    for image_id in dataset.image_ids:
        problems += _check_one_image(dataset, image_id, seen)
    return problems


def describe_image(dataset, image_id):
    """The file path of an image, else its image_reference, else its id."""
    info = dataset.image_info[image_id]
    path = info.get("path")
    if isinstance(path, (str, os.PathLike)) and os.fspath(path):
        return os.path.normpath(os.fspath(path))
    try:
        reference = dataset.image_reference(image_id)
    except Exception:  # noqa: BLE001 - a broken override must not stop us
        reference = None
    return str(reference or "image {} (id {!r})".format(image_id,
                                                         info.get("id")))


def _check_one_image(dataset, image_id, seen):
    where = describe_image(dataset, image_id)
    problems = []

    def report(severity, message):
        problems.append(Problem(severity, where, message))

    path = dataset.image_info[image_id].get("path")
    _check_duplicate_path(path, image_id, seen, report)
    try:
        image = dataset.load_image(image_id)
    except Exception as error:  # noqa: BLE001
        report(ERROR, "cannot read image: {}".format(error))
        return problems
    _check_image_array(dataset, image_id, image, report)
    _check_duplicate_content(path, image, image_id, seen, report)
    try:
        mask, class_ids = dataset.load_mask(image_id)
    except Exception as error:  # noqa: BLE001
        report(ERROR, "cannot load masks: {}".format(error))
        return problems
    _check_masks(dataset, image, mask, class_ids, report)
    return problems


def _check_duplicate_path(path, image_id, seen, report):
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        return
    key = os.path.abspath(os.fspath(path))
    if key in seen["paths"]:
        report(ERROR, "the same image file is listed twice (images {} and "
                      "{}): its annotations are split".format(
                          seen["paths"][key], image_id))
    else:
        seen["paths"][key] = image_id


def _check_duplicate_content(path, image, image_id, seen, report):
    if isinstance(path, (str, os.PathLike)) and os.path.isfile(path):
        with open(path, "rb") as f:
            digest = hashlib.sha1(f.read()).hexdigest()
    else:
        digest = hashlib.sha1(np.ascontiguousarray(image).tobytes()) \
            .hexdigest()
    first = seen["hashes"].setdefault(digest, (image_id, path))
    if first[0] != image_id and os.path.abspath(os.fspath(first[1] or "")) \
            != os.path.abspath(os.fspath(path or "")):
        report(WARNING, "identical to image {} ({})".format(first[0],
                                                            first[1]))


def _check_image_array(dataset, image_id, image, report):
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        report(ERROR, "load_image gave shape {}; expected [height, width, 3]"
               .format(list(image.shape)))
    elif image.dtype != np.uint8:
        report(WARNING, "load_image gave dtype {}; expected uint8".format(
            image.dtype))
    info = dataset.image_info[image_id]
    size = (info.get("height"), info.get("width"))
    if None not in size and tuple(image.shape[:2]) != tuple(size):
        report(ERROR, "image_info says {}x{} (height x width) but the image "
                      "is {}x{}".format(size[0], size[1], *image.shape[:2]))


def _check_masks(dataset, image, mask, class_ids, report):
    mask, class_ids = np.asarray(mask), np.asarray(class_ids)
    if mask.ndim != 3:
        report(ERROR, "load_mask gave masks of shape {}; expected "
                      "[height, width, instances]".format(list(mask.shape)))
        return
    if class_ids.ndim != 1 or len(class_ids) != mask.shape[2]:
        report(ERROR, "{} masks but {} class ids".format(
            mask.shape[2], class_ids.size))
        return
    if tuple(mask.shape[:2]) != tuple(np.shape(image)[:2]):
        report(ERROR, "masks are {}x{} but the image is {}x{}".format(
            mask.shape[0], mask.shape[1], *np.shape(image)[:2]))
    if mask.dtype != bool:
        values = np.unique(mask)
        severity = WARNING if set(values.tolist()) <= {0, 1} else ERROR
        report(severity, "masks have dtype {} (values {}); expected bool"
               .format(mask.dtype, values[:5].tolist()))
    if mask.shape[2] == 0:
        report(WARNING, "no instances")
    _check_instances(dataset, mask, class_ids, report)


def _check_instances(dataset, mask, class_ids, report):
    if class_ids.size and class_ids.dtype.kind not in "iu":
        report(ERROR, "class ids have dtype {}; expected integers".format(
            class_ids.dtype))
        return
    pixels = mask.astype(bool).sum(axis=(0, 1))
    for index, (class_id, count) in enumerate(zip(class_ids, pixels)):
        # Negative ids mark crowd regions (COCO), so the range is on |id|.
        if class_id == 0 or abs(int(class_id)) >= dataset.num_classes:
            report(ERROR, "instance {}: class id {} is out of range "
                          "1..{}".format(index, class_id,
                                         dataset.num_classes - 1))
        elif count == 0:
            report(ERROR, "instance {} ({}): empty mask".format(
                index, dataset.class_names[abs(int(class_id))]))


# ---------------------------------------------------------------------------
# Annotation files
# ---------------------------------------------------------------------------

def check_annotation_file(path, format=None, **options):  # noqa: A002
    """Check one annotation json without decoding images.

    format: "coco", "via" or "labelme" (default: from the content).
    options: the loader's options that change what is valid: image_dir
        (COCO), class_attribute, class_names, default_class (VIA),
        class_names (LabelMe).
    """
    path = os.fspath(path)
    try:
        data = mask_tools.read_json(path)
    except (OSError, ValueError) as error:
        return [Problem(ERROR, os.path.normpath(path), str(error))]
    format = format or json_format(data)
    checkers = {"coco": _check_coco_json, "via": _check_via_json,
                "labelme": _check_labelme_json}
    if format not in checkers:
        return [Problem(ERROR, path, "not a COCO, VIA or LabelMe annotation "
                                     "file")]
    return checkers[format](data, path, **_options_for(format, options))


def json_format(data):
    """"coco", "via", "labelme" or None for parsed json."""
    if coco_format.is_coco_json(data):
        return "coco"
    if labelme_format.is_labelme_json(data):
        return "labelme"
    if isinstance(data, dict) and "_via_img_metadata" in data:
        return "via"
    if isinstance(data, dict) and data and all(
            isinstance(v, dict) and "filename" in v for v in data.values()):
        return "via"
    return None


_OPTIONS = {"coco": ("image_dir",),
            "via": ("class_attribute", "class_names", "default_class"),
            "labelme": ("class_names",)}


def _options_for(format, options):  # noqa: A002
    return {k: v for k, v in options.items() if k in _OPTIONS[format]}


class _Collector:
    """Collects problems about one annotation file."""

    def __init__(self, json_path):
        self.json_path = json_path
        self.problems = []

    def add(self, severity, where, message):
        self.problems.append(Problem(severity, os.path.normpath(where),
                                     message))


def _check_points(report, xs, ys, height, width, what):
    """Report NaN/unreadable (error) and out-of-image (warning) points.

    Returns (xs, ys) as float arrays, or None when they are unusable.
    Points at x = width or y = height sit on the border and are fine.
    (VIA and LabelMe shapes are validated first, so only COCO polygons
    reach the error branches.)
    """
    try:
        xs = mask_tools.finite_coordinates(xs, "x coordinates")
        ys = mask_tools.finite_coordinates(ys, "y coordinates")
    except ValueError as error:
        report(ERROR, "{}: {}".format(what, error))
        return None
    if len(xs) != len(ys):
        report(ERROR, "{}: {} x but {} y coordinates".format(what, len(xs),
                                                             len(ys)))
        return None
    if (xs < 0).any() or (ys < 0).any():
        report(WARNING, "{}: negative coordinates (clipped to the image)"
               .format(what))
    if height is not None and ((xs > width).any() or (ys > height).any()):
        report(WARNING, "{}: points beyond the {}x{} image (clipped)".format(
            what, width, height))
    return xs, ys


def _image_size_or_report(path, report):
    """(height, width) from the header, or (None, None) after reporting."""
    try:
        return mask_tools.read_image_size(path)
    except FileNotFoundError:
        report(ERROR, "image file not found")
    except ValueError as error:
        report(ERROR, str(error))
    return None, None


# --- COCO -------------------------------------------------------------------

def _check_coco_json(data, json_path, image_dir=None):
    out = _Collector(json_path)
    if image_dir is None:
        image_dir = coco_format.default_image_dir(json_path)
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key, []), list):
            out.add(ERROR, json_path, "'{}' must be a list".format(key))
            return out.problems
    categories = _coco_categories(data, out)
    images = _coco_images(data, os.fspath(image_dir), out)
    for index, annotation in enumerate(data.get("annotations", [])):
        _check_coco_annotation(annotation, index, images, categories, out)
    return out.problems


def _coco_categories(data, out):
    categories = {}
    for category in data.get("categories", []):
        if not isinstance(category, dict) or "id" not in category:
            out.add(ERROR, out.json_path, "category without id: {!r}".format(
                category))
        elif category["id"] in categories:
            out.add(ERROR, out.json_path, "category id {} appears twice"
                    .format(category["id"]))
        else:
            categories[category["id"]] = category.get("name")
    if not categories:
        out.add(ERROR, out.json_path, "no categories")
    return categories


def _coco_images(data, image_dir, out):
    """{image id: (path, height, width)} after checking each record."""
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

        height, width = _image_size_or_report(path, report)
        size = (record.get("height"), record.get("width"))
        if height is not None and None not in size \
                and (height, width) != tuple(size):
            out.add(ERROR, path, "{}: json says {}x{} (height x width) but "
                    "the file is {}x{}".format(out.json_path, size[0],
                                               size[1], height, width))
        images[record["id"]] = (path, size[0] or height, size[1] or width)
    return images


def _check_coco_annotation(annotation, index, images, categories, out):
    ann_id = annotation.get("id", "#{}".format(index)) \
        if isinstance(annotation, dict) else "#{}".format(index)
    if not isinstance(annotation, dict) \
            or annotation.get("image_id") not in images:
        out.add(ERROR, out.json_path, "annotation {} refers to unknown image "
                "id {!r}".format(ann_id, annotation.get("image_id")
                                 if isinstance(annotation, dict) else None))
        return
    path, height, width = images[annotation["image_id"]]

    def report(severity, message):
        out.add(severity, path, "{}: annotation {}: {}".format(
            out.json_path, ann_id, message))

    if annotation.get("category_id") not in categories:
        report(ERROR, "unknown category id {!r}".format(
            annotation.get("category_id")))
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, list):
        _check_coco_polygons(segmentation, height, width, report)
    elif isinstance(segmentation, dict):
        _check_coco_rle(segmentation, height, width,
                        bool(annotation.get("iscrowd")), report)
    else:
        report(ERROR, "no segmentation (polygon list or RLE dict)")


def _check_coco_polygons(polygons, height, width, report):
    usable = 0
    for number, polygon in enumerate(polygons):
        what = "polygon {}".format(number)
        if not isinstance(polygon, list) or len(polygon) % 2:
            report(ERROR, "{}: expected a flat list [x1, y1, x2, y2, ...]"
                   .format(what))
            continue
        if _check_points(report, polygon[0::2], polygon[1::2], height, width,
                         what) is not None:
            if len(polygon) < 6:
                report(WARNING, "{}: fewer than 3 points (no area; dropped)"
                       .format(what))
            else:
                usable += 1
    if not usable and polygons:
        report(WARNING, "no usable polygon (annotation dropped)")


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


# --- VIA --------------------------------------------------------------------

def _check_via_json(data, json_path, class_attribute=None, class_names=None,
                    default_class="object"):
    out = _Collector(json_path)
    try:
        entries = via_format.via_entries(data, json_path)
    except ValueError as error:
        out.add(ERROR, json_path, str(error))
        return out.problems
    image_dir = os.path.dirname(json_path)
    default_class = via_format.single_class_name(class_attribute, class_names,
                                                 default_class)
    seen = {}
    for entry in entries:
        path = os.path.normpath(os.path.join(image_dir, entry["filename"]))

        def report(severity, message, path=path):
            out.add(severity, path, "{}: {}".format(json_path, message))

        if path in seen:
            report(ERROR, "image {} has two entries: its regions are split"
                   .format(entry["filename"]))
        seen[path] = True
        height, width = _image_size_or_report(path, report)
        for index, region in enumerate(via_format.entry_regions(entry)):
            _check_via_region(region, index, (height, width), report,
                              class_attribute, class_names, default_class)
    return out.problems


def _check_via_region(region, index, image_shape, report, class_attribute,
                      class_names, default_class):
    what = "region {}".format(index)
    try:
        name = via_format.region_class(region, class_attribute,
                                       default_class)
    except ValueError as error:
        report(ERROR, "{}: {}".format(what, error))
        return
    _check_class_name(name, class_names, class_attribute, what, report)
    shape = region.get("shape_attributes") or {}
    kind = shape.get("name")
    if kind in via_format.SKIPPED_SHAPES:
        report(WARNING, "{}: {} shape has no area (skipped)".format(what,
                                                                   kind))
        return
    try:
        via_format.validate_shape(shape)  # what the loader rejects
    except ValueError as error:
        report(ERROR, "{}: {}".format(what, error))
        return
    height, width = image_shape
    points = _check_points(report, *_via_points(shape), height, width, what)
    if kind in ("polygon", "polyline"):
        _check_polygon_area(*points, image_shape, what, report)
    elif height is not None:
        _check_rasterises(via_format.shape_mask, shape, image_shape, what,
                          report)


def _via_points(shape):
    """(xs, ys) that define a valid VIA shape, for the bounds check."""
    kind = shape.get("name")
    if kind in ("polygon", "polyline"):
        return shape["all_points_x"], shape["all_points_y"]
    if kind == "rect":
        x, y, w, h = (float(shape[k]) for k in ("x", "y", "width", "height"))
        return [x, x + w], [y, y + h]
    return [shape["cx"]], [shape["cy"]]


def _check_class_name(name, class_names, class_attribute, what, report):
    if name is None:
        report(ERROR, "{}: no {!r} attribute and no default class".format(
            what, class_attribute))
    elif class_names is not None and name not in class_names:
        report(WARNING, "{}: unknown class {!r} (not in class_names; "
                        "skipped)".format(what, name))


def _check_polygon_area(xs, ys, image_shape, what, report):
    """Polygons without area or wholly outside the image are dropped by the
    loaders. (Checked from the points: rasterising is slow for big ones.)"""
    height, width = image_shape
    if len(xs) < 3:
        report(WARNING, "{}: fewer than 3 points (no area; dropped)".format(
            what))
    elif height is not None and (max(xs) < 0 or max(ys) < 0
                                 or min(xs) > width - 1
                                 or min(ys) > height - 1):
        report(WARNING, "{}: wholly outside the {}x{} image (dropped)"
               .format(what, width, height))


def _check_rasterises(shape_mask, shape, image_shape, what, report):
    """Run the loader's rasteriser: errors and empty results are found as
    the loader would meet them."""
    try:
        mask = shape_mask(shape, image_shape)
    except (ValueError, TypeError) as error:
        report(ERROR, "{}: {}".format(what, error))
        return
    if mask is not None and not mask.any():
        report(WARNING, "{}: no pixel inside the image (dropped)".format(
            what))


# --- LabelMe ----------------------------------------------------------------

def _check_labelme_json(data, json_path, class_names=None):
    out = _Collector(json_path)
    if not labelme_format.is_labelme_json(data):
        out.add(ERROR, json_path, "not a LabelMe annotation")
        return out.problems
    image_path = os.path.normpath(os.path.join(os.path.dirname(json_path),
                                               data.get("imagePath") or ""))
    where = image_path if data.get("imagePath") else json_path

    def report(severity, message):
        out.add(severity, where, "{}: {}".format(json_path, message))

    height, width = _labelme_image_size(data, image_path, report)
    for index, shape in enumerate(data.get("shapes") or []):
        _check_labelme_shape(shape, index, (height, width), class_names,
                             report)
    return out.problems


def _labelme_image_size(data, image_path, report):
    if data.get("imagePath") and os.path.isfile(image_path):
        height, width = _image_size_or_report(image_path, report)
    elif data.get("imageData"):
        try:
            height, width = labelme_format.decode_image_data(
                data["imageData"], "imageData").shape[:2]
        except ValueError as error:
            report(ERROR, str(error))
            return None, None
    else:
        report(ERROR, "image file not found and no imageData")
        return None, None
    stated = (data.get("imageHeight"), data.get("imageWidth"))
    if height is not None and None not in stated \
            and tuple(stated) != (height, width):
        report(WARNING, "json says {}x{} (height x width) but the image is "
                        "{}x{} (the image size is used)".format(
                            stated[0], stated[1], height, width))
    return height, width


def _check_labelme_shape(shape, index, image_shape, class_names, report):
    what = "shape {}".format(index)
    try:
        labelme_format.validate_shape(shape)  # what the loader rejects
    except ValueError as error:
        report(ERROR, "{}: {}".format(what, error))
        return
    label = shape["label"]
    if label not in labelme_format.IGNORED_LABELS:
        _check_class_name(label, class_names, None, what, report)
    kind = shape.get("shape_type") or "polygon"
    if kind in labelme_format.SKIPPED_SHAPES:
        report(WARNING, "{}: {} has no area (skipped)".format(what, kind))
        return
    points = np.reshape(np.asarray(shape["points"], dtype=np.float64),
                        (-1, 2))
    height, width = image_shape
    _check_points(report, points[:, 0], points[:, 1], height, width, what)
    if kind == "polygon":
        _check_polygon_area(points[:, 0], points[:, 1], image_shape, what,
                            report)
    elif height is not None:
        _check_rasterises(labelme_format.shape_mask, shape, image_shape,
                          what, report)


# ---------------------------------------------------------------------------
# Whole paths (the CLI's entry point)
# ---------------------------------------------------------------------------

def check_path(path, format=None, subset=None, **options):  # noqa: A002
    """Detect the format of ``path`` and list every problem found.

    path: a COCO/VIA/LabelMe json file or a dataset folder (VIA folder,
        LabelMe folder, masks folder; with ``subset``, ``path/subset``).
    options: passed to the loader (class_attribute, class_names, ...).
    The dataset is then loaded and every image and mask read
    (:func:`check_dataset`); problems already reported for an image by the
    annotation check are not repeated. Any "error" means unusable.
    """
    from mrcnn.datasets import locate_dataset, load_dataset

    try:
        format, target, load_options = locate_dataset(path, format, subset)
    except (OSError, ValueError) as error:
        return [Problem(ERROR, os.fspath(path), str(error))]
    problems = _check_annotations(format, target, load_options, options)
    broken_files = {p.file for p in problems if p.is_error
                    and p.file.lower().endswith(".json")}
    if broken_files & _annotation_files(format, target):
        return problems  # the loader would stop at the same point
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skipped images/classes: reported
        try:
            dataset = load_dataset(target, format=format, skip_missing=True,
                                   **load_options, **options)
        except Exception as error:  # noqa: BLE001
            return problems + [Problem(ERROR, os.fspath(target),
                                       "cannot load the dataset: {}".format(
                                           error))]
    reported = {p.file for p in problems if p.is_error}
    return problems + [p for p in check_dataset(dataset)
                       if p.file not in reported]


def _annotation_files(format, target):  # noqa: A002
    """Normalised annotation json paths of a located dataset."""
    if format in ("coco", "via"):
        return {os.path.normpath(target)}
    if format == "labelme":
        return {os.path.normpath(p)
                for p in labelme_format.labelme_json_files(target)}
    return set()


def _check_annotations(format, target, load_options, options):  # noqa: A002
    options = dict(options, **load_options)
    if format == "labelme":
        return [p for path in labelme_format.labelme_json_files(target)
                for p in check_annotation_file(path, "labelme", **options)]
    if format in ("coco", "via"):
        return check_annotation_file(target, format, **options)
    return []
