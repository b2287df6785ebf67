"""Anchors that fit the data (mrcnn.data.anchor_fit, `mrcnn check-dataset
--anchors`): the coverage is held equal to a brute-force IoU matrix of the
training boxes and anchors, on small elongated objects that the default
anchors cover poorly."""

import contextlib
import io
import json
import os
import re

import numpy as np
import pytest
import skimage.io

from mrcnn import utils
from mrcnn.data import anchor_fit
from mrcnn.cli import commands as cli
from mrcnn.config import Config
from mrcnn.data import compute_backbone_shapes, load_image_gt


class BarsConfig(Config):
    NAME = "bars"
    NUM_CLASSES = 2
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128


class BarsDataset(utils.Dataset):
    """Blank images with rectangular instances given as
    (y, x, height, width, class_id); class id -1 marks a crowd."""

    def __init__(self, images):
        super().__init__()
        self.add_class("bars", 1, "bar")
        for image_id, (shape, objects) in enumerate(images):
            self.add_image("bars", image_id, None, height=shape[0],
                           width=shape[1], objects=objects)
        self.prepare()

    def load_image(self, image_id):
        info = self.image_info[image_id]
        return np.zeros([info["height"], info["width"], 3], np.uint8)

    def load_mask(self, image_id):
        info = self.image_info[image_id]
        objects = info["objects"]
        mask = np.zeros([info["height"], info["width"], len(objects)], bool)
        for k, (y, x, h, w, _) in enumerate(objects):
            mask[y:y + h, x:x + w, k] = True
        return mask, np.array([o[4] for o in objects], np.int32)


