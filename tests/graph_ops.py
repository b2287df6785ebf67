"""What ops a layer's traced graph runs (tests of kernel choices)."""

import tensorflow as tf


def op_types(layer, shape):
    """Op types of the traced forward and backward pass of `layer` on an
    input of `shape` (None for sizes unknown when traced), nested
    functions (tf.cond branches) included."""
    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x))
        return tape.gradient(loss, layer.kernel.value)

    graph = step.get_concrete_function(
        tf.TensorSpec(shape, tf.float32)).graph
    types = {op.type for op in graph.get_operations()}
    for function in graph._functions.values():
        types.update(node.op for node in function.definition.node_def)
    return types
