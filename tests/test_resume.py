"""Interrupted training: SIGKILL mid-epoch, restart with the same command,
and checkpoint writes that never leave a broken file for find_last().

The training runs are subprocesses (tests/_resume_worker.py) so they can
be killed for real.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mrcnn import model as modellib
from mrcnn.training import trainer as training

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TESTS_DIR)
from _resume_worker import LEARNING_RATE, ResumeConfig  # noqa: E402

WORKER = os.path.join(TESTS_DIR, "_resume_worker.py")
START_TIMEOUT = 400  # seconds for a subprocess to reach its pause (2 cores)
EPOCHS = 3
PAUSE_EPOCH = 2


def worker_env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def records(output):
    """The RECORD {json} lines a worker printed, in order."""
    return [json.loads(line[len("RECORD "):])
            for line in output.splitlines() if line.startswith("RECORD ")]


def start_and_kill_at_marker(command, marker, log_path):
    """Runs command until it writes marker, then SIGKILLs it.

    Returns the subprocess output so far.
    """
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log,
                                   stderr=subprocess.STDOUT, env=worker_env())
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not os.path.exists(marker):
                if process.poll() is not None:
                    break
                if time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            reached = os.path.exists(marker)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
    with open(log_path) as log:
        output = log.read()
    assert reached, "worker never paused:\n" + output[-3000:]
    assert process.returncode == -signal.SIGKILL
    return output


def file_digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def checkpoint_name(epoch):
    return "mask_rcnn_resume_{:04d}.weights.h5".format(epoch)


@pytest.fixture(scope="module")
def interrupted_then_resumed(tmp_path_factory):
    """Run 1 is killed in the middle of epoch 2; run 2 (same command)
    resumes and finishes. Returns a dict of what the test looks at."""
    root = tmp_path_factory.mktemp("resume")
    model_dir = str(root / "logs")
    marker = str(root / "paused")
    command = [sys.executable, WORKER, "train", model_dir,
               "--epochs", str(EPOCHS), "--pause-epoch", str(PAUSE_EPOCH),
               "--marker", marker]
    first_output = start_and_kill_at_marker(command, marker,
                                            str(root / "run1.log"))
    first = records(first_output)
    log_dir = first[0]["log_dir"]
    files_after_kill = sorted(os.listdir(log_dir))
    digest = file_digest(os.path.join(log_dir, checkpoint_name(1)))

    second_run = subprocess.run(command, capture_output=True, text=True,
                                env=worker_env(), timeout=START_TIMEOUT)
    assert second_run.returncode == 0, (second_run.stdout[-3000:]
                                        + second_run.stderr[-3000:])
    return {"first": first, "second": records(second_run.stdout),
            "model_dir": model_dir, "log_dir": log_dir,
            "files_after_kill": files_after_kill,
            "first_checkpoint_digest": digest}


def of_kind(lines, kind):
    """The records of one kind ("start", "epoch" or "end")."""
    return [r for r in lines if r["kind"] == kind]


def test_kill_came_after_epoch_1_checkpoint(interrupted_then_resumed):
    run = interrupted_then_resumed
    # Killed in epoch 2: it never ended.
    assert [r["kind"] for r in run["first"]] == ["start", "epoch", "epoch"]
    assert [r["epoch"] for r in of_kind(run["first"], "epoch")] == [1, 2]
    assert run["first"][0]["resumed_from"] is None
    assert run["first"][0]["initial_epoch"] == 0
    checkpoints = [f for f in run["files_after_kill"]
                   if f.startswith("mask_rcnn")]
    assert checkpoints == [checkpoint_name(1)]


def test_restart_continues_after_last_finished_epoch(interrupted_then_resumed):
    run = interrupted_then_resumed
    [start] = of_kind(run["second"], "start")
    [end] = of_kind(run["second"], "end")
    assert os.path.basename(start["resumed_from"]) == checkpoint_name(1)
    assert start["initial_epoch"] == 1
    # Same run directory, same checkpoint names: the run carries on.
    assert start["log_dir"] == run["log_dir"] == end["log_dir"]
    assert os.listdir(run["model_dir"]) == [os.path.basename(run["log_dir"])]
    # Epoch 2 (interrupted) is run again, then epoch 3; nothing twice.
    assert end["epochs_begun"] == [2, 3]
    assert end["history_epochs"] == [2, 3]
    assert end["final_epoch"] == EPOCHS
    assert np.all(np.isfinite(end["losses"]))


def test_restart_keeps_the_learning_rate(interrupted_then_resumed):
    run = interrupted_then_resumed
    before = [r["learning_rate"] for r in of_kind(run["first"], "epoch")]
    after = [r["learning_rate"] for r in of_kind(run["second"], "epoch")]
    assert len(before) == 2 and len(after) == 2
    assert after == [before[0]] * 2
    assert before[0] == pytest.approx(LEARNING_RATE)


def test_checkpoints_complete_and_epoch_1_untouched(interrupted_then_resumed):
    run = interrupted_then_resumed
    files = sorted(os.listdir(run["log_dir"]))
    checkpoints = [f for f in files if f.endswith(".h5")]
    # No temporary (".<name>.<hex>.tmp.weights.h5") left behind.
    assert checkpoints == [checkpoint_name(e) for e in range(1, EPOCHS + 1)]
    assert file_digest(os.path.join(run["log_dir"], checkpoint_name(1))) \
        == run["first_checkpoint_digest"]


def test_tensorboard_epochs_continue_without_repeats(interrupted_then_resumed):
    from tensorboard.backend.event_processing import event_accumulator
    run = interrupted_then_resumed
    accumulator = event_accumulator.EventAccumulator(
        os.path.join(run["log_dir"], "train"),
        size_guidance={event_accumulator.TENSORS: 0})
    accumulator.Reload()
    steps = [event.step for event in accumulator.Tensors("epoch_loss")]
    # Run 1 logged epoch index 0; run 2 logged 1 and 2 (0-based, as Keras).
    assert sorted(steps) == list(range(EPOCHS))


# ------------------------------------------------ checkpoint write failures

@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    """An inference MaskRCNN (no training graph to trace) named like the
    worker's runs, in its own model_dir."""
    class Inference(ResumeConfig):
        IMAGES_PER_GPU = 1

    return modellib.MaskRCNN("inference", Inference(),
                             str(tmp_path_factory.mktemp("logs")))


