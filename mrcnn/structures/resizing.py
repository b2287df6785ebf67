"""Image and mask resizing as matterport does it (``resize_image`` modes
none, square, pad64 and crop; ``resize_mask`` to follow an image)."""

import random

import cv2
import numpy as np
import scipy.ndimage
import skimage.transform

from mrcnn.constants import PYRAMID_STRIDE, pyramid_size_error


def resize(image, output_shape, order=1, mode="constant", cval=0, clip=True,
           preserve_range=False, anti_aliasing=False,
           anti_aliasing_sigma=None):
    """skimage.transform.resize with matterport's defaults.

    Anti-aliasing is off by default (skimage turns it on), so results match
    the original library.
    """
    return skimage.transform.resize(
        image, output_shape, order=order, mode=mode, cval=cval, clip=clip,
        preserve_range=preserve_range, anti_aliasing=anti_aliasing,
        anti_aliasing_sigma=anti_aliasing_sigma)


def _pad_to_multiple(size, multiple):
    """(before, after) padding that brings size up to a multiple, centred."""
    total = (-size) % multiple
    return total // 2, total - total // 2


def resize_image_for_config(image, config, fast=False):
    """resize_image with the config's IMAGE_MIN_DIM, IMAGE_MIN_SCALE,
    IMAGE_MAX_DIM and IMAGE_RESIZE_MODE: the resizing that training
    (load_image_gt, fast) and detection (mold_inputs) share."""
    return resize_image(image, min_dim=config.IMAGE_MIN_DIM,
                        min_scale=config.IMAGE_MIN_SCALE,
                        max_dim=config.IMAGE_MAX_DIM,
                        mode=config.IMAGE_RESIZE_MODE, fast=fast)


def resize_image(image, min_dim=None, max_dim=None, min_scale=None,
                 mode="square", fast=False):
    """Resizes an image keeping its aspect ratio.

    image: [height, width, channels] (any dtype; it is preserved).
    min_dim: scale up so the short side is at least this (never down).
    max_dim: in "square" mode, the long side stays at most this.
    min_scale: the image is scaled by at least this factor.
    mode:
        none: no resizing or padding; the image is returned as is.
        square: resize, then zero-pad to [max_dim, max_dim].
        pad64: resize (min_dim, min_scale; max_dim is ignored), then pad each
            side up to a multiple of 64. min_dim must be a multiple of 64.
        crop: resize (min_dim, min_scale), then take a random
            [min_dim, min_dim] crop (using Python's ``random``).
    fast: for uint8 images, OpenCV's bilinear resize made to agree with
        scikit-image's to within one grey level (see
        ``bilinear_like_skimage``), about 20 times faster; the training
        feed uses it. Off (the default, and detection's): scikit-image's.

    Returns:
        image: the resized image.
        window: (y1, x1, y2, x2) of the image inside the result; the rest is
            padding.
        scale: the resize factor.
        padding: [(top, bottom), (left, right), (0, 0)] padding added.
        crop: (y, x, h, w) of the crop in "crop" mode, else None.
    """
    image = np.asarray(image)
    image_dtype = image.dtype
    h, w = image.shape[:2]
    if mode not in ("none", "square", "pad64", "crop"):
        raise ValueError("Mode {} not supported".format(mode))
    if mode == "none":
        return image, (0, 0, h, w), 1, [(0, 0), (0, 0), (0, 0)], None

    scale = _resize_scale(h, w, min_dim, max_dim, min_scale, mode)
    if scale != 1:
        image = _scaled(image, scale, max_dim, fast)
    crop = None
    if mode == "square":
        image, window, padding = _pad_to_square(image, max_dim)
    elif mode == "pad64":
        image, window, padding = _pad_to_64(image, min_dim)
    else:
        image, window, padding, crop = _random_crop(image, min_dim)
    return image.astype(image_dtype), window, scale, padding, crop


