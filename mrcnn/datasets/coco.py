"""Datasets in MS COCO json format (instances), through pycocotools.

Two ways to call :meth:`CocoDataset.load_coco`:

* ``load_coco("annotations.json", "images/")``: any COCO-format file and the
  folder of its images (default: the json's folder, or its ``images/``);
* matterport's ``load_coco(dataset_dir, subset, year="2014")``, which reads
  ``dataset_dir/annotations/instances_{subset}{year}.json`` and the images in
  ``dataset_dir/{subset}{year}/`` ("minival" and "valminusminival" use
  ``val{year}/``).

Segmentations may be polygons, uncompressed RLE or compressed RLE. Crowd
annotations (``iscrowd: 1``) come back with NEGATIVE class ids, as in
matterport's COCO sample, so training can use them to ignore those areas.
"""

import contextlib
import io
import os
import warnings

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from mrcnn.structures.dataset import Dataset
from mrcnn.structures import dropped
from mrcnn.datasets import instances
from mrcnn.datasets import loader_tools as mask_tools

DEFAULT_DATASET_YEAR = "2014"


def is_coco_json(data):
    """True for parsed json that looks like COCO instances annotations."""
    return isinstance(data, dict) and "images" in data and (
        "annotations" in data or "categories" in data)


def coco_from_json(annotation_json):
    """A pycocotools COCO object; errors name the file."""
    data = mask_tools.read_json(annotation_json)
    if not is_coco_json(data):
        raise ValueError("{}: not COCO json (needs 'images', 'annotations' "
                         "and 'categories')".format(annotation_json))
    data.setdefault("annotations", [])
    data.setdefault("categories", [])
    check_records(data, annotation_json)
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # "creating index..."
        coco.createIndex()
    return coco


# The fields a loader needs in each record (pycocotools indexes by them).
REQUIRED_FIELDS = (("images", "image", ("id", "file_name")),
                   ("categories", "category", ("id", "name")),
                   ("annotations", "annotation",
                    ("id", "image_id", "category_id")))


def check_records(data, annotation_json):
    """ValueError naming the file and the record when a record of COCO json
    is not an object or lacks a field the loader needs (REQUIRED_FIELDS)."""
    for key, what, fields in REQUIRED_FIELDS:
        records = data[key]
        if not isinstance(records, list):
            raise ValueError("{}: '{}' must be a list".format(annotation_json,
                                                             key))
        for index, record in enumerate(records):
            missing = [f for f in fields if not isinstance(record, dict)
                       or f not in record]
            if missing:
                raise ValueError("{}: {} #{} (id {!r}) has no {}: {!r}".format(
                    annotation_json, what, index, record.get("id")
                    if isinstance(record, dict) else None,
                    ", ".join(repr(f) for f in missing), record))


def ann_to_rle(annotation, height, width):
    """Compressed RLE of an annotation's segmentation in an image of
    [height, width]. Polygons with fewer than 3 points are dropped (they
    have no area, and pycocotools would read a 2-point one as a box);
    polygons reaching past the image are clipped to it first (a vertex far
    outside would cost pycocotools seconds and hundreds of MB)."""
    segmentation = annotation["segmentation"]
    if isinstance(segmentation, list):
        polygons = [clipped_polygon(p, height, width) for p in segmentation
                    if len(p) >= 6]
        polygons = [p for p in polygons if len(p) >= 6]
        if not polygons:
            return mask_utils.encode(np.zeros((height, width), np.uint8,
                                              order="F"))
        return mask_utils.merge(mask_utils.frPyObjects(polygons, height,
                                                       width))
    if isinstance(segmentation.get("counts"), list):  # uncompressed RLE
        return mask_utils.frPyObjects(segmentation, height, width)
    return segmentation


def clipped_polygon(polygon, height, width):
    """A flat COCO polygon [x1, y1, ...] clipped to a box around a
    [height, width] image, 16 image sizes beyond it on each side; as is when
    it fits there.

    The box keeps the outline short (a vertex at 1e7 would cost pycocotools
    seconds and hundreds of MB) and the in-image pixels those of the whole
    polygon; the box is that wide because pycocotools rounds vertices to
    1/5 pixel, so a new vertex near the image would turn the edges through
    it enough to move a border pixel now and then.
    """
    values = np.asarray(polygon, dtype=np.float64)
    xs, ys = values[0::2], values[1::2]
    margin = 16 * max(height, width)
    x_min, y_min = -margin, -margin
    x_max, y_max = width + margin, height + margin
    if xs.min() >= x_min and ys.min() >= y_min and xs.max() <= x_max \
            and ys.max() <= y_max:
        return polygon
    xs, ys = mask_tools.clip_polygon(xs, ys, x_min, y_min, x_max, y_max)
    return np.stack([xs, ys], axis=1).reshape(-1).tolist()


