"""The module paths of mrcnn 3.0.0, before its top-level modules were
grouped into subpackages (see CHANGELOG.md): ``import mrcnn.evaluate`` and
``from mrcnn.box_utils import compute_iou`` keep working, with a
DeprecationWarning that names the new home.

Two kinds of alias, no files:

* a module whose old name is free (``mrcnn.evaluate``) is found by a
  ``sys.meta_path`` finder, which ``import mrcnn`` installs, and is the new
  module under the old name (one module object, so monkeypatching either
  name patches both);
* a module whose old name is now a package (``mrcnn.training``,
  ``mrcnn.inference``, ``mrcnn.drawing``, ``mrcnn.weights``,
  ``mrcnn.cli``) forwards the old module's names from the package
  (``forward_names``).
"""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# old module -> its home now
MOVED = {
    "mrcnn.anchor_fit": "mrcnn.data.anchor_fit",
    "mrcnn.anchors": "mrcnn.structures.anchors",
    "mrcnn.architecture": "mrcnn.network.architecture",
    "mrcnn.axes_drawing": "mrcnn.drawing.axes",
    "mrcnn.backbone": "mrcnn.network.backbone",
    "mrcnn.best_model": "mrcnn.training.best_model",
    "mrcnn.box_ops": "mrcnn.network.box_ops",
    "mrcnn.box_utils": "mrcnn.structures.boxes",
    "mrcnn.checkpoints": "mrcnn.training.checkpoints",
    "mrcnn.class_balance": "mrcnn.training.class_balance",
    "mrcnn.cli_setup": "mrcnn.cli.setup",
    "mrcnn.coco_eval": "mrcnn.evaluation.coco_eval",
    "mrcnn.conv": "mrcnn.network.conv",
    "mrcnn.detection": "mrcnn.network.detection",
    "mrcnn.distribute": "mrcnn.training.distribute",
    "mrcnn.dropped": "mrcnn.structures.dropped",
    "mrcnn.error_analysis": "mrcnn.evaluation.error_analysis",
    "mrcnn.evaluate": "mrcnn.evaluation.evaluate",
    "mrcnn.evaluation_plots": "mrcnn.evaluation.plots",
    "mrcnn.export": "mrcnn.inference.export",
    "mrcnn.figures": "mrcnn.drawing.figures",
    "mrcnn.graph_layers": "mrcnn.network.graph_layers",
    "mrcnn.heads": "mrcnn.network.heads",
    "mrcnn.image_io": "mrcnn.structures.image_io",
    "mrcnn.losses": "mrcnn.network.losses",
    "mrcnn.mask_utils": "mrcnn.structures.masks",
    "mrcnn.matching": "mrcnn.evaluation.matching",
    "mrcnn.orientation": "mrcnn.structures.orientation",
    "mrcnn.postprocess": "mrcnn.inference.postprocess",
    "mrcnn.resizing": "mrcnn.structures.resizing",
    "mrcnn.roi_align": "mrcnn.network.roi_align",
    "mrcnn.rpn": "mrcnn.network.rpn",
    "mrcnn.tables": "mrcnn.drawing.tables",
    "mrcnn.targets": "mrcnn.network.targets",
    "mrcnn.tiling": "mrcnn.inference.tiling",
    "mrcnn.weights_channels": "mrcnn.weights.channels",
    "mrcnn.weights_file": "mrcnn.weights.hdf5",
    "mrcnn.winograd": "mrcnn.network.winograd",
}

# old module, now a package -> the module of the package with its names
FORWARDED = {
    "mrcnn.cli": "mrcnn.cli.commands",
    "mrcnn.drawing": "mrcnn.drawing.images",
    "mrcnn.inference": "mrcnn.inference.molding",
    "mrcnn.training": "mrcnn.training.trainer",
    "mrcnn.weights": "mrcnn.weights.loading",
}


def _warn(old, new):
    warnings.warn("{} has moved to {}; import it from there (the old name "
                  "will go in a later release)".format(old, new),
                  DeprecationWarning, stacklevel=3)


class _AliasLoader(importlib.abc.Loader):
    """Gives the moved module itself for its old name."""

    def __init__(self, new_name):
        self.new_name = new_name

    def create_module(self, spec):
        _warn(spec.name, self.new_name)
        return importlib.import_module(self.new_name)

    def exec_module(self, module):
        pass  # already executed under its new name


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds the old names of MOVED, after the ordinary finders."""

    def find_spec(self, fullname, path=None, target=None):
        new_name = MOVED.get(fullname)
        if new_name is None:
            return None
        return importlib.util.spec_from_loader(fullname,
                                               _AliasLoader(new_name))


def install():
    """Puts the finder first on sys.meta_path, once: it answers only the
    old names, and must answer them before an editable install's finder
    could find an old checkout's file of that name."""
    if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _MovedModuleFinder())


def forward_names(package_name):
    """A module ``__getattr__`` for the package ``package_name`` (a key of
    FORWARDED) that gives the names of the old module of that name, from
    its new home. Submodules of the package are left to the import system
    (AttributeError), so ``from mrcnn.training import checkpoints`` imports
    nothing else."""
    new_name = FORWARDED[package_name]

    def __getattr__(name):
        if name.startswith("__") or importlib.util.find_spec(
                "{}.{}".format(package_name, name)) is not None:
            raise AttributeError(name)
        module = importlib.import_module(new_name)
        if not hasattr(module, name):
            raise AttributeError("module {!r} has no attribute {!r}".format(
                package_name, name))
        _warn("{}.{}".format(package_name, name),
              "{}.{}".format(new_name, name))
        return getattr(module, name)

    return __getattr__