def _resize_scale(h, w, min_dim, max_dim, min_scale, mode):
    """The resize factor of an h x w image: up to min_dim (never down), at
    least min_scale and, in square mode, the long side at most max_dim."""
    scale = 1
    if min_dim:
        scale = max(1, min_dim / min(h, w))  # scale up only
    if min_scale and scale < min_scale:
        scale = min_scale
    if max_dim and mode == "square":
        image_max = max(h, w)
        if round(image_max * scale) > max_dim:
            scale = max_dim / image_max
    return scale


def _scaled(image, scale, max_dim, fast=False):
    """image [H, W, C] resized by scale (bilinear, dtype range kept)."""
    h, w = image.shape[:2]
    new_h, new_w = round(h * scale), round(w * scale)
    if min(new_h, new_w) < 1:
        # Nothing of the image would be left (and masks could not
        # follow): an aspect ratio beyond max_dim : 0.5.
        raise ValueError(
            "resize_image: a {}x{} image scaled by {:.4g} (to fit "
            "max_dim={}) would be {}x{} pixels; crop or split such "
            "elongated images".format(h, w, scale, max_dim, new_h, new_w))
    if fast and image.dtype == np.uint8 and image.ndim == 3 \
            and image.shape[-1] <= 512:  # OpenCV's channel limit
        return bilinear_like_skimage(image, (new_h, new_w))
    return resize(image, (new_h, new_w), preserve_range=True)


def _edge_weights(size, new_size):
    """[new_size] float32: how much of each output row (or column) of
    scikit-image's bilinear resize comes from inside the image. Below 1
    only at the first and last rows, whose sample points lie up to half a
    pixel outside: scikit-image blends them with zeros there, OpenCV
    repeats the edge pixel. Read from scikit-image itself (a probe of ones
    beside zeros, so that its clipping to the input's range leaves it)."""
    probe = np.zeros((size, 2))
    probe[:, 0] = 1
    return resize(probe, (new_size, 2), preserve_range=True)[:, 0].astype(
        np.float32)


def bilinear_like_skimage(image, shape):
    """resize(image, shape, preserve_range=True).astype(np.uint8) (what
    resize_image computes for uint8 images) by OpenCV, to within one grey
    level, about 20 times faster.

    image: uint8 [H, W, C]; shape: (new_h, new_w). Returns uint8
    [new_h, new_w, C]. Both sample at the same half-pixel centres with the
    same bilinear weights; scikit-image blends the outermost rows and
    columns with zeros where OpenCV repeats the edge (corrected by
    _edge_weights), clips to the input's range (done here too) and the
    uint8 conversion truncates: float32 instead of float64 arithmetic
    moves values that land on or within 0.001 below a whole number by one
    level (a few pixels in a hundred in flat areas, fewer in photos).
    """
    new_h, new_w = (int(d) for d in shape)
    out = cv2.resize(image.astype(np.float32), (new_w, new_h),
                     interpolation=cv2.INTER_LINEAR)
    out = out.reshape(new_h, new_w, image.shape[-1])
    out *= _edge_weights(image.shape[0], new_h)[:, np.newaxis, np.newaxis]
    out *= _edge_weights(image.shape[1], new_w)[np.newaxis, :, np.newaxis]
    np.clip(out, image.min(), image.max(), out=out)
    out += 1e-3  # a whole number computed a hair below stays whole
    return out.astype(np.uint8)


def _padded(image, padding):
    """image zero-padded by [(top, bottom), (left, right), (0, 0)]; returns
    (image, window (y1, x1, y2, x2) of the original pixels)."""
    h, w = image.shape[:2]
    image = np.pad(image, padding[:image.ndim], mode="constant",
                   constant_values=0)
    top_pad, left_pad = padding[0][0], padding[1][0]
    return image, (top_pad, left_pad, h + top_pad, w + left_pad)