def ann_to_mask(annotation, height, width):
    """Bool mask [h, w] of an annotation; an RLE keeps its own size."""
    rle = ann_to_rle(annotation, height, width)
    with warnings.catch_warnings():
        # pycocotools' decode trips numpy 2's __array__(copy=) deprecation.
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)


class CocoDataset(Dataset):
    """COCO images and instance annotations (see the module doc)."""

    def load_coco(self, annotation_json, image_dir=None, class_ids=None,
                  return_coco=False, skip_empty=False, year=None,
                  class_map=None, auto_download=False, skip_missing=False):
        """Add the images of a COCO annotation file.

        annotation_json: the json file, or matterport's dataset_dir (then
            ``image_dir`` is the subset name, e.g. "train").
        image_dir: folder of the images (``file_name`` is relative to it).
        class_ids: COCO category ids to load (default all); annotations of
            other categories are left out.
        return_coco: also return the pycocotools COCO object (also kept as
            ``self.coco``), for evaluation.
        skip_empty: leave out images with no annotation of the loaded
            classes. In matterport's call style with class_ids, images
            without those classes are always left out, as matterport does.
        year: dataset year in matterport's call style (default: the only
            ``instances_{subset}*.json`` there, else "2014").
        class_map: accepted for matterport compatibility; unused.
        auto_download: not supported here (no download); the files must be
            in place.
        skip_missing: leave out images whose file is absent, with a
            warning (default: not checked until load_image).
        """
        annotation_json = os.fspath(annotation_json)
        matterport_style = os.path.isdir(annotation_json)
        if matterport_style and year is None and _looks_like_year(class_ids):
            # matterport's third positional argument is the year.
            year, class_ids = str(class_ids), None
        if matterport_style:
            annotation_json, image_dir = _matterport_paths(
                annotation_json, image_dir, year, auto_download)
            skip_empty = skip_empty or class_ids is not None
        elif image_dir is None:
            image_dir = default_image_dir(annotation_json)
        coco = coco_from_json(annotation_json)
        self.coco = coco

        all_class_ids = sorted(coco.getCatIds())
        class_ids = all_class_ids if class_ids is None else sorted(class_ids)
        unknown = sorted(set(class_ids) - set(all_class_ids))
        if unknown:
            raise ValueError("{}: no categories with ids {}".format(
                annotation_json, unknown))
        for class_id in class_ids:
            self.add_class("coco", class_id, coco.cats[class_id]["name"])

        unknown = []
        for image_id in sorted(coco.getImgIds()):
            unknown += self._add_coco_image(coco, image_id,
                                            os.fspath(image_dir), class_ids,
                                            skip_empty, skip_missing)
        warn_unknown_categories(annotation_json, unknown)
        if return_coco:
            return coco

    def _add_coco_image(self, coco, image_id, image_dir, class_ids,
                        skip_empty, skip_missing):
        """Adds one image; returns [(image id, annotation)] of its
        annotations whose category is not in the file (dropped)."""
        record = coco.imgs[image_id]
        wanted = set(class_ids)
        annotations = [a for a in coco.imgToAnns.get(image_id, [])
                       if a.get("category_id") in wanted]
        unknown = [a for a in coco.imgToAnns.get(image_id, [])
                   if a.get("category_id") not in coco.cats]
        if skip_empty and not annotations:
            return [(image_id, a) for a in unknown]
        path = os.path.join(image_dir, record["file_name"])
        if skip_missing and not os.path.isfile(path):
            warnings.warn("COCO image {} not found ({}); skipped".format(
                image_id, path), stacklevel=3)
            return [(image_id, a) for a in unknown]
        self.add_image("coco", image_id=image_id, path=path,
                       width=record.get("width"), height=record.get("height"),
                       annotations=annotations,
                       unknown_category=[a["id"] for a in unknown],
                       coco_url=record.get("coco_url"))
        return [(image_id, a) for a in unknown]

    def load_mask(self, image_id):
        """Instance masks of an image.

        Returns (bool [height, width, N], int32 class ids [N]). Crowd
        annotations have negative class ids; annotations under 1 pixel or
        of a category the file does not have are dropped, with a warning
        naming the image (mrcnn.structures.dropped).
        """
        info = self.image_info[image_id]
        if info["source"] != "coco":
            return super().load_mask(image_id)
        unknown = len(info.get("unknown_category", ()))
        dropped.report(self, image_id, "unknown_category", unknown,
                       unknown + len(info["annotations"]))
        height, width = _image_shape(info)
        masks, class_ids, extents = [], [], []
        for annotation in info["annotations"]:
            class_id = mask_tools.internal_class_id(
                self, "coco", annotation["category_id"])
            mask = self._annotation_mask(info, annotation, height, width)
            if annotation.get("iscrowd"):
                class_id = -class_id
            masks.append(mask)
            class_ids.append(class_id)
            extents.append(segmentation_extent(annotation))
        return instances.keep_drawn(self, image_id, masks, class_ids, extents,
                                    (height, width))

    def _annotation_mask(self, info, annotation, height, width):
        try:
            mask = ann_to_mask(annotation, height, width)
        except Exception as error:  # noqa: BLE001 - pycocotools raises bare
            raise ValueError("COCO image {} ({}), annotation {}: bad "
                             "segmentation: {}".format(
                                 info["id"], info["path"],
                                 annotation.get("id"), error)) from error
        if mask.shape == (height, width):
            return mask
        if annotation.get("iscrowd"):
            # matterport's rule: a crowd RLE of another size covers the
            # whole image, so nothing there counts as background.
            return np.ones((height, width), dtype=bool)
        raise ValueError("COCO image {} ({}), annotation {}: RLE size {} "
                         "differs from the image size {}".format(
                             info["id"], info["path"], annotation.get("id"),
                             list(mask.shape), [height, width]))

    def annToRLE(self, ann, height, width):  # noqa: N802 - matterport name
        """matterport's name for :func:`ann_to_rle`."""
        return ann_to_rle(ann, height, width)

    def annToMask(self, ann, height, width):  # noqa: N802 - matterport name
        """matterport's name for :func:`ann_to_mask` (uint8 0/1 there too)."""
        return ann_to_mask(ann, height, width).astype(np.uint8)

    def image_reference(self, image_id):
        """The image file path; its COCO URL when the file is absent."""
        info = self.image_info[image_id]
        if info["source"] != "coco":
            return super().image_reference(image_id)
        if not os.path.isfile(info["path"]) and info.get("coco_url"):
            return info["coco_url"]
        return info["path"]


