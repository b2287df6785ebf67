"""Drawing: what ``mrcnn.visualize`` shows, by what it draws on.

* ``images``: drawing into image arrays (masks, boxes, splash);
* ``axes``: drawing on matplotlib axes;
* ``tables``: text tables;
* ``figures``: figure plumbing (save, show, headless backends).

May import: structures and the foundation only.

``mrcnn.drawing.X`` for a name of the 3.0.0 module ``mrcnn.drawing``
still gives ``mrcnn.drawing.images.X``, with a DeprecationWarning.
"""

from mrcnn import _moved

__getattr__ = _moved.forward_names(__name__)
