"""``Dataset``: the base class of every dataset, matterport's API.

Subclasses register classes and images, and load images and masks; the
loaders of mrcnn.datasets are such subclasses. ``mrcnn.utils.Dataset`` is
this class.
"""

import logging
import os

import numpy as np

from mrcnn.structures import image_io, orientation


class Dataset(object):
    """The base class for dataset classes.

    Subclass it, register classes with add_class() and images with
    add_image(), override load_mask() (and load_image() if the images are
    not files), then call prepare() before use::

        class CatsAndDogsDataset(Dataset):
            def load_cats_and_dogs(self):
                self.add_class("pets", 1, "cat")
                self.add_class("pets", 2, "dog")
                self.add_image("pets", image_id="cat1", path="cat1.jpg")
                ...

    Classes and images of several sources (datasets) can be mixed in one
    Dataset; prepare() gives every class and image a compact internal id.

    apply_exif_orientation: False (the default, as the original) uses the
    pixels of a photo as stored, ignoring its EXIF orientation tag, with one
    warning per tagged file. True turns them upright as photo viewers,
    browsers and LabelMe show them (see mrcnn.structures.orientation): load_image()
    returns upright pixels, the sizes the loaders store in image_info are
    upright ones, and check-dataset checks annotations against that frame.
    Set it when the annotations were drawn on the upright view (a class
    attribute, or on the instance before loading); LabelMeDataset sets it.
    """

    apply_exif_orientation = False

    def __init__(self, class_map=None):
        self._image_ids = []
        self.image_info = []
        # Background is always the first class.
        self.class_info = [{"source": "", "id": 0, "name": "BG"}]
        self.source_class_ids = {}

    def add_class(self, source, class_id, class_name):
        """Registers a class; a repeated (source, class_id) is ignored."""
        if "." in source:
            raise ValueError("Source name cannot contain a dot: {!r}"
                             .format(source))
        for info in self.class_info:
            if info["source"] == source and info["id"] == class_id:
                return
        self.class_info.append(
            {"source": source, "id": class_id, "name": class_name})

    def add_image(self, source, image_id, path, **kwargs):
        """Registers an image; extra keyword arguments are stored with it."""
        image_info = {"id": image_id, "source": source, "path": path}
        image_info.update(kwargs)
        self.image_info.append(image_info)

    def image_reference(self, image_id):
        """A link or description of the image for debugging.

        Override for your dataset, e.g. to return a URL.
        """
        return ""

    def prepare(self, class_map=None):
        """Builds the internal ids and lookup tables. Call before use.

        class_map is accepted for compatibility and is not used.
        """
        def clean_name(name):
            """Keeps the text before the first comma of a class name."""
            return name.split(",")[0]

        self.num_classes = len(self.class_info)
        self.class_ids = np.arange(self.num_classes)
        self.class_names = [clean_name(c["name"]) for c in self.class_info]
        self.num_images = len(self.image_info)
        self._image_ids = np.arange(self.num_images)

        # "source.id" -> internal id
        self.class_from_source_map = {
            "{}.{}".format(info["source"], info["id"]): internal_id
            for info, internal_id in zip(self.class_info, self.class_ids)}
        self.image_from_source_map = {
            "{}.{}".format(info["source"], info["id"]): internal_id
            for info, internal_id in zip(self.image_info, self.image_ids)}

        # Sources in order of first appearance (BG's "" first).
        self.sources = list(dict.fromkeys(c["source"]
                                          for c in self.class_info))
        self.source_class_ids = {}
        for source in self.sources:
            # Background (index 0) belongs to every source.
            self.source_class_ids[source] = [
                i for i, info in enumerate(self.class_info)
                if i == 0 or info["source"] == source]

    def map_source_class_id(self, source_class_id):
        """Internal class id of a "source.class_id" string.

        For example, dataset.map_source_class_id("coco.12") -> 23
        """
        try:
            return self.class_from_source_map[source_class_id]
        except KeyError:
            raise KeyError("Unknown source class {!r}; expected one of {}"
                           .format(source_class_id,
                                   sorted(self.class_from_source_map)))

    def get_source_class_id(self, class_id, source):
        """The source's own id of internal class class_id."""
        info = self.class_info[class_id]
        if info["source"] != source:
            raise ValueError("Class {} ({!r}) belongs to source {!r}, not {!r}"
                             .format(class_id, info["name"], info["source"],
                                     source))
        return info["id"]

    @property
    def image_ids(self):
        return self._image_ids

    def source_image_link(self, image_id):
        """The path or URL of the image in its source."""
        return self.image_info[image_id]["path"]

    def load_image(self, image_id):
        """Loads an image as an RGB uint8 array of shape [H, W, 3].

        Decoded by mrcnn.structures.image_io.read_image, the decoder of `mrcnn detect`
        too: grey, grey + alpha, palette and CMYK/YCCK files become RGB, an
        alpha channel is dropped, 16-bit images give their top byte
        (65535 -> 255), a multi-frame file its first frame (one warning).
        Pixels come as stored in the file, an EXIF orientation tag not
        applied (as in matterport, skimage and pycocotools), so annotations
        must be in the stored frame too; a tagged file gets one warning.
        With apply_exif_orientation they come upright instead ([W, H, 3]
        for orientations 5-8).
        Raises FileNotFoundError when the file is missing and ValueError when
        it cannot be decoded, both naming the file.
        """
        path = self.image_info[image_id]["path"]
        where = "image {} ({!r} of source {!r})".format(
            image_id, self.image_info[image_id]["id"],
            self.image_info[image_id]["source"])
        image = image_io.read_image(path, upright=self.apply_exif_orientation,
                                    where=where)
        if not self.apply_exif_orientation:
            orientation.warn_stored_frame(path,
                                          orientation.exif_orientation(path))
        return image

    def load_mask(self, image_id):
        """Loads the instance masks of an image.

        Override this for your dataset. This default has no annotations and
        returns no instances, like the original: it never decodes the image
        and never touches a missing path.

        Returns:
            masks: bool array [height, width, 0] when the size is known
                (image_info height/width, else the header of an existing
                image file), else [0, 0, 0].
            class_ids: int32 array [0].
        """
        logging.warning("You are using the default load_mask(), maybe you "
                        "need to define your own one.")
        height, width = self._known_size(image_id) or (0, 0)
        return (np.zeros([height, width, 0], dtype=bool),
                np.zeros([0], dtype=np.int32))

    def _known_size(self, image_id):
        """(height, width) of an image without decoding its pixels, or None.

        From image_info when it has both sizes, else from the header of the
        image file when there is one (upright when apply_exif_orientation).
        """
        info = self.image_info[image_id]
        if info.get("height") is not None and info.get("width") is not None:
            return int(info["height"]), int(info["width"])
        path = info.get("path")
        if not isinstance(path, (str, os.PathLike)) \
                or not os.path.isfile(path):
            return None
        try:
            import PIL.Image
            with PIL.Image.open(path) as header:  # reads the header only
                width, height = header.size
        except Exception:  # not an image PIL knows: size unknown
            return None
        if self.apply_exif_orientation:
            return orientation.upright_size(height, width,
                                            orientation.exif_orientation(path))
        return height, width
