"""Detection on images of any size: overlapping tiles, merged at the seams.

    r = model.detect_tiled([image], tile=1024, overlap=256)[0]

The image is covered by tiles of ``tile`` pixels (the last row and column
of tiles end at the image border), neighbours overlapping by at least
``overlap`` pixels. detect() runs on the tiles, a batch at a time, and each
detection becomes a *piece*: its box in full-image pixels and its mask
cropped to that box. Pieces of one object seen by several tiles are then
joined (see same_object), transitively, and each group becomes one
instance: the union of the masks, the hull of the boxes, the best score.

Memory: a batch of tiles' detect() output plus the cropped pieces, however
large the image. Only the returned full-size masks ([H, W, N] bool, H * W
bytes per instance) grow with the image; ``full_masks=False`` returns the
crops instead.
"""

import logging
import math

import numpy as np
import scipy.ndimage

logger = logging.getLogger(__name__)

# Two pieces of one class from different tiles are one object when their
# masks agree where the tiles meet: a Dice coefficient of at least this
# between them in the shared band, where a pixel of one mask counts as
# matched when the other mask is within 1 px of it. The 1 px tolerance
# joins pieces that only touch across a seam (overlap 0).
MERGE_DICE = 0.5

_NEIGHBOURS = np.ones((3, 3), bool)  # 8-connected 1 px dilation


class Piece(object):
    """One detection of one tile, in full-image pixels.

    box: [(y1, x1, y2, x2)] int pixels of the full image.
    mask: [y2 - y1, x2 - x1] bool, the mask inside box.
    """

    __slots__ = ("box", "mask", "class_id", "score", "tile")

    def __init__(self, box, mask, class_id, score, tile):
        self.box = np.asarray(box, np.int64)
        self.mask = mask
        self.class_id = int(class_id)
        self.score = float(score)
        self.tile = tile


############################################################
#  Tile grid
############################################################

def check_tile(tile, overlap):
    """(tile, overlap) as (height, width) int pairs; overlap None is a
    quarter of the tile. Raises ValueError for values that cannot tile."""
    def pair(value, name):
        values = [value, value] if np.ndim(value) == 0 else list(value)
        if len(values) != 2 or not all(
                isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                for v in values):
            raise ValueError("detect_tiled(): {} must be an int or a "
                             "(height, width) pair of ints, got {!r}".format(
                                 name, value))
        return [int(v) for v in values]

    tile = pair(tile, "tile")
    overlap = [t // 4 for t in tile] if overlap is None else pair(
        overlap, "overlap")
    if min(tile) < 1:
        raise ValueError("detect_tiled(): tile must be >= 1 px, got "
                         "{}".format(tile))
    if any(not 0 <= o < t for o, t in zip(overlap, tile)):
        raise ValueError("detect_tiled(): overlap {} must be >= 0 and less "
                         "than the tile {}".format(overlap, tile))
    return tile, overlap


def tile_starts(length, tile, overlap):
    """Starts of tiles of `tile` px covering [0, length): evenly spread,
    neighbours overlapping by at least `overlap` px, the first at 0 and
    the last ending at `length`. A length up to `tile` is one tile."""
    if length <= tile:
        return [0]
    count = math.ceil((length - tile) / (tile - overlap)) + 1
    # floor keeps every step <= tile - overlap (round could add 1 px).
    return [int(s) for s in np.floor(np.linspace(0, length - tile, count))]


def tile_windows(image_shape, tile, overlap):
    """[T, (y1, x1, y2, x2)] int pixel windows of the tiles, row by row.

    tile, overlap: (height, width) pairs (see check_tile); a tile larger
    than the image is cut to the image.
    """
    height, width = image_shape[:2]
    tile_h, tile_w = min(tile[0], height), min(tile[1], width)
    return np.array([[y, x, y + tile_h, x + tile_w]
                     for y in tile_starts(height, tile_h, overlap[0])
                     for x in tile_starts(width, tile_w, overlap[1])],
                    np.int64).reshape(-1, 4)


