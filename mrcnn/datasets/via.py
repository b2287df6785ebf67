"""Datasets annotated with the VGG Image Annotator (VIA), 1.x and 2.x.

Reads, with no code of the user's own:

* VIA 1.x region data (``via_region_data.json``, as in matterport's balloon
  sample): a dict keyed by ``filename + size``, each entry's ``regions`` a
  dict ``{"0": region, ...}``;
* VIA 2.x exports: the same dict with ``regions`` as a list;
* VIA 2.x project files: the same dict under ``_via_img_metadata``.

Region shapes: polygon, polyline (closed into a polygon), rect, circle and
ellipse (VIA 2's ``theta`` rotation included). "point" regions have no area
and are skipped. Points on or past the image border are clipped.

Classes come from one region attribute (``class_attribute``), whose values
may be text (``{"type": "cat"}``) or VIA checkbox dicts
(``{"type": {"cat": true}}``); without one every region is
``default_class``.
"""

import os
import warnings

from mrcnn.structures.dataset import Dataset
from mrcnn.datasets import instances
from mrcnn.datasets import loader_tools as mask_tools

SHAPES = ("polygon", "polyline", "rect", "circle", "ellipse")
SKIPPED_SHAPES = ("point",)  # no area: never an instance
DEFAULT_JSON_NAMES = ("via_region_data.json", "via_export_json.json",
                      "via_project.json")


def find_via_json(directory):
    """The VIA json in a folder: a known file name, else the only *.json."""
    for name in DEFAULT_JSON_NAMES:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    candidates = sorted(f for f in os.listdir(directory)
                        if f.lower().endswith(".json"))
    if len(candidates) == 1:
        return os.path.join(directory, candidates[0])
    raise FileNotFoundError(
        "{}: expected via_region_data.json or one .json file, found {}"
        .format(directory, candidates or "none"))


def via_entries(data, path="VIA json"):
    """The per-image entries of parsed VIA json, 1.x or 2.x, as a list."""
    if isinstance(data, dict) and "_via_img_metadata" in data:
        data = data["_via_img_metadata"]
    if not isinstance(data, dict):
        raise ValueError("{}: not VIA json (expected an object keyed by "
                         "image)".format(path))
    entries = []
    for key, entry in data.items():
        if not isinstance(entry, dict) or "filename" not in entry:
            raise ValueError("{}: entry {!r} is not a VIA image entry "
                             "(no 'filename')".format(path, key))
        entries.append(entry)
    return entries


def entry_regions(entry):
    """An entry's regions as a list (VIA 1.x stores a dict "0", "1", ...)."""
    regions = entry.get("regions") or []
    if isinstance(regions, dict):
        regions = [regions[k] for k in sorted(regions, key=_region_order)]
    return regions


def _region_order(key):
    return (0, int(key)) if str(key).isdigit() else (1, str(key))


def region_class(region, class_attribute, default_class):
    """Class name of a region, or None when it names none and there is no
    default. ValueError when a checkbox attribute ticks several classes."""
    if class_attribute is None:
        return default_class
    value = (region.get("region_attributes") or {}).get(class_attribute)
    if isinstance(value, dict):  # checkbox: {"cat": true, "dog": false}
        ticked = [name for name, on in value.items() if on]
        if len(ticked) > 1:
            raise ValueError("attribute {!r} ticks several classes: {}"
                             .format(class_attribute, ticked))
        value = ticked[0] if ticked else None
    elif isinstance(value, list):
        if len(value) > 1:
            raise ValueError("attribute {!r} lists several classes: {}"
                             .format(class_attribute, value))
        value = value[0] if value else None
    if value is None or str(value).strip() == "":
        return default_class
    return str(value).strip()


# The numbers each shape needs (theta, VIA 2's ellipse rotation, optional).
SHAPE_VALUES = {
    "polygon": ("all_points_x", "all_points_y"),
    "polyline": ("all_points_x", "all_points_y"),
    "rect": ("x", "y", "width", "height"),
    "circle": ("cx", "cy", "r"),
    "ellipse": ("cx", "cy", "rx", "ry"),
}


