"""MasksDataset, for a folder of images whose annotations are already mask
images, in one of two layouts.

(The shape rasterising and file helpers the loaders share live in
:mod:`mrcnn.datasets.loader_tools`; their names are kept here too.)

"instances" (the Kaggle 2018 nuclei layout), one PNG per instance::

    DIR/<id>/images/<id>.png
    DIR/<id>/masks/*.png            (one class: default_class)
    DIR/<id>/masks/<class>/*.png    (the sub-folder names the class)

"label", one label image per image::

    DIR/images/<name>.jpg
    DIR/labels/<name>.png    (0 = background, each other value one instance;
                              in 8-bit files 255 = ignore, as in Pascal VOC)
    DIR/labels/<name>.json   (optional: {"<value>": "<class>", ...}; without
                              it every instance is default_class)

Label images must be lossless (PNG, TIFF, lossless WebP): a JPEG's
compression noise around edges would give extra instances, so lossy files
are refused with an error naming them. In an 8-bit label image the value
255 means "ignore" (Pascal VOC's object outlines and void areas): those
pixels are background, not an instance, and the first such file is named
in a log line. 16-bit label images use every value but 0 as an instance.
"""

import logging
import os
import struct

import numpy as np
import skimage.io
from PIL import Image

from mrcnn.structures.dataset import Dataset
from mrcnn.structures import dropped
# The loaders' shared helpers, under their earlier home's names.
from mrcnn.datasets.loader_tools import (IMAGE_EXTENSIONS,  # noqa: F401
                                         add_classes, box_mask, circle_mask,
                                         ellipse_mask, finite_coordinates,
                                         internal_class_id, is_image_file,
                                         polygon_mask, read_image_size,
                                         read_json, rectangle_mask,
                                         stack_instances, warn_skipped_classes)


logger = logging.getLogger(__name__)

# The label of "ignore" in 8-bit label images (Pascal VOC's outlines, void).
IGNORE_LABEL = 255
# Pillow formats that compress with loss: refused for label images.
LOSSY_FORMATS = ("JPEG", "MPO", "JPEG2000")
_ignore_noted = []  # a file whose 255 pixels were ignored, once per process

# ---------------------------------------------------------------------------
# Folder-of-masks dataset
# ---------------------------------------------------------------------------

def detect_masks_layout(directory):
    """"label", "instances" or None for a folder (see the module doc)."""
    directory = os.fspath(directory)
    if (os.path.isdir(os.path.join(directory, "images"))
            and os.path.isdir(os.path.join(directory, "labels"))):
        return "label"
    for entry in _sorted_dirs(directory):
        if os.path.isdir(os.path.join(directory, entry, "images")):
            return "instances"
    return None


def read_label_image(path):
    """Instance-id image [height, width] (int) from a label image file.

    Palette PNGs give their palette indices; grey (8/16 bit) their values;
    an RGB image whose channels are equal gives one channel. In 8-bit
    files 255 (IGNORE_LABEL) becomes 0: ignored, not an instance. Lossy
    files (JPEG) raise ValueError naming the file.
    """
    path = os.fspath(path)
    check_lossless_label(path)
    try:
        with Image.open(path) as image:
            array = np.array(image)
    except Exception as error:  # noqa: BLE001
        raise ValueError("cannot read label image {}: {}".format(path, error))\
            from error
    if array.ndim == 3:
        channels = array[..., :3]
        if not (np.array_equal(channels[..., 0], channels[..., 1])
                and np.array_equal(channels[..., 0], channels[..., 2])):
            raise ValueError(
                "label image {} is in colour; expected one channel whose "
                "values are instance ids (0 = background)".format(path))
        array = channels[..., 0]
    label = array.astype(np.int64)
    if array.dtype == np.uint8 and (array == IGNORE_LABEL).any():
        label[array == IGNORE_LABEL] = 0
        if not _ignore_noted:
            _ignore_noted.append(path)
            logger.warning(
                "Label image %s has pixels of value 255: in 8-bit label "
                "images 255 means 'ignore' (Pascal VOC's outlines and void "
                "areas), so they are background, not an instance. Said once "
                "for all label images.", path)
    return label


def check_lossless_label(path):
    """ValueError naming a label image stored with lossy compression
    (JPEG, lossy WebP): its noise around edges gives extra label values,
    each of which would become an instance. Unreadable files pass here;
    reading them says what is wrong."""
    try:
        with Image.open(path) as image:
            kind = image.format
    except Exception:  # noqa: BLE001 - reported when the pixels are read
        return
    if kind in LOSSY_FORMATS or (kind == "WEBP" and not _lossless_webp(path)):
        raise ValueError(
            "label image {} is {}, a lossy format: compression noise around "
            "edges would become extra instances. Save label images losslessly "
            "(PNG)".format(path, kind))


