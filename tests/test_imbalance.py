"""Class imbalance: weighted and focal classifier loss against hand-worked
values, their Config checks, and the class histogram with its suggested
weights (mrcnn.training.class_balance and `mrcnn check-dataset`)."""

import contextlib
import io
import json
import logging
import math
import os

import keras
import numpy as np
import pytest
import skimage.io
import tensorflow as tf

from mrcnn import utils
from mrcnn.training import class_balance
from mrcnn.cli import commands as cli
from mrcnn.network import losses
from mrcnn.config import Config

LN = math.log

# Three ROIs of one image, three classes, every class active. Their true
# class probabilities are 3/5, 1/3 and 1/2: cross entropies ln(5/3), ln 3
# and ln 2.
TARGETS = np.array([[0, 1, 2]], np.int32)
LOGITS = np.array([[[LN(3), 0, 0], [0, 0, 0], [0, 0, LN(2)]]], np.float32)
ACTIVE = np.ones([1, 3], np.float32)
CROSS_ENTROPY = np.array([LN(5 / 3), LN(3), LN(2)])
P_TRUE = np.array([3 / 5, 1 / 3, 1 / 2])


def class_loss(**kwargs):
    return float(losses.mrcnn_class_loss_graph(TARGETS, LOGITS, ACTIVE,
                                               **kwargs).numpy())


# --- the loss ------------------------------------------------------------

def test_unit_weights_give_exactly_the_original_loss():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 4, size=(2, 12)).astype(np.int32)
    logits = rng.normal(size=(2, 12, 4)).astype(np.float32)
    active = np.array([[1, 1, 1, 0], [1, 0, 1, 1]], np.float32)
    original = losses.mrcnn_class_loss_graph(targets, logits, active)
    ones = losses.mrcnn_class_loss_graph(targets, logits, active,
                                         class_weights=[1.0] * 4)
    assert float(ones.numpy()) == float(original.numpy())
    assert class_loss() == pytest.approx(CROSS_ENTROPY.mean(), rel=1e-6)


def test_class_weights_weigh_each_roi_by_its_true_class():
    # (1 * ln(5/3) + 2 * ln 3 + 4 * ln 2) / (1 + 2 + 4)
    expected = (LN(5 / 3) + 2 * LN(3) + 4 * LN(2)) / 7
    assert class_loss(class_weights=[1, 2, 4]) == pytest.approx(expected,
                                                                rel=1e-6)
    # Only the ratios matter.
    assert class_loss(class_weights=[0.5, 1, 2]) == pytest.approx(expected,
                                                                  rel=1e-6)


def test_focal_loss_hand_value_and_gamma_zero_is_cross_entropy():
    focal = ((1 - P_TRUE) ** 2 * CROSS_ENTROPY).mean()
    assert class_loss(focal_gamma=2.0) == pytest.approx(focal, rel=1e-5)
    assert class_loss(focal_gamma=0.0) == pytest.approx(class_loss(),
                                                        rel=1e-6)
    weighted = ((1 - P_TRUE) ** 2 * CROSS_ENTROPY * [1, 2, 4]).sum() / 7
    assert class_loss(focal_gamma=2.0, class_weights=[1, 2, 4]) == \
        pytest.approx(weighted, rel=1e-5)


def test_weights_apply_to_the_active_rois_only():
    # Image 0 has classes {0, 1}; its ROI 1 predicts class 2: not counted.
    active = np.array([[1, 1, 0]], np.float32)
    logits = LOGITS.copy()
    logits[0, 1] = [0, 0, 5]
    loss = float(losses.mrcnn_class_loss_graph(
        TARGETS, logits, active, class_weights=[1, 2, 4]).numpy())
    # ROI 2 predicts class 2 too (ln 2 > 0): only ROI 0 is left.
    assert loss == pytest.approx(LN(5 / 3), rel=1e-6)


def test_focal_gradient_is_finite_when_the_classifier_is_certain():
    logits = tf.Variable([[[60.0, 0.0], [0.0, 1.0]]])
    with tf.GradientTape() as tape:
        loss = losses.mrcnn_class_loss_graph(
            np.array([[0, 1]]), logits, np.ones([1, 2]), focal_gamma=0.5)
    gradient = tape.gradient(loss, logits).numpy()
    assert np.all(np.isfinite(gradient)) and np.any(gradient != 0)


def test_class_loss_layer_keeps_its_options_through_its_config():
    layer = losses.MRCNNClassLoss(class_weights=[1, 2, 4], focal_gamma=2)
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert clone.class_weights == [1.0, 2.0, 4.0]
    assert clone.focal_gamma == 2.0
    output = clone([TARGETS, LOGITS, ACTIVE])
    assert float(output[0]) == pytest.approx(class_loss(
        class_weights=[1, 2, 4], focal_gamma=2.0), rel=1e-6)


# --- Config ------------------------------------------------------------

def make_config(**attrs):
    attrs.setdefault("NAME", "imbalance")
    attrs.setdefault("NUM_CLASSES", 3)
    return type("ImbalanceConfig", (Config,), attrs)()


def test_default_config_keeps_the_original_loss():
    assert losses.class_loss_options(make_config()) == {
        "class_weights": None, "focal_gamma": None}
    options = losses.class_loss_options(make_config(
        CLASS_LOSS="focal", CLASS_LOSS_GAMMA=1.5,
        CLASS_LOSS_WEIGHTS=(1, 2, 3)))
    assert options == {"class_weights": [1, 2, 3], "focal_gamma": 1.5}


