"""Which part of mrcnn may import which: the one written order.

Layers from the top; a module may import modules of its own layer and of
the layers below it, never those above, and no chain of imports may come
back to where it started (tests/test_layering.py reads every import of
every module, including those inside functions, and holds the package to
this). Within a layer, packages may import each other without a cycle.
"""

LAYERS = (
    # what users import: matterport's faces and the command line
    ("faces", ("mrcnn.__main__", "mrcnn.model", "mrcnn.utils",
               "mrcnn.visualize", "mrcnn.cli")),
    # the three tasks
    ("tasks", ("mrcnn.training", "mrcnn.inference", "mrcnn.evaluation")),
    # what the tasks are made of
    ("parts", ("mrcnn.network", "mrcnn.weights", "mrcnn.data",
               "mrcnn.datasets", "mrcnn.drawing")),
    # numpy structures: boxes, masks, images, datasets
    ("structures", ("mrcnn.structures",)),
    # settings and the process: no other mrcnn module below
    ("foundation", ("mrcnn", "mrcnn.constants", "mrcnn.config",
                    "mrcnn.config_presets",
                    "mrcnn.config_checks", "mrcnn.runtime",
                    "mrcnn.atomic_files", "mrcnn._imgaug_compat",
                    "mrcnn._moved", "mrcnn._layering")),
)


def layer_of(module):
    """(index from the top, layer name) of a module name of mrcnn, by its
    longest listed prefix; None for a module no layer lists."""
    best = None
    for index, (name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            # "mrcnn" is the package's __init__ alone, not every module
            if module == prefix or (prefix != "mrcnn"
                                    and module.startswith(prefix + ".")):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), index, name)
    return None if best is None else best[1:]
