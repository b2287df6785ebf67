"""Distributed training through tf.distribute, on CPU.

MirroredStrategy over two logical CPU devices (in float32, and in
mixed_float16 through the LossScaleOptimizer) and MultiWorkerMirroredStrategy
over two local worker processes all need fresh processes (see
tests/_multiworker_worker.py); the module starts all four at once and the
tests check what they saved.
"""

import json
import os
import socket
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from _multiworker_worker import LEARNING_RATE, LOSS_SCALE, DistConfig
from mrcnn import runtime
from mrcnn.training import distribute
from mrcnn import model as modellib
from samples.shapes.shapes import ShapesConfig

WORKER_SCRIPT = Path(__file__).with_name("_multiworker_worker.py")
TIMEOUT_S = 540


def free_ports(count):
    """Ports free on 127.0.0.1 right now (held open together so that they
    differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def start(args, log_path, tf_config=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    log = open(log_path, "w")
    process = subprocess.Popen([sys.executable, str(WORKER_SCRIPT)] + args,
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    return process, log, log_path


def finish(run):
    """Waits for a started process; fails the test with its log's tail."""
    process, log, log_path = run
    try:
        process.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()
    tail = Path(log_path).read_text(errors="replace")[-3000:]
    assert process.returncode == 0, "{} failed:\n{}".format(log_path, tail)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Starts the mirrored run and a two-worker cluster side by side."""
    out = tmp_path_factory.mktemp("distribute")
    mirrored = start(["mirrored", str(out / "mirrored.npz")],
                     out / "mirrored.log")
    # float16 convolutions abort under an AVX2-class oneDNN cap on an
    # AVX-512 CPU (see tests/tiny.skip_if_16_bit_floats_cannot_run).
    mirrored16 = None
    if not runtime.bf16_aborts_under_isa_cap():
        mirrored16 = start(["mirrored16", str(out / "mirrored16.npz")],
                           out / "mirrored16.log")
    cluster = {"worker": ["127.0.0.1:{}".format(p) for p in free_ports(2)]}
    workers = [start(["worker", str(out)], out / "worker{}.log".format(i),
                     {"cluster": cluster,
                      "task": {"type": "worker", "index": i}})
               for i in range(2)]
    results = {}
    try:
        finish(mirrored)
        results["mirrored"] = np.load(out / "mirrored.npz")
        if mirrored16 is not None:
            finish(mirrored16)
            results["mirrored16"] = np.load(out / "mirrored16.npz")
    finally:
        for worker in workers:
            finish(worker)
    results["workers"] = [np.load(out / "worker{}.npz".format(i))
                          for i in range(2)]
    return results


def weights(saved, prefix):
    return [saved["{}{}".format(prefix, i)]
            for i in range(int(saved["weight_count"]))]


def test_mirrored_feed_yields_global_batch_split_over_replicas(runs):
    saved = runs["mirrored"]
    assert int(saved["replicas"]) == 2
    # BATCH_SIZE = IMAGES_PER_GPU 1 * GPU_COUNT 2: the feed's batch is the
    # global one and each replica trains on its half.
    assert int(saved["mirrored_feed_batch"]) == 2
    np.testing.assert_array_equal(saved["mirrored_images_per_replica"],
                                  [1, 1])
    np.testing.assert_array_equal(saved["single_images_per_replica"], [2])
    np.testing.assert_array_equal(saved["mirrored_batch_images"],
                                  saved["single_batch_images"])


def test_mirrored_step_equals_single_device_step(runs):
    # With TensorFlow's own CPU gradient of crop_and_resize (a data race
    # between threads) this failed at random; mrcnn.network.roi_align computes
    # that gradient itself (tests/test_roi_align.py).
    saved = runs["mirrored"]
    np.testing.assert_array_equal(saved["mirrored_loss_names"],
                                  saved["single_loss_names"])
    np.testing.assert_allclose(saved["mirrored_losses"],
                               saved["single_losses"], rtol=1e-4)
    initial = weights(saved, "initial_w")
    single = weights(saved, "single_w")
    mirrored = weights(saved, "mirrored_w")
    moved = clipped = 0
    for w0, ws, wm in zip(initial, single, mirrored):
        step_single, step_mirrored = ws - w0, wm - w0
        scale = np.abs(step_single).max()
        np.testing.assert_allclose(step_mirrored, step_single,
                                   atol=1e-3 * scale + 1e-8)
        moved += scale > 0
        # The first SGD step is -lr * clipped gradient: a norm of
        # lr * GRADIENT_CLIP_NORM means clipping was active.
        clipped += abs(np.linalg.norm(step_single) / LEARNING_RATE
                       - DistConfig.GRADIENT_CLIP_NORM) < 1e-3
    assert moved > len(initial) // 2
    # Clipped variables check that replicas clip the summed gradient, as
    # one device does (clipping each replica's share differs).
    assert clipped > 0


def flat_step(saved, prefix):
    return np.concatenate([(w - w0).ravel() for w, w0 in zip(
        weights(saved, prefix), weights(saved, "initial_w"))])


def test_mirrored_float16_step_equals_single_device_step(runs):
    """mixed_float16: each replica's gradient of its scaled loss, summed
    over the replicas (sum_over_replicas), unscaled and checked finite by
    the LossScaleOptimizer, clipped and applied by GlobalGradientSGD, is
    the one-device step; and that step is the float32 one to float16's
    precision (a gradient left scaled, or scaled twice, is not)."""
    if "mirrored16" not in runs:
        pytest.skip("float16 convolutions cannot run under this oneDNN cap")
    saved, float32 = runs["mirrored16"], runs["mirrored"]
    # Applied, not skipped: the scale stayed (no overflow) on both.
    assert float(saved["single_loss_scale"]) == LOSS_SCALE
    assert float(saved["mirrored_loss_scale"]) == LOSS_SCALE
    np.testing.assert_allclose(saved["mirrored_losses"],
                               saved["single_losses"], rtol=1e-2)
    single, mirrored = (flat_step(saved, "single_w"),
                        flat_step(saved, "mirrored_w"))
    assert np.count_nonzero(single) > single.size // 2
    np.testing.assert_allclose(mirrored, single,
                               atol=1e-2 * np.abs(single).max())
    # The same initial weights as the float32 run: the steps compare.
    for w16, w32 in zip(weights(saved, "initial_w"),
                        weights(float32, "initial_w")):
        np.testing.assert_array_equal(w16, w32)
    reference = flat_step(float32, "single_w")
    cosine = single @ reference / (np.linalg.norm(single)
                                   * np.linalg.norm(reference))
    assert cosine > 0.99
    assert 0.9 < np.linalg.norm(single) / np.linalg.norm(reference) < 1.1


def test_multiworker_workers_train_in_step(runs):
    first, second = runs["workers"]
    for saved in (first, second):
        assert "CollectiveAllReduce" in str(saved["strategy"]) \
            or "MultiWorker" in str(saved["strategy"])
        assert int(saved["replicas"]) == 2
        # 3 steps of a global batch of 2 images: one per worker per step.
        np.testing.assert_array_equal(saved["images_per_replica"], [3])
    # Seeded differently, the workers still start from the same weights
    # (broadcast) and end with the same weights (all-reduced gradients).
    for name in ("initial_w", "final_w"):
        for a, b in zip(weights(first, name), weights(second, name)):
            np.testing.assert_array_equal(a, b)
    moved = [not np.array_equal(a, b) for a, b in
             zip(weights(first, "initial_w"), weights(first, "final_w"))]
    assert sum(moved) > len(moved) // 2
    np.testing.assert_allclose(first["loss"], second["loss"], rtol=1e-6)
    assert np.all(np.isfinite(first["loss"]))


class TwoGpuConfig(ShapesConfig):
    GPU_COUNT = 2
    IMAGES_PER_GPU = 1


def test_gpu_count_without_gpus_is_a_clear_error(tmp_path):
    if tf.config.list_logical_devices("GPU"):
        pytest.skip("this machine has GPUs")
    with pytest.raises(ValueError, match=r"GPU_COUNT = 2 but TensorFlow "
                                         r"sees 0 GPU"):
        modellib.MaskRCNN("training", TwoGpuConfig(), str(tmp_path))


def test_tf_config_chooses_the_strategy(monkeypatch):
    config = ShapesConfig()
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        distribute.select_strategy(config)
    # A one-worker cluster is no cluster: the default strategy.
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"worker": ["127.0.0.1:1"]},
         "task": {"type": "worker", "index": 0}}))
    assert distribute.select_strategy(config) is tf.distribute.get_strategy()
    given = object()
    assert distribute.select_strategy(config, given) is given


def test_global_batch_must_split_evenly():
    config = ShapesConfig()  # BATCH_SIZE 4
    distribute.check_global_batch(
        config, types.SimpleNamespace(num_replicas_in_sync=2))
    with pytest.raises(ValueError, match=r"BATCH_SIZE .* = 4 does not "
                                         r"split over the 3 replicas"):
        distribute.check_global_batch(
            config, types.SimpleNamespace(num_replicas_in_sync=3))
