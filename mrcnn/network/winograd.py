"""3x3 convolutions by Winograd's minimal filtering, F(4x4, 3x3).

A stride-1 3x3 convolution computes each 4x4 block of outputs from a 6x6
tile of its input. In the Winograd domain (Lavin and Gray, "Fast
Algorithms for Convolutional Neural Networks", 2016) that block costs 36
multiplications per input and output channel pair instead of 144::

    Y = A^T [ (G g G^T) * (B^T d B) ] A

with d a 6x6 input tile, g the 3x3 filter, * the elementwise product and
the sums over input channels taken inside the brackets. Over a whole map
the bracket is 36 matrix products [tiles, C_in] @ [C_in, C_out], one per
tile position: a quarter of the direct convolution's multiply-adds, for
three cheap linear transforms of the input, the filter and the output.

The gradients are Winograd's too: the kernel gradient is one batch of 36
products of the transformed input (kept from the forward pass) with the
transformed output gradient, and the input gradient is this same
convolution run on the output gradient with the filter flipped and
transposed. Where ``mrcnn.network.conv`` chooses it (oneDNN's AVX2 code, large
maps and channels), a training step's FPN and RPN convolutions on P2 run
in about half the time (see benchmarks/README.md).

The transforms are exact in real arithmetic; in float32 their constants
(up to 8 and 1/24) cost a few more rounding bits than the direct sums
(tests/test_winograd.py holds outputs and gradients to float32 rounding
of the arrays' scale).
"""

import numpy as np

TILE = 6          # input tile side
OUT = 4           # output block side per tile
TAPS = TILE * TILE

# F(4x4, 3x3) with the interpolation points 0, +-1, +-2 and infinity.
INPUT_TRANSFORM = np.array([   # B^T, 6x6
    [4, 0, -5, 0, 1, 0],
    [0, -4, -4, 1, 1, 0],
    [0, 4, -4, -1, 1, 0],
    [0, -2, -1, 2, 1, 0],
    [0, 2, -1, -2, 1, 0],
    [0, 4, 0, -5, 0, 1],
], np.float64)
FILTER_TRANSFORM = np.array([  # G, 6x3
    [1 / 4, 0, 0],
    [-1 / 6, -1 / 6, -1 / 6],
    [-1 / 6, 1 / 6, -1 / 6],
    [1 / 24, 1 / 12, 1 / 6],
    [1 / 24, -1 / 12, 1 / 6],
    [0, 0, 1],
], np.float64)
OUTPUT_TRANSFORM = np.array([  # A^T, 4x6
    [1, 1, 1, 1, 1, 0],
    [0, 1, -1, 2, -2, 0],
    [0, 1, 1, 4, 4, 0],
    [0, 1, -1, 8, -8, 1],
], np.float64)


def conv3x3_same(x, w):
    """tf.nn.conv2d(x, w, 1, "SAME") for x [batch, H, W, C_in] and w
    [3, 3, C_in, C_out] (float32), by F(4x4, 3x3) with Winograd
    gradients; [batch, H, W, C_out]."""
    import tensorflow as tf

    @tf.custom_gradient
    def convolution(x, w):
        y, v, tiles = _forward(x, w)

        def gradient(dy):
            dm = _output_to_winograd(dy, tiles)
            du = tf.matmul(v, dm, transpose_a=True)
            dx = _forward(dy, _flipped(w))[0]
            return dx, _filter_from_winograd(du)
        return y, gradient

    # Tensors, not variables: the custom gradient then sees no variables
    # and TensorFlow differentiates the variable reads itself.
    return convolution(tf.convert_to_tensor(x), tf.convert_to_tensor(w))


def _forward(x, w):
    """The convolution without its custom gradient: (y [batch, H, W,
    C_out], the transformed input V [36, batch * tiles, C_in], the tile
    grid); the input gradient's convolution uses y alone."""
    import tensorflow as tf

    v, tiles = _input_to_winograd(x)
    y = _output_from_winograd(tf.matmul(v, _filter_to_winograd(w)),
                              tiles, tf.shape(x))
    return y, v, tiles


def _flipped(w):
    """The kernel of the input gradient: w rotated by 180 degrees, its
    channel axes swapped: [3, 3, C_out, C_in]."""
    import tensorflow as tf

    return tf.transpose(w[::-1, ::-1], [0, 1, 3, 2])


def _constant(matrix, like):
    import tensorflow as tf

    return tf.constant(matrix, dtype=like.dtype)


def _filter_to_winograd(w):
    """w [3, 3, C_in, C_out] -> U [36, C_in, C_out], G g G^T per channel
    pair, tap (j, i) at j*6+i (j: column, i: row of the 6x6 tile)."""
    import tensorflow as tf

    g = _constant(FILTER_TRANSFORM, w)
    by_col = tf.transpose(w, [1, 0, 2, 3])           # [3l, 3k, C_in, C_out]
    u = _apply(g, by_col)                             # [6j, 3k, ...]
    u = tf.matmul(g, tf.reshape(u, [TILE, 3, -1]))    # [6j, 6i, ...]
    return tf.reshape(u, [TAPS, tf.shape(w)[2], tf.shape(w)[3]])