def shared_bands(windows):
    """Pairs of tiles that overlap or touch, and the band they share.

    Returns [(i, j, band)] with i < j and band (y1, x1, y2, x2): the
    intersection of the two windows grown by 1 px (so that tiles which
    only touch share the two pixel lines either side of the seam).
    """
    grown = windows + np.array([-1, -1, 1, 1])
    pairs = []
    for i in range(len(windows) - 1):
        top_left = np.maximum(grown[i, :2], grown[i + 1:, :2])
        bottom_right = np.minimum(grown[i, 2:], grown[i + 1:, 2:])
        for k in np.flatnonzero(np.all(bottom_right > top_left, axis=1)):
            pairs.append((i, i + 1 + int(k), np.concatenate(
                [top_left[k], bottom_right[k]])))
    return pairs


############################################################
#  Pieces and their merging
############################################################

def pieces_of_tile(result, window, tile_index):
    """detect()'s dict for one tile -> list of Pieces in image pixels.

    result: rois [n, (y1, x1, y2, x2)] tile pixels, class_ids [n],
        scores [n], masks [tile_h, tile_w, n] bool.
    window: (y1, x1, y2, x2) of the tile in the image.
    Each piece's box is the hull of its roi (cut to the tile) and of its
    mask pixels, so no mask pixel is lost.
    """
    tile_h, tile_w = int(window[2] - window[0]), int(window[3] - window[1])
    origin = np.array([window[0], window[1], window[0], window[1]])
    pieces = []
    for i in range(len(result["class_ids"])):
        mask = np.asarray(result["masks"][..., i], bool)
        y1, x1, y2, x2 = np.clip(np.asarray(result["rois"][i], np.int64), 0,
                                 [tile_h, tile_w, tile_h, tile_w])
        rows, cols = np.flatnonzero(mask.any(axis=1)), \
            np.flatnonzero(mask.any(axis=0))
        if rows.size:
            if y2 <= y1 or x2 <= x1:  # empty roi: the mask's box alone
                y1, x1, y2, x2 = rows[0], cols[0], rows[-1] + 1, cols[-1] + 1
            y1, x1 = min(y1, rows[0]), min(x1, cols[0])
            y2, x2 = max(y2, rows[-1] + 1), max(x2, cols[-1] + 1)
        box = np.array([y1, x1, max(y1, y2), max(x1, x2)])
        pieces.append(Piece(box + origin, mask[box[0]:box[2],
                                               box[1]:box[3]].copy(),
                            result["class_ids"][i], result["scores"][i],
                            tile_index))
    return pieces


def _paint(piece, frame):
    """The piece's mask inside frame (y1, x1, y2, x2), frame-sized."""
    canvas = np.zeros((frame[2] - frame[0], frame[3] - frame[1]), bool)
    y1, x1 = np.maximum(piece.box[:2], frame[:2])
    y2, x2 = np.minimum(piece.box[2:], frame[2:])
    if y2 > y1 and x2 > x1:
        canvas[y1 - frame[0]:y2 - frame[0], x1 - frame[1]:x2 - frame[1]] = \
            piece.mask[y1 - piece.box[0]:y2 - piece.box[0],
                       x1 - piece.box[1]:x2 - piece.box[1]]
    return canvas


def same_object(a, b, band):
    """Whether pieces a and b (other tiles, same class) are one object:
    their masks in the shared band have a 1 px tolerant Dice of at least
    MERGE_DICE (see the constant). A piece with no pixel in the band
    never joins."""
    frame = np.concatenate([
        np.maximum(band[:2], np.minimum(a.box[:2], b.box[:2])),
        np.minimum(band[2:], np.maximum(a.box[2:], b.box[2:]))])
    if np.any(frame[2:] <= frame[:2]):
        return False
    mask_a, mask_b = _paint(a, frame), _paint(b, frame)
    count_a, count_b = int(mask_a.sum()), int(mask_b.sum())
    if not count_a or not count_b:
        return False
    near_a = scipy.ndimage.binary_dilation(mask_a, _NEIGHBOURS)
    near_b = scipy.ndimage.binary_dilation(mask_b, _NEIGHBOURS)
    matched = int((near_a & mask_b).sum()) + int((near_b & mask_a).sum())
    return matched >= MERGE_DICE * (count_a + count_b)


def _overlaps(box, band):
    return box[0] < band[2] and box[2] > band[0] and box[1] < band[3] \
        and box[3] > band[1]


