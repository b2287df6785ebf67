"""mrcnn.structures.polygons.fill_polygon gives skimage.draw.polygon's
pixels exactly, on polygons of every awkward kind."""
import numpy as np
import pytest
import skimage.draw

from mrcnn.structures.polygons import BAND_PX, fill_polygon


def skimage_mask(xs, ys, shape):
    mask = np.zeros(shape, bool)
    rows, cols = skimage.draw.polygon(ys, xs, shape=shape)
    mask[rows, cols] = True
    return mask


def random_polygon(rng, kind, size):
    """Vertices (xs, ys) of one of five kinds of polygon."""
    n = int(rng.integers(3, 16))
    if kind == "integer_tangle":        # self-intersecting, on pixel centres
        return (rng.integers(0, size, n).astype(float),
                rng.integers(0, size, n).astype(float))
    if kind == "past_the_border":       # self-intersecting, partly outside
        return (rng.uniform(-10, size + 10, n),
                rng.uniform(-10, size + 10, n))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    cy, cx = rng.uniform(0, size, 2)
    if kind == "star":                  # simple, with deep thin notches
        radius = rng.uniform(3, 25, n)
        return cx + radius * np.cos(angles), cy + radius * np.sin(angles)
    if kind == "tiny":                  # a few pixels, quarter-pixel grid
        radius = rng.uniform(0.3, 3, n)
        return (np.round((cx + radius * np.cos(angles)) * 4) / 4,
                np.round((cy + radius * np.sin(angles)) * 4) / 4)
    # "thin": a sliver narrower than the band
    width = rng.uniform(0.05, BAND_PX)
    x1, y1, x2, y2 = rng.uniform(0, size, 4)
    return (np.array([x1, x2, x2 + width, x1 + width]),
            np.array([y1, y2, y2 + width, y1]))


@pytest.mark.parametrize("kind", ["integer_tangle", "past_the_border",
                                  "star", "tiny", "thin"])
def test_pixels_equal_skimage_on_random_polygons(kind):
    rng = np.random.default_rng(sum(map(ord, kind)))
    shape = (50, 57)
    for _ in range(400):
        xs, ys = random_polygon(rng, kind, 50)
        expected = skimage_mask(xs, ys, shape)
        np.testing.assert_array_equal(
            fill_polygon(xs, ys, shape), expected,
            err_msg="xs={!r} ys={!r}".format(xs.tolist(), ys.tolist()))


def test_a_large_outline_in_a_large_image():
    rng = np.random.default_rng(5)
    angles = np.linspace(0, 2 * np.pi, 80, endpoint=False)
    xs = 700 + 380 * np.cos(angles) + rng.uniform(-30, 30, 80)
    ys = 600 + 420 * np.sin(angles) + rng.uniform(-30, 30, 80)
    shape = (1100, 1300)  # the bottom of the outline is cut off
    expected = skimage_mask(xs, ys, shape)
    assert expected.sum() > 400_000
    np.testing.assert_array_equal(fill_polygon(xs, ys, shape), expected)


def test_far_vertices_and_polygons_outside_the_image():
    shape = (30, 40)
    xs, ys = np.array([5.0, 1e7, 12.0]), np.array([3.0, 20.0, 25.0])
    np.testing.assert_array_equal(fill_polygon(xs, ys, shape),
                                  skimage_mask(xs, ys, shape))
    assert not fill_polygon([50, 60, 55], [5, 5, 20], shape).any()
    assert not fill_polygon([-9, -1, -5], [-9, -9, -1], shape).any()
