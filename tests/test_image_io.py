"""One image decoder (mrcnn.structures.image_io.read_image) for Dataset.load_image,
LabelMe's embedded images and `mrcnn detect`: CMYK, 16 bit, grey + alpha,
palette and multi-frame files all come out RGB uint8, checked against
colours and values written by hand."""
import base64
import io
import json
import logging

import numpy as np
import PIL.Image
import pytest

from mrcnn import utils, visualize
from mrcnn.cli import commands as cli
from mrcnn.structures import image_io
from mrcnn.datasets import LabelMeDataset

# CMYK inks of pure colours and the RGB they print as.
CMYK_COLOURS = [
    ("red", (0, 255, 255, 0), (255, 0, 0)),
    ("green", (255, 0, 255, 0), (0, 255, 0)),
    ("blue", (255, 255, 0, 0), (0, 0, 255)),
    ("grey", (0, 0, 0, 128), (127, 127, 127)),  # 50 % black ink
]


def load_one(path, upright=False):
    """Dataset.load_image of a one-image dataset."""
    dataset = utils.Dataset()
    dataset.apply_exif_orientation = upright
    dataset.add_image("files", image_id=path.name, path=str(path))
    dataset.prepare()
    return dataset.load_image(0)


@pytest.mark.parametrize("name, inks, rgb", CMYK_COLOURS)
def test_cmyk_jpeg_gives_its_printed_colour(tmp_path, name, inks, rgb):
    path = tmp_path / (name + ".jpg")
    PIL.Image.new("CMYK", (16, 12), inks).save(path, quality=95)
    with PIL.Image.open(path) as written:
        assert written.mode == "CMYK"  # really a CMYK (Adobe) JPEG
    image = load_one(path)
    assert image.shape == (12, 16, 3) and image.dtype == np.uint8
    np.testing.assert_allclose(image.reshape(-1, 3).mean(axis=0), rgb,
                               atol=4)


def write_frames(path, colours):
    frames = [PIL.Image.new("RGB", (6, 5), c) for c in colours]
    frames[0].save(path, save_all=True, append_images=frames[1:])


def test_multi_frame_file_gives_its_first_frame_warned_once(tmp_path,
                                                            caplog):
    path = tmp_path / "anim.gif"
    write_frames(path, [(255, 0, 0), (0, 255, 0), (0, 0, 255)])
    with caplog.at_level(logging.WARNING):
        first = load_one(path)
        again = load_one(path)
    assert first.shape == (5, 6, 3)
    np.testing.assert_array_equal(first, np.full((5, 6, 3), (255, 0, 0)))
    np.testing.assert_array_equal(again, first)
    warnings = [r for r in caplog.records if "frames" in r.getMessage()]
    assert len(warnings) == 1
    assert "anim.gif" in warnings[0].getMessage()
    assert "first" in warnings[0].getMessage()


def test_palette_image_gives_the_palette_colours(tmp_path):
    palette = [0, 0, 0, 200, 10, 30, 5, 120, 250]
    indices = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    image = PIL.Image.fromarray(indices, mode="P")
    image.putpalette(palette)
    image.save(tmp_path / "palette.png")
    expected = np.array(palette).reshape(-1, 3)[indices]
    np.testing.assert_array_equal(load_one(tmp_path / "palette.png"),
                                  expected)


def test_sixteen_bit_keeps_the_top_byte(tmp_path):
    values = np.array([[0, 255, 256, 257 * 100], [32896, 65279, 65535, 1]],
                      np.uint16)
    PIL.Image.fromarray(values).save(tmp_path / "deep.png")
    image = load_one(tmp_path / "deep.png")
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], values >> 8)