def group_pieces(pieces, windows):
    """Indices of the pieces of each object: lists, joined transitively.

    Only pieces of different tiles, of the same class, both reaching into
    the band their tiles share, are compared; pieces of one tile are
    never joined (detect() has already suppressed duplicates there).
    """
    parent = list(range(len(pieces)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_tile = {}
    for index, piece in enumerate(pieces):
        by_tile.setdefault(piece.tile, []).append(index)
    for i, j, band in shared_bands(windows):
        near_i = [k for k in by_tile.get(i, ()) if _overlaps(pieces[k].box,
                                                             band)]
        near_j = [k for k in by_tile.get(j, ()) if _overlaps(pieces[k].box,
                                                             band)]
        for a in near_i:
            for b in near_j:
                if pieces[a].class_id == pieces[b].class_id \
                        and root(a) != root(b) \
                        and same_object(pieces[a], pieces[b], band):
                    parent[root(b)] = root(a)
    groups = {}
    for index in range(len(pieces)):
        groups.setdefault(root(index), []).append(index)
    return list(groups.values())


def merge_pieces(pieces):
    """One Piece from pieces of one object: the hull of their boxes, the
    union of their masks, their class and their best score."""
    if len(pieces) == 1:
        return pieces[0]
    boxes = np.array([p.box for p in pieces])
    box = np.concatenate([boxes[:, :2].min(axis=0), boxes[:, 2:].max(axis=0)])
    mask = np.zeros((box[2] - box[0], box[3] - box[1]), bool)
    for piece in pieces:
        y, x = piece.box[:2] - box[:2]
        mask[y:y + piece.mask.shape[0], x:x + piece.mask.shape[1]] |= \
            piece.mask
    return Piece(box, mask, pieces[0].class_id,
                 max(p.score for p in pieces), None)


############################################################
#  The whole image
############################################################

def assemble(instances, image_shape, full_masks=True):
    """detect()'s dict from merged pieces, best score first.

    Returns rois [N, (y1, x1, y2, x2)] int32 image pixels, class_ids [N]
    int32, scores [N] float32 and masks: [H, W, N] bool with full_masks,
    else a list of N bool crops, crop i of shape [y2 - y1, x2 - x1] of
    rois[i].
    """
    instances = sorted(instances, key=lambda p: -p.score)
    rois = np.array([p.box for p in instances], np.int32).reshape(-1, 4)
    result = {"rois": rois,
              "class_ids": np.array([p.class_id for p in instances],
                                    np.int32),
              "scores": np.array([p.score for p in instances], np.float32)}
    if not full_masks:
        result["masks"] = [p.mask for p in instances]
        return result
    # Instance-major, as postprocess.paste_masks: masks[..., i] contiguous.
    masks = np.zeros((len(instances),) + tuple(image_shape[:2]), bool)
    for i, (y1, x1, y2, x2) in enumerate(rois):
        masks[i, y1:y2, x1:x2] = instances[i].mask
    result["masks"] = masks.transpose(1, 2, 0)
    return result


def detect_tiled(image, detect_tiles, tile, overlap=None, batch_size=1,
                 full_masks=True, verbose=0):
    """Detects objects on overlapping tiles of one image and merges them.

    image: [H, W, C] array of any size (only sliced, never copied whole).
    detect_tiles: callable(image, windows) -> one detect() dict per window
        (y1, x1, y2, x2), in tile pixels; MaskRCNN.detect_tiled passes
        its detect() on the crops.
    tile, overlap: see check_tile. batch_size: windows per call.
    Returns the dict of assemble(), in pixels of the full image.
    """
    tile, overlap = check_tile(tile, overlap)
    windows = tile_windows(np.shape(image), tile, overlap)
    pieces = []
    for start in range(0, len(windows), batch_size):
        batch = windows[start:start + batch_size]
        results = detect_tiles(image, batch)
        for offset, (window, result) in enumerate(zip(batch, results)):
            pieces.extend(pieces_of_tile(result, window, start + offset))
    groups = group_pieces(pieces, windows)
    instances = [merge_pieces([pieces[i] for i in group])
                 for group in groups]
    if verbose:
        logger.info("detect_tiled: %d tiles of %s px (overlap %s), %d "
                    "detections, %d instances after merging", len(windows),
                    tile, overlap, len(pieces), len(instances))
        print("{} tiles, {} detections, {} instances after merging".format(
            len(windows), len(pieces), len(instances)))
    return assemble(instances, np.shape(image), full_masks)