def elongated_bars(num_images=30, seed=0):
    """Bars 8-13 px thick and 36-59 px long, a third of them upright, on
    128x128 and 96x128 images: smaller and thinner than any default
    anchor."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(num_images):
        shape = (96, 128) if i % 2 else (128, 128)
        objects = []
        for _ in range(rng.integers(2, 5)):
            h, w = int(rng.integers(8, 14)), int(rng.integers(36, 60))
            if rng.random() < 1 / 3:
                h, w = w, h
            objects.append((int(rng.integers(0, shape[0] - h)),
                            int(rng.integers(0, shape[1] - w)), h, w, 1))
        images.append((shape, objects))
    return BarsDataset(images)


def brute_force_best_iou(dataset, config, scales, ratios):
    """Each non-crowd training box's best IoU with the pyramid anchors,
    from the full anchors x boxes IoU matrix."""
    best = []
    for image_id in dataset.image_ids:
        image, _, class_ids, boxes, _ = load_image_gt(dataset, config,
                                                      image_id)
        anchors = utils.generate_pyramid_anchors(
            scales, ratios, compute_backbone_shapes(config, image.shape),
            config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE)
        boxes = boxes[class_ids > 0]
        if len(boxes):
            best.append(utils.compute_overlaps(anchors, boxes).max(axis=0))
    return np.concatenate(best)


def with_values(config_class, **values):
    return type(config_class.__name__, (config_class,), values)()


# --- best IoU ---------------------------------------------------------

def test_best_anchor_iou_equals_the_dense_matrix():
    config = BarsConfig()
    anchors = anchor_fit.pyramid_anchors(config, (128, 128), (12, 24, 48,
                                                              96, 192),
                                         (0.25, 1, 3))
    rng = np.random.default_rng(1)
    y1, x1 = rng.uniform(-10, 120, (2, 200))
    h, w = rng.uniform(1, 90, (2, 200))
    boxes = np.stack([y1, x1, y1 + h, x1 + w], axis=1)
    np.testing.assert_array_equal(
        anchor_fit.best_anchor_iou(anchors, boxes),
        utils.compute_overlaps(anchors, boxes).max(axis=0))


def test_best_anchor_iou_by_hand():
    # Level 0 of the default anchors at 128 px: stride 4, scale 32, ratio
    # 1 anchors are 32x32 squares centred on multiples of 4.
    config = BarsConfig()
    anchors = anchor_fit.pyramid_anchors(config, (128, 128),
                                         config.RPN_ANCHOR_SCALES, [1])
    boxes = np.array([[0, 0, 32, 32],     # an anchor itself
                      [50, 50, 51, 51],   # 1 px, inside 32x32 anchors
                      [0, 0, 16, 64]])    # 16x64 vs a 32x32 at (0, 16)
    np.testing.assert_allclose(anchor_fit.best_anchor_iou(anchors, boxes),
                               [1.0, 1 / 1024, 512 / (1024 + 1024 - 512)])


# --- coverage and suggestion --------------------------------------------

@pytest.mark.parametrize("mode", ["square", "none"])
def test_coverage_of_elongated_bars_equals_brute_force(mode):
    # "none" keeps the 96x128 images as they are: anchors per shape.
    config = with_values(BarsConfig, IMAGE_RESIZE_MODE=mode)
    dataset = elongated_bars()
    report = anchor_fit.anchor_report(dataset, config)
    current = brute_force_best_iou(dataset, config, config.RPN_ANCHOR_SCALES,
                                   config.RPN_ANCHOR_RATIOS)
    assert report.num_boxes == len(current) == sum(
        len(info["objects"]) for info in dataset.image_info)
    np.testing.assert_array_equal(np.sort(report.current.best_iou),
                                  np.sort(current))
    assert report.current.share == np.mean(current >= 0.7)
    suggested = brute_force_best_iou(dataset, config,
                                     report.suggested.scales,
                                     report.suggested.ratios)
    assert report.suggested.share == np.mean(suggested >= 0.7)
    # The default anchors cover almost none of these bars; the suggested
    # ones most.
    assert report.current.share < 0.1
    assert report.suggested.share > 0.5
    assert len(report.suggested.ratios) == len(config.RPN_ANCHOR_RATIOS)
    assert len(report.suggested.scales) == len(config.BACKBONE_STRIDES)


def test_suggestion_follows_the_sizes_and_aspects():
    report = anchor_fit.anchor_report(elongated_bars(), BarsConfig())
    assert min(report.suggested.scales) <= np.quantile(report.sizes, 0.5)
    ratios = sorted(report.suggested.ratios)
    assert ratios[0] < 0.5 and ratios[-1] > 2   # upright and lying bars


def test_threshold_is_rpn_positive_iou():
    dataset = elongated_bars(10)
    strict = anchor_fit.anchor_report(dataset, BarsConfig())
    loose = anchor_fit.anchor_report(
        dataset, with_values(BarsConfig, RPN_POSITIVE_IOU=0.4))
    np.testing.assert_array_equal(strict.current.best_iou,
                                  loose.current.best_iou)
    assert loose.current.threshold == 0.4
    assert loose.current.covered == np.count_nonzero(
        loose.current.best_iou >= 0.4) > strict.current.covered


def test_anchors_that_fit_already_are_kept():
    # Every box is a default level-0 anchor (32x32 centred on a multiple
    # of 4): all covered, and the config's anchors win the tie.
    dataset = BarsDataset([((128, 128), [(0, 0, 32, 32, 1),
                                          (40, 8, 32, 32, 1)])] * 3)
    report = anchor_fit.anchor_report(dataset, BarsConfig())
    assert report.current.share == 1.0
    assert report.suggested is report.current
    assert "keep them" in anchor_fit.format_anchor_report(report)


def test_crowds_are_left_out():
    dataset = BarsDataset([((128, 128), [(0, 0, 32, 32, 1),
                                          (60, 60, 10, 50, -1)])])
    report = anchor_fit.anchor_report(dataset, BarsConfig())
    assert report.num_boxes == 1 and report.current.covered == 1


def test_no_boxes_is_said():
    dataset = BarsDataset([((128, 128), [])])
    report = anchor_fit.anchor_report(dataset, BarsConfig())
    assert report.num_boxes == 0 and report.current.share == 0.0
    assert "no ground-truth boxes" in anchor_fit.format_anchor_report(report)


# --- command line -------------------------------------------------------

def write_bars_via(folder, dataset):
    """The bars of dataset as a VIA folder of PNG files and rect regions."""
    os.makedirs(folder)
    entries = {}
    for info in dataset.image_info:
        name = "bars{}.png".format(info["id"])
        path = os.path.join(folder, name)
        skimage.io.imsave(path, np.full([info["height"], info["width"], 3],
                                        90, np.uint8), check_contrast=False)
        size = os.path.getsize(path)
        entries[name + str(size)] = {
            "filename": name, "size": size, "file_attributes": {},
            "regions": [{"shape_attributes": {
                "name": "rect", "x": x, "y": y, "width": w, "height": h},
                "region_attributes": {}} for y, x, h, w, _ in
                info["objects"]]}
    with open(os.path.join(folder, "via_region_data.json"), "w") as f:
        json.dump(entries, f)


def run_check(args):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main(["check-dataset"] + args)
    return status, out.getvalue()


def test_cli_check_dataset_anchors(tmp_path):
    folder = str(tmp_path / "bars")
    write_bars_via(folder, elongated_bars(12))
    status, text = run_check([folder, "--format", "via", "--default-class",
                              "bar", "--anchors", "--set", "IMAGE_MIN_DIM=128",
                              "--set", "IMAGE_MAX_DIM=128"])
    assert status == 0, text
    shares = {label: (int(covered), int(total)) for label, covered, total in
              re.findall(r"(config|suggested): .*: (\d+) of (\d+) boxes",
                         text)}
    # The same numbers as the Python API on the loaded VIA dataset.
    from mrcnn import datasets
    loaded = datasets.load_dataset(folder, format="via",
                                   default_class="bar")
    report = anchor_fit.anchor_report(loaded, BarsConfig())
    assert shares["config"] == (report.current.covered, report.num_boxes)
    assert shares["suggested"] == (report.suggested.covered,
                                   report.num_boxes)
    assert shares["suggested"][0] > shares["config"][0]
    line = [line for line in text.splitlines()
            if line.startswith("Suggested: --set RPN_ANCHOR_SCALES=")][0]
    # The printed values are accepted back by --set.
    overrides = cli.parse_overrides(line.split("--set ")[1:])
    config = cli.make_config("bars", 2, dict(overrides, IMAGE_MIN_DIM=128,
                                             IMAGE_MAX_DIM=128))
    assert tuple(config.RPN_ANCHOR_SCALES) == report.suggested.scales
    assert tuple(config.RPN_ANCHOR_RATIOS) == report.suggested.ratios


def test_cli_set_needs_anchors(tmp_path, capsys):
    folder = str(tmp_path / "bars")
    write_bars_via(folder, elongated_bars(1))
    status = cli.main(["check-dataset", folder, "--set", "IMAGE_MIN_DIM=128"])
    assert status == 2
    assert "--set needs --anchors" in capsys.readouterr().err
