"""The `mrcnn` command line end to end on tiny datasets the tests write:
check-dataset, train, detect and evaluate (in-process through
mrcnn.cli.commands.main), plus `python -m mrcnn --help` through the entry point."""

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import skimage.draw
import skimage.io
from pycocotools import mask as mask_utils

from mrcnn import utils
from mrcnn.cli import commands as cli
from mrcnn.cli import setup
from mrcnn.weights.hdf5 import add_checksum

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# --set overrides for a model that trains two steps on a CPU in seconds.
TINY_SETTINGS = {
    "BACKBONE": "resnet18", "IMAGES_PER_GPU": 1,
    "IMAGE_MIN_DIM": 64, "IMAGE_MAX_DIM": 64,
    "RPN_ANCHOR_SCALES": [8, 16, 32, 64, 128], "TOP_DOWN_PYRAMID_SIZE": 32,
    "RPN_CONV_DEPTH": 32, "FPN_CLASSIF_FC_LAYERS_SIZE": 64,
    "MASK_HEAD_CONV_DEPTH": 16, "PRE_NMS_LIMIT": 500,
    "POST_NMS_ROIS_TRAINING": 64, "POST_NMS_ROIS_INFERENCE": 32,
    "TRAIN_ROIS_PER_IMAGE": 16, "RPN_TRAIN_ANCHORS_PER_IMAGE": 32,
    "MAX_GT_INSTANCES": 4, "DETECTION_MAX_INSTANCES": 8,
    "MINI_MASK_SHAPE": [14, 14],
}
RUN_NAME = "tinycli"
# Image sizes (height, width) of the fixture's subsets: not square, and
# different within a subset, so that "mask of the image's size" means
# something.
SUBSET_SIZES = {"train": [(64, 80), (64, 80), (72, 56)],
                "val": [(64, 80), (72, 56)]}


def tiny_set_args():
    args = []
    for key, value in TINY_SETTINGS.items():
        args += ["--set", "{}={}".format(key, json.dumps(value))]
    return args


def run_cli(argv):
    """(exit status, stdout) of mrcnn.cli.commands.main(argv), run in-process."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main(argv)
    return status, out.getvalue()


############################################################
#  Fixtures: tiny VIA and COCO datasets
############################################################

def draw_square_image(rng, height, width):
    """An image with one bright square on a dark background, and the
    square's polygon (VIA point lists)."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:] = rng.integers(0, 80, 3)
    size = int(rng.integers(16, 26))
    top = int(rng.integers(2, height - size - 2))
    left = int(rng.integers(2, width - size - 2))
    xs = [left, left + size, left + size, left]
    ys = [top, top, top + size, top + size]
    rows, cols = skimage.draw.polygon(ys, xs, (height, width))
    image[rows, cols] = rng.integers(170, 256, 3)
    return image, xs, ys


