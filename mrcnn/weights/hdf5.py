"""The file side of weight loading: the layers of an HDF5 weights file.

A Keras 3 ``*.weights.h5`` file or a legacy Keras 2 ``.h5`` file becomes a
tree of named layers (``_FileLayer``) holding h5py datasets; the names of a
``keras.applications`` ResNet50 file are mapped onto ours. Only arrays are
read: nothing stored in a file is deserialized as code.
"""

import dataclasses
import hashlib
import os
import re

import h5py
import numpy as np

KERAS3_FORMAT = "keras3"
LEGACY_FORMAT = "legacy_h5"

# Root attribute of the files mrcnn.weights.loading.save_weights writes: the
# sha256 of their arrays. HDF5 keeps no checksum of its own, so damaged
# array bytes would otherwise load as weights without a word.
CHECKSUM_ATTR = "mrcnn_arrays_sha256"


class WeightsFileError(ValueError):
    """A weights file cannot be read (not HDF5, truncated, unknown layout)."""


class _UnnamedLayersError(WeightsFileError):
    """A Keras 3 file without layer names (written by an older Keras 3)."""


@dataclasses.dataclass
class _FileLayer:
    """One layer found in a weights file.

    arrays: its h5py datasets, in the order of ``layer.weights``.
    children: sub-layers by name, for a nested model such as rpn_model.
    """
    name: str
    arrays: list
    children: dict


def _decode(value):
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _detect_format(h5file):
    """Returns (format, group holding the layers)."""
    if "layer_names" in h5file.attrs:
        return LEGACY_FORMAT, h5file
    # Keras 2 `model.save` files keep the weights in a sub-group.
    if "model_weights" in h5file and \
            "layer_names" in h5file["model_weights"].attrs:
        return LEGACY_FORMAT, h5file["model_weights"]
    if "layers" in h5file:
        return KERAS3_FORMAT, h5file
    return None, None


def _legacy_layers(group):
    """Layers of a Keras 2 weights group, by name.

    Each layer group lists its datasets in its `weight_names` attribute, in
    the layer's weight order. A nested model (rpn_model) lists the weights
    of all its sub-layers, named "<sub-layer>/kernel:0" etc., which gives
    the children.
    """
    layers = {}
    for layer_name in (_decode(n) for n in group.attrs["layer_names"]):
        layer_group = group[layer_name]
        weight_names = [_decode(w) for w in
                        layer_group.attrs.get("weight_names", [])]
        if not weight_names:
            continue
        arrays = [layer_group[w] for w in weight_names]
        children = {}
        for weight_name, array in zip(weight_names, arrays):
            parts = weight_name.split("/")
            if len(parts) >= 2 and parts[-2] != layer_name:
                child = children.setdefault(
                    parts[-2], _FileLayer(parts[-2], [], {}))
                child.arrays.append(array)
        layers[layer_name] = _FileLayer(layer_name, arrays, children)
    return layers


def _keras3_vars(node):
    """Datasets of a Keras 3 saveable: its own "vars" in index order, then
    those of wrapped objects (e.g. a wrapper's "layer"), but not those of a
    sub-model's "layers", which are layers of their own."""
    arrays = []
    if "vars" in node:
        own = node["vars"]
        arrays.extend(own[key] for key in sorted(own, key=int))
    for key in sorted(node):
        if key not in ("vars", "layers") and isinstance(node[key], h5py.Group):
            arrays.extend(_keras3_vars(node[key]))
    return arrays


def _keras3_layers(node, filepath):
    """Layers of a Keras 3 saveable holding a "layers" container, by name.

    Keras 3 stores layers under their class name ("layers/conv2d_3"); the
    layer name is kept in the "name" attribute of each "vars" group.
    """
    layers = {}
    container = node["layers"]
    for key in container:
        layer_node = container[key]
        vars_group = layer_node.get("vars")
        if vars_group is None or "name" not in vars_group.attrs:
            raise _UnnamedLayersError(
                "{}: layer entry 'layers/{}' has no layer name (the file was "
                "written by an older Keras 3); it can only be loaded with "
                "by_name=False into the same model structure".format(
                    filepath, key))
        name = _decode(vars_group.attrs["name"])
        children = (_keras3_layers(layer_node, filepath)
                    if "layers" in layer_node else {})
        layers[name] = _FileLayer(name, _keras3_vars(layer_node), children)
    return layers


############################################################
#  keras.applications ResNet50 names -> matterport names
############################################################

_APPLICATIONS_BLOCK = re.compile(r"^conv(\d)_block(\d+)_(\d)_(conv|bn)$")
_APPLICATIONS_STEM = {"conv1_conv": "conv1", "conv1_bn": "bn_conv1"}


