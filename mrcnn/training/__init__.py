"""Training: the Keras training model, its callbacks and feeds, and what
keeps a run safe.

* ``trainer``: ``train_step``, learning-rate schedule, callbacks, feeds;
* ``checkpoints``: run folders and checkpoint names, ``find_last``;
* ``best_model``: keeping the best epoch's weights by a monitored value;
* ``termination``: SIGTERM during training finishes a write in progress;
* ``class_balance``: class loss weights from class frequencies;
* ``distribute``: ``tf.distribute`` strategies.

May import: the network, weights, data, evaluation (the per-epoch
evaluation), structures and the foundation; never the faces or the
command line.

``mrcnn.training.X`` for a name of the 3.0.0 module ``mrcnn.training``
still gives ``mrcnn.training.trainer.X``, with a DeprecationWarning.
"""

from mrcnn import _moved

__getattr__ = _moved.forward_names(__name__)