def _lossless_webp(path):
    """True when a WebP file's image chunk is VP8L (lossless)."""
    with open(path, "rb") as f:
        data = f.read()
    offset = 12  # "RIFF", size, "WEBP"
    while offset + 8 <= len(data):
        fourcc = data[offset:offset + 4]
        if fourcc in (b"VP8 ", b"VP8L"):
            return fourcc == b"VP8L"
        size = struct.unpack("<I", data[offset + 4:offset + 8])[0]
        offset += 8 + size + (size & 1)
    return False


def read_binary_mask(path):
    """Bool mask [height, width] of the non-zero pixels of a mask image."""
    path = os.fspath(path)
    try:
        array = skimage.io.imread(path)
    except Exception as error:  # noqa: BLE001
        raise ValueError("cannot read mask image {}: {}".format(path, error))\
            from error
    if array.ndim == 3:
        if array.shape[2] in (2, 4):  # drop alpha
            array = array[..., :-1]
        array = array.max(axis=2)
    return array > 0


class MasksDataset(Dataset):
    """Images whose annotations are mask images (see the module doc)."""

    def load_masks(self, directory, layout="auto", class_names=None,
                   subset=None, default_class="object", source="masks"):
        """Add the images of a masks folder.

        directory: the dataset folder (or its parent, with ``subset``).
        layout: "auto", "instances" (one PNG per instance) or "label" (one
            label image per image).
        class_names: the classes, in id order (1..K). Instances of other
            classes are skipped. With one name and no class sub-folders or
            sidecars, that name is the single class.
        default_class: class of instances that name none (flat masks/ folder,
            label image without sidecar) when class_names does not decide.
        """
        directory = os.fspath(directory)
        if subset:
            directory = os.path.join(directory, subset)
        if not os.path.isdir(directory):
            raise FileNotFoundError("masks dataset folder not found: {}"
                                    .format(directory))
        if layout == "auto":
            layout = detect_masks_layout(directory)
            if layout is None:
                raise ValueError(
                    "{}: not a masks dataset: expected <id>/images/ + "
                    "<id>/masks/ folders, or images/ + labels/".format(
                        directory))
        if class_names is not None and len(class_names) == 1:
            default_class = class_names[0]
        if layout == "instances":
            samples = _scan_instances_layout(directory, default_class)
        elif layout == "label":
            samples = _scan_label_layout(directory, default_class)
        else:
            raise ValueError("layout must be 'auto', 'instances' or 'label', "
                             "not {!r}".format(layout))
        self._add_samples(samples, class_names, layout, source, directory,
                          default_class)

    def _add_samples(self, samples, class_names, layout, source, directory,
                     default_class):
        found = sorted({name for s in samples for name in s["class_names"]})
        names = list(class_names) if class_names is not None \
            else found or [default_class]  # no mask at all: still one class
        class_ids = add_classes(self, source, names)
        warn_skipped_classes(set(found) - set(names), directory)
        for sample in samples:
            height, width = read_image_size(
                sample["path"], upright=self.apply_exif_orientation)
            self.add_image(source, image_id=sample["id"], path=sample["path"],
                           height=height, width=width, layout=layout,
                           masks_source=source, class_name_to_id=class_ids,
                           **sample["extra"])

    def load_mask(self, image_id):
        """Returns (bool [height, width, N], int32 class ids [N]).

        Mask images with no foreground pixel are dropped, with a warning
        naming the image (mrcnn.structures.dropped).
        """
        info = self.image_info[image_id]
        if "layout" not in info:
            return super().load_mask(image_id)
        shape = (info["height"], info["width"])
        if info["layout"] == "instances":
            masks, names = self._instance_masks(info, shape)
        else:
            masks, names = self._label_masks(info, shape)
        known = info["class_name_to_id"]
        pairs = [(m, internal_class_id(self, info["masks_source"], known[n]))
                 for m, n in zip(masks, names) if n in known]
        empty = sum(1 for m, _ in pairs if not m.any())
        dropped.report(self, image_id, "empty_mask_file", empty, len(pairs))
        return stack_instances([m for m, _ in pairs], [c for _, c in pairs],
                               shape)

    def _instance_masks(self, info, shape):
        masks, names = [], []
        for path, name in info["mask_files"]:
            mask = read_binary_mask(path)
            _check_mask_shape(mask.shape, shape, path, info["path"])
            masks.append(mask)
            names.append(name)
        return masks, names

    def _label_masks(self, info, shape):
        label = read_label_image(info["label_path"])
        _check_mask_shape(label.shape, shape, info["label_path"],
                          info["path"])
        value_names = info["label_classes"]
        masks, names = [], []
        for value in np.unique(label):
            if value == 0:
                continue
            if value_names is None:
                name = info["default_class"]
            elif str(value) in value_names:
                name = value_names[str(value)]
            else:
                raise ValueError(
                    "{}: label value {} has no class in {}".format(
                        info["label_path"], value, info["sidecar_path"]))
            masks.append(label == value)
            names.append(name)
        return masks, names

    def image_reference(self, image_id):
        """The image file path."""
        info = self.image_info[image_id]
        if "layout" in info:
            return info["path"]
        return super().image_reference(image_id)


