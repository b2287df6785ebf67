"""``batch_slice``: per-item graph functions over a batch, for the ops that
take one image at a time (``mrcnn.utils.batch_slice``, as in matterport).
"""

import tensorflow as tf


def batch_slice(inputs, graph_fn, batch_size, names=None):
    """Runs graph_fn on each item of a batch and stacks the results.

    For ops that only work on one item at a time.

    inputs: a tensor or list of tensors, each with the batch as first axis.
    graph_fn: called with one slice of each input; returns a tensor or a
        list/tuple of tensors.
    batch_size: number of items (the batch axis must be known).
    names: optional names of the stacked outputs.
    Returns: a tensor, or a list of tensors when graph_fn returns several.
    """
    if not isinstance(inputs, list):
        inputs = [inputs]
    per_item = []
    for i in range(batch_size):
        outputs = graph_fn(*[x[i] for x in inputs])
        if not isinstance(outputs, (tuple, list)):
            outputs = [outputs]
        per_item.append(outputs)
    # [items][outputs] -> [outputs][items]
    per_output = list(zip(*per_item))
    if names is None:
        names = [None] * len(per_output)
    result = [tf.stack(o, axis=0, name=n) for o, n in zip(per_output, names)]
    if len(result) == 1:
        result = result[0]
    return result
