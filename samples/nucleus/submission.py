"""The 2018 Data Science Bowl submission format: run-length encoded masks.

One CSV row per nucleus, ``ImageId,EncodedPixels``, where EncodedPixels is
"start length start length ..." over the image's pixels numbered 1, 2, ...
down each column, then column after column (column-major, 1-based), and
the nuclei of an image must not overlap. An image with no nucleus gets one
row with nothing after the comma.

    rle_encode(mask) -> "4 2 8 2"
    rle_decode("4 2 8 2", (3, 3)) -> the mask
    rows = image_rows(image_id, masks, scores)   # overlaps removed
    write_submission(path, rows)
"""

import numpy as np

from mrcnn import atomic_files

HEADER = "ImageId,EncodedPixels"


def rle_encode(mask):
    """The run-length encoding of one binary mask [height, width]: "start
    length ..." with 1-based starts in column-major order ("" when the mask
    is empty)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError("rle_encode takes one mask [height, width], got "
                         "shape {}".format(mask.shape))
    # Column-major: the transpose's rows are the mask's columns.
    pixels = mask.T.reshape(-1).astype(bool).astype(np.int8)
    # +1 where a run starts, -1 just after it ends (zeros pad both ends).
    edges = np.diff(np.concatenate([[0], pixels, [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    runs = np.stack([starts + 1, ends - starts], axis=1)
    return " ".join(str(v) for v in runs.reshape(-1))


def rle_decode(rle, shape):
    """The binary mask [height, width] of an rle_encode string.

    Raises ValueError for an odd count of numbers or runs outside the
    image."""
    values = [int(v) for v in rle.split()]
    if len(values) % 2:
        raise ValueError("run-length encoding {!r} has an odd count of "
                         "numbers".format(rle[:60]))
    height, width = shape
    flat = np.zeros(height * width, dtype=bool)
    for start, length in zip(values[::2], values[1::2]):
        if start < 1 or length < 1 or start - 1 + length > flat.size:
            raise ValueError("run {} {} is outside a {}x{} image".format(
                start, length, height, width))
        flat[start - 1:start - 1 + length] = True
    return flat.reshape(width, height).T


def non_overlapping(masks, scores):
    """Instance masks [height, width, N] with each pixel kept by its
    highest-scoring instance only (the competition refuses overlaps), in
    order of descending score; instances left without pixels are dropped.

    Returns (masks [height, width, M] bool, scores [M]), M <= N.
    """
    masks = np.asarray(masks).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    if masks.ndim != 3 or masks.shape[-1] != len(scores):
        raise ValueError("masks [height, width, N] and N scores expected, "
                         "got {} and {}".format(masks.shape, scores.shape))
    if masks.shape[-1] == 0:
        return masks, scores
    order = np.argsort(-scores, kind="stable")
    masks, scores = masks[..., order], scores[order]
    # Each pixel's owner: its first instance in score order (argmax finds
    # the first True). One [height, width] map rather than a running count
    # per instance, which would take 8 bytes a pixel per instance.
    owner = np.argmax(masks, axis=-1)
    masks = masks & (owner[..., None] == np.arange(masks.shape[-1]))
    keep = masks.any(axis=(0, 1))
    return masks[..., keep], scores[keep]


def image_rows(image_id, masks, scores):
    """The submission rows ["<id>,<rle>", ...] of one image's detections
    (masks [height, width, N], scores [N]), overlaps removed."""
    return encode_rows(image_id, non_overlapping(masks, scores)[0])


def encode_rows(image_id, masks):
    """The rows of masks [height, width, N] that do not overlap: one per
    mask, or "<id>," alone for an image without any."""
    if masks.shape[-1] == 0:
        return ["{},".format(image_id)]
    return ["{},{}".format(image_id, rle_encode(masks[..., i]))
            for i in range(masks.shape[-1])]


def write_submission(path, rows):
    """Writes the CSV (header, then rows) whole or not at all."""
    atomic_files.write_text(path, "\n".join([HEADER] + list(rows)) + "\n")