def write_via_subset(folder, sizes, seed):
    """PNG images and a VIA 2.x via_region_data.json, one square each."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    entries = {}
    for i, (height, width) in enumerate(sizes):
        image, xs, ys = draw_square_image(rng, height, width)
        name = "img{}.png".format(i)
        path = os.path.join(folder, name)
        skimage.io.imsave(path, image, check_contrast=False)
        size = os.path.getsize(path)
        entries[name + str(size)] = {
            "filename": name, "size": size, "file_attributes": {},
            "regions": [{"shape_attributes": {
                "name": "polygon", "all_points_x": xs, "all_points_y": ys},
                "region_attributes": {}}]}
    with open(os.path.join(folder, "via_region_data.json"), "w") as f:
        json.dump(entries, f)
    return folder


@pytest.fixture(scope="module")
def via_root(tmp_path_factory):
    """A VIA dataset folder with train/ and val/ subsets."""
    root = tmp_path_factory.mktemp("via")
    for seed, (subset, sizes) in enumerate(SUBSET_SIZES.items()):
        write_via_subset(str(root / subset), sizes, seed)
    return root


def write_coco(folder, images, annotations, categories):
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    path = os.path.join(folder, "annotations.json")
    with open(path, "w") as f:
        json.dump({"images": images, "annotations": annotations,
                   "categories": categories}, f)
    return path


@pytest.fixture(scope="module")
def trained(via_root, tmp_path_factory):
    """`mrcnn train` for 1 epoch of 2 steps from random weights: the logs
    folder, the JSON line it printed and its checkpoint."""
    logs = str(tmp_path_factory.mktemp("logs"))
    status, out = run_cli([
        "train", "--dataset", str(via_root), "--format", "via",
        "--train-subset", "train", "--val-subset", "val",
        "--weights", "none", "--epochs", "1", "--steps", "2",
        "--layers", "all", "--logs", logs, "--name", RUN_NAME,
    ] + tiny_set_args())
    assert status == 0, out[-2000:]
    summary = json.loads(out.strip().splitlines()[-1])
    return {"logs": logs, "summary": summary,
            "checkpoint": summary["checkpoint"]}


@pytest.fixture(scope="module")
def confident_checkpoint(trained):
    """A copy of the trained checkpoint that detects objects whatever two
    random steps learned: the classifier calls every ROI an object (class 1
    logit bias +20, zero kernel) and the box deltas are zero, so proposals are anchors
    and detections are proposals (boxes with area, inside the image). Same
    run folder, so the CLI finds run_config.json."""
    path = os.path.join(os.path.dirname(trained["checkpoint"]),
                        "confident.weights.h5")
    shutil.copy(trained["checkpoint"], path)
    with h5py.File(path, "r+") as f:
        # Zero kernel: the logits are the bias whatever the features (an
        # untrained backbone in inference mode can give huge activations).
        kernel = find_layer_variable(f, "mrcnn_class_logits", "0")
        kernel[...] = 0
        bias = find_layer_variable(f, "mrcnn_class_logits", "1")
        bias[...] = np.array([0.0, 20.0], bias.dtype)
        for layer in ("rpn_bbox_pred", "mrcnn_bbox_fc"):
            for index in ("0", "1"):
                variable = find_layer_variable(f, layer, index)
                variable[...] = 0
    add_checksum(path)  # edited on purpose: the arrays' new checksum
    return path


def find_layer_variable(h5file, layer_name, index):
    """The dataset of variable `index` of the layer named layer_name in a
    Keras 3 .weights.h5 file (its vars group carries the layer name)."""
    found = []

    def visit(name, obj):
        if name.endswith("/vars") and obj.attrs.get("name") == layer_name:
            found.append(obj[index])
    h5file.visititems(visit)
    assert len(found) == 1, "layer {} not in the file".format(layer_name)
    return found[0]


############################################################
#  Entry point
############################################################

def test_python_dash_m_mrcnn_help_lists_the_commands():
    done = subprocess.run([sys.executable, "-m", "mrcnn", "--help"],
                          cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    for command in ("train", "detect", "evaluate", "check-dataset"):
        assert command in done.stdout


def test_unknown_command_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["fly"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


############################################################
#  check-dataset
############################################################

def test_check_dataset_passes_a_good_dataset(via_root):
    status, out = run_cli(["check-dataset", str(via_root / "val")])
    assert status == 0, out
    assert "0 error(s)" in out


def test_check_dataset_passes_the_balloon_val_set(balloon_path):
    status, out = run_cli(["check-dataset", str(balloon_path / "val")])
    assert status == 0, out
    assert not [line for line in out.splitlines()
                if line.startswith("ERROR")]


def test_check_dataset_lists_each_broken_via_region_by_file(via_root,
                                                           tmp_path):
    folder = str(tmp_path / "broken")
    shutil.copytree(str(via_root / "train"), folder)
    json_path = os.path.join(folder, "via_region_data.json")
    with open(json_path) as f:
        entries = json.load(f)
    first, second, third = sorted(entries,
                                  key=lambda k: entries[k]["filename"])
    entries[first]["filename"] = "gone.png"
    entries[second]["regions"][0]["shape_attributes"]["all_points_x"][1] = \
        float("nan")
    entries[third]["regions"][0]["shape_attributes"]["all_points_x"] = [1, 2]
    with open(json_path, "w") as f:
        json.dump(entries, f)

    status, out = run_cli(["check-dataset", folder])
    assert status == 1
    errors = [line for line in out.splitlines() if line.startswith("ERROR")]
    assert any("gone.png" in line and "not found" in line for line in errors)
    assert any("img1.png" in line and "NaN" in line for line in errors)
    assert any("img2.png" in line and "2 x but 4 y" in line
               for line in errors)


def test_check_dataset_lists_broken_coco_annotations(tmp_path):
    folder = str(tmp_path / "coco")
    json_path = write_coco(
        folder,
        images=[{"id": 1, "file_name": "a.png", "height": 32, "width": 40},
                {"id": 2, "file_name": "missing.png", "height": 32,
                 "width": 40}],
        annotations=[
            {"id": 1, "image_id": 1, "category_id": 9, "iscrowd": 0,
             "segmentation": [[1, 1, 10, 1, 10, 10]]},
            {"id": 2, "image_id": 7, "category_id": 5, "iscrowd": 0,
             "segmentation": [[1, 1, 10, 1, 10, 10]]}],
        categories=[{"id": 5, "name": "thing"}])
    image = np.random.default_rng(0).integers(0, 255, (32, 40, 3))
    skimage.io.imsave(os.path.join(folder, "images", "a.png"),
                      image.astype(np.uint8), check_contrast=False)

    status, out = run_cli(["check-dataset", json_path])
    assert status == 1
    errors = [line for line in out.splitlines() if line.startswith("ERROR")]
    assert any("missing.png" in line and "not found" in line
               for line in errors)
    assert any("a.png" in line and "unknown category id 9" in line
               for line in errors)
    assert any("annotations.json" in line and "unknown image id 7" in line
               for line in errors)
    assert "3 error(s)" in out


def test_check_dataset_of_a_missing_path_reports_it(tmp_path):
    missing = str(tmp_path / "nowhere")
    status, out = run_cli(["check-dataset", missing])
    assert status == 1
    assert "ERROR: {}: dataset path not found".format(missing) in out


############################################################
#  train
############################################################

def test_train_writes_checkpoint_and_run_config(trained):
    checkpoint = trained["checkpoint"]
    assert os.path.isfile(checkpoint)
    assert re.search(r"mask_rcnn_{}_0001\.weights\.h5$".format(RUN_NAME),
                     checkpoint)
    assert os.path.dirname(os.path.dirname(checkpoint)) == trained["logs"]
    assert trained["summary"]["epochs"] == 1
    with open(os.path.join(os.path.dirname(checkpoint),
                           cli.RUN_CONFIG)) as f:
        run = json.load(f)
    assert run["name"] == RUN_NAME
    # VIA regions without a class attribute are the default class.
    assert run["class_names"] == ["BG", "object"]
    for key, value in TINY_SETTINGS.items():
        assert run["overrides"][key] == value
    assert run["overrides"]["STEPS_PER_EPOCH"] == 2


def test_train_rejects_a_bad_override_naming_it(via_root, tmp_path, capsys):
    status = cli.main(["train", "--dataset", str(via_root), "--format", "via",
                       "--train-subset", "train", "--weights", "none",
                       "--epochs", "1", "--logs", str(tmp_path),
                       "--set", "IMAGE_MAX_DIM=100"])
    assert status == 2
    assert "IMAGE_MAX_DIM" in capsys.readouterr().err
    assert not os.listdir(str(tmp_path))  # no run folder was started


@pytest.mark.parametrize("pair", [
    "LEARNING_RATE=nan", "LEARNING_RATE=NaN", "DETECTION_MIN_CONFIDENCE=nan",
    "VALIDATION_STEPS=-3", "IMAGE_MAX_DIM=abc", "TRAIN_BN=maybe",
    "STEPS_PER_EPOCH=2.5", "DETECTION_MIN_CONFIDENCE=Infinity",
])
def test_set_values_are_checked_before_the_dataset_is_read(
        pair, tmp_path, capsys):
    """A bad --set value is named at once: the dataset path does not even
    exist, and no run folder is started."""
    status = cli.main(["train", "--dataset", str(tmp_path / "missing"),
                       "--format", "via", "--weights", "none",
                       "--epochs", "1", "--logs", str(tmp_path / "logs"),
                       "--set", pair])
    assert status == 2
    err = capsys.readouterr().err
    assert pair.split("=")[0] in err and "must be" in err, err
    assert not os.path.exists(str(tmp_path / "logs"))


@pytest.mark.parametrize("text, expected", [
    ("true", True), ("True", True), ("yes", True), ("1", True), ("on", True),
    ("false", False), ("NO", False), ("0", False), ("off", False),
    ("null", None), ("None", None),
])
def test_set_parses_booleans(text, expected):
    """TRAIN_BN=no used to reach Config as the text "no", which is true."""
    overrides = cli.parse_overrides(["TRAIN_BN=" + text,
                                     "USE_MINI_MASK=" + text.replace(
                                         "null", "1").replace("None", "0")])
    assert overrides["TRAIN_BN"] is expected
    assert overrides["USE_MINI_MASK"] is (
        expected if expected is not None else text == "null")
    config = cli.make_config("x", 2, overrides)
    assert config.TRAIN_BN is expected


def test_set_parses_numbers_and_keeps_text():
    overrides = cli.parse_overrides([
        "LEARNING_RATE=0.02", "IMAGE_MAX_DIM=512", "IMAGE_MIN_DIM=512",
        "BACKBONE=resnet50", "RPN_ANCHOR_RATIOS=[0.5, 1, 2]",
        "MIXED_PRECISION=null", "VALIDATION_STEPS=0"])
    assert overrides == {
        "LEARNING_RATE": 0.02, "IMAGE_MAX_DIM": 512, "IMAGE_MIN_DIM": 512,
        "BACKBONE": "resnet50", "RPN_ANCHOR_RATIOS": [0.5, 1, 2],
        "MIXED_PRECISION": None, "VALIDATION_STEPS": 0}
    assert type(overrides["IMAGE_MAX_DIM"]) is int
    cli.make_config("x", 2, overrides)


def test_set_takes_the_from_scratch_settings_the_readme_recommends():
    """ADD_GT_TO_PROPOSALS and its kin reach Config with their types:
    booleans from words, numbers and lists from JSON."""
    overrides = cli.parse_overrides([
        "ADD_GT_TO_PROPOSALS=true", "HEAD_TRAIN_BN=no", "TRAIN_BN=yes",
        "ROI_FILL_WITH_NEGATIVES=on", "MASK_HEAD_POSITIVE_ROIS=null",
        "LEARNING_MOMENTUM=0.8", "WEIGHT_DECAY=0.0005",
        "GRADIENT_CLIP_NORM=null", "RPN_ANCHOR_SCALES=[8, 16, 32, 64, 128]",
        "RPN_NMS_THRESHOLD=0.8", "ROI_POSITIVE_RATIO=0.5",
        "MEAN_PIXEL=[43.5, 39.6, 48.2]", "BATCH_NORM_MOMENTUM=0.9"])
    config = cli.make_config("x", 2, overrides)
    assert config.ADD_GT_TO_PROPOSALS is True
    assert config.HEAD_TRAIN_BN is False and config.TRAIN_BN is True
    assert config.ROI_FILL_WITH_NEGATIVES is True
    assert config.MASK_HEAD_POSITIVE_ROIS is None
    assert (config.LEARNING_MOMENTUM, config.WEIGHT_DECAY) == (0.8, 0.0005)
    assert config.GRADIENT_CLIP_NORM is None
    assert config.RPN_ANCHOR_SCALES == (8, 16, 32, 64, 128)
    assert (config.RPN_NMS_THRESHOLD, config.ROI_POSITIVE_RATIO) == (0.8,
                                                                     0.5)
    np.testing.assert_array_equal(config.MEAN_PIXEL, [43.5, 39.6, 48.2])
    assert config.BATCH_NORM_MOMENTUM == 0.9
    # The run config keeps the values as given: JSON, read back the same.
    assert json.loads(json.dumps(overrides)) == overrides


@pytest.mark.parametrize("pair", [
    "ADD_GT_TO_PROPOSALS=maybe", "HEAD_TRAIN_BN=2", "LEARNING_MOMENTUM=1.5",
    "MEAN_PIXEL=[1, 2]", "ROI_POSITIVE_RATIO=0", "BATCH_NORM_MOMENTUM=1"])
def test_bad_from_scratch_settings_are_named(pair):
    with pytest.raises(cli.CliError, match=pair.split("=")[0]):
        cli.make_config("x", 2, cli.parse_overrides([pair]))


def test_every_boolean_setting_parses_its_words():
    """BOOL_SETTINGS is every settable key whose rule is a boolean, so that
    --set KEY=no is False and never the true text "no"."""
    from mrcnn import config_checks
    booleans = {key for key in cli.OVERRIDABLE
                if key in config_checks.RULES
                and config_checks.RULES[key].kind == "bool"}
    assert set(setup.BOOL_SETTINGS) == booleans
    for key in booleans:
        assert cli.parse_overrides([key + "=no"]) == {key: False}


def test_train_accepts_add_gt_to_proposals(tmp_path, capsys):
    """`mrcnn train --set ADD_GT_TO_PROPOSALS=true` gets past the --set
    check: what stops it is the missing dataset, named."""
    missing = str(tmp_path / "missing")
    status = cli.main(["train", "--dataset", missing, "--format", "via",
                       "--weights", "none", "--epochs", "1",
                       "--logs", str(tmp_path / "logs"),
                       "--set", "ADD_GT_TO_PROPOSALS=true",
                       "--set", "HEAD_TRAIN_BN=false"])
    assert status == 2
    err = capsys.readouterr().err
    assert "cannot be set" not in err and "missing" in err, err


def test_train_with_unreachable_coco_weights_says_what_to_fetch(
        via_root, tmp_path, capsys, monkeypatch):
    def offline(path, verbose=1):
        raise utils.WeightsDownloadError(
            "Could not download the COCO weights (offline). Download the "
            "file by hand and save it as {}".format(path))
    monkeypatch.setattr(utils, "download_trained_weights", offline)
    status = cli.main(["train", "--dataset", str(via_root), "--format", "via",
                       "--train-subset", "train", "--weights", "coco",
                       "--epochs", "1", "--logs", str(tmp_path)])
    assert status == 2
    err = capsys.readouterr().err
    assert "mask_rcnn_coco.h5" in err and "by hand" in err


class RecordingTrainer:
    """Stands in for MaskRCNN in `mrcnn train`: records the weights loaded
    and trains nothing."""

    def __init__(self, mode, config, model_dir):
        self.log_dir = os.path.join(model_dir, "run")
        self.config = config
        self.epoch = 0
        self.loaded = []
        self.trained = []

    def load_weights(self, path, by_name=False, exclude=None):
        self.loaded.append((path, by_name, exclude))

    def create_log_dir(self):
        return self.log_dir

    def train(self, *args, **kwargs):
        self.trained.append(args)

    def find_last(self):
        return "checkpoint.weights.h5"


@pytest.mark.parametrize("weights, exclude_heads, expected", [
    ("coco", False, cli.HEAD_LAYERS),
    ("imagenet", False, None),
    ("given.h5", False, None),
    ("given.h5", True, cli.HEAD_LAYERS),
    ("none", True, "not loaded"),
])
def test_train_leaves_out_the_heads_of_coco_weights_and_when_asked(
        via_root, tmp_path, monkeypatch, weights, exclude_heads, expected):
    from mrcnn import model as modellib
    from mrcnn.weights import loading as weights_io
    models = []
    monkeypatch.setattr(modellib, "MaskRCNN", lambda **kwargs: models.append(
        RecordingTrainer(**kwargs)) or models[-1])
    downloads = []
    monkeypatch.setattr(utils, "download_trained_weights", downloads.append)
    monkeypatch.setattr(weights_io, "get_imagenet_weights",
                        lambda: "imagenet.h5")
    (tmp_path / "given.h5").write_bytes(b"")
    status, _ = run_cli(
        ["train", "--dataset", str(via_root), "--format", "via",
         "--train-subset", "train", "--weights",
         str(tmp_path / weights) if weights == "given.h5" else weights,
         "--epochs", "1", "--logs", str(tmp_path)]
        + (["--exclude-heads"] if exclude_heads else []))
    assert status == 0
    [model] = models
    loaded = model.loaded
    if expected == "not loaded":
        assert loaded == []
        return
    [(path, by_name, exclude)] = loaded
    assert by_name and exclude == expected
    if weights == "coco":  # downloaded beside the runs when missing
        assert downloads == [path] == [str(tmp_path / "mask_rcnn_coco.h5")]


############################################################
#  Weights selection, shared with the samples
############################################################

def write_whole_coco_weights(path, monkeypatch):
    """A file the COCO weights' cache check takes as whole (the HDF5
    signature, COCO_MODEL_SIZE patched to its size): not downloaded again."""
    from mrcnn.weights import coco as coco_weights_module
    monkeypatch.setattr(coco_weights_module, "COCO_MODEL_SIZE", 64)
    with open(path, "wb") as f:
        f.write(b"\x89HDF\r\n\x1a\n".ljust(64, b"\0"))


def test_weights_file_maps_each_choice_to_a_kind_and_a_file(
        tmp_path, monkeypatch):
    from mrcnn.weights import loading as weights_io
    downloads = []
    monkeypatch.setattr(utils, "download_trained_weights", downloads.append)
    monkeypatch.setattr(weights_io, "get_imagenet_weights",
                        lambda: "/cache/resnet50.h5")
    coco_path = str(tmp_path / "mask_rcnn_coco.h5")

    def last():
        return "/logs/run/last.weights.h5"
    assert cli.weights_file("none", coco_path, last) == ("none", None)
    assert cli.weights_file("LAST", coco_path, last) == (
        "last", "/logs/run/last.weights.h5")
    assert cli.weights_file("imagenet", coco_path, last) == (
        "imagenet", "/cache/resnet50.h5")
    # COCO: downloaded when missing, used as it is when there.
    assert cli.weights_file("coco", coco_path, last) == ("coco", coco_path)
    assert downloads == [coco_path]
    write_whole_coco_weights(coco_path, monkeypatch)
    assert cli.weights_file("Coco", coco_path, last) == ("coco", coco_path)
    assert downloads == [coco_path]
    assert cli.weights_file(coco_path, "unused", last) == ("path", coco_path)
    missing = str(tmp_path / "missing.h5")
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        cli.weights_file(missing, coco_path, last)


class WeightsRecorder:
    """A MaskRCNN's find_last and load_weights, recording the loads."""

    def __init__(self):
        self.loads = []

    def find_last(self):
        return "last.weights.h5"

    def load_weights(self, path, by_name=False, exclude=None):
        self.loads.append({"path": path, "by_name": by_name,
                           "exclude": exclude})


