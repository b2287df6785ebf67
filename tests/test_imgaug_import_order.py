"""imgaug works on numpy 2 in any import order.

After any public mrcnn module, and before it: the installed package's
mrcnn_imgaug_hook.pth restores the numpy names when imgaug is first
imported (see _mrcnn_imgaug_hook.py). Each case runs in a fresh
interpreter: the numpy names imgaug needs must not come from an earlier
test.
"""
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PUBLIC_MODULES = ["mrcnn", "mrcnn.config", "mrcnn.utils", "mrcnn.model",
                  "mrcnn.visualize"]

# A user script as the original's nucleus sample starts: mrcnn first, then
# imgaug. It flips an image and its mask and checks both against numpy.
SCRIPT = """
import sys
import numpy as np
import {module}
assert "imgaug" not in sys.modules, "importing {module} imported imgaug"
import imgaug.augmenters as iaa
from imgaug.augmentables.segmaps import SegmentationMapsOnImage

image = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
mask = np.zeros((6, 8), dtype=np.int32)
mask[1:3, 0:2] = 1
flipped, flipped_mask = iaa.Fliplr(1.0)(
    image=image, segmentation_maps=SegmentationMapsOnImage(mask, (6, 8)))
assert np.array_equal(flipped, image[:, ::-1])
assert np.array_equal(flipped_mask.get_arr(), mask[:, ::-1])
print("ok")
"""


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_imgaug_imports_and_augments_after_mrcnn(module):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(module=module)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


def test_imgaug_alone_still_fails_on_numpy_2():
    """The checks here are meaningful: without mrcnn and its import hook,
    imgaug 0.4.0 cannot be imported on numpy 2 (on numpy 1 it can, and
    this test has no subject)."""
    import numpy as np
    if int(np.__version__.split(".")[0]) < 2:
        pytest.skip("numpy 1 still has np.sctypes")
    no_hook = ("import sys\n"
               "sys.meta_path[:] = [\n"
               "    f for f in sys.meta_path\n"
               "    if getattr(f, '__name__', '') != 'ImgaugFinder']\n"
               "import imgaug.augmenters\n")
    result = subprocess.run(
        [sys.executable, "-c", no_hook], capture_output=True, text=True,
        timeout=600, cwd=REPO_ROOT, env=outside_env())
    assert result.returncode != 0
    assert "sctypes" in result.stderr


# A script as isort orders its imports: imgaug first. It augments, checks
# against numpy, and checks that importing imgaug did not import mrcnn
# (nor TensorFlow through it).
IMGAUG_FIRST = """
import sys
from imgaug import augmenters as iaa
import numpy as np
image = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
assert np.array_equal(iaa.Fliplr(1.0)(image=image), image[:, ::-1])
assert "mrcnn" not in sys.modules and "tensorflow" not in sys.modules
import mrcnn.utils
print("ok")
"""


def outside_env(**extra):
    """The environment without PYTHONPATH: what is imported comes from the
    installed package, not from this checkout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(extra)
    return env


def test_imgaug_before_mrcnn_with_the_installed_package(tmp_path):
    """The installed package (`make install`: editable) fixes any import
    order, from a folder outside the source tree."""
    result = subprocess.run(
        [sys.executable, "-c", IMGAUG_FIRST], capture_output=True, text=True,
        timeout=600, cwd=str(tmp_path), env=outside_env())
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"


def test_the_startup_hook_does_not_import_numpy(tmp_path):
    """An interpreter that never imports imgaug pays for one tiny module."""
    probe = ("import sys; print('_mrcnn_imgaug_hook' in sys.modules, "
             "'numpy' in sys.modules)")
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True,
        timeout=600, cwd=str(tmp_path), env=outside_env())
    assert result.stdout.split() == ["True", "False"], result.stderr


def test_the_hook_of_this_checkout(tmp_path):
    """The hook module of this source tree, installed by hand."""
    script = ("import _mrcnn_imgaug_hook\n"
              "_mrcnn_imgaug_hook.install()\n" + IMGAUG_FIRST)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True,
        timeout=600, cwd=str(tmp_path), env=outside_env(PYTHONPATH=REPO_ROOT))
    assert result.returncode == 0, result.stderr[-3000:]


def copy_project(target):
    """The files a build reads, copied so the build leaves this checkout
    alone (setuptools writes build/ and *.egg-info where it runs)."""
    for name in ("setup.py", "setup.cfg", "pyproject.toml", "README.md",
                 "_mrcnn_imgaug_hook.py", "mrcnn_imgaug_hook.pth"):
        shutil.copy(os.path.join(REPO_ROOT, name), str(target))
    shutil.copytree(os.path.join(REPO_ROOT, "mrcnn"), str(target / "mrcnn"),
                    ignore=shutil.ignore_patterns("__pycache__"))


@pytest.mark.parametrize("kind", ["wheel", "editable"])
def test_wheel_and_editable_builds_install_the_hook(tmp_path, kind):
    """Both builds put the .pth at the top of site-packages (their root),
    and that site-packages, read by the site module as at start-up, lets
    imgaug import before mrcnn. `make wheel-test` also installs the wheel
    in a fresh virtualenv and runs this order from outside the tree."""
    project, out, site_dir = tmp_path / "project", tmp_path / "out", \
        tmp_path / "site"
    project.mkdir()
    copy_project(project)
    build = ("import sys; from setuptools import build_meta as b; "
             "print(b.build_{}(sys.argv[1]))".format(kind))
    done = subprocess.run([sys.executable, "-c", build, str(out)],
                          cwd=str(project), capture_output=True, text=True,
                          timeout=600, env=outside_env())
    assert done.returncode == 0, done.stderr[-3000:]
    wheel = out / done.stdout.split()[-1]
    with zipfile.ZipFile(str(wheel)) as archive:
        top = [n for n in archive.namelist() if "/" not in n]
        assert "mrcnn_imgaug_hook.pth" in top
        with open(os.path.join(REPO_ROOT, "mrcnn_imgaug_hook.pth"), "rb") \
                as f:
            assert archive.read("mrcnn_imgaug_hook.pth") == f.read()
        archive.extractall(str(site_dir))
    # This wheel's site-packages first, processed like the real one; numpy
    # and imgaug from the test environment's, after it.
    script = ("import site, sys\n"
              "site.addsitedir({!r})\n"
              "assert '_mrcnn_imgaug_hook' in sys.modules\n"
              "sys.path.append({!r})\n").format(
                  str(site_dir), os.path.dirname(os.path.dirname(
                      os.path.abspath(np_path())))) + IMGAUG_FIRST
    result = subprocess.run(
        [sys.executable, "-S", "-c", script], capture_output=True,
        text=True, timeout=600, cwd=str(tmp_path), env=outside_env())
    assert result.returncode == 0, result.stderr[-3000:]


def np_path():
    import numpy
    return numpy.__file__
