"""Mask R-CNN on Keras 3 and TensorFlow 2, with matterport's API.

Importing any module of the package puts back the numpy 1 names that
imgaug 0.4.0 reads on import (``np.sctypes``, ``np.complex``), so a script
may ``import imgaug`` after ``mrcnn`` on numpy 2 (before it too, once
the package is installed: see ``_mrcnn_imgaug_hook.py``). imgaug itself is
not imported here: it is slow and optional (see ``mrcnn._imgaug_compat``).

Bad input gets a clear error naming the image or file and what is wrong,
or a documented handling (clip, convert, skip) that also says so at run
time, and is never dropped without a warning that names the image
(``mrcnn.structures.dropped``).

It also turns TensorFlow's oneDNN kernels on where TensorFlow would leave
them off (CPUs without AVX512_VNNI), unless ``TF_ENABLE_ONEDNN_OPTS`` is
set: import ``mrcnn`` before ``tensorflow`` for it to apply (see
``mrcnn.runtime.prefer_onednn``).
"""

from mrcnn import _imgaug_compat  # noqa: F401  (numpy aliases for imgaug)
from mrcnn import runtime as _runtime

_runtime.prefer_onednn()

# The module paths of 3.0.0 (mrcnn.evaluate, mrcnn.box_utils, ...) keep
# working, with a DeprecationWarning naming the new home.
from mrcnn import _moved  # noqa: E402

_moved.install()
