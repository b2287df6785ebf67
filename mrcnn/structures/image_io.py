"""Image files to RGB uint8: the one decoder of training, evaluation and
``mrcnn detect``.

:func:`read_image` reads a file as ``[H, W, 3]`` uint8, whatever it holds:

* RGB: as stored; RGBA (and RGBX): the alpha channel is dropped;
* grey (1, 8 or 16 bit) and grey + alpha: three equal channels;
* palette (with or without transparency): the palette colours;
* CMYK and YCCK JPEGs (print workflows, some cameras; Adobe's inverted
  CMYK included): converted to RGB by Pillow (R = (255 - K)(255 - C) / 255,
  and so on), not read as four channels;
* 16 bit per channel: the top byte (``v >> 8``: 65535 -> 255, 257 * k ->
  k), as ``skimage.util.img_as_ubyte`` does; other integer images with
  values in 0..65535 (Pillow's 32-bit "I" mode) the same;
* float images with values in [0, 1]: times 255, rounded; other ranges
  raise ValueError;
* several frames (animated GIF, multi-page TIFF): the first, with one
  warning per file naming it.

A file of another channel count (a multispectral TIFF of 5 or more
channels) raises ValueError naming the file: ``Dataset.load_image`` gives
RGB. For such data set ``IMAGE_CHANNEL_COUNT`` and override ``load_image``
(e.g. with ``tifffile.imread``) to return ``[H, W, IMAGE_CHANNEL_COUNT]``.

Pixels are as stored in the file; the EXIF orientation is applied only on
request (``upright``), as ``Dataset.apply_exif_orientation`` says (see
mrcnn.structures.orientation).
"""

import logging
import os
import warnings

import numpy as np
import skimage.util

from mrcnn.structures import orientation

logger = logging.getLogger(__name__)
_warned_multiframe = set()  # files already warned about as multi-frame

# Pillow modes of integer grey images wider than 8 bits.
_WIDE_GREY_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")


def read_image(path, upright=False, where=None):
    """An image file as RGB uint8 [H, W, 3] (see the module doc for the
    rules), stored frame, or EXIF-upright with ``upright`` ([W, H, 3] for
    orientations 5-8).

    where: what the file is, for messages (e.g. "image 3 ('a.jpg' of
    source 'via')"). Raises FileNotFoundError when the file is missing and
    ValueError when it cannot be decoded, both naming the file.
    """
    path = os.fspath(path)
    suffix = " ({})".format(where) if where else ""
    if not os.path.isfile(path):
        raise FileNotFoundError("Image file not found: {}{}".format(path,
                                                                     suffix))
    try:
        image = _decode_file(path)
    except Exception as error:
        raise ValueError("Cannot read image file {}{}: {}".format(
            path, suffix, error)) from error
    if upright:
        tag = orientation.exif_orientation(path)
        image = np.ascontiguousarray(orientation.upright_pixels(image, tag))
    return image


def _decode_file(path):
    """RGB uint8 of a file: tifffile for TIFFs (Pillow misreads planar
    16-bit ones), Pillow for the rest and the TIFFs tifffile cannot
    decode, imageio for what Pillow cannot open."""
    import PIL.Image
    if _is_tiff(path):
        try:
            array, grey = _read_tiff(path)
        except Exception:  # noqa: BLE001 - e.g. a codec it lacks: Pillow's
            array = None
        if array is not None:
            if grey and array.ndim == 3 and array.shape[-1] > 2:
                # grey with 3 or more samples: bands, not RGB; never guess
                raise ValueError(_channels_message(path, array.shape))
            return _to_rgb_uint8(array, path)
    try:
        pil_image = PIL.Image.open(path)
    except PIL.UnidentifiedImageError:
        return _array_fallback(path)
    with pil_image:
        return pil_to_rgb(pil_image, path)


