"""Tests of mrcnn.utils.Dataset on a small synthetic dataset in tmp_path."""
import logging

import numpy as np
import PIL.Image
import pytest
import skimage.io

from mrcnn import utils


class ShapesOnDisk(utils.Dataset):
    """Two sources with different class subsets; masks are stored in info."""

    def load(self, folder):
        self.add_class("shapes", 1, "square")
        self.add_class("shapes", 2, "circle, round thing")
        self.add_class("shapes", 1, "square again")  # duplicate: ignored
        self.add_class("other", 7, "triangle")
        self.add_class("other", 1, "square")  # same id, other source
        for name, source in [("a", "shapes"), ("b", "other"),
                             ("c", "shapes")]:
            image = np.zeros((16, 24, 3), np.uint8)
            image[4:8, 2:10] = (255, 0, 0)
            path = folder / (name + ".png")
            skimage.io.imsave(str(path), image, check_contrast=False)
            self.add_image(source, image_id="img_" + name, path=str(path),
                           boxes=[(4, 2, 8, 10)])

    def load_mask(self, image_id):
        info = self.image_info[image_id]
        mask = np.zeros((16, 24, len(info["boxes"])), bool)
        for i, (y1, x1, y2, x2) in enumerate(info["boxes"]):
            mask[y1:y2, x1:x2, i] = True
        class_id = self.map_source_class_id(info["source"] + ".1")
        return mask, np.full(len(info["boxes"]), class_id, np.int32)


@pytest.fixture
def dataset(tmp_path):
    ds = ShapesOnDisk()
    ds.load(tmp_path)
    ds.prepare()
    return ds


def test_prepare_builds_ids_and_names(dataset):
    assert dataset.class_info[0] == {"source": "", "id": 0, "name": "BG"}
    assert dataset.num_classes == 5
    np.testing.assert_array_equal(dataset.class_ids, np.arange(5))
    assert dataset.class_names == ["BG", "square", "circle", "triangle",
                                   "square"]
    assert dataset.num_images == 3
    np.testing.assert_array_equal(dataset.image_ids, [0, 1, 2])


def test_source_maps(dataset):
    assert dataset.class_from_source_map == {
        ".0": 0, "shapes.1": 1, "shapes.2": 2, "other.7": 3, "other.1": 4}
    assert dataset.image_from_source_map == {
        "shapes.img_a": 0, "other.img_b": 1, "shapes.img_c": 2}
    assert set(dataset.sources) == {"", "shapes", "other"}
    # Background belongs to every source.
    assert dataset.source_class_ids["shapes"] == [0, 1, 2]
    assert dataset.source_class_ids["other"] == [0, 3, 4]
    assert dataset.map_source_class_id("other.1") == 4
    assert dataset.get_source_class_id(4, "other") == 1
    assert dataset.get_source_class_id(2, "shapes") == 2
    with pytest.raises(ValueError, match="belongs to source 'other'"):
        dataset.get_source_class_id(3, "shapes")
    with pytest.raises(KeyError, match="coco.5"):
        dataset.map_source_class_id("coco.5")


def test_add_class_rejects_dotted_source():
    with pytest.raises(ValueError, match="dot"):
        utils.Dataset().add_class("my.source", 1, "thing")


def test_image_info_and_links(dataset, tmp_path):
    assert dataset.image_info[1]["boxes"] == [(4, 2, 8, 10)]
    assert dataset.source_image_link(1) == str(tmp_path / "b.png")
    assert dataset.image_reference(0) == ""


def test_load_image_and_mask_agree(dataset):
    image = dataset.load_image(2)
    assert image.shape == (16, 24, 3) and image.dtype == np.uint8
    mask, class_ids = dataset.load_mask(2)
    assert class_ids.tolist() == [1]
    # the red rectangle is exactly the mask
    np.testing.assert_array_equal(image[..., 0] == 255, mask[..., 0])
    np.testing.assert_array_equal(utils.extract_bboxes(mask), [[4, 2, 8, 10]])
    assert dataset.load_mask(1)[1].tolist() == [4]


def write_and_load(tmp_path, name, array, mode=None):
    path = tmp_path / name
    PIL.Image.fromarray(array, mode=mode).save(path) if mode else \
        PIL.Image.fromarray(array).save(path)
    ds = utils.Dataset()
    ds.add_image("files", image_id=name, path=str(path))
    ds.prepare()
    return ds.load_image(0)


