"""What ops a layer's traced graph runs on a device (tests of kernel
choices).

A device dispatch (a Case op whose branch index is a DeviceIndex op) is
followed the way TensorFlow follows it when the graph is placed on
`device`: the branch named by that device type, else the last (default)
one. Every other function an op calls (tf.cond branches, custom
gradients, while bodies) is walked into.
"""

import tensorflow as tf

CASE_OPS = ("Case", "StatelessCase")


def op_types(layer, shape, device="CPU"):
    """Op types of the traced forward and backward pass of `layer` on an
    input of `shape` (None for sizes unknown when traced), as run when
    placed on a `device` ("CPU" or "GPU")."""
    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x))
        return tape.gradient(loss, layer.kernel.value)

    graph = step.get_concrete_function(
        tf.TensorSpec(shape, tf.float32)).graph
    return graph_op_types(graph.as_graph_def(), device)


def graph_op_types(graph_def, device="CPU"):
    """Op types reached from graph_def's nodes when placed on `device`."""
    functions = {f.signature.name: f for f in graph_def.library.function}
    types = set()
    _walk(graph_def.node, functions, device, types, set())
    return types


def device_branches(graph_def):
    """(device_names, branch function names) of every device dispatch in
    graph_def and its library."""
    found = []
    bodies = [graph_def.node] + [f.node_def for f in graph_def.library.function]
    for nodes in bodies:
        by_name = {node.name: node for node in nodes}
        for node in nodes:
            names = _dispatch_devices(node, by_name)
            if names is not None:
                found.append((names, [f.name for f in
                                      node.attr["branches"].list.func]))
    return found


def _dispatch_devices(node, by_name):
    """The DeviceIndex's device names if node is a Case it indexes."""
    if node.op not in CASE_OPS or not node.input:
        return None
    source = by_name.get(node.input[0].lstrip("^").split(":")[0])
    if source is None or source.op != "DeviceIndex":
        return None
    return [name.decode() for name in source.attr["device_names"].list.s]


def _walk(nodes, functions, device, types, seen):
    by_name = {node.name: node for node in nodes}
    for node in nodes:
        types.add(node.op)
        names = _dispatch_devices(node, by_name)
        if names is not None:
            branches = node.attr["branches"].list.func
            index = names.index(device) if device in names else -1
            called = [branches[index].name]
        else:
            called = _called_functions(node)
        for name in called:
            if name in functions and name not in seen:
                seen.add(name)
                _walk(functions[name].node_def, functions, device, types,
                      seen)
        if node.op in functions and node.op not in seen:
            seen.add(node.op)
            _walk(functions[node.op].node_def, functions, device, types, seen)


def _called_functions(node):
    """Names of the functions a node's attributes name."""
    names = []
    for value in node.attr.values():
        if value.HasField("func"):
            names.append(value.func.name)
        elif value.HasField("list"):
            names.extend(f.name for f in value.list.func)
    return names