def validate_shape(shape_attributes):
    """ValueError when a shape is unknown, lacks values, or has NaN/text
    where numbers belong; cheap (draws nothing)."""
    name = shape_attributes.get("name")
    if name not in SHAPE_VALUES:
        raise ValueError("unknown shape {!r}; expected one of {}".format(
            name, ", ".join(SHAPES)))
    values = _values(shape_attributes, SHAPE_VALUES[name])
    for key, value in zip(SHAPE_VALUES[name], values):
        mask_tools.finite_coordinates(value, key)
    if "theta" in shape_attributes:
        mask_tools.finite_coordinates(shape_attributes["theta"], "theta")
    if name in ("polygon", "polyline") and \
            len(shape_attributes["all_points_x"]) \
            != len(shape_attributes["all_points_y"]):
        raise ValueError("polygon has {} x but {} y coordinates".format(
            len(shape_attributes["all_points_x"]),
            len(shape_attributes["all_points_y"])))


def shape_mask(shape_attributes, image_shape):
    """Bool mask [height, width] of one VIA shape; None for point shapes."""
    name = shape_attributes.get("name")
    if name in ("polygon", "polyline"):
        return mask_tools.polygon_mask(
            shape_attributes.get("all_points_x", []),
            shape_attributes.get("all_points_y", []), image_shape)
    if name == "rect":
        return mask_tools.rectangle_mask(
            *_values(shape_attributes, ("x", "y", "width", "height")),
            image_shape)
    if name == "circle":
        return mask_tools.circle_mask(
            *_values(shape_attributes, ("cx", "cy", "r")), image_shape)
    if name == "ellipse":
        cx, cy, rx, ry = _values(shape_attributes, ("cx", "cy", "rx", "ry"))
        return mask_tools.ellipse_mask(cx, cy, rx, ry,
                                       shape_attributes.get("theta", 0),
                                       image_shape)
    if name in SKIPPED_SHAPES:
        return None
    raise ValueError("unknown shape {!r}; expected one of {}".format(
        name, ", ".join(SHAPES)))


def shape_extent(shape_attributes):
    """(x_min, y_min, x_max, y_max) of a validated VIA shape, in pixels;
    an ellipse's is that of its circumscribed circle."""
    name = shape_attributes.get("name")
    if name in ("polygon", "polyline"):
        return instances.points_extent(shape_attributes["all_points_x"],
                                       shape_attributes["all_points_y"])
    if name == "rect":
        x, y, width, height = (float(v) for v in _values(
            shape_attributes, ("x", "y", "width", "height")))
        return instances.points_extent([x, x + width], [y, y + height])
    cx, cy = float(shape_attributes["cx"]), float(shape_attributes["cy"])
    radius = float(shape_attributes["r"]) if name == "circle" else max(
        float(shape_attributes["rx"]), float(shape_attributes["ry"]))
    return instances.points_extent([cx - radius, cx + radius],
                                   [cy - radius, cy + radius])


def single_class_name(class_attribute, class_names, default_class):
    """The class of regions that name none: with no class_attribute and one
    class name, that name (``class_names=["balloon"]`` just works)."""
    if class_attribute is None and class_names is not None \
            and len(class_names) == 1:
        return class_names[0]
    return default_class


def _values(attributes, keys):
    missing = [k for k in keys if k not in attributes]
    if missing:
        raise ValueError("{} shape lacks {}".format(attributes.get("name"),
                                                    ", ".join(missing)))
    return [attributes[k] for k in keys]


