"""Lets imgaug 0.4.0 (the last release) import and run on numpy 2.

imgaug reads ``np.sctypes`` when it is imported and uses the ``np.complex``
alias in two parameters; numpy 2 removed both. Importing this module puts
them back, only where they are missing, so it does nothing on numpy 1.
Import it before ``import imgaug``, or call :func:`import_imgaug`.
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


def import_imgaug():
    """Returns the ``imgaug`` module, importable on numpy 2.

    Raises ImportError with install instructions when imgaug is missing.
    """
    try:
        import imgaug
    except ImportError as error:
        raise ImportError(
            "imgaug is needed for augmentation; install it without its "
            "dependencies: pip install --no-deps -r requirements-imgaug.txt "
            "({})".format(error)) from error
    return imgaug