@pytest.mark.parametrize("weights, skip_heads_of, exclude", [
    ("coco", ("coco",), cli.HEAD_LAYERS),
    ("coco", (), None),
    ("last", ("coco",), None),
    ("last", ("last",), cli.HEAD_LAYERS),
])
def test_load_weights_arg_leaves_out_the_heads_of_the_kinds_given(
        tmp_path, monkeypatch, weights, skip_heads_of, exclude):
    coco_path = str(tmp_path / "coco.h5")
    write_whole_coco_weights(coco_path, monkeypatch)
    model = WeightsRecorder()
    loaded = cli.load_weights_arg(model, weights, coco_path,
                                  skip_heads_of=skip_heads_of)
    expected = coco_path if weights == "coco" else "last.weights.h5"
    assert loaded == expected
    assert model.loads == [{"path": expected, "by_name": True,
                            "exclude": exclude}]


def test_load_weights_arg_none_loads_nothing(capsys):
    model = WeightsRecorder()
    assert cli.load_weights_arg(model, "none", "unused.h5") is None
    assert model.loads == []
    assert "random weights" in capsys.readouterr().out


def test_sample_config_applies_tiny_settings_then_overrides():
    from mrcnn.config import Config

    class Base(Config):
        NAME = "base"
        IMAGES_PER_GPU = 2
    assert type(cli.sample_config(Base)) is Base
    config = cli.sample_config(Base, tiny=True, STEPS_PER_EPOCH=5)
    assert isinstance(config, Base)
    assert config.BACKBONE == "resnet18" and config.IMAGE_MAX_DIM == 64
    assert config.STEPS_PER_EPOCH == 5
    assert config.IMAGES_PER_GPU == cli.TINY_SETTINGS["IMAGES_PER_GPU"]
    assert cli.sample_config(Base, inference=True).IMAGES_PER_GPU == 1
    assert Base.IMAGES_PER_GPU == 2  # the base class is left alone


