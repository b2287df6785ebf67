"""Tables for notebooks: display_table, display_weight_stats and log (one
array's shape, range and dtype on a line)."""

import numpy as np


def display_table(table):
    """Displays a list of rows (lists of values) as an HTML table.

    Inside IPython/Jupyter the table is rendered; elsewhere it is printed as
    aligned plain text. Returns the HTML string.
    """
    html = "".join(
        "<tr>" + "".join("<td>{:40}</td>".format(str(col)) for col in row)
        + "</tr>" for row in table)
    html = "<table>" + html + "</table>"
    shell = None
    try:
        from IPython import get_ipython
        shell = get_ipython()
    except ImportError:
        pass
    if shell is not None:
        from IPython.display import HTML, display
        display(HTML(html))
    else:
        for row in table:
            print("  ".join("{:40}".format(str(col)) for col in row))
    return html


def _layers_with_weights(layers):
    """Flattens nested models and TimeDistributed wrappers to weight layers."""
    found = []
    for layer in layers:
        inner = getattr(layer, "layer", None)  # TimeDistributed and co.
        if inner is not None and inner.weights:
            found.append(inner)
        elif hasattr(layer, "layers") and layer.layers:
            found.extend(_layers_with_weights(layer.layers))
        elif layer.weights:
            found.append(layer)
    return found


def display_weight_stats(model):
    """Displays min/max/std of each weight tensor, flagging odd ones.

    model: a MaskRCNN (its get_trainable_layers() or keras_model is used)
    or a Keras model. "dead?" marks a constant tensor (other than a Conv2D
    bias), "Overflow?" a value beyond +-1000.
    Returns the table rows (header first).
    """
    if hasattr(model, "get_trainable_layers"):
        layers = model.get_trainable_layers()
    else:
        layers = _layers_with_weights(getattr(model, "keras_model", model)
                                      .layers)
    table = [["WEIGHT NAME", "SHAPE", "MIN", "MAX", "STD"]]
    for layer in layers:
        for i, (variable, values) in enumerate(zip(layer.weights,
                                                   layer.get_weights())):
            # Keras 3 keeps the full "layer/weight" name in .path.
            name = getattr(variable, "path", None) or variable.name
            alert = ""
            is_conv_bias = layer.__class__.__name__ == "Conv2D" and i == 1
            if values.min() == values.max() and not is_conv_bias:
                alert += "<span style='color:red'>*** dead?</span>"
            if np.abs(values.min()) > 1000 or np.abs(values.max()) > 1000:
                alert += "<span style='color:red'>*** Overflow?</span>"
            table.append([name + alert, str(values.shape),
                          "{:+9.4f}".format(values.min()),
                          "{:+10.4f}".format(values.max()),
                          "{:+9.4f}".format(values.std())])
    display_table(table)
    return table


def log(text, array=None):
    """Prints a text message and, for a numpy array, its shape, min and max."""
    if array is not None:
        text = text.ljust(25)
        text += "shape: {:20}  ".format(str(array.shape))
        if array.size:
            text += "min: {:10.5f}  max: {:10.5f}".format(array.min(), array.max())
        else:
            text += "min: {:10}  max: {:10}".format("", "")
        text += "  {}".format(array.dtype)
    print(text)
