"""mrcnn.config_presets, `mrcnn train --preset` and the fixed split of
mrcnn.datasets.splits."""
import pytest

from mrcnn import config_presets
from mrcnn.cli import commands, setup
from mrcnn.config import Config
from mrcnn.datasets.splits import every_nth_split


class SmallConfig(Config):
    NAME = "small"
    NUM_CLASSES = 2


def test_from_scratch_sets_the_preset_and_leaves_config_alone():
    config = config_presets.from_scratch(SmallConfig, LEARNING_RATE=0.02)()
    for key, value in config_presets.FROM_SCRATCH.items():
        if key != "LEARNING_RATE":
            assert getattr(config, key) == value, key
    assert config.LEARNING_RATE == 0.02
    assert config.NAME == "small" and type(config).__name__ == "SmallConfig"
    # matterport's defaults stay the defaults
    assert Config.TRAIN_BN is False and Config.ADD_GT_TO_PROPOSALS is False
    assert Config.LEARNING_RATE == 0.001 and Config.BACKBONE == "resnet101"


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(ValueError, match="from-scratch"):
        config_presets.with_preset(SmallConfig, "fast")


def test_cli_preset_goes_under_the_set_values():
    args = commands.build_parser().parse_args(
        ["train", "--dataset", "d", "--epochs", "1", "--preset", "from-scratch",
         "--set", "LEARNING_RATE=0.02"])
    overrides = setup.preset_overrides(
        args.preset, setup.parse_overrides(args.set))
    assert overrides["LEARNING_RATE"] == 0.02
    assert overrides["ADD_GT_TO_PROPOSALS"] is True
    config = setup.make_config("x", 2, overrides)
    assert config.TRAIN_BN is True and config.BACKBONE == "resnet18"
    assert setup.preset_overrides(None, {"TRAIN_BN": True}) == {
        "TRAIN_BN": True}
    with pytest.raises(SystemExit):
        commands.build_parser().parse_args(
            ["train", "--dataset", "d", "--epochs", "1", "--preset", "fast"])


def test_every_nth_split_by_sorted_ids():
    ids = ["k", "b", "a", "j", "c", "i", "d", "h", "e", "g", "f"]
    train, val = every_nth_split(ids, 5)
    assert val == ["a", "f", "k"]  # sorted: a b c d e f g h i j k
    assert train == ["b", "c", "d", "e", "g", "h", "i", "j"]
    assert every_nth_split(list(range(141)))[1] == list(range(0, 141, 5))
    with pytest.raises(ValueError):
        every_nth_split(["a", "a", "b"])