def _check_mask_shape(mask_shape, image_shape, mask_path, image_path):
    if tuple(mask_shape[:2]) != tuple(image_shape):
        raise ValueError("mask {} is {}x{} but image {} is {}x{}".format(
            mask_path, mask_shape[0], mask_shape[1], image_path,
            image_shape[0], image_shape[1]))


def _sorted_dirs(directory):
    return sorted(e for e in os.listdir(directory)
                  if os.path.isdir(os.path.join(directory, e))
                  and not e.startswith("."))


def _sorted_image_files(directory):
    if not os.path.isdir(directory):
        return []
    return sorted(e for e in os.listdir(directory)
                  if is_image_file(e) and not e.startswith(".")
                  and os.path.isfile(os.path.join(directory, e)))


def _scan_instances_layout(directory, default_class):
    """One sample per <id>/images/ folder, with its mask files and classes."""
    samples = []
    for sample_id in _sorted_dirs(directory):
        images_dir = os.path.join(directory, sample_id, "images")
        if not os.path.isdir(images_dir):
            continue
        image_path = _pick_sample_image(images_dir, sample_id)
        mask_files = _instance_mask_files(
            os.path.join(directory, sample_id, "masks"), default_class)
        samples.append({
            "id": sample_id, "path": image_path,
            "class_names": {name for _, name in mask_files},
            "extra": {"mask_files": mask_files}})
    if not samples:
        raise ValueError("{}: no <id>/images/ folders found".format(directory))
    return samples


def _pick_sample_image(images_dir, sample_id):
    files = _sorted_image_files(images_dir)
    named = [f for f in files if os.path.splitext(f)[0] == sample_id]
    if len(named) == 1:
        return os.path.join(images_dir, named[0])
    if len(files) == 1:
        return os.path.join(images_dir, files[0])
    raise ValueError("{}: expected one image (named {}.png), found {}".format(
        images_dir, sample_id, files or "none"))


def _instance_mask_files(masks_dir, default_class):
    """[(path, class name)]: masks/*.png -> default class,
    masks/<class>/*.png -> <class>."""
    if not os.path.isdir(masks_dir):
        return []
    files = [(os.path.join(masks_dir, f), default_class)
             for f in _sorted_image_files(masks_dir)]
    for class_name in _sorted_dirs(masks_dir):
        class_dir = os.path.join(masks_dir, class_name)
        files += [(os.path.join(class_dir, f), class_name)
                  for f in _sorted_image_files(class_dir)]
    return files


def _scan_label_layout(directory, default_class):
    """One sample per images/ file, paired with labels/<same stem>.*"""
    images_dir = os.path.join(directory, "images")
    labels_dir = os.path.join(directory, "labels")
    labels_by_stem = {}
    for name in _sorted_image_files(labels_dir):
        labels_by_stem.setdefault(os.path.splitext(name)[0], name)
    samples = []
    for name in _sorted_image_files(images_dir):
        stem = os.path.splitext(name)[0]
        if stem not in labels_by_stem:
            raise FileNotFoundError(
                "no label image for {} (expected {})".format(
                    os.path.join(images_dir, name),
                    os.path.join(labels_dir, stem + ".png")))
        check_lossless_label(os.path.join(labels_dir, labels_by_stem[stem]))
        sidecar = os.path.join(labels_dir, stem + ".json")
        value_names = _read_sidecar(sidecar) if os.path.isfile(sidecar) \
            else None
        class_names = set(value_names.values()) if value_names is not None \
            else {default_class}
        samples.append({
            "id": stem, "path": os.path.join(images_dir, name),
            "class_names": class_names,
            "extra": {"label_path": os.path.join(labels_dir,
                                                 labels_by_stem[stem]),
                      "label_classes": value_names,
                      "sidecar_path": sidecar,
                      "default_class": default_class}})
    if not samples:
        raise ValueError("{}: no images found".format(images_dir))
    return samples


def _read_sidecar(path):
    """{"<label value>": "class name"} from a label sidecar json."""
    data = read_json(path)
    if not isinstance(data, dict) or not all(
            isinstance(v, str) for v in data.values()):
        raise ValueError('label sidecar {} must map label values to class '
                         'names, e.g. {{"1": "cat", "2": "dog"}}'.format(path))
    value_names = {}
    for key, name in data.items():
        try:
            value_names[str(int(key))] = name
        except ValueError:
            raise ValueError("label sidecar {}: key {!r} is not an integer "
                             "label value".format(path, key)) from None
    return value_names