def test_five_channel_file_is_refused_naming_it(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    path = tmp_path / "multispectral.tif"
    tifffile.imwrite(path, np.zeros((4, 6, 5), np.uint8),
                     photometric="minisblack", planarconfig="contig")
    with pytest.raises(ValueError, match="multispectral.tif") as info:
        load_one(path)
    assert "IMAGE_CHANNEL_COUNT" in str(info.value)


def test_upright_read_turns_by_the_exif_tag(tmp_path):
    stored = np.zeros((4, 6, 3), np.uint8)
    stored[0, 0] = (255, 255, 255)  # top-left corner marked
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # turned 90 degrees clockwise for viewing
    PIL.Image.fromarray(stored).save(tmp_path / "turned.png", exif=exif)
    upright = image_io.read_image(tmp_path / "turned.png", upright=True)
    np.testing.assert_array_equal(upright, np.rot90(stored, k=-1))
    np.testing.assert_array_equal(
        image_io.read_image(tmp_path / "turned.png"), stored)


def test_labelme_embedded_sixteen_bit_image_is_scaled(tmp_path):
    values = np.full((5, 7), 257 * 128, np.uint16)
    buffer = io.BytesIO()
    PIL.Image.fromarray(values).save(buffer, format="PNG")
    (tmp_path / "deep.json").write_text(json.dumps({
        "version": "5.0.1", "imagePath": "", "shapes": [],
        "imageData": base64.b64encode(buffer.getvalue()).decode("ascii"),
        "imageHeight": 5, "imageWidth": 7}))
    dataset = LabelMeDataset()
    dataset.load_labelme(str(tmp_path), class_names=["thing"])
    dataset.prepare()
    np.testing.assert_array_equal(dataset.load_image(0),
                                  np.full((5, 7, 3), 128))


class RecordingModel:
    """Stands in for the inference model: records the images detect gets
    and finds nothing."""

    def __init__(self):
        self.images = []

    def detect(self, images):
        self.images += [np.asarray(i) for i in images]
        return [{"rois": np.zeros((0, 4), np.int32),
                 "masks": np.zeros(np.shape(i)[:2] + (0,), bool),
                 "class_ids": np.zeros(0, np.int32),
                 "scores": np.zeros(0, np.float32)} for i in images]


def test_detect_command_decodes_like_training(tmp_path, monkeypatch):
    """16-bit grey, grey + alpha, animated GIF and CMYK JPEG: detect gets
    the RGB uint8 of Dataset.load_image, not the file's raw channels."""
    paths = [tmp_path / "deep.png", tmp_path / "grey_alpha.png",
             tmp_path / "anim.gif", tmp_path / "print.jpg"]
    PIL.Image.fromarray(np.full((5, 6), 40000, np.uint16)).save(paths[0])
    PIL.Image.fromarray(np.dstack([np.full((5, 6), 90, np.uint8),
                                   np.full((5, 6), 200, np.uint8)]),
                        mode="LA").save(paths[1])
    write_frames(paths[2], [(0, 255, 0), (255, 0, 0)])
    PIL.Image.new("CMYK", (6, 5), (0, 255, 255, 0)).save(paths[3])
    model = RecordingModel()
    monkeypatch.setattr(cli, "inference_model",
                        lambda args: (model, ["BG", "thing"]))
    monkeypatch.setattr(visualize, "save_instances", lambda *a, **k: None)
    with monkeypatch.context() as patch:
        patch.setattr("sys.stdout", io.StringIO())
        status = cli.main(["detect", "--weights", "unused.h5",
                           "--class-names", "thing", "--out",
                           str(tmp_path / "out")] + [str(p) for p in paths])
    assert status == 0
    assert len(model.images) == len(paths)
    for path, seen in zip(paths, model.images):
        assert seen.dtype == np.uint8 and seen.shape == (5, 6, 3), path
        np.testing.assert_array_equal(seen, load_one(path))
    np.testing.assert_array_equal(model.images[0], np.full((5, 6, 3),
                                                           40000 >> 8))
    np.testing.assert_array_equal(model.images[1], np.full((5, 6, 3), 90))
    np.testing.assert_allclose(model.images[3].reshape(-1, 3).mean(axis=0),
                               (255, 0, 0), atol=4)


def test_detect_command_names_an_unreadable_image(tmp_path, monkeypatch):
    (tmp_path / "notes.png").write_text("not an image")
    monkeypatch.setattr(cli, "inference_model",
                        lambda args: (RecordingModel(), ["BG", "thing"]))
    with pytest.raises(cli.CliError, match="notes.png"):
        cli.cmd_detect(cli.build_parser().parse_args(
            ["detect", "--weights", "unused.h5", "--out",
             str(tmp_path / "out"), str(tmp_path / "notes.png")]))


def test_planar_sixteen_bit_rgb_tiff_keeps_the_top_byte(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    rgb = (np.arange(4 * 6 * 3).reshape(4, 6, 3) * 900).astype(np.uint16)
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb, -1, 0),
                     photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(load_one(tmp_path / "planar.tif"),
                                  rgb >> 8)