############################################################
#  detect and evaluate
############################################################

def test_detect_writes_pngs_and_coco_results_of_image_size(
        confident_checkpoint, trained, via_root, tmp_path):
    images = [str(via_root / "val" / name) for name in ("img0.png",
                                                        "img1.png")]
    out_dir = str(tmp_path / "detections")
    status, out = run_cli(["detect", "--weights", confident_checkpoint,
                           "--logs", trained["logs"], "--out", out_dir]
                          + images)
    assert status == 0, out
    summary = json.loads(out.strip().splitlines()[-1])
    with open(summary["results"]) as f:
        results = json.load(f)
    assert summary["images"] == 2
    assert summary["detections"] == len(results)
    for index, path in enumerate(images):
        stem = os.path.splitext(os.path.basename(path))[0]
        png = skimage.io.imread(os.path.join(out_dir,
                                             stem + "_detections.png"))
        assert png.ndim == 3 and png.shape[-1] in (3, 4)
        height, width = skimage.io.imread(path).shape[:2]
        entries = [r for r in results if r["file_name"] == path]
        assert entries, "no detection written for {}".format(path)
        assert len(entries) <= TINY_SETTINGS["DETECTION_MAX_INSTANCES"]
        for entry in entries:
            assert entry["image_id"] == index
            assert entry["category_id"] == 1
            assert entry["category_name"] == "object"
            assert 0.0 <= entry["score"] <= 1.0
            mask = mask_utils.decode(entry["segmentation"])
            assert mask.shape == (height, width)
            x, y, w, h = entry["bbox"]
            assert 0 <= x and x + w <= width and 0 <= y and y + h <= height
            # The mask is pasted inside its box.
            outside = mask.astype(bool).copy()
            outside[y:y + h, x:x + w] = False
            assert not outside.any()


