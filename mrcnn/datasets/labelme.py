"""Datasets annotated with LabelMe (one json file per image).

Each json holds ``shapes`` (``label``, ``points`` [[x, y], ...],
``shape_type``, ``group_id``) and ``imagePath``, relative to the json file.
When the image file is absent, the base64 ``imageData`` embedded in the json
is used instead.

Photos are loaded upright, by their EXIF orientation, as LabelMe shows them
and so as their shapes were drawn (``apply_exif_orientation`` is True here;
set it False on the dataset for files annotated in the stored frame).

Shapes with the same label and the same non-null ``group_id`` are the parts
of one instance and make one mask (LabelMe's own convention). Shape types:
polygon, rectangle (two opposite corners), circle (centre and a point on the
rim) and mask (a base64 PNG of the box given by two corners). Lines and
points have no area and are skipped.
"""

import base64
import glob
import io
import os
import warnings

import numpy as np
from PIL import Image

from mrcnn.structures.dataset import Dataset
from mrcnn.structures import image_io
from mrcnn.datasets import instances
from mrcnn.datasets import loader_tools as mask_tools

AREA_SHAPES = ("polygon", "rectangle", "circle", "mask")
SKIPPED_SHAPES = ("line", "linestrip", "point", "points")
# Labels that LabelMe's examples use for "not an object".
IGNORED_LABELS = ("__ignore__", "_background_")


def labelme_json_files(directory_or_json_files):
    """Sorted json paths from a folder, one json path, or a list of paths."""
    if isinstance(directory_or_json_files, (str, os.PathLike)):
        path = os.fspath(directory_or_json_files)
        if os.path.isdir(path):
            files = sorted(glob.glob(os.path.join(path, "*.json")))
            if not files:
                raise FileNotFoundError("{}: no LabelMe .json files".format(
                    path))
            return files
        files = [path]
    else:
        files = [os.fspath(p) for p in directory_or_json_files]
    for path in files:
        if not os.path.isfile(path):
            raise FileNotFoundError("LabelMe json not found: {}".format(path))
    return files


def is_labelme_json(data):
    """True for parsed json that looks like a LabelMe annotation."""
    return isinstance(data, dict) and "shapes" in data and (
        "imagePath" in data or "imageData" in data)


def validate_shape(shape):
    """ValueError when a shape has no label, an unknown type, or points
    that are not finite [x, y] pairs; draws nothing."""
    if not isinstance(shape, dict) or not shape.get("label"):
        raise ValueError("no label")
    kind = shape.get("shape_type") or "polygon"
    if kind not in AREA_SHAPES + SKIPPED_SHAPES:
        raise ValueError("unknown shape_type {!r}; expected one of {}".format(
            kind, ", ".join(AREA_SHAPES + SKIPPED_SHAPES)))
    points = _points(shape)
    if kind in ("rectangle", "circle", "mask") and len(points) < 2:
        raise ValueError("{} needs 2 points, has {}".format(kind,
                                                            len(points)))


def shape_mask(shape, image_shape):
    """Bool mask [height, width] of one LabelMe shape; None for shapes with
    no area (lines, points)."""
    kind = shape.get("shape_type") or "polygon"
    if kind in SKIPPED_SHAPES:
        return None
    if kind not in AREA_SHAPES:
        raise ValueError("unknown shape_type {!r}; expected one of {}".format(
            kind, ", ".join(AREA_SHAPES + SKIPPED_SHAPES)))
    points = _points(shape)
    if kind == "polygon":
        return mask_tools.polygon_mask(points[:, 0], points[:, 1],
                                       image_shape)
    if len(points) < 2:
        raise ValueError("{} needs 2 points, has {}".format(kind,
                                                            len(points)))
    (x1, y1), (x2, y2) = points[:2]
    if kind == "rectangle":
        # The corners are pixel centres and both are inside, as for polygons.
        xs, ys = [x1, x2, x2, x1], [y1, y1, y2, y2]
        return mask_tools.polygon_mask(xs, ys, image_shape)
    if kind == "circle":
        return mask_tools.circle_mask(x1, y1, np.hypot(x2 - x1, y2 - y1),
                                      image_shape)
    return _pasted_mask(shape.get("mask"), min(x1, x2), min(y1, y2),
                        image_shape)


