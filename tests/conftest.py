"""Shared test set-up: quiet TensorFlow, float32 without TF32 on a GPU,
deterministic seeds, data paths."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
# albumentations asks PyPI for a newer version on import: not in tests.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import pathlib  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

# The thread pools and allocator settings the library uses, for the tests
# too (TensorFlow fixes its pools when it first runs).
from mrcnn import runtime  # noqa: E402

runtime.configure()

# The tolerances of the tests that compare float results (numpy twins,
# Keras' layers, gradients, the exported graph) assume IEEE float32 math,
# as a CPU computes it. On an Ampere or later GPU TensorFlow runs float32
# matrix products and convolutions in TF32 (10-bit mantissas) by default;
# the suite turns that off (no effect on a CPU; sets no device up).
import tensorflow as tf  # noqa: E402

tf.config.experimental.enable_tensor_float_32_execution(False)


def balloon_dir():
    """The balloon dataset folder, from MRCNN_BALLOON_DIR or ../shared."""
    return pathlib.Path(os.environ.get(
        "MRCNN_BALLOON_DIR", REPO_ROOT.parent / "shared" / "data" / "balloon"))


@pytest.fixture
def balloon_path():
    path = balloon_dir()
    if not (path / "train" / "via_region_data.json").exists():
        pytest.skip("balloon dataset not found at {} (set MRCNN_BALLOON_DIR)"
                    .format(path))
    return path


def nuclei_dir():
    """The nuclei dataset folder (DSB 2018 stage 1 layout), from
    MRCNN_NUCLEI_DIR or ../shared."""
    return pathlib.Path(os.environ.get(
        "MRCNN_NUCLEI_DIR", REPO_ROOT.parent / "shared" / "data" / "nuclei"))


@pytest.fixture
def nuclei_path():
    path = nuclei_dir()
    if not (path / "stage1_train").is_dir():
        pytest.skip("nuclei dataset not found at {} (set MRCNN_NUCLEI_DIR)"
                    .format(path))
    return path