def applications_resnet_name(name):
    """Our (matterport's) name of a keras.applications ResNet layer, or None.

    conv2_block1_1_conv -> res2a_branch2a, conv2_block1_0_bn -> bn2a_branch1,
    conv1_conv -> conv1, conv1_bn -> bn_conv1.
    """
    if name in _APPLICATIONS_STEM:
        return _APPLICATIONS_STEM[name]
    match = _APPLICATIONS_BLOCK.match(name)
    if not match:
        return None
    stage, block, index, kind = match.groups()
    letter = chr(ord("a") + int(block) - 1)
    branch = "1" if index == "0" else "2" + "abc"[int(index) - 1]
    prefix = "res" if kind == "conv" else "bn"
    return "{}{}{}_branch{}".format(prefix, stage, letter, branch)


def _map_applications_names(layers, model_names):
    """Renames keras.applications ResNet layers to ours, when the file has
    them and the model has our names instead (a model built on
    keras.applications itself keeps the file's names).

    Returns (layers, mapping description or None).
    """
    def wanted(name):
        new_name = applications_resnet_name(name)
        return (new_name is not None and name not in model_names
                and new_name in model_names)

    if not any(wanted(name) for name in layers):
        return layers, None
    renamed = {}
    for name, layer in layers.items():
        new_name = applications_resnet_name(name) if wanted(name) else name
        renamed[new_name] = dataclasses.replace(layer, name=new_name)
    return renamed, "keras.applications ResNet"


def _open_h5(filepath):
    """h5py.File opened for reading, or a clear error naming the file."""
    if not os.path.exists(filepath):
        raise FileNotFoundError("Weights file not found: {}".format(filepath))
    if os.path.isdir(filepath):
        raise WeightsFileError(
            "{} is a directory, not a weights file".format(filepath))
    if not h5py.is_hdf5(filepath):
        raise WeightsFileError(
            "{} is not an HDF5 file (expected a Keras .weights.h5 or a "
            "legacy .h5 weights file; was the download interrupted or did "
            "it save an HTML error page?)".format(filepath))
    try:
        return h5py.File(filepath, "r")
    except OSError as error:
        raise WeightsFileError(
            "Cannot read weights file {}: it is truncated or corrupt ({}). "
            "Download or copy it again.".format(filepath, error)) from error


def _read_layers(h5file, filepath, model_names):
    """Returns (format, {name: _FileLayer}, name mapping or None)."""
    file_format, group = _detect_format(h5file)
    if file_format is None:
        raise WeightsFileError(
            "{} is an HDF5 file but not Keras weights: it has neither a "
            "'layer_names' attribute (Keras 2 .h5) nor a 'layers' group "
            "(Keras 3 .weights.h5)".format(filepath))
    if file_format == LEGACY_FORMAT:
        layers = _legacy_layers(group)
    else:
        layers = _keras3_layers(group, filepath)
    layers, mapping = _map_applications_names(layers, model_names)
    return file_format, layers, mapping


############################################################
#  Checksum of the arrays
############################################################


def _arrays_digest(h5file):
    """sha256 over every dataset of the file: path, dtype, shape and bytes,
    in path order."""
    names = []
    h5file.visititems(lambda name, node: names.append(name)
                      if isinstance(node, h5py.Dataset) else None)
    digest = hashlib.sha256()
    for name in sorted(names):
        array = np.asarray(h5file[name][()])
        digest.update("{}|{}|{}|".format(name, array.dtype,
                                         array.shape).encode("utf-8"))
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def add_checksum(filepath):
    """Stores the arrays' checksum in the file (a root attribute); a file
    that is not HDF5 (a stand-in model's) is left as it is."""
    if not h5py.is_hdf5(filepath):
        return
    with h5py.File(filepath, "r+") as h5file:
        h5file.attrs[CHECKSUM_ATTR] = _arrays_digest(h5file)


def check_checksum(h5file, filepath):
    """Raises WeightsFileError naming filepath when the file carries a
    checksum its arrays no longer match; files without one (legacy files,
    Keras' own) pass."""
    stored = h5file.attrs.get(CHECKSUM_ATTR)
    if stored is None:
        return
    if _decode(stored) != _arrays_digest(h5file):
        raise WeightsFileError(
            "{} is corrupt: its arrays no longer match the checksum saved "
            "with them (the file was damaged after it was written: disk, "
            "copy or transfer). Load an earlier checkpoint or copy it "
            "again; a file changed on purpose (h5py) takes its new "
            "checksum with mrcnn.weights.hdf5.add_checksum(path)."
            .format(filepath))