def test_crash_during_checkpoint_write_keeps_previous(small_model,
                                                      monkeypatch):
    model = small_model
    callback = training.CheckpointCallback(model.checkpoint_path)
    callback.set_model(model.keras_model)
    callback.on_epoch_end(0, {"loss": 1.0})
    first = model.find_last()
    assert os.path.basename(first) == checkpoint_name(1)

    def write_half_then_fail(filepath, *args, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)  # a torso of HDF5
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model.keras_model, "save_weights",
                        write_half_then_fail)
    with pytest.raises(OSError, match="No space left") as info:
        callback.on_epoch_end(1, {"loss": 0.5})
    monkeypatch.undo()
    # The error says which file, and that the earlier ones are intact.
    message = str(info.value)
    assert os.path.join(model.log_dir, checkpoint_name(2)) in message
    assert "previous checkpoints are intact" in message
    assert checkpoint_name(1) in message
    assert info.value.errno == 28
    assert info.value.path.endswith(checkpoint_name(2))
    assert sorted(os.listdir(model.log_dir)) == [checkpoint_name(1)]
    assert model.find_last() == first
    model.load_weights(model.find_last(), by_name=True)  # loads cleanly
    assert model.epoch == 1


def test_kill_during_checkpoint_write_leaves_only_a_temporary(small_model,
                                                              tmp_path):
    model = small_model
    os.makedirs(model.log_dir, exist_ok=True)
    if not os.path.exists(os.path.join(model.log_dir, checkpoint_name(1))):
        model.save_weights(os.path.join(model.log_dir, checkpoint_name(1)))
    target = os.path.join(model.log_dir, checkpoint_name(2))
    marker = str(tmp_path / "writing")
    command = [sys.executable, WORKER, "save-hang", target,
               "--marker", marker]
    start_and_kill_at_marker(command, marker, str(tmp_path / "save.log"))
    with open(marker) as f:
        temporary = f.read().strip()
    files = sorted(os.listdir(model.log_dir))
    # The kill left the half-written temporary, never the final name ...
    assert temporary in files and checkpoint_name(2) not in files
    assert temporary.startswith(".") and temporary.endswith(".weights.h5")
    # ... and find_last passes over it to the last complete checkpoint.
    last = model.find_last()
    assert os.path.basename(last) == checkpoint_name(1)
    model.load_weights(last, by_name=True)


