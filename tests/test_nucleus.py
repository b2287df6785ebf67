"""The nucleus sample (samples/nucleus): the submission's run-length
encoding against hand-worked values and a decoder written here, the split
and the masks on the real data, and a tiny train-then-detect run whose CSV
decodes back to the detections, overlaps given to the higher score.

The data tests skip where the nuclei folder is absent (MRCNN_NUCLEI_DIR,
default ../shared/data/nuclei)."""

import contextlib
import csv
import glob
import io
import os
import shutil

import h5py
import numpy as np
import pytest
import skimage.io
from PIL import Image

from conftest import nuclei_dir
from mrcnn import model as modellib
from mrcnn.weights.hdf5 import add_checksum
from samples.nucleus import nucleus, submission


def quiet(function, *args, **kwargs):
    """(result, printed text) of a call, its stdout captured."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = function(*args, **kwargs)
    return result, out.getvalue()


def decode(rle, height, width):
    """The competition's decoding, written out: pixel numbers 1, 2, ...
    run down the first column, then the next ("F" order)."""
    flat = np.zeros(height * width, dtype=bool)
    numbers = [int(v) for v in rle.split()]
    for start, length in zip(numbers[0::2], numbers[1::2]):
        flat[start - 1:start - 1 + length] = True
    return flat.reshape((height, width), order="F")


############################################################
#  Run-length encoding (no data needed)
############################################################

def test_rle_encode_hand_worked_values():
    # Column-major numbering of a 3x3 image:  1 4 7
    #                                          2 5 8
    #                                          3 6 9
    mask = np.array([[0, 1, 0],
                     [0, 1, 1],
                     [0, 0, 1]])
    assert submission.rle_encode(mask) == "4 2 8 2"
    assert submission.rle_encode(np.ones((2, 2))) == "1 4"
    assert submission.rle_encode(np.zeros((2, 3))) == ""
    # Not square: row 1, column 2 of a 2x3 image is pixel 2 * 2 + 1 + 1.
    last = np.zeros((2, 3), bool)
    last[1, 2] = True
    assert submission.rle_encode(last) == "6 1"
    # A run goes on from the bottom of a column to the top of the next.
    wrap = np.zeros((3, 2), bool)
    wrap[2, 0] = wrap[0, 1] = True
    assert submission.rle_encode(wrap) == "3 2"


def test_rle_round_trips_through_the_decoder_written_here():
    rng = np.random.default_rng(0)
    for height, width in [(1, 1), (5, 7), (32, 17)]:
        mask = rng.random((height, width)) < 0.4
        rle = submission.rle_encode(mask)
        np.testing.assert_array_equal(decode(rle, height, width), mask)
        np.testing.assert_array_equal(
            submission.rle_decode(rle, (height, width)), mask)


def test_rle_decode_refuses_runs_outside_the_image():
    with pytest.raises(ValueError, match="outside a 2x2 image"):
        submission.rle_decode("3 5", (2, 2))
    with pytest.raises(ValueError, match="odd count"):
        submission.rle_decode("1 2 3", (2, 2))


def test_overlaps_go_to_the_higher_score():
    masks = np.zeros((4, 4, 3), bool)
    masks[0:3, 0:3, 0] = True   # score 0.6
    masks[1:4, 1:4, 1] = True   # score 0.9: keeps the shared 2x2
    masks[1:3, 1:3, 2] = True   # score 0.5: inside both, nothing left
    kept, scores = submission.non_overlapping(masks, [0.6, 0.9, 0.5])
    np.testing.assert_array_equal(scores, [0.9, 0.6])
    np.testing.assert_array_equal(kept[..., 0], masks[..., 1])
    np.testing.assert_array_equal(kept[..., 1],
                                  masks[..., 0] & ~masks[..., 1])
    rows = submission.image_rows("abc", masks, [0.6, 0.9, 0.5])
    # Instance 1 (rows 1-3 of columns 1-3): pixels 6-8, 10-12, 14-16.
    assert rows[0] == "abc,6 3 10 3 14 3"
    # Instance 0 less the overlap: column 0 (1-3), then rows 0 of
    # columns 1 and 2 (pixels 5 and 9).
    assert rows[1] == "abc,1 3 5 1 9 1"
    assert submission.image_rows("abc", masks[..., :0], []) == ["abc,"]


############################################################
#  Dataset and split (real data)
############################################################

def test_split_is_the_documented_rule_and_covers_every_image(nuclei_path):
    with open(nuclei_path / "ids.txt") as f:
        ids = set(f.read().split())
    train = nucleus.load_subset(nuclei_path, "train")
    val = nucleus.load_subset(nuclei_path, "val")
    train_ids = {info["id"] for info in train.image_info}
    val_ids = {info["id"] for info in val.image_info}
    assert train.class_names == val.class_names == ["BG", "nucleus"]
    assert not train_ids & val_ids
    assert train_ids | val_ids == ids
    # The module doc's rule: the sorted ids, every 5th from the first.
    assert val_ids == set(sorted(ids)[::5])
    assert (len(train_ids), len(val_ids)) == (112, 29)


def test_masks_are_the_mask_pngs(nuclei_path):
    dataset = nucleus.load_subset(nuclei_path, "val")
    image_id = min(dataset.image_ids,
                   key=lambda i: len(dataset.image_info[i]["mask_files"]))
    info = dataset.image_info[image_id]
    masks, class_ids = dataset.load_mask(image_id)
    folder = nuclei_path / "stage1_train" / info["id"] / "masks"
    files = sorted(os.listdir(folder))
    expected = np.stack([np.array(Image.open(folder / name)) > 0
                         for name in files], axis=-1)
    np.testing.assert_array_equal(masks, expected)
    np.testing.assert_array_equal(class_ids, np.ones(len(files)))
    image = dataset.load_image(image_id)
    assert image.shape == expected.shape[:2] + (3,)


def test_bad_subset_and_missing_folder_are_named(tmp_path):
    with pytest.raises(ValueError, match="'test'"):
        nucleus.NucleusDataset().load_nucleus(str(tmp_path), "test")
    with pytest.raises(FileNotFoundError, match="stage1_train"):
        nucleus.load_subset(str(tmp_path / "nowhere"), "train")


def test_dataset_folder_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MRCNN_NUCLEI_DIR", str(tmp_path))
    assert nucleus.default_dataset_dir() == str(tmp_path)
    monkeypatch.delenv("MRCNN_NUCLEI_DIR")
    monkeypatch.setattr(nucleus, "SHARED_DATASET_DIR", str(tmp_path / "no"))
    assert nucleus.default_dataset_dir() is None
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        nucleus.main(["train", "--weights", "none"])


############################################################
#  Train, then detect (real data)
############################################################

def layer_variables(h5file, layer_name):
    """The kernel and bias datasets of a layer of a Keras 3 .weights.h5
    file, by its name; a wrapper layer (TimeDistributed) keeps them in
    its inner layer's group."""
    found = []

    def visit(name, obj):
        if name.endswith("/vars") and obj.attrs.get("name") == layer_name:
            variables = obj if len(obj) else h5file[name[:-len("vars")]
                                                    + "layer/vars"]
            found.append((variables["0"], variables["1"]))
    h5file.visititems(visit)
    assert len(found) == 1, "layer {} not in the file".format(layer_name)
    return found[0]


