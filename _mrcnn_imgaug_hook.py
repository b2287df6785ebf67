"""Lets ``import imgaug`` work on numpy 2 in any import order.

imgaug 0.4.0 reads ``np.sctypes`` when it is imported, and numpy 2 removed
it; ``mrcnn._imgaug_compat`` puts it back, but only once something imports
an mrcnn module, so ``from imgaug import augmenters`` placed before
``import mrcnn`` (isort's order) used to fail.

The installed package ships ``mrcnn_imgaug_hook.pth``, which calls
:func:`install` at interpreter start. That only puts a finder on
``sys.meta_path`` (this module imports nothing else, so interpreters that
never import imgaug pay nothing: numpy is not imported). The first time
``imgaug`` is imported, the finder runs ``mrcnn/_imgaug_compat.py`` (numpy
names only: the ``mrcnn`` package itself, its TensorFlow settings included,
is not imported), removes itself, and lets the import go on as usual.
"""

import sys


class ImgaugFinder(object):
    """A meta path finder that finds nothing: it restores the numpy names
    imgaug needs just before imgaug's own finder runs, once."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name == "imgaug":
            uninstall()
            _restore_numpy_names()
        return None


def install():
    """Puts ImgaugFinder first on sys.meta_path (once); nothing to do when
    imgaug is already imported."""
    if "imgaug" not in sys.modules and ImgaugFinder not in sys.meta_path:
        sys.meta_path.insert(0, ImgaugFinder)


def uninstall():
    """Takes ImgaugFinder off sys.meta_path."""
    while ImgaugFinder in sys.meta_path:
        sys.meta_path.remove(ImgaugFinder)


def _restore_numpy_names():
    """Runs mrcnn/_imgaug_compat.py under a private name, without importing
    the mrcnn package (whose __init__ configures TensorFlow). Where mrcnn
    or numpy cannot be found, imgaug's import goes on and fails or works
    as it would without this hook."""
    import importlib.util
    import os
    try:
        spec = importlib.util.find_spec("mrcnn")
    except (ImportError, ValueError):
        return
    if spec is None or not spec.submodule_search_locations:
        return
    for folder in spec.submodule_search_locations:
        source = os.path.join(folder, "_imgaug_compat.py")
        if os.path.isfile(source):
            break
    else:
        return
    compat = importlib.util.spec_from_file_location(
        "_mrcnn_imgaug_compat", source)
    module = importlib.util.module_from_spec(compat)
    try:
        compat.loader.exec_module(module)
    except ImportError:  # no numpy: imgaug cannot import either
        return
    sys.modules.setdefault("_mrcnn_imgaug_compat", module)