def test_find_last_ignores_configs_whose_name_extends_ours(small_model,
                                                           tmp_path):
    model = small_model
    own = os.path.join(model.model_dir, os.path.basename(model.log_dir))
    os.makedirs(own, exist_ok=True)
    if not os.path.exists(os.path.join(own, checkpoint_name(1))):
        model.save_weights(os.path.join(own, checkpoint_name(1)))
    # Another configuration, NAME = "resume_big", trained later.
    other = os.path.join(model.model_dir, "resume_big20990101T0000")
    os.makedirs(other)
    with open(os.path.join(other, "mask_rcnn_resume_big_0001.weights.h5"),
              "wb") as f:
        f.write(b"not ours")
    try:
        assert os.path.dirname(model.find_last()) == own
    finally:
        os.remove(os.path.join(other, "mask_rcnn_resume_big_0001.weights.h5"))
        os.rmdir(other)


# ------------------------------------- SIGTERM (a scheduler stops the job)

SCHEDULE_EPOCHS = 3
FINE_TUNE_EPOCH = 1  # heads at LEARNING_RATE to here, then all at / 10


def run_until_sigterm(command, markers, point, log_path):
    """Runs command until it writes markers/point, sends SIGTERM, lets the
    worker go on from its pause and waits for it to end. Returns
    (return code, output)."""
    marker = os.path.join(markers, point)
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log,
                                   stderr=subprocess.STDOUT, env=worker_env())
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not os.path.exists(marker) and process.poll() is None \
                    and time.monotonic() < deadline:
                time.sleep(0.2)
            reached = os.path.exists(marker)
            if reached:
                process.send_signal(signal.SIGTERM)
                open(marker + ".go", "w").close()
                process.wait(timeout=START_TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    with open(log_path) as log:
        output = log.read()
    assert reached, "worker never reached {}:\n{}".format(point,
                                                          output[-3000:])
    return process.returncode, output


@pytest.fixture(scope="module")
def sigtermed_runs(tmp_path_factory):
    """The samples' schedule (heads to epoch 1, then all layers at a tenth
    of the rate to epoch 3, the mask AP evaluated after every epoch),
    stopped by SIGTERM three times and restarted with the same command:
    mid-epoch 2, in the evaluation after epoch 2, and while epoch 3's
    checkpoint is written. Returns the runs' return codes, records and the
    run folder's files after each."""
    root = tmp_path_factory.mktemp("sigterm")
    model_dir, markers = str(root / "logs"), str(root / "markers")
    os.makedirs(markers)
    command = [sys.executable, WORKER, "train", model_dir,
               "--epochs", str(SCHEDULE_EPOCHS),
               "--fine-tune-epoch", str(FINE_TUNE_EPOCH), "--monitor",
               "--markers", markers, "--pause", "train:2", "eval:2", "save:3"]
    runs = []
    for point in ("train2", "eval2", "save3"):
        code, output = run_until_sigterm(command, markers, point,
                                         str(root / (point + ".log")))
        lines = records(output)
        log_dir = lines[0]["log_dir"]
        runs.append({"code": code, "output": output, "records": lines,
                     "files": sorted(os.listdir(log_dir)),
                     "digests": {f: file_digest(os.path.join(log_dir, f))
                                 for f in os.listdir(log_dir)
                                 if f.endswith(".h5")}})
    return {"runs": runs, "model_dir": model_dir}


def test_sigterm_ends_each_run_as_sigterm_does(sigtermed_runs):
    for run in sigtermed_runs["runs"]:
        assert run["code"] == -signal.SIGTERM, run["output"][-3000:]
        assert "Terminated (SIGTERM)" in run["output"]


def test_sigterm_keeps_finished_epochs_and_no_temporary(sigtermed_runs):
    runs = sigtermed_runs["runs"]
    kept = [[f for f in run["files"] if f.endswith(".h5")
             and not f.endswith("_best.weights.h5")] for run in runs]
    # Mid-epoch 2: epoch 1. In epoch 2's evaluation: epochs 1 and 2. While
    # epoch 3's checkpoint was written: that write was finished first.
    assert kept == [[checkpoint_name(1)],
                    [checkpoint_name(1), checkpoint_name(2)],
                    [checkpoint_name(e) for e in (1, 2, 3)]]
    for run in runs:
        assert not [f for f in run["files"] if f.startswith(".")], run["files"]
    # Finished epochs are never written again.
    for before, after in zip(runs, runs[1:]):
        for name, digest in before["digests"].items():
            if not name.endswith("_best.weights.h5"):
                assert after["digests"][name] == digest
    last = training_checkpoints_last(sigtermed_runs["model_dir"])
    assert os.path.basename(last) == checkpoint_name(3)
    import h5py
    with h5py.File(last, "r") as f:  # complete: it opens and has layers
        assert "layers" in f


def training_checkpoints_last(model_dir):
    from mrcnn.training import checkpoints
    return checkpoints.find_last_checkpoint(model_dir, ResumeConfig.NAME)


def test_sigterm_restart_resumes_at_the_epoch_and_rate(sigtermed_runs):
    runs = sigtermed_runs["runs"]
    starts = [of_kind(run["records"], "start")[0] for run in runs]
    assert [s["initial_epoch"] for s in starts] == [0, 1, 2]
    assert [os.path.basename(s["resumed_from"] or "") for s in starts] == [
        "", checkpoint_name(1), checkpoint_name(2)]
    # One run folder throughout: each restart continued the last epoch.
    assert len({s["log_dir"] for s in starts}) == 1
    epochs = [[(r["epoch"], r["learning_rate"])
               for r in of_kind(run["records"], "epoch")] for run in runs]
    fine = pytest.approx(LEARNING_RATE / 10)
    assert epochs[0] == [(1, pytest.approx(LEARNING_RATE)), (2, fine)]
    assert epochs[1] == [(2, fine)]
    assert epochs[2] == [(3, fine)]


def test_sigterm_best_model_score_matches_its_weights(sigtermed_runs):
    from mrcnn.training import best_model
    [run] = sigtermed_runs["runs"][-1:]
    log_dir = run["records"][0]["log_dir"]
    weights, score = best_model.best_paths(log_dir, ResumeConfig.NAME)
    if not os.path.exists(score):
        # Every AP was undefined (-1): no best model, no score.
        assert not os.path.exists(weights)
        return
    with open(score) as f:
        state = json.load(f)
    # The best file is a copy of the epoch checkpoint its score names.
    import h5py
    with h5py.File(weights, "r") as best, h5py.File(os.path.join(
            log_dir, checkpoint_name(state["epoch"])), "r") as epoch:
        assert_same_arrays(best, epoch)


def assert_same_arrays(a, b):
    names = []
    a.visit(lambda n: names.append(n) if hasattr(a[n], "shape") else None)
    assert names
    for name in names:
        np.testing.assert_array_equal(a[name][()], b[name][()])