def make_confident(checkpoint, path):
    """A copy of a checkpoint that finds nuclei whatever two random steps
    learned: every ROI is a nucleus (logits = bias), box deltas are zero
    (detections are the RPN's anchors) and masks fill their boxes, so
    neighbouring detections overlap. Their scores tie (all ~1): the order
    by score is test_overlaps_go_to_the_higher_score's to check."""
    shutil.copy(checkpoint, path)
    with h5py.File(path, "r+") as f:
        for layer, bias in (("mrcnn_class_logits", [0.0, 20.0]),
                            ("mrcnn_mask", [0.0, 20.0]),
                            ("rpn_bbox_pred", None), ("mrcnn_bbox_fc", None)):
            kernel_values, bias_values = layer_variables(f, layer)
            kernel_values[...] = 0
            bias_values[...] = 0 if bias is None else np.array(bias)
    add_checksum(path)  # edited on purpose: the arrays' new checksum
    return path


@pytest.fixture(scope="module")
def nucleus_run(tmp_path_factory):
    """nucleus.py train --tiny (one epoch of two steps from scratch), then
    nucleus.py detect --tiny --limit 2 on val with a confident copy of its
    checkpoint; MaskRCNN.detect is recorded on the way."""
    root = nuclei_dir()
    if not (root / "stage1_train").is_dir():
        pytest.skip("nuclei dataset not found at {} (set MRCNN_NUCLEI_DIR)"
                    .format(root))
    logs = str(tmp_path_factory.mktemp("nucleus_logs"))
    out = str(tmp_path_factory.mktemp("nucleus_out"))
    status, printed = quiet(nucleus.main, [
        "train", "--dataset", str(root), "--weights", "none", "--tiny",
        "--epochs", "1", "--logs", logs])
    assert status == 0, printed[-2000:]
    checkpoints = glob.glob(os.path.join(logs, "nucleus*", "*.weights.h5"))
    confident = make_confident(checkpoints[0], os.path.join(
        os.path.dirname(checkpoints[0]), "confident.weights.h5"))
    recorded = []
    original_detect = modellib.MaskRCNN.detect

    def recording_detect(self, images, *args, **kwargs):
        results = original_detect(self, images, *args, **kwargs)
        recorded.extend(zip(images, results))
        return results
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(modellib.MaskRCNN, "detect", recording_detect)
        status, printed = quiet(nucleus.main, [
            "detect", "--dataset", str(root), "--subset", "val",
            "--weights", confident, "--tiny", "--limit", "2",
            "--logs", logs, "--out", out])
    assert status == 0, printed[-2000:]
    val = nucleus.load_subset(root, "val")
    return {"checkpoints": checkpoints, "out": out, "recorded": recorded,
            "ids": [val.image_info[i]["id"] for i in val.image_ids[:2]]}


