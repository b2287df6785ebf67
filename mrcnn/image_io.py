"""Reading image files as RGB uint8, for ``Dataset.load_image``.

Pixels are used as stored: an EXIF orientation is not applied (as in
matterport, skimage and pycocotools) but warned about once per file.
"""

import logging
import warnings

import numpy as np
import skimage.util


EXIF_ORIENTATION_TAG = 0x0112
_exif_warned = set()  # paths already warned about


def exif_orientation(path):
    """The EXIF orientation (1..8) of an image file; 1 (upright) when the
    file has no such tag or no EXIF at all. Reads the header only."""
    try:
        import PIL.Image
        with PIL.Image.open(path) as header:
            return int(header.getexif().get(EXIF_ORIENTATION_TAG, 1))
    except Exception:  # not decodable by PIL: no orientation to speak of
        return 1


def _warn_exif_rotation(path):
    """One warning per file whose EXIF asks viewers to rotate or mirror it:
    its stored pixels are used, which annotation tools that honour EXIF
    (browsers, LabelMe) do not show."""
    if path in _exif_warned:
        return
    orientation = exif_orientation(path)
    if orientation == 1:
        return
    _exif_warned.add(path)
    logging.warning(
        "%s has EXIF orientation %d: its pixels are used as stored, "
        "unrotated, and its annotations must be in that frame. If it was "
        "annotated on the rotated view (web browsers and LabelMe rotate by "
        "EXIF), rotate the file itself (PIL.ImageOps.exif_transpose, "
        "`exiftran -ai`) so that pixels and annotations agree.", path,
        orientation)


def _to_rgb_uint8(image, path):
    """Converts a decoded image to RGB uint8 [H, W, 3]; path is for errors."""
    image = np.asarray(image)
    if image.ndim == 4:  # multi-frame file (GIF, TIFF stack): first frame
        image = image[0]
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 2, 3, 4):
        raise ValueError("Image file {} has unsupported shape {}"
                         .format(path, image.shape))
    channels = image.shape[-1]
    if channels in (1, 2):  # gray or gray + alpha
        image = np.repeat(image[..., :1], 3, axis=-1)
    else:  # RGB or RGBA
        image = image[..., :3]
    return _to_uint8(image, path)


def _to_uint8(image, path):
    """Rescales pixel values to uint8 (e.g. 16-bit 65535 -> 255)."""
    if image.dtype == np.uint8:
        return image
    if image.dtype.kind in "iu" and image.dtype != np.uint16:
        # e.g. int32 from 16-bit grayscale files: treat as 16 bit if it fits
        if image.min() < 0 or image.max() > 65535:
            raise ValueError("Image file {} has pixel values outside 0..65535 "
                             "({}..{})".format(path, image.min(), image.max()))
        image = image.astype(np.uint16)
    if image.dtype.kind == "f" and (image.min() < 0 or image.max() > 1):
        raise ValueError("Image file {} has float pixels outside [0, 1]"
                         .format(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "possible precision loss"
        return skimage.util.img_as_ubyte(image)