def warn_unknown_categories(annotation_json, unknown):
    """One warning naming the annotations (image id, annotation) whose
    category_id is not among the file's categories: they are dropped."""
    if not unknown:
        return
    listed = ", ".join("annotation {} (category_id {!r}) of image {}".format(
        a.get("id"), a.get("category_id"), image_id)
        for image_id, a in unknown[:5])
    warnings.warn("{}: {} annotation{} of categories not in the file's "
                  "'categories' dropped: {}{}".format(
                      annotation_json, len(unknown),
                      "" if len(unknown) == 1 else "s", listed,
                      ", ..." if len(unknown) > 5 else ""), stacklevel=3)


def segmentation_extent(annotation):
    """(x_min, y_min, x_max, y_max) of an annotation's polygons, in pixels;
    None for an RLE (it is in the image's frame by construction)."""
    segmentation = annotation.get("segmentation")
    if not isinstance(segmentation, list):
        return None
    points = [value for polygon in segmentation for value in polygon]
    return instances.points_extent(points[0::2], points[1::2])


def _image_shape(info):
    """(height, width) from the json, else from the image header."""
    if info.get("height") and info.get("width"):
        return int(info["height"]), int(info["width"])
    return mask_tools.read_image_size(info["path"])


def _looks_like_year(value):
    return isinstance(value, (str, int)) and not isinstance(value, bool) \
        and str(value).isdigit() and len(str(value)) == 4


def default_image_dir(annotation_json):
    """The json's folder, or its images/ sub-folder if that exists."""
    folder = os.path.dirname(os.path.abspath(annotation_json))
    images = os.path.join(folder, "images")
    return images if os.path.isdir(images) else folder


def _matterport_paths(dataset_dir, subset, year, auto_download):
    """(annotation json, image folder) for load_coco(dataset_dir, subset)."""
    if not isinstance(subset, str):
        raise ValueError("load_coco({!r}, ...): a folder needs the subset "
                         "name next, e.g. load_coco(dir, 'train', year="
                         "'2017')".format(dataset_dir))
    annotations_dir = os.path.join(dataset_dir, "annotations")
    if year is None:
        year = _only_year(annotations_dir, subset)
    annotation_json = os.path.join(
        annotations_dir, "instances_{}{}.json".format(subset, year))
    image_subset = "val" if subset in ("minival", "valminusminival") \
        else subset
    image_dir = os.path.join(dataset_dir, "{}{}".format(image_subset, year))
    if not os.path.isfile(annotation_json):
        hint = " (auto_download is not supported: place the files there)" \
            if auto_download else ""
        raise FileNotFoundError("COCO annotations not found: {}{}".format(
            annotation_json, hint))
    return annotation_json, image_dir


def _only_year(annotations_dir, subset):
    """The year of the single instances_{subset}YEAR.json, else 2014."""
    prefix = "instances_{}".format(subset)
    if not os.path.isdir(annotations_dir):
        return DEFAULT_DATASET_YEAR
    years = [name[len(prefix):-len(".json")]
             for name in os.listdir(annotations_dir)
             if name.startswith(prefix) and name.endswith(".json")
             and name[len(prefix):-len(".json")].isdigit()]
    return years[0] if len(years) == 1 else DEFAULT_DATASET_YEAR