def _filter_from_winograd(du):
    """The adjoint of _filter_to_winograd: dU [36, C_in, C_out] -> dw
    [3, 3, C_in, C_out]."""
    import tensorflow as tf

    g_t = tf.transpose(_constant(FILTER_TRANSFORM, du))  # G^T, 3x6
    shape = tf.shape(du)
    du = tf.matmul(g_t, tf.reshape(du, [TILE, TILE, -1]))  # [6j, 3k, ...]
    dw = _apply(g_t, du)                                   # [3l, 3k, ...]
    dw = tf.reshape(dw, [3, 3, shape[1], shape[2]])
    return tf.transpose(dw, [1, 0, 2, 3])


def _tile_grid(shape):
    """(batch, tile rows, tile columns) covering an H x W map with 4x4
    output blocks."""
    import tensorflow as tf

    rows = (shape[1] + OUT - 1) // OUT
    cols = (shape[2] + OUT - 1) // OUT
    return tf.stack([shape[0], rows, cols])


def _input_to_winograd(x):
    """x [batch, H, W, C] -> (V [36, batch * tiles, C], tile grid): each
    6x6 tile of the input padded by one pixel (SAME), taken every 4
    pixels, through B^T d B.

    Strided slices are slow in TensorFlow, so the tiles are not cut out:
    the padded map is regrouped once as its 4x4 pixel phases, [4 (column
    phase), 4 (row phase), batch, rows + 1, cols + 1, C]; a tile's rows
    0-3 are the row phases of its own 4-pixel block, rows 4 and 5 the
    first two phases of the next block, and the columns likewise.
    """
    import tensorflow as tf

    shape = tf.shape(x)
    tiles = _tile_grid(shape)
    batch, rows, cols = tiles[0], tiles[1], tiles[2]
    channels = shape[3]
    # One pixel of SAME padding on top and left; below and right enough
    # for whole 4-pixel blocks (the extra outputs are cut off at the end).
    x = tf.pad(x, [[0, 0], [1, OUT * (rows + 1) - shape[1] - 1],
                   [1, OUT * (cols + 1) - shape[2] - 1], [0, 0]])
    x = tf.reshape(x, [batch, rows + 1, OUT, cols + 1, OUT, channels])
    phases = tf.transpose(x, [4, 2, 0, 1, 3, 5])
    b = _constant(INPUT_TRANSFORM, phases)
    # Rows: [4 (column phase), 6k, batch, rows, cols + 1, C] through B^T.
    by_row = tf.concat([phases[:, :, :, :rows],
                        phases[:, :TILE - OUT, :, 1:]], axis=1)
    by_row = tf.reshape(by_row, [OUT, TILE, -1])
    by_row = tf.matmul(b, by_row)                     # [4, 6i, ...]
    by_row = tf.reshape(by_row, [OUT, TILE, batch, rows, cols + 1,
                                 channels])
    # Columns: [6l, 6i, batch, rows, cols, C] through B^T.
    by_col = tf.concat([by_row[:, :, :, :, :cols],
                        by_row[:TILE - OUT, :, :, :, 1:]], axis=0)
    v = _apply(b, by_col)                             # [6j, 6i, ...]
    return tf.reshape(v, [TAPS, -1, channels]), tiles


def _output_from_winograd(m, tiles, input_shape):
    """M [36, batch * tiles, C_out] -> y [batch, H, W, C_out]: A^T m A per
    tile, the 4x4 blocks put side by side, cut to H x W."""
    import tensorflow as tf

    a = _constant(OUTPUT_TRANSFORM, m)
    channels = tf.shape(m)[2]
    m = tf.reshape(m, [TILE, TILE, -1])              # [6j, 6i, N * C_out]
    m = _apply(a, m)                                 # [4b, 6i, ...]
    m = tf.matmul(a, m)                              # [4b, 4a, ...]
    batch, rows, cols = tiles[0], tiles[1], tiles[2]
    y = tf.reshape(m, [OUT, OUT, batch, rows, cols, channels])
    y = tf.transpose(y, [2, 3, 1, 4, 0, 5])          # [batch, rows, a, cols, b, C]
    y = tf.reshape(y, [batch, OUT * rows, OUT * cols, channels])
    return y[:, :input_shape[1], :input_shape[2]]


def _output_to_winograd(dy, tiles):
    """The adjoint of _output_from_winograd: dy [batch, H, W, C_out] ->
    dM [36, batch * tiles, C_out]."""
    import tensorflow as tf

    a_t = tf.transpose(_constant(OUTPUT_TRANSFORM, dy))   # A, 6x4
    shape = tf.shape(dy)
    batch, rows, cols = tiles[0], tiles[1], tiles[2]
    dy = tf.pad(dy, [[0, 0], [0, OUT * rows - shape[1]],
                     [0, OUT * cols - shape[2]], [0, 0]])
    dy = tf.reshape(dy, [batch, rows, OUT, cols, OUT, shape[3]])
    dy = tf.transpose(dy, [4, 2, 0, 1, 3, 5])        # [4b, 4a, batch, ...]
    dy = tf.reshape(dy, [OUT, OUT, -1])
    dm = tf.matmul(a_t, dy)                          # [4b, 6i, ...]
    dm = _apply(a_t, dm)                             # [6j, 6i, ...]
    return tf.reshape(dm, [TAPS, -1, shape[3]])


def _apply(matrix, stacked):
    """matrix [p, q] applied along the first axis of stacked [q, ...]:
    [p, ...], as one matrix product."""
    import tensorflow as tf

    shape = tf.shape(stacked)
    flat = tf.reshape(stacked, [shape[0], -1])
    return tf.reshape(tf.matmul(matrix, flat),
                      tf.concat([[tf.shape(matrix)[0]], shape[1:]], 0))