def test_evaluate_prints_bbox_and_segm_metrics(confident_checkpoint, trained,
                                               via_root, tmp_path):
    out_dir = tmp_path / "evaluation"
    status, out = run_cli(["evaluate", "--weights", confident_checkpoint,
                           "--logs", trained["logs"], "--dataset",
                           str(via_root), "--format", "via",
                           "--subset", "val", "--out", str(out_dir)])
    assert status == 0, out
    metrics = json.loads(out.strip().splitlines()[-1])
    # The same numbers in metrics.json, the figures beside them.
    with open(metrics["files"]["metrics"]) as f:
        assert json.load(f)["confusion"] == metrics["confusion"]
    for name in ("confusion_matrix.png", "per_class_ap.png"):
        assert skimage.io.imread(str(out_dir / name)).ndim == 3
    confusion = metrics["confusion"]
    assert confusion["rows"] == ["false positive", "object"]
    instances = len(SUBSET_SIZES["val"])  # one square an image
    assert sum(confusion["matrix"][1]) == instances  # found or missed
    assert metrics["num_images"] == len(SUBSET_SIZES["val"])
    for iou_type in ("bbox", "segm"):
        values = metrics[iou_type]
        # Every image has ground truth and detections: AP is defined.
        for name in ("AP", "AP50", "AR100"):
            assert 0.0 <= values[name] <= 1.0, (iou_type, name, values)
        assert set(values["per_class"]) == {"object"}
    assert 0.0 <= metrics["mAP50"] <= 1.0