def test_training_writes_a_checkpoint(nucleus_run):
    assert [os.path.basename(c) for c in nucleus_run["checkpoints"]] == [
        "mask_rcnn_nucleus_0001.weights.h5"]


def owners(masks, scores):
    """Each pixel's detection, -1 for none: detections claim their pixels
    in order of falling score, the already claimed ones excepted."""
    owner = -np.ones(masks.shape[:2], int)
    for index in sorted(range(len(scores)), key=lambda i: -scores[i]):
        owner[(owner == -1) & masks[..., index]] = index
    return owner


def test_submission_decodes_to_the_detections(nucleus_run):
    submit_dirs = glob.glob(os.path.join(nucleus_run["out"], "submit_*"))
    assert len(submit_dirs) == 1
    with open(os.path.join(submit_dirs[0], "submission.csv")) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["ImageId", "EncodedPixels"]
    recorded = nucleus_run["recorded"]
    assert len(recorded) == len(nucleus_run["ids"]) == 2
    overlapped = False
    for image_id, (image, result) in zip(nucleus_run["ids"], recorded):
        masks, scores = result["masks"], result["scores"]
        assert masks.shape[-1] > 0
        overlapped |= bool((masks.sum(-1) > 1).any())
        owner = owners(masks, scores)
        expected = {tuple(np.flatnonzero(owner == i))
                    for i in np.unique(owner) if i >= 0}
        lines = [r[1] for r in rows[1:] if r[0] == image_id]
        decoded = [decode(rle, *image.shape[:2]) for rle in lines]
        # One row per nucleus, no two sharing a pixel, each the pixels
        # its detection kept.
        assert np.sum(decoded, axis=0).max() == 1
        assert {tuple(np.flatnonzero(m)) for m in decoded} == expected
        assert len(decoded) == len(expected)
        # The picture: the image, and beside it the same image coloured
        # where (and only where) a nucleus was kept.
        picture = skimage.io.imread(os.path.join(submit_dirs[0],
                                                 image_id + ".png"))
        width = image.shape[1]
        assert picture.shape == (image.shape[0], 2 * width, 3)
        np.testing.assert_array_equal(picture[:, :width], image)
        background = owner < 0
        np.testing.assert_array_equal(picture[:, width:][background],
                                      image[background])
    # The run had overlaps to remove (full-box masks of nearby anchors).
    assert overlapped
    assert {r[0] for r in rows[1:]} == set(nucleus_run["ids"])
