"""EXIF orientation: the tag of an image file and its upright frame.

Cameras and phones often store pixels as the sensor read them and tag the
file with an orientation (EXIF tag 0x0112) telling viewers how to show it
upright. The values, as EXIF 2.3 defines them (and as
``PIL.ImageOps.exif_transpose`` applies them):

* 1: as stored;
* 2: mirrored left-right;
* 3: turned 180 degrees;
* 4: mirrored top-bottom;
* 5: transposed (mirrored along the main diagonal), sides swapped;
* 6: turned 90 degrees clockwise, sides swapped;
* 7: transversed (mirrored along the other diagonal), sides swapped;
* 8: turned 90 degrees counter-clockwise, sides swapped.

Annotation tools that honour the tag (LabelMe, web browsers) show, and so
are annotated on, the upright frame; ``mrcnn.utils.Dataset`` uses the
stored frame unless its ``apply_exif_orientation`` is set.
"""

import logging

import numpy as np

EXIF_ORIENTATION_TAG = 0x0112
# Orientations whose upright frame has height and width swapped.
SWAPS_SIDES = (5, 6, 7, 8)

logger = logging.getLogger(__name__)
_warned_paths = set()  # files already warned about as unrotated


def exif_orientation(path):
    """The EXIF orientation (1..8) of an image file; 1 (upright) when the
    file has no such tag, no EXIF at all, or a value outside 1..8. Reads
    the header only."""
    try:
        import PIL.Image
        with PIL.Image.open(path) as header:
            value = int(header.getexif().get(EXIF_ORIENTATION_TAG, 1))
    except Exception:  # not decodable by PIL: no orientation to speak of
        return 1
    return value if 1 <= value <= 8 else 1


def upright_size(height, width, orientation):
    """(height, width) of the upright frame of a stored height x width
    image with that orientation."""
    if orientation in SWAPS_SIDES:
        return width, height
    return height, width


def upright_pixels(image, orientation):
    """The stored pixels [H, W, ...] turned upright: [H, W, ...] for
    orientations 1-4, [W, H, ...] for 5-8."""
    image = np.asarray(image)
    if orientation == 2:
        return image[:, ::-1]
    if orientation == 3:
        return image[::-1, ::-1]
    if orientation == 4:
        return image[::-1]
    if orientation == 5:
        return np.swapaxes(image, 0, 1)
    if orientation == 6:
        return np.rot90(image, k=-1)  # clockwise
    if orientation == 7:
        return np.swapaxes(image[::-1, ::-1], 0, 1)
    if orientation == 8:
        return np.rot90(image, k=1)  # counter-clockwise
    return image


def warn_stored_frame(path, orientation):
    """One warning per file whose EXIF orientation is left unapplied: its
    stored pixels are used, which tools that honour EXIF do not show."""
    if orientation == 1 or path in _warned_paths:
        return
    _warned_paths.add(path)
    logger.warning(
        "%s has EXIF orientation %d: its pixels are used as stored, "
        "unrotated, and its annotations must be in that frame. If it was "
        "annotated on the rotated view (web browsers and LabelMe rotate by "
        "EXIF), set apply_exif_orientation = True on the dataset, or rotate "
        "the file itself (PIL.ImageOps.exif_transpose, `exiftran -ai`), so "
        "that pixels and annotations agree.", path, orientation)