def test_export_writes_a_litert_file_with_the_runs_class_names(
        confident_checkpoint, trained, tmp_path):
    """`mrcnn export --format tflite`: the file runs in LiteRT and carries
    the class names of the run's run_config.json."""
    interpreter = pytest.importorskip("ai_edge_litert.interpreter")
    from mrcnn.inference import export_litert
    out = str(tmp_path / "model.tflite")
    status, printed = run_cli(["export", "--weights", confident_checkpoint,
                               "--logs", trained["logs"], "--format",
                               "tflite", "--out", out, "--no-full-masks"])
    assert status == 0, printed
    summary = json.loads(printed.strip().splitlines()[-1])
    run = setup.read_run_config(confident_checkpoint)
    assert summary["class_names"] == run["class_names"]
    metadata = export_litert.read_litert_metadata(out)
    assert metadata["class_names"] == run["class_names"]
    assert "masks" not in metadata["outputs"]
    runner = interpreter.Interpreter(out).get_signature_runner()
    shape = runner.get_input_details()["images"]["shape"]
    outputs = runner(images=np.full(shape, 128, np.uint8))
    assert outputs["num_detections"][0] > 0  # the confident checkpoint
    assert "masks" not in outputs


def test_detect_without_run_config_or_class_names_is_a_clean_error(
        trained, tmp_path, capsys):
    lone = str(tmp_path / "lone.weights.h5")
    shutil.copy(trained["checkpoint"], lone)
    status = cli.main(["detect", "--weights", lone, "--logs", str(tmp_path),
                       "whatever.png"])
    assert status == 2
    assert "--class-names" in capsys.readouterr().err


def test_detect_with_a_broken_weights_file_names_it(tmp_path, capsys):
    broken = tmp_path / "broken.h5"
    broken.write_text("<html>not weights</html>")
    status = cli.main(["detect", "--weights", str(broken), "--class-names",
                       "a", "--logs", str(tmp_path), "x.png"]
                      + tiny_set_args())
    assert status == 2
    assert "broken.h5" in capsys.readouterr().err


############################################################
#  A class is the same class everywhere
############################################################

