"""The ``mrcnn`` command.

* ``commands``: the argument parser and one function a command
  (``train``, ``detect``, ``evaluate``, ``check-dataset``, ...), ``main``;
* ``setup``: settings (``--set``), run configs and ``--weights`` handling,
  shared with ``samples/``;
* ``outputs``: the command's output names and JSON reports.

A face: may import anything in mrcnn.

``mrcnn.cli.main`` (the entry point of 3.0.0) still gives
``mrcnn.cli.commands.main``, with a DeprecationWarning.
"""

from mrcnn import _moved

__getattr__ = _moved.forward_names(__name__)