def _pad_to_square(image, max_dim):
    """Square mode: centred zero padding to [max_dim, max_dim]."""
    h, w = image.shape[:2]
    if not max_dim or max(h, w) > max_dim:
        raise ValueError("square mode needs max_dim >= the resized image "
                         "size, got max_dim={} for {}x{}"
                         .format(max_dim, h, w))
    top_pad = (max_dim - h) // 2
    left_pad = (max_dim - w) // 2
    padding = [(top_pad, max_dim - h - top_pad),
               (left_pad, max_dim - w - left_pad), (0, 0)]
    image, window = _padded(image, padding)
    return image, window, padding


def _pad_to_64(image, min_dim):
    """pad64 mode: centred zero padding of each side to a multiple of 64
    (PYRAMID_STRIDE)."""
    problem = pyramid_size_error("min_dim", min_dim, " in 'pad64' mode")
    if problem:
        raise ValueError(problem)
    h, w = image.shape[:2]
    padding = [_pad_to_multiple(h, PYRAMID_STRIDE),
               _pad_to_multiple(w, PYRAMID_STRIDE), (0, 0)]
    image, window = _padded(image, padding)
    return image, window, padding


def _random_crop(image, min_dim):
    """crop mode: a random [min_dim, min_dim] crop (Python's ``random``).

    Returns (image, window, padding (none), crop (y, x, h, w))."""
    h, w = image.shape[:2]
    if not min_dim or h < min_dim or w < min_dim:
        raise ValueError("crop mode needs min_dim <= the resized image "
                         "size, got min_dim={} for {}x{}"
                         .format(min_dim, h, w))
    y = random.randint(0, h - min_dim)
    x = random.randint(0, w - min_dim)
    image = image[y:y + min_dim, x:x + min_dim]
    return (image, (0, 0, min_dim, min_dim), [(0, 0), (0, 0), (0, 0)],
            (y, x, min_dim, min_dim))


def resize_mask(mask, scale, padding, crop=None):
    """Resizes masks like resize_image resized their image.

    mask: [height, width, num_instances], or integer label layers
        [height, width, layers] (mrcnn.structures.instance_layers).
    scale, padding, crop: as returned by resize_image.
    Returns: the resized masks, same dtype as the input (bool stays bool).
    """
    mask = np.asarray(mask)
    if scale != 1 and (mask.dtype == bool
                       or np.issubdtype(mask.dtype, np.integer)):
        mask = _nearest_zoom(mask, scale)  # label layers too
    elif scale != 1:
        # zoom the masks as float: nearest neighbour (order=0) keeps them
        # binary, and scipy/skimage refuse to interpolate bool arrays.
        zoomed = scipy.ndimage.zoom(mask.astype(np.float32),
                                    zoom=[scale, scale, 1], order=0)
        mask = zoomed.astype(mask.dtype)
    if crop is not None:
        y, x, h, w = crop
        return mask[y:y + h, x:x + w]
    return np.pad(mask, padding, mode="constant", constant_values=0)


def _nearest_zoom(mask, scale):
    """scipy.ndimage.zoom(mask, [scale, scale, 1], order=0), pixel for
    pixel, for bool masks [H, W, N], without the float copy of every mask.

    Nearest-neighbour zooming picks, for each output row, one input row,
    and for each output column one input column, independently: zooming
    the row and column numbers themselves gives those picks exactly as
    scipy makes them. Numbered from 1, so that the 0 scipy fills in where
    rounding puts the last row or column a hair past the edge (its
    'constant' mode) stays recognisable: those rows and columns are empty
    in scipy's result, and in this one.
    """
    picks = []
    for size in mask.shape[:2]:
        numbers = np.arange(1, size + 1, dtype=np.float64)
        picks.append(np.rint(scipy.ndimage.zoom(numbers, scale, order=0))
                     .astype(np.intp) - 1)
    rows, cols = picks
    zoomed = mask[np.maximum(rows, 0)[:, np.newaxis],
                  np.maximum(cols, 0)[np.newaxis, :]]
    zoomed[rows < 0] = False
    zoomed[:, cols < 0] = False
    return zoomed
