"""The module paths of 3.0.0 keep working after the move into
subpackages: the same module objects under the old names, the old module's
names from the packages that took their names, each with a
DeprecationWarning that names the new home."""

import importlib
import os
import subprocess
import sys
import warnings

import pytest

import mrcnn
from mrcnn import _moved

PACKAGE_DIR = os.path.dirname(mrcnn.__file__)


@pytest.mark.parametrize("old, new", sorted(_moved.MOVED.items()))
def test_an_old_module_path_is_the_new_module(old, new):
    module = importlib.import_module(new)
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        alias = importlib.import_module(old)
    assert alias is module
    # the old file is gone: the alias is the only thing under that name
    assert not os.path.exists(os.path.join(
        PACKAGE_DIR, old.split(".", 1)[1] + ".py"))


@pytest.mark.parametrize("package, module", sorted(_moved.FORWARDED.items()))
def test_a_package_gives_the_names_of_the_old_module_of_its_name(
        package, module):
    new = importlib.import_module(module)
    old = importlib.import_module(package)
    public = [n for n in vars(new) if not n.startswith("_")
              and getattr(getattr(new, n), "__module__", None) == module]
    assert public, module
    with pytest.warns(DeprecationWarning, match=module.replace(".", r"\.")):
        assert getattr(old, public[0]) is getattr(new, public[0])
    with pytest.raises(AttributeError):
        getattr(old, "no_such_name_anywhere")


def test_old_from_imports_work_from_a_fresh_interpreter():
    """As user code of 3.0.0 writes them, in a new process."""
    code = "\n".join([
        "import warnings",
        "warnings.simplefilter('error', DeprecationWarning)",
        "from mrcnn.structures.boxes import compute_iou",
        "warnings.simplefilter('ignore', DeprecationWarning)",
        "from mrcnn.box_utils import compute_iou as old",
        "from mrcnn.evaluate import compute_map",
        "from mrcnn.weights import load_weights",
        "from mrcnn.cli import main",
        "import mrcnn.evaluation.evaluate as e, mrcnn.weights.loading as w",
        "assert old is compute_iou and compute_map is e.compute_map",
        "assert load_weights is w.load_weights and callable(main)",
    ])
    env = dict(os.environ, PYTHONPATH=os.path.dirname(PACKAGE_DIR))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_a_submodule_import_from_a_forwarding_package_warns_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        from mrcnn.training import checkpoints  # noqa: F401
        from mrcnn.weights import coco  # noqa: F401
