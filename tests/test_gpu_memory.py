"""GPU memory growth: the switch (Config.GPU_MEMORY_GROWTH or
$MRCNN_GPU_MEMORY_GROWTH) is read as documented, and it is applied before
TensorFlow sets any device up: importing every mrcnn module sets nothing
up (logical devices can still be configured afterwards), and building a
model applies the switch before its first op."""

import os
import subprocess
import sys

import pytest

from mrcnn import runtime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Imports every mrcnn module, checks that TensorFlow's runtime is still
# not set up, splits the CPU into two logical devices (refused once it is),
# then builds a tiny model and records whether the runtime was set up when
# configure_gpu_memory ran.
SCRIPT = r"""
import importlib, json, pkgutil, sys
import mrcnn
from tensorflow.python.eager import context

# __main__ runs the command line when imported.
modules = sorted(m.name for m in pkgutil.walk_packages(mrcnn.__path__,
                                                      "mrcnn.")
                 if not m.name.endswith("__main__"))
for name in modules:
    importlib.import_module(name)
after_imports = context.context()._initialized

import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from mrcnn import runtime
from mrcnn import model as modellib
from tests.tiny import TinyConfig

calls = []
configure = runtime.configure_gpu_memory
def recording(growth=None):
    calls.append([growth, context.context()._initialized])
    return configure(growth)
runtime.configure_gpu_memory = recording

class Config(TinyConfig):
    NAME = "memory"
    GPU_MEMORY_GROWTH = True

modellib.MaskRCNN("inference", Config(), sys.argv[1])
print(json.dumps({
    "modules": len(modules), "after_imports": after_imports,
    "calls": calls,
    "logical_cpus": len(tf.config.list_logical_devices("CPU"))}))
"""


def test_imports_and_model_building_set_no_device_up_before_the_switch(
        tmp_path):
    import json

    env = dict(os.environ, PYTHONPATH=ROOT, MRCNN_GPU_MEMORY_GROWTH="1")
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["modules"] > 50
    assert report["after_imports"] is False
    # Applied once, from the Config, while nothing was set up yet.
    assert report["calls"] == [[True, False]]
    # The two logical CPUs set after the imports were taken.
    assert report["logical_cpus"] == 2


@pytest.mark.parametrize("config_value, env, expected", [
    (None, None, False), (None, "1", True), (None, "true", True),
    (None, "0", False), (None, "", False), (False, "1", False),
    (True, "0", True), (True, None, True)])
def test_switch_reads_the_config_then_the_environment(
        monkeypatch, config_value, env, expected):
    if env is None:
        monkeypatch.delenv(runtime.GPU_MEMORY_GROWTH_ENV, raising=False)
    else:
        monkeypatch.setenv(runtime.GPU_MEMORY_GROWTH_ENV, env)
    assert runtime.gpu_memory_growth(config_value) is expected


def test_switch_rejects_other_words(monkeypatch):
    monkeypatch.setenv(runtime.GPU_MEMORY_GROWTH_ENV, "sometimes")
    with pytest.raises(ValueError, match=runtime.GPU_MEMORY_GROWTH_ENV):
        runtime.gpu_memory_growth()


def test_config_checks_the_switch():
    from mrcnn.config import Config

    class Bad(Config):
        NAME = "bad"
        GPU_MEMORY_GROWTH = "yes"

    with pytest.raises(ValueError, match="GPU_MEMORY_GROWTH"):
        Bad()


def test_growth_is_set_on_every_gpu(monkeypatch):
    """configure_gpu_memory calls TensorFlow's setter for each physical
    GPU (none here: the listing is replaced) and only when switched on."""
    import tensorflow as tf

    gpus = ["gpu0", "gpu1"]
    set_calls = []
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: list(gpus) if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth",
                        lambda gpu, on: set_calls.append((gpu, on)))
    assert runtime.configure_gpu_memory(False) == 0 and set_calls == []
    assert runtime.configure_gpu_memory(True) == 2
    assert set_calls == [("gpu0", True), ("gpu1", True)]
