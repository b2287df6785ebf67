"""Run folders are never shared: runs of one NAME started in the same minute
get folders of their own, find_last orders them, any NAME resumes, and the
files the command line writes there are written whole or not at all.

(Training from an earlier checkpoint into a new folder is in
tests/test_model.py, which has a trained run.)
"""

import datetime
import json
import os
import threading

import pytest

from mrcnn.training import checkpoints
from mrcnn.cli import setup as cli_setup
from mrcnn import model as modellib
from tests.tiny import TinyConfig

MINUTE = datetime.datetime(2024, 5, 6, 7, 8)


@pytest.fixture
def fixed_minute(monkeypatch):
    """Every run starts in MINUTE: a sweep started within one minute."""
    monkeypatch.setattr(checkpoints, "_now", lambda: MINUTE)
    return MINUTE


def touch_checkpoint(run_dir, name, epoch):
    path = os.path.join(run_dir, "mask_rcnn_{}_{:04d}.weights.h5".format(
        name, epoch))
    with open(path, "wb") as f:
        f.write(b"checkpoint")
    return path


def test_concurrent_runs_of_one_minute_get_distinct_folders(tmp_path,
                                                            fixed_minute):
    model_dir = str(tmp_path)
    # Every run computed the same folder name before any created it.
    wanted = checkpoints.new_run_dir(model_dir, "sweep")
    created, start = [], threading.Barrier(8)

    def run():
        start.wait()
        created.append(checkpoints.create_run_dir(wanted))

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(created)) == 8
    assert sorted(os.listdir(model_dir)) == sorted(
        os.path.basename(p) for p in created)
    # All keep the original's <name><YYYYmmddTHHMM> prefix.
    prefix = "sweep{:%Y%m%dT%H%M}".format(fixed_minute)
    assert all(os.path.basename(p).startswith(prefix) for p in created)
    assert os.path.basename(wanted) == prefix


def test_find_last_follows_creation_order_past_ten_runs(tmp_path,
                                                        fixed_minute):
    model_dir = str(tmp_path)
    # An older run of the original's naming, a minute earlier.
    old = tmp_path / "sweep{:%Y%m%dT%H%M}".format(
        fixed_minute - datetime.timedelta(minutes=1))
    old.mkdir()
    touch_checkpoint(str(old), "sweep", 5)
    for _ in range(12):
        run_dir = checkpoints.create_run_dir(
            checkpoints.new_run_dir(model_dir, "sweep"))
        last = touch_checkpoint(run_dir, "sweep", 1)
        assert checkpoints.find_last_checkpoint(model_dir, "sweep") == last
    # A later run with no checkpoint yet is passed over.
    checkpoints.create_run_dir(checkpoints.new_run_dir(model_dir, "sweep"))
    assert checkpoints.find_last_checkpoint(model_dir, "sweep") == last


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """An inference model (the cheapest to build); its NAME is changed per
    test, which changes nothing in the graph."""
    class Config(TinyConfig):
        IMAGES_PER_GPU = 1
    return modellib.MaskRCNN("inference", Config(),
                             str(tmp_path_factory.mktemp("unused")))


def use_model_dir(model, model_dir, name):
    model.model_dir = str(model_dir)
    model.config.NAME = name
    model.set_log_dir()


def test_no_folder_until_training_or_create_log_dir(model, tmp_path):
    use_model_dir(model, tmp_path / "logs", "quiet")
    assert not os.path.exists(tmp_path / "logs")  # inference: no litter
    assert model.create_log_dir() == model.log_dir
    assert os.listdir(tmp_path / "logs") == [os.path.basename(model.log_dir)]
    assert model.create_log_dir() == model.log_dir  # kept on later calls
    assert len(os.listdir(tmp_path / "logs")) == 1


def test_same_minute_runs_never_share_checkpoints(model, tmp_path,
                                                  fixed_minute, monkeypatch):
    use_model_dir(model, tmp_path, "sweep")
    first = model.create_log_dir()
    first_checkpoint = model.checkpoint_path.format(epoch=1)
    model.save_weights(first_checkpoint)
    # A second run of the same NAME in the same minute ...
    model.set_log_dir()
    second = model.create_log_dir()
    assert second != first
    assert model.checkpoint_path.format(epoch=1) != first_checkpoint
    # ... and one that computed its folder before the first created it.
    monkeypatch.setattr(checkpoints, "new_run_dir", lambda *args: first)
    model.set_log_dir()
    assert model.log_dir == first
    third = model.create_log_dir()
    assert len({first, second, third}) == 3
    assert model.checkpoint_path.startswith(third)


@pytest.mark.parametrize("name", ["my.model", "my model v2", "modèle_ß",
                                  "a+b(c)[d]"])
def test_any_name_resumes_its_epoch_and_folder(model, tmp_path, name):
    use_model_dir(model, tmp_path, name)
    run_dir = model.create_log_dir()
    for epoch in (1, 2, 3):
        model.save_weights(model.checkpoint_path.format(epoch=epoch))
    model.set_log_dir()  # forget the run
    assert model.epoch == 0
    last = model.find_last()
    assert os.path.basename(last) == os.path.basename(
        model.checkpoint_path.format(epoch=3))
    model.load_weights(last, by_name=True)
    assert model.epoch == 3
    assert model.log_dir == run_dir  # the last checkpoint: same run
    assert model.create_log_dir() == run_dir
    assert checkpoints.read_parent(run_dir) is None


def test_earlier_checkpoint_starts_a_folder_that_names_it(model, tmp_path,
                                                          fixed_minute):
    use_model_dir(model, tmp_path, "tune")
    run_dir = model.create_log_dir()
    paths = [model.checkpoint_path.format(epoch=e) for e in (1, 2, 3)]
    for path in paths:
        model.save_weights(path)
    model.load_weights(paths[0], by_name=True)
    assert model.epoch == 1  # the epoch count goes on
    new_dir = model.create_log_dir()
    assert new_dir != run_dir
    assert os.path.basename(new_dir).startswith(os.path.basename(run_dir))
    assert checkpoints.read_parent(new_dir) == {
        "checkpoint": os.path.abspath(paths[0]), "epoch": 1}
    # The parent file was written whole (no temporary beside it).
    assert os.listdir(new_dir) == [checkpoints.PARENT_FILE]


def test_run_config_write_failure_keeps_the_previous_file(tmp_path):
    log_dir = str(tmp_path / "run")
    os.makedirs(log_dir)
    cli_setup.write_run_config(log_dir, "balloon", ["BG", "balloon"],
                               {"IMAGE_MAX_DIM": 512})
    before = open(os.path.join(log_dir, cli_setup.RUN_CONFIG)).read()
    with pytest.raises(TypeError):  # not JSON: fails halfway through
        cli_setup.write_run_config(log_dir, "balloon", ["BG", "balloon"],
                                   {"IMAGE_MAX_DIM": 512, "BAD": object()})
    assert os.listdir(log_dir) == [cli_setup.RUN_CONFIG]
    assert open(os.path.join(log_dir, cli_setup.RUN_CONFIG)).read() == before
    assert json.loads(before)["overrides"] == {"IMAGE_MAX_DIM": 512}
