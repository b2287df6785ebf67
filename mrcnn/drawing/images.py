"""Drawing into image arrays (numpy only, no matplotlib): instance colors,
blended masks, the color splash effect and box outlines.

Images are [height, width, 3] with values in 0..255; masks are binary,
[height, width] or [height, width, N]; colors are (r, g, b) in [0, 1].
"""

import colorsys
import random

import numpy as np

# ITU-R 709 luma weights (as skimage.color.rgb2gray); applied to the raw
# values so any dtype keeps its own scale.
_LUMA_WEIGHTS = np.array([0.2125, 0.7154, 0.0721], dtype=np.float32)


def random_colors(N, bright=True):
    """Generates N visually distinct colors in random order.

    Evenly spaced hues in HSV, converted to RGB.
    Returns: list of N (r, g, b) tuples with values in [0, 1].
    """
    brightness = 1.0 if bright else 0.7
    colors = [colorsys.hsv_to_rgb(i / N, 1, brightness) for i in range(N)]
    random.shuffle(colors)
    return colors


def apply_mask(image, mask, color, alpha=0.5):
    """Blends a color into the image where mask == 1, in place.

    image: [height, width, 3] in 0..255 (any numeric dtype).
    mask: [height, width] binary.
    color: (r, g, b) in [0, 1].
    Returns the same (modified) image array.
    """
    for c in range(3):
        image[:, :, c] = np.where(
            mask == 1,
            image[:, :, c] * (1 - alpha) + alpha * color[c] * 255,
            image[:, :, c])
    return image


def apply_masks_fast(image, masks, colors=None, alpha=0.5):
    """Blends many instance masks into an image in one vectorized pass.

    Where instances overlap, the pixel takes the color of the instance with
    the highest index (the one drawn last), blended once; unlike repeated
    apply_mask calls, overlaps are not blended twice.

    image: [height, width, 3] in 0..255.
    masks: [height, width, N] binary.
    colors: N (r, g, b) tuples in [0, 1]; random_colors(N) when None.
    Returns a new array with the image's dtype.
    """
    masks = np.asarray(masks).astype(bool)
    if masks.ndim != 3 or masks.shape[:2] != image.shape[:2]:
        raise ValueError("masks shape {} must be [height, width, N] with the "
                         "image's height and width {}".format(
                             masks.shape, image.shape[:2]))
    count = masks.shape[-1]
    result = image.astype(np.float32)
    if count == 0:
        return result.astype(image.dtype)
    colors = random_colors(count) if colors is None else colors
    palette = np.asarray(colors, dtype=np.float32)[:, :3] * 255
    covered = masks.any(axis=-1)
    # argmax on the reversed axis finds the last True instance per pixel.
    top = count - 1 - np.argmax(masks[:, :, ::-1], axis=-1)
    result[covered] = (result[covered] * (1 - alpha)
                       + alpha * palette[top[covered]])
    if np.issubdtype(image.dtype, np.integer):
        result = np.clip(np.round(result), 0, np.iinfo(image.dtype).max)
    return result.astype(image.dtype)


def color_splash(image, mask):
    """Grayscale copy of the image with the masked instances kept in color.

    image: [height, width, 3] RGB.
    mask: [height, width, N] (or [height, width]) instance masks.
    Returns: [height, width, 3] with the image's dtype.
    """
    gray = np.dot(image[..., :3].astype(np.float32), _LUMA_WEIGHTS)
    gray = np.repeat(gray[..., None], 3, axis=-1)
    mask = np.asarray(mask)
    if mask.ndim == 2:
        mask = mask[..., None]
    if mask.shape[-1] == 0:
        return gray.astype(image.dtype)
    keep_color = mask.astype(bool).any(axis=-1, keepdims=True)
    return np.where(keep_color, image[..., :3], gray).astype(image.dtype)


def draw_box(image, box, color):
    """Draws a 2-pixel-wide box outline into the image array, in place.

    box: [y1, x1, y2, x2] integer pixel coordinates.
    color: a value per channel, e.g. (255, 0, 0).
    Returns the same image array.
    """
    y1, x1, y2, x2 = box
    image[y1:y1 + 2, x1:x2] = color
    image[y2:y2 + 2, x1:x2] = color
    image[y1:y2, x1:x1 + 2] = color
    image[y1:y2, x2:x2 + 2] = color
    return image
