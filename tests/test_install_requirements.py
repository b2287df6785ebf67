"""One TensorFlow, whatever is installed: the default and the `gpu` extra.

`tensorflow-cpu` and `tensorflow` both write the site-packages folder
`tensorflow/`, so a requirement set naming both leaves whichever pip
installed last. The wheel's own metadata (Requires-Dist, read from a
wheel built here) must name one TensorFlow distribution for the default
and for `[gpu]`, the same one, and `[gpu]` must ask for its CUDA extra;
requirements.txt must agree. Where the package index answers, pip's
resolver (report mode, nothing installed) confirms the resolved sets.
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The distributions that install the `tensorflow` import package.
TENSORFLOW_DISTRIBUTIONS = {
    "tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel",
    "tensorflow-macos", "tensorflow-aarch64", "tf-nightly", "tf-nightly-cpu",
    "intel-tensorflow"}
BUILD_INPUTS = ("setup.py", "setup.cfg", "pyproject.toml", "README.md",
                "MANIFEST.in", "_mrcnn_imgaug_hook.py",
                "mrcnn_imgaug_hook.pth")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The project's wheel, built from a copy of the sources (the
    checkout's build/ is left alone), without network or dependencies."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    source.mkdir()
    for name in BUILD_INPUTS:
        shutil.copy(os.path.join(ROOT, name), source / name)
    shutil.copytree(os.path.join(ROOT, "mrcnn"), source / "mrcnn",
                    ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
         "--no-build-isolation", "-w", str(work / "dist"), str(source)],
        check=True, capture_output=True, cwd=str(work))
    (built,) = (work / "dist").glob("mrcnn_keras3-*.whl")
    return built


def wheel_requirements(wheel_path):
    """Requires-Dist lines of the wheel's METADATA, as Requirements."""
    with zipfile.ZipFile(wheel_path) as archive:
        (name,) = [n for n in archive.namelist()
                   if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(name).decode("utf-8")
    return [Requirement(line.split(":", 1)[1].strip())
            for line in metadata.splitlines()
            if line.startswith("Requires-Dist:")]


def requirement_set(requirements, extra):
    """The requirements that apply with `extra` requested ("" for none),
    as pip reads them: a marker is evaluated once per requested extra and
    once without, and the base requirements always apply."""
    chosen = []
    for requirement in requirements:
        marker = requirement.marker
        if marker is None or marker.evaluate({"extra": ""}) or (
                extra and marker.evaluate({"extra": extra})):
            chosen.append(requirement)
    return chosen


def tensorflow_requirements(requirements):
    return [r for r in requirements
            if canonicalize_name(r.name) in TENSORFLOW_DISTRIBUTIONS]


def test_default_and_gpu_name_one_and_the_same_tensorflow(wheel):
    requirements = wheel_requirements(wheel)
    default = tensorflow_requirements(requirement_set(requirements, ""))
    gpu = tensorflow_requirements(requirement_set(requirements, "gpu"))
    assert [canonicalize_name(r.name) for r in default] == ["tensorflow"]
    names = {canonicalize_name(r.name) for r in gpu}
    assert names == {"tensorflow"}, names
    # The gpu set is the default's TensorFlow plus its CUDA libraries.
    assert any("and-cuda" in r.extras for r in gpu), gpu
    assert {str(r.specifier) for r in gpu} == {str(default[0].specifier)}


def test_requirement_sets_evaluate_markers_as_pip_does():
    # The helper above must not hide a marker that pip would apply.
    base = Requirement("tensorflow-cpu==2.21.*")
    gpu_only = Requirement('tensorflow[and-cuda]==2.21.*; extra == "gpu"')
    sneaky = Requirement('tensorflow-cpu; extra != "gpu"')
    assert requirement_set([base, gpu_only], "") == [base]
    assert requirement_set([base, gpu_only], "gpu") == [base, gpu_only]
    # pip applies the base set (extra "") to [gpu] too: the negated
    # marker does not remove tensorflow-cpu from a [gpu] install.
    assert requirement_set([sneaky], "gpu") == [sneaky]
    assert Marker('extra != "gpu"').evaluate({"extra": ""})


def test_requirements_txt_names_the_same_tensorflow(wheel):
    with open(os.path.join(ROOT, "requirements.txt")) as handle:
        lines = [line.split("#", 1)[0].strip() for line in handle]
    pinned = tensorflow_requirements(
        [Requirement(line) for line in lines if line])
    (expected,) = tensorflow_requirements(
        requirement_set(wheel_requirements(wheel), ""))
    assert [(canonicalize_name(r.name), str(r.specifier)) for r in pinned] \
        == [("tensorflow", str(expected.specifier))]


def index_unreachable():
    """None when pip reaches an index that lists tensorflow, else why not."""
    try:
        probe = subprocess.run(
            [sys.executable, "-m", "pip", "index", "versions", "tensorflow"],
            capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "pip index versions tensorflow: no answer in 60 s"
    if probe.returncode != 0 or "2.21" not in probe.stdout:
        return "no package index lists tensorflow 2.21: {}".format(
            (probe.stderr or probe.stdout).strip()[-300:])
    return None


@pytest.mark.parametrize("extra", ["", "[gpu]"])
def test_pip_resolves_one_tensorflow(wheel, tmp_path, extra):
    reason = index_unreachable()
    if reason:
        pytest.skip(reason)
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--dry-run",
         "--ignore-installed", "--report", str(report),
         "{}{}".format(wheel, extra)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    with open(report) as handle:
        names = {canonicalize_name(item["metadata"]["name"])
                 for item in json.load(handle)["install"]}
    assert names & TENSORFLOW_DISTRIBUTIONS == {"tensorflow"}
    cuda = {name for name in names if name.startswith("nvidia-cudnn")}
    assert bool(cuda) == (extra == "[gpu]"), sorted(names)


def test_this_environment_holds_one_tensorflow():
    """What the requirement sets above prevent, checked where the tests
    run: one distribution writes the tensorflow package."""
    from mrcnn import runtime

    found = runtime.installed_tensorflows()
    assert len(found) <= 1, (
        "{} are installed; keep one (pip uninstall -y {}, then "
        "make install)".format(found, " ".join(found)))


def test_colliding_tensorflows_are_named_in_a_warning(caplog):
    from mrcnn import runtime

    assert runtime.warn_if_tensorflows_collide(["tensorflow"]) is False
    assert runtime.warn_if_tensorflows_collide(
        ["tensorflow", "tensorflow-cpu"]) is True
    assert "tensorflow and tensorflow-cpu are installed together" in caplog.text
    assert set(runtime.TENSORFLOW_DISTRIBUTIONS) == TENSORFLOW_DISTRIBUTIONS