def _is_tiff(path):
    """True for a file that starts as a TIFF or BigTIFF does."""
    with open(path, "rb") as f:
        return f.read(4) in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")


def pil_to_rgb(image, name):
    """RGB uint8 [H, W, 3] of an opened PIL image, by the module's rules;
    name (the file) is for the multi-frame warning and errors."""
    if getattr(image, "n_frames", 1) > 1:
        warn_first_frame(name, image.n_frames)
        image.seek(0)
    if image.mode in _WIDE_GREY_MODES or image.mode == "F":
        grey = _to_uint8(np.asarray(image), name)
        return np.repeat(grey[..., None], 3, axis=-1)
    with warnings.catch_warnings():
        # "Palette images with Transparency expressed in bytes should be
        # converted to RGBA": the transparency is dropped here on purpose.
        warnings.simplefilter("ignore", UserWarning)
        return np.asarray(image.convert("RGB"))


def warn_first_frame(name, frames):
    """One warning per file that has several frames: only the first one is
    used."""
    if name in _warned_multiframe:
        return
    _warned_multiframe.add(name)
    logger.warning("%s has %s frames (an animation or a multi-page file): "
                   "only the first one is used.", name, frames)


def _array_fallback(path):
    """RGB uint8 from imageio's decoding, for files Pillow cannot open."""
    import skimage.io
    with warnings.catch_warnings():
        # imageio probing its plugins on an unknown file warns about
        # deprecated ones; the caller's error says what went wrong.
        warnings.simplefilter("ignore", DeprecationWarning)
        array = skimage.io.imread(path)
    return _to_rgb_uint8(array, path)


def _read_tiff(path):
    """(array, grey): the first page of a grey or RGB TIFF as [H, W] or
    [H, W, samples], grey True for a grey one; (None, False) for other
    colour spaces. Further pages are left out with the multi-frame
    warning."""
    import tifffile  # a dependency of scikit-image
    with tifffile.TiffFile(path) as tiff:
        page = tiff.pages[0]
        if page.photometric not in (tifffile.PHOTOMETRIC.MINISBLACK,
                                    tifffile.PHOTOMETRIC.RGB):
            return None, False  # palette, CMYK, ...: Pillow converts
        array, axes = page.asarray(), page.axes  # Y, X and S (samples)
        frames = len(tiff.pages)
    if frames > 1:
        warn_first_frame(path, frames)
    array = array[tuple(slice(None) if a in "YXS" else 0 for a in axes)]
    kept = [a for a in axes if a in "YXS"]
    if "S" in kept:  # samples last, also for planar files
        array = np.moveaxis(array, kept.index("S"), -1)
    return array, page.photometric == tifffile.PHOTOMETRIC.MINISBLACK


def _channels_message(path, shape):
    return ("Image file {} has shape {}: not grey, grey + alpha, RGB or "
            "RGBA. For images of other channel counts set "
            "IMAGE_CHANNEL_COUNT and override Dataset.load_image".format(
                path, tuple(shape)))


def _to_rgb_uint8(image, path):
    """Converts a decoded array to RGB uint8 [H, W, 3]; path is for the
    messages. [H, W] and [H, W, 1 or 2] are grey (+ alpha), [H, W, 3 or 4]
    RGB (+ alpha); [frames, H, W, C] gives its first frame."""
    image = np.asarray(image)
    if image.ndim == 4:  # multi-frame file (GIF, TIFF stack): first frame
        warn_first_frame(path, image.shape[0])
        image = image[0]
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(_channels_message(path, image.shape))
    channels = image.shape[-1]
    if channels in (1, 2):  # gray or gray + alpha
        image = np.repeat(image[..., :1], 3, axis=-1)
    else:  # RGB or RGBA
        image = image[..., :3]
    return _to_uint8(image, path)


def _to_uint8(image, path):
    """Rescales pixel values to uint8: 16 bit by the top byte (65535 ->
    255), floats in [0, 1] times 255."""
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