def record_models(monkeypatch):
    """MaskRCNN replaced by RecordingTrainer (no graph built); returns the
    list of the models made."""
    from mrcnn import model as modellib
    models = []
    monkeypatch.setattr(modellib, "MaskRCNN", lambda **kwargs: models.append(
        RecordingTrainer(**kwargs)) or models[-1])
    return models


def test_train_numbers_the_val_set_by_the_training_class_names(
        tmp_path, monkeypatch):
    from tests.test_class_identity import (TRAIN, VAL_WITHOUT_DOG,
                                           label_ids, write_via)
    write_via(tmp_path / "data" / "train", TRAIN)
    write_via(tmp_path / "data" / "val", VAL_WITHOUT_DOG)  # no "dog"
    models = record_models(monkeypatch)
    status, out = run_cli([
        "train", "--dataset", str(tmp_path / "data"), "--format", "via",
        "--train-subset", "train", "--val-subset", "val",
        "--class-attribute", "kind", "--weights", "none", "--epochs", "1",
        "--logs", str(tmp_path / "logs")])
    assert status == 0, out
    [model] = models
    [(train_set, val_set)] = [args[:2] for args in model.trained]
    assert val_set.class_names == train_set.class_names
    got, expected = label_ids(val_set, VAL_WITHOUT_DOG,
                              train_set.class_names)
    assert got == expected
    with open(os.path.join(model.log_dir, cli.RUN_CONFIG)) as f:
        assert json.load(f)["class_names"] == train_set.class_names


@pytest.mark.parametrize("exclude_heads", [False, True])
def test_train_continuing_a_run_numbers_the_data_by_the_run_class_names(
        tmp_path, monkeypatch, exclude_heads):
    """The run's order (fox, cat, dog) is not the sorted one the loader
    would give; with --exclude-heads the heads are new and the data's own
    numbering stands."""
    from tests.test_class_identity import TRAIN, label_ids, write_via
    write_via(tmp_path / "data" / "train", TRAIN)
    weights = write_run(tmp_path / "runs" / "earlier",
                        ["BG", "fox", "cat", "dog"])
    models = record_models(monkeypatch)
    status, out = run_cli([
        "train", "--dataset", str(tmp_path / "data"), "--format", "via",
        "--train-subset", "train", "--class-attribute", "kind",
        "--weights", weights, "--epochs", "1", "--logs", str(tmp_path / "logs")]
        + (["--exclude-heads"] if exclude_heads else []))
    assert status == 0, out
    [(train_set, _)] = [args[:2] for args in models[0].trained]
    expected_names = (["BG", "cat", "dog", "fox"] if exclude_heads
                      else ["BG", "fox", "cat", "dog"])
    assert train_set.class_names == expected_names
    got, expected = label_ids(train_set, TRAIN, expected_names)
    assert got == expected


def test_train_continuing_a_run_refuses_a_class_the_run_never_saw(
        tmp_path, monkeypatch, capsys):
    from tests.test_class_identity import TRAIN, write_via
    write_via(tmp_path / "data" / "train", TRAIN)
    weights = write_run(tmp_path / "runs" / "earlier", ["BG", "fox", "cat"])
    record_models(monkeypatch)
    status, out = run_cli([
        "train", "--dataset", str(tmp_path / "data"), "--format", "via",
        "--train-subset", "train", "--class-attribute", "kind",
        "--weights", weights, "--epochs", "1",
        "--logs", str(tmp_path / "logs")])
    assert status == 2
    err = capsys.readouterr().err
    assert "'dog'" in err and str(tmp_path / "data" / "train") in err


def write_run(folder, class_names):
    """A weights file (empty: the stand-in model loads nothing) with a
    run_config.json of these class names beside it."""
    os.makedirs(str(folder), exist_ok=True)
    weights = folder / "mask_rcnn_run_0001.weights.h5"
    weights.write_bytes(b"")
    cli.write_run_config(str(folder), "run", class_names, {})
    return str(weights)


@pytest.fixture
def evaluated(monkeypatch):
    """Runs `mrcnn evaluate` with stand-ins for the model and the
    evaluation; returns a function of the argv giving (status, the
    evaluated dataset or None, the model or None)."""
    from mrcnn.evaluation import evaluate
    seen = {}

    def evaluate_model(model, dataset, **kwargs):
        seen.update(model=model, dataset=dataset)
        return {"confusion": {}}
    monkeypatch.setattr(evaluate, "evaluate_model", evaluate_model)
    monkeypatch.setattr(cli, "write_evaluation", lambda metrics, out: {})
    record_models(monkeypatch)

    def run(argv):
        seen.clear()
        status, _ = run_cli(["evaluate"] + argv)
        return status, seen.get("dataset"), seen.get("model")
    return run