class ViaDataset(Dataset):
    """Images and regions of a VIA json (see the module doc)."""

    def load_via(self, dataset_dir_or_json, subset=None, class_attribute=None,
                 class_names=None, default_class="object", source="via",
                 skip_missing=False):
        """Add the images of a VIA annotation file.

        dataset_dir_or_json: a VIA json file, or the folder holding it (and
            the images), e.g. ``balloon`` with subset="train" reads
            ``balloon/train/via_region_data.json``.
        class_attribute: region attribute holding the class name; None
            gives every region one class: ``default_class``, or the name
            in ``class_names`` when it holds exactly one.
        class_names: the classes in id order (1..K); regions of other
            classes are skipped with a warning. Default: the sorted names
            found.
        default_class: class of regions that name none (None: such regions
            raise ValueError).
        skip_missing: skip images whose file is missing, with a warning,
            instead of raising FileNotFoundError.
        """
        json_path, image_dir = _resolve_paths(dataset_dir_or_json, subset)
        default_class = single_class_name(class_attribute, class_names,
                                          default_class)
        entries = via_entries(mask_tools.read_json(json_path), json_path)
        images = []
        for entry in entries:
            image = self._read_entry(entry, json_path, image_dir,
                                     class_attribute, default_class,
                                     skip_missing)
            if image is not None:
                images.append(image)
        found = sorted({name for image in images for name in image["names"]})
        if class_attribute is None:
            found = [default_class]  # even with no region at all
        names = list(class_names) if class_names is not None else found
        class_ids = mask_tools.add_classes(self, source, names)
        mask_tools.warn_skipped_classes(set(found) - set(names), json_path)
        for image in images:
            self.add_image(
                source, image_id=image["filename"], path=image["path"],
                width=image["width"], height=image["height"],
                polygons=image["shapes"], region_class_names=image["names"],
                class_name_to_id=class_ids, via_source=source,
                json_path=json_path)

    def _read_entry(self, entry, json_path, image_dir, class_attribute,
                    default_class, skip_missing):
        """Dict with the entry's file, size, shapes and class names."""
        filename = entry["filename"]
        path = os.path.join(image_dir, filename)
        if not os.path.isfile(path):
            message = "{}: image file {} not found ({})".format(
                json_path, filename, path)
            if skip_missing:
                warnings.warn(message + "; skipped", stacklevel=3)
                return None
            raise FileNotFoundError(message)
        height, width = mask_tools.read_image_size(
            path, upright=self.apply_exif_orientation)
        shapes, names = [], []
        for index, region in enumerate(entry_regions(entry)):
            where = "{}: image {}, region {}".format(json_path, filename,
                                                     index)
            try:
                name = region_class(region, class_attribute, default_class)
            except ValueError as error:
                raise ValueError("{}: {}".format(where, error)) from None
            if name is None:
                raise ValueError("{}: no {!r} attribute and no default_class"
                                 .format(where, class_attribute))
            shape = region.get("shape_attributes") or {}
            if shape.get("name") in SKIPPED_SHAPES:
                continue
            try:
                validate_shape(shape)
            except ValueError as error:
                raise ValueError("{}: {}".format(where, error)) from None
            shapes.append(shape)
            names.append(name)
        return {"filename": filename, "path": path, "height": height,
                "width": width, "shapes": shapes, "names": names}

    def load_mask(self, image_id):
        """Returns (bool [height, width, N], int32 class ids [N]).

        Regions with no pixel inside the image are dropped, with a warning
        naming the image (mrcnn.structures.dropped).
        """
        info = self.image_info[image_id]
        if "via_source" not in info:
            return super().load_mask(image_id)
        image_shape = (info["height"], info["width"])
        known = info["class_name_to_id"]
        masks, class_ids, extents = [], [], []
        for index, (shape, name) in enumerate(zip(info["polygons"],
                                                  info["region_class_names"])):
            if name not in known:
                continue
            try:
                masks.append(shape_mask(shape, image_shape))
            except ValueError as error:
                raise ValueError("{}: image {}, region {}: {}".format(
                    info["json_path"], info["id"], index, error)) from None
            class_ids.append(mask_tools.internal_class_id(
                self, info["via_source"], known[name]))
            extents.append(shape_extent(shape))
        return instances.keep_drawn(self, image_id, masks, class_ids, extents,
                                    image_shape)

    def image_reference(self, image_id):
        """The image file path."""
        info = self.image_info[image_id]
        if "via_source" in info:
            return info["path"]
        return super().image_reference(image_id)


def _resolve_paths(dataset_dir_or_json, subset):
    """(json path, image folder) from a json file or a dataset folder."""
    path = os.fspath(dataset_dir_or_json)
    if subset:
        path = os.path.join(path, subset)
    if os.path.isdir(path):
        return find_via_json(path), path
    if os.path.isfile(path):
        return path, os.path.dirname(path)
    raise FileNotFoundError("VIA json or folder not found: {}".format(path))