def _points(shape):
    points = mask_tools.finite_coordinates(shape.get("points") or [],
                                           "points")
    if len(points) % 2:
        raise ValueError("points must be [x, y] pairs")
    return points.reshape(-1, 2)


def _pasted_mask(encoded, left, top, image_shape):
    """A "mask" shape: a base64 PNG of its box, pasted at (top, left)."""
    if not encoded:
        raise ValueError("mask shape has no 'mask' data")
    try:
        with Image.open(io.BytesIO(base64.b64decode(encoded))) as image:
            patch = np.array(image) > 0
    except Exception as error:  # noqa: BLE001 - binascii, PIL: all one
        raise ValueError("its 'mask' data is not a base64 image ({}: {})"
                         .format(type(error).__name__, error)) from error
    if patch.ndim == 3:
        patch = patch.any(axis=2)
    mask = np.zeros(image_shape, dtype=bool)
    top, left = int(round(top)), int(round(left))
    rows = slice(max(top, 0), min(top + patch.shape[0], image_shape[0]))
    cols = slice(max(left, 0), min(left + patch.shape[1], image_shape[1]))
    mask[rows, cols] = patch[rows.start - top:rows.stop - top,
                             cols.start - left:cols.stop - left]
    return mask


def shape_extent(shape):
    """(x_min, y_min, x_max, y_max) of a validated LabelMe shape, in
    pixels; None for shapes with no points."""
    points = _points(shape)
    if (shape.get("shape_type") or "polygon") == "circle" \
            and len(points) >= 2:
        (cx, cy), (x, y) = points[:2]
        radius = float(np.hypot(x - cx, y - cy))
        return instances.points_extent([cx - radius, cx + radius],
                                       [cy - radius, cy + radius])
    return instances.points_extent(points[:, 0], points[:, 1])


def group_instances(shapes):
    """Lists of shape indices, one list per instance.

    Shapes with the same (label, group_id) and a group_id that is not null
    form one instance; every other shape is an instance of its own. Order
    follows each instance's first shape.
    """
    instances, by_group = [], {}
    for index, shape in enumerate(shapes):
        group_id = shape.get("group_id")
        if group_id is None:
            instances.append([index])
            continue
        key = (shape.get("label"), group_id)
        if key not in by_group:
            by_group[key] = []
            instances.append(by_group[key])
        by_group[key].append(index)
    return instances


def decode_image_data(image_data, where):
    """RGB uint8 [height, width, 3] from LabelMe's base64 imageData."""
    try:
        with Image.open(io.BytesIO(base64.b64decode(image_data))) as image:
            return image_io.pil_to_rgb(image, where)
    except Exception as error:  # noqa: BLE001
        raise ValueError("{}: cannot decode imageData: {}".format(
            where, error)) from error