@pytest.mark.parametrize("attrs, message", [
    ({"CLASS_LOSS_WEIGHTS": [1, 2]}, "CLASS_LOSS_WEIGHTS must be None or 3"),
    ({"CLASS_LOSS_WEIGHTS": [1, 0, 2]}, "CLASS_LOSS_WEIGHTS"),
    ({"CLASS_LOSS_WEIGHTS": [1, float("nan"), 2]}, "CLASS_LOSS_WEIGHTS"),
    ({"CLASS_LOSS_WEIGHTS": "heavy"}, "CLASS_LOSS_WEIGHTS"),
    ({"CLASS_LOSS": "hinge"}, "CLASS_LOSS must be 'cross_entropy' or"),
    ({"CLASS_LOSS_GAMMA": -1}, "CLASS_LOSS_GAMMA must be a finite number >= 0"),
    ({"CLASS_LOSS_GAMMA": "2"}, "CLASS_LOSS_GAMMA"),
])
def test_config_rejects_bad_class_loss_values(attrs, message):
    with pytest.raises(ValueError, match=message):
        make_config(**attrs)


def test_training_graph_builds_the_configured_class_loss(tmp_path):
    from mrcnn import model as modellib
    from tests.tiny import TinyConfig

    class FocalConfig(TinyConfig):
        NAME = "focal"
        CLASS_LOSS = "focal"
        CLASS_LOSS_GAMMA = 1.0
        CLASS_LOSS_WEIGHTS = [1.0, 2.0, 2.0, 0.5]
    model = modellib.MaskRCNN("training", FocalConfig(), str(tmp_path))
    layer = model.keras_model.get_layer("mrcnn_class_loss")
    assert layer.class_weights == [1.0, 2.0, 2.0, 0.5]
    assert layer.focal_gamma == 1.0


# --- histogram and suggested weights -------------------------------------

class CountedDataset(utils.Dataset):
    """Images whose masks carry the given class ids (crowds negative)."""

    def __init__(self, class_ids_per_image, num_classes):
        super().__init__()
        for class_id in range(1, num_classes):
            self.add_class("counted", class_id, "c{}".format(class_id))
        for image_id, class_ids in enumerate(class_ids_per_image):
            self.add_image("counted", image_id, None, class_ids=class_ids)
        self.prepare()

    def load_mask(self, image_id):
        class_ids = np.array(self.image_info[image_id]["class_ids"], np.int32)
        return np.zeros([4, 4, len(class_ids)], bool), class_ids


def test_histogram_counts_instances_and_leaves_out_crowds():
    dataset = CountedDataset([[1, 1, 2], [1, 4, -2], [], [4, 1, 2, 4, 1, 1]],
                             num_classes=5)
    np.testing.assert_array_equal(class_balance.class_histogram(dataset),
                                  [0, 6, 2, 0, 3])


def test_suggested_weights_are_normalized_inverse_frequencies(caplog):
    # 12 instances over 3 present classes: w_c = 12 / (3 * n_c).
    counts = [0, 6, 2, 0, 4]
    with caplog.at_level(logging.WARNING, logger="mrcnn.training.class_balance"):
        weights = class_balance.suggest_class_weights(
            counts, ["BG", "a", "b", "empty", "d"])
    assert weights == pytest.approx([1.0, 2 / 3, 2.0, 1.0, 1.0])
    present = [1, 2, 4]
    mean = sum(counts[c] * weights[c] for c in present) / 12
    assert mean == pytest.approx(1.0)
    assert "'empty' has no instances" in caplog.text
    # Balanced classes get weight 1.
    assert class_balance.suggest_class_weights([0, 5, 5]) == [1.0] * 3


def write_two_class_via(folder):
    """Two images, three 'cat' rectangles and one 'dog'."""
    os.makedirs(folder)
    boxes = {"a.png": [("cat", 2), ("cat", 20), ("dog", 40)],
             "b.png": [("cat", 10)]}
    entries = {}
    for name, regions in boxes.items():
        path = os.path.join(folder, name)
        skimage.io.imsave(path, np.full([64, 64, 3], 90, np.uint8),
                          check_contrast=False)
        size = os.path.getsize(path)
        entries[name + str(size)] = {
            "filename": name, "size": size, "file_attributes": {},
            "regions": [{"shape_attributes": {
                "name": "rect", "x": left, "y": 5, "width": 12,
                "height": 12}, "region_attributes": {"type": label}}
                for label, left in regions]}
    with open(os.path.join(folder, "via_region_data.json"), "w") as f:
        json.dump(entries, f)


def test_check_dataset_prints_the_histogram_and_weights(tmp_path):
    folder = str(tmp_path / "via")
    write_two_class_via(folder)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main(["check-dataset", folder, "--format", "via",
                           "--class-attribute", "type"])
    text = out.getvalue()
    assert status == 0, text
    assert "Class histogram (4 instances)" in text
    cat = [line for line in text.splitlines() if " cat " in line][0]
    dog = [line for line in text.splitlines() if " dog " in line][0]
    # 4 instances, 2 classes: cat 4 / (2 * 3), dog 4 / (2 * 1).
    assert " 3 " in cat and "weight 0.667" in cat
    assert " 1 " in dog and "weight 2.000" in dog
    suggested = [line for line in text.splitlines()
                 if line.startswith("Suggested: --set CLASS_LOSS_WEIGHTS=")][0]
    weights = json.loads(suggested.split("=", 1)[1])
    by_name = {line.split()[1]: weights[int(line.split()[0])]
               for line in (cat, dog)}
    assert by_name["cat"] == pytest.approx(0.6667)
    assert by_name["dog"] == pytest.approx(2.0)
    assert weights[0] == 1.0
    # The printed value is accepted back by --set.
    overrides = cli.parse_overrides([suggested.split("--set ", 1)[1]])
    config = cli.make_config("check", 3, overrides)
    assert config.CLASS_LOSS_WEIGHTS == weights
