"""Weight files: reading, writing, matching by layer name.

* ``loading``: loading by layer name (legacy Keras 2 ``.h5`` and Keras 3
  ``.weights.h5``), saving atomically with a checksum;
* ``hdf5``: reading the HDF5 weight files of both formats, checksums;
* ``channels``: an RGB ``conv1`` kernel adapted to other channel counts;
* ``download``: downloads whole or absent, zips extracted whole;
* ``coco``: the released COCO weights (URL, size, MD5, download).

May import: structures and the foundation only.

``mrcnn.weights.X`` for a name of the 3.0.0 module ``mrcnn.weights``
still gives ``mrcnn.weights.loading.X``, with a DeprecationWarning.
"""

from mrcnn import _moved

__getattr__ = _moved.forward_names(__name__)