class LabelMeDataset(Dataset):
    """Images and shapes of LabelMe json files (see the module doc)."""

    # LabelMe applies the EXIF orientation when it opens a photo.
    apply_exif_orientation = True

    def load_labelme(self, directory_or_json_files, class_names=None,
                     source="labelme", skip_missing=False):
        """Add the images of LabelMe json files.

        directory_or_json_files: a folder of .json files (not recursive), a
            json file, or a list of json files.
        class_names: the classes in id order (1..K); shapes of other labels
            are skipped with a warning. Default: the sorted labels found
            (less LabelMe's "__ignore__" and "_background_").
        skip_missing: skip a json whose image file is absent and that embeds
            no imageData, with a warning, instead of raising
            FileNotFoundError.
        """
        images = []
        for json_path in labelme_json_files(directory_or_json_files):
            image = _read_annotation(json_path, skip_missing,
                                     self.apply_exif_orientation)
            if image is not None:
                images.append(image)
        found = sorted({s.get("label") for image in images
                        for s in image["shapes"]} - set(IGNORED_LABELS))
        names = list(class_names) if class_names is not None else found
        class_ids = mask_tools.add_classes(self, source, names)
        mask_tools.warn_skipped_classes(
            set(found) - set(names),
            os.fspath(directory_or_json_files)
            if isinstance(directory_or_json_files, (str, os.PathLike))
            else "LabelMe files")
        for image in images:
            self.add_image(source, labelme_source=source,
                           class_name_to_id=class_ids, **image)

    def load_image(self, image_id):
        """RGB uint8 [height, width, 3], from the file or the embedded
        imageData."""
        info = self.image_info[image_id]
        if info.get("embedded_image"):
            data = mask_tools.read_json(info["json_path"])
            return decode_image_data(data.get("imageData"), info["json_path"])
        return super().load_image(image_id)

    def load_mask(self, image_id):
        """Returns (bool [height, width, N], int32 class ids [N]).

        Instances with no pixel inside the image are dropped, with a
        warning naming the image (mrcnn.structures.dropped).
        """
        info = self.image_info[image_id]
        if "labelme_source" not in info:
            return super().load_mask(image_id)
        image_shape = (info["height"], info["width"])
        known = info["class_name_to_id"]
        masks, class_ids, extents = [], [], []
        for indices in group_instances(info["shapes"]):
            label = info["shapes"][indices[0]].get("label")
            if label not in known:
                continue
            mask = self._instance_mask(info, indices, image_shape)
            if mask is not None:
                masks.append(mask)
                class_ids.append(mask_tools.internal_class_id(
                    self, info["labelme_source"], known[label]))
                extents.append(instances.union_extent(
                    shape_extent(info["shapes"][i]) for i in indices))
        return instances.keep_drawn(self, image_id, masks, class_ids, extents,
                                    image_shape)

    def _instance_mask(self, info, indices, image_shape):
        """Union of the masks of one instance's shapes (None: no area)."""
        union = None
        for index in indices:
            try:
                mask = shape_mask(info["shapes"][index], image_shape)
            except ValueError as error:
                raise ValueError("{}: shape {}: {}".format(
                    info["json_path"], index, error)) from None
            if mask is not None:
                union = mask if union is None else union | mask
        return union

    def image_reference(self, image_id):
        """The image file path (the json path when the image is embedded)."""
        info = self.image_info[image_id]
        if "labelme_source" in info:
            return info["json_path"] if info.get("embedded_image") \
                else info["path"]
        return super().image_reference(image_id)


def _read_annotation(json_path, skip_missing, upright):
    """Keyword arguments for add_image from one LabelMe json (or None).

    upright: the image size is that of the EXIF-upright frame.
    """
    data = mask_tools.read_json(json_path)
    if not is_labelme_json(data):
        raise ValueError("{}: not a LabelMe annotation (no 'shapes' and "
                         "'imagePath')".format(json_path))
    image_path = os.path.normpath(os.path.join(
        os.path.dirname(json_path), data.get("imagePath") or ""))
    embedded = False
    if data.get("imagePath") and os.path.isfile(image_path):
        height, width = mask_tools.read_image_size(image_path,
                                                   upright=upright)
    elif data.get("imageData"):
        embedded = True
        height, width = decode_image_data(data["imageData"],
                                          json_path).shape[:2]
    else:
        message = "{}: image file {} not found and no imageData".format(
            json_path, image_path)
        if skip_missing:
            warnings.warn(message + "; skipped", stacklevel=4)
            return None
        raise FileNotFoundError(message)
    shapes = data.get("shapes") or []
    for index, shape in enumerate(shapes):
        try:
            validate_shape(shape)
        except ValueError as error:
            raise ValueError("{}: shape {}: {}".format(json_path, index,
                                                       error)) from None
    return {"image_id": os.path.splitext(os.path.basename(json_path))[0],
            "path": image_path, "json_path": json_path, "height": height,
            "width": width, "shapes": shapes, "embedded_image": embedded}
