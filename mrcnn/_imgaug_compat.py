"""Lets imgaug 0.4.0 (the last release) import and run on numpy 2.

imgaug reads ``np.sctypes`` when it is imported and uses the ``np.complex``
alias in two parameters; numpy 2 removed both. Importing this module puts
them back, only where they are missing, so it does nothing on numpy 1.
Import it before ``import imgaug``, or call :func:`import_imgaug`, which
also lets ``ElasticTransformation`` run on OpenCV 5 (see
:func:`_patch_elastic_transformation`). An installed mrcnn also runs this
file (under another name, without importing the ``mrcnn`` package) when
imgaug is first imported: see ``_mrcnn_imgaug_hook.py`` at the project's
root. It must therefore import nothing but numpy at module level.
"""

import numpy as np


def _restore_numpy_aliases():
    """Re-create the numpy 1 names imgaug touches, leaving existing ones."""
    if "sctypes" not in np.__dict__:
        # Same groups as numpy 1.x: sized types only, extended precision
        # (longdouble/clongdouble) included as numpy 1 did on most platforms.
        np.sctypes = {
            "int": [np.int8, np.int16, np.int32, np.int64],
            "uint": [np.uint8, np.uint16, np.uint32, np.uint64],
            "float": [np.float16, np.float32, np.float64, np.longdouble],
            "complex": [np.complex64, np.complex128, np.clongdouble],
            "others": [bool, object, bytes, str, np.void],
        }
    if "complex" not in np.__dict__:
        np.complex = complex


_restore_numpy_aliases()


def _patch_elastic_transformation():
    """Gives ElasticTransformation float32 shift maps.

    imgaug adds float64 shifts to float32 coordinates and hands the float64
    maps to cv2.convertMaps, which OpenCV 5 rejects (it wants CV_32FC1).
    """
    from imgaug.augmenters import geometric
    cls = geometric.ElasticTransformation
    if getattr(cls, "_mrcnn_float32_maps", False):
        return
    original = cls._map_coordinates.__func__

    def _map_coordinates(klass, image, dx, dy, order=1, cval=0,
                         mode="constant"):
        return original(klass, image, np.asarray(dx, dtype=np.float32),
                        np.asarray(dy, dtype=np.float32), order=order,
                        cval=cval, mode=mode)

    cls._map_coordinates = classmethod(_map_coordinates)
    cls._mrcnn_float32_maps = True


def import_imgaug():
    """Returns the ``imgaug`` module, importable on numpy 2.

    Raises ImportError with install instructions when imgaug is missing.
    """
    try:
        import imgaug
        import imgaug.augmenters  # noqa: F401  (loads the patched module)
    except ImportError as error:
        raise ImportError(
            "imgaug is needed for augmentation; install it without its "
            "dependencies: pip install --no-deps -r requirements-imgaug.txt "
            "({})".format(error)) from error
    _patch_elastic_transformation()
    return imgaug