def test_load_image_grayscale_becomes_rgb(tmp_path):
    gray = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)
    image = write_and_load(tmp_path, "gray.png", gray)
    assert image.shape == (12, 10, 3) and image.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], gray)


def test_load_image_drops_alpha(tmp_path):
    rgba = np.zeros((6, 7, 4), np.uint8)
    rgba[..., 0] = 10
    rgba[..., 1] = 20
    rgba[..., 2] = 30
    rgba[..., 3] = np.arange(7, dtype=np.uint8) * 30
    image = write_and_load(tmp_path, "rgba.png", rgba)
    assert image.shape == (6, 7, 3)
    np.testing.assert_array_equal(image, rgba[..., :3])


def test_load_image_gray_with_alpha(tmp_path):
    la = np.zeros((5, 4, 2), np.uint8)
    la[..., 0] = 77
    la[..., 1] = 128
    image = write_and_load(tmp_path, "la.png", la, mode="LA")
    assert image.shape == (5, 4, 3) and np.all(image == 77)


def test_load_image_16_bit_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 1000], [32896, 65278, 65535]], np.uint16)
    path = tmp_path / "deep.png"
    skimage.io.imsave(str(path), values, check_contrast=False)
    assert skimage.io.imread(str(path)).dtype == np.uint16  # really 16 bit
    ds = utils.Dataset()
    ds.add_image("files", image_id="deep", path=str(path))
    ds.prepare()
    image = ds.load_image(0)
    assert image.dtype == np.uint8 and image.shape == (2, 3, 3)
    # Full range maps to full range: 65535 -> 255, 257 * k -> k.
    expected = np.array([[0, 1, 4], [128, 254, 255]])
    np.testing.assert_allclose(image[..., 0], expected, atol=1)
    assert image[1, 2, 0] == 255 and image[0, 0, 0] == 0


def test_load_image_missing_file_names_path(tmp_path):
    ds = utils.Dataset()
    missing = tmp_path / "nowhere" / "ghost.jpg"
    ds.add_image("files", image_id="ghost", path=str(missing))
    ds.prepare()
    with pytest.raises(FileNotFoundError, match="ghost.jpg"):
        ds.load_image(0)


def test_load_image_corrupt_file_names_path(tmp_path):
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"this is not a png")
    ds = utils.Dataset()
    ds.add_image("files", image_id="broken", path=str(corrupt))
    ds.prepare()
    with pytest.raises(ValueError, match="broken.png"):
        ds.load_image(0)


def test_default_load_mask_is_empty_with_warning(tmp_path, caplog):
    path = tmp_path / "plain.png"
    skimage.io.imsave(str(path), np.zeros((9, 11, 3), np.uint8),
                      check_contrast=False)
    ds = utils.Dataset()
    ds.add_image("files", image_id="plain", path=str(path))
    ds.add_image("files", image_id="sized", path=None, height=5, width=6)
    ds.prepare()
    with caplog.at_level(logging.WARNING):
        mask, class_ids = ds.load_mask(0)
    assert "default load_mask" in caplog.text
    assert mask.shape == (9, 11, 0) and mask.dtype == bool
    assert class_ids.shape == (0,) and class_ids.dtype == np.int32
    # Size from the image info, no file needed.
    assert ds.load_mask(1)[0].shape == (5, 6, 0)


def test_default_load_mask_never_touches_a_missing_path(tmp_path, caplog):
    """matterport's default load_mask returns an empty mask whatever the
    path: None, a missing file, no size given."""
    ds = utils.Dataset()
    ds.add_image("mem", image_id="no path", path=None)
    ds.add_image("mem", image_id="no path, sized", path=None, height=4,
                 width=7)
    ds.add_image("mem", image_id="gone", path=str(tmp_path / "gone.png"))
    ds.add_image("mem", image_id="gone, sized",
                 path=str(tmp_path / "gone.png"), height=3, width=2)
    ds.prepare()
    expected = [(0, 0, 0), (4, 7, 0), (0, 0, 0), (3, 2, 0)]
    with caplog.at_level(logging.WARNING):
        for image_id, shape in zip(ds.image_ids, expected):
            mask, class_ids = ds.load_mask(image_id)
            assert mask.shape == shape and mask.dtype == bool
            assert class_ids.shape == (0,) and class_ids.dtype == np.int32
    assert caplog.text.count("default load_mask") == 4
