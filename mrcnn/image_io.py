"""Reading image files as RGB uint8, for ``Dataset.load_image``.

Pixels as stored in the file; the EXIF orientation is mrcnn.orientation's
(``Dataset.apply_exif_orientation``).
"""

import warnings

import numpy as np
import skimage.util


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