def test_evaluate_numbers_the_dataset_by_the_run_class_names(
        tmp_path, evaluated):
    from tests.test_class_identity import (VAL_WITHOUT_DOG, label_ids,
                                           write_via)
    # Not the sorted order the loader would give the dataset's own names.
    run_names = ["BG", "fox", "dog", "cat"]
    weights = write_run(tmp_path / "run", run_names)
    write_via(tmp_path / "val", VAL_WITHOUT_DOG)
    status, dataset, model = evaluated([
        "--weights", weights, "--logs", str(tmp_path), "--dataset",
        str(tmp_path / "val"), "--format", "via",
        "--class-attribute", "kind"])
    assert status == 0
    assert dataset.class_names == run_names
    assert model.config.NUM_CLASSES == len(run_names)
    got, expected = label_ids(dataset, VAL_WITHOUT_DOG, run_names)
    assert got == expected


def test_evaluate_of_a_class_the_model_lacks_names_it_and_the_file(
        tmp_path, evaluated, capsys):
    from tests.test_class_identity import write_via
    weights = write_run(tmp_path / "run", ["BG", "cat", "dog"])
    annotations = write_via(tmp_path / "val", [("cat",), ("wolf",)])
    status, dataset, _ = evaluated([
        "--weights", weights, "--logs", str(tmp_path), "--dataset",
        str(tmp_path / "val"), "--format", "via",
        "--class-attribute", "kind"])
    assert status == 2 and dataset is None
    err = capsys.readouterr().err
    assert "'wolf'" in err and str(annotations) in err


def test_evaluate_without_run_config_uses_the_dataset_names_and_says_so(
        tmp_path, evaluated, capsys):
    from tests.test_class_identity import write_via
    weights = tmp_path / "lone.weights.h5"
    weights.write_bytes(b"")
    write_via(tmp_path / "val", [("cat",), ("dog",)])
    status, dataset, model = evaluated([
        "--weights", str(weights), "--logs", str(tmp_path), "--dataset",
        str(tmp_path / "val"), "--format", "via",
        "--class-attribute", "kind"])
    assert status == 0
    assert model.config.NUM_CLASSES == dataset.num_classes == 3
    err = capsys.readouterr().err
    assert cli.RUN_CONFIG in err and "cat, dog" in err


############################################################
#  detect and evaluate never overwrite their own outputs
############################################################

def test_detect_gives_inputs_of_one_stem_distinct_outputs(
        confident_checkpoint, trained, via_root, tmp_path):
    images = []
    for folder, name in (("a", "img0.png"), ("b", "img1.png")):
        os.makedirs(str(tmp_path / folder))
        images.append(str(tmp_path / folder / "img.png"))
        shutil.copy(str(via_root / "val" / name), images[-1])
    out_dir = tmp_path / "detections"
    status, out = run_cli(["detect", "--weights", confident_checkpoint,
                           "--logs", trained["logs"], "--out", str(out_dir)]
                          + images)
    assert status == 0, out
    # Each input's line names its figure: "<image>: N instances -> <png>".
    written = dict(line.split(" instances -> ")[::-1]
                   for line in out.splitlines() if " instances -> " in line)
    assert len(written) == 2
    for png in written:
        assert os.path.isfile(png)
    assert sorted(os.listdir(str(out_dir))) == sorted(
        [os.path.basename(p) for p in written] + ["detections.json"])


def fail_json_after_first_chunk(monkeypatch):
    """Makes JSON encoding fail after its first chunk, as a full disk or a
    kill would midway through a write."""
    real = json.JSONEncoder.iterencode

    def failing(self, o, _one_shot=False):
        chunks = iter(real(self, o, _one_shot))
        yield next(chunks)
        raise OSError("No space left on device")
    monkeypatch.setattr(json.JSONEncoder, "iterencode", failing)


def test_detections_json_is_written_whole_or_not_at_all(
        confident_checkpoint, trained, via_root, tmp_path, monkeypatch):
    out_dir = tmp_path / "detections"
    out_dir.mkdir()
    previous = '[{"from": "an earlier run"}]'
    (out_dir / "detections.json").write_text(previous)
    fail_json_after_first_chunk(monkeypatch)
    with pytest.raises(OSError):
        run_cli(["detect", "--weights", confident_checkpoint, "--logs",
                 trained["logs"], "--out", str(out_dir),
                 str(via_root / "val" / "img0.png")])
    assert (out_dir / "detections.json").read_text() == previous
    assert not [n for n in os.listdir(str(out_dir)) if n.endswith(".tmp")]


def test_metrics_json_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    previous = '{"from": "an earlier run"}'
    (tmp_path / "metrics.json").write_text(previous)
    fail_json_after_first_chunk(monkeypatch)
    with pytest.raises(OSError):
        cli.write_evaluation({"confusion": {}, "mAP50": 0.5}, str(tmp_path))
    assert (tmp_path / "metrics.json").read_text() == previous


def test_output_stems_are_distinct_and_keep_each_input_s_name():
    paths = ["a/img.jpg", "b/img.png", "c/IMG.tif", "img_2.jpg", "d/x.y.png"]
    stems = cli.output_stems(paths)
    # Distinct even where the file system ignores case.
    assert len({s.lower() for s in stems}) == len(paths)
    for path, stem in zip(paths, stems):
        own = os.path.splitext(os.path.basename(path))[0]
        assert stem == own or stem.lower().startswith(own.lower() + "_")
    assert stems[0] == "img"  # the first of a stem keeps it as it is
