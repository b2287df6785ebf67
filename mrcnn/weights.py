"""Reading and writing Mask R-CNN weight files.

Three kinds of files load into our Keras 3 models:

* our checkpoints, Keras 3 ``*.weights.h5`` files written by
  :func:`save_weights` (or ``keras_model.save_weights``);
* legacy Keras 2 ``.h5`` files such as matterport's released
  ``mask_rcnn_coco.h5`` (root attribute ``layer_names``, one group per layer
  with a ``weight_names`` attribute, the RPN nested as ``rpn_model``);
* ImageNet ResNet50 weights: fchollet's file (matterport's layer names
  already) or a ``keras.applications.ResNet50`` weights file, whose names
  (``conv2_block1_1_conv`` ...) are mapped onto ours automatically.

Matching by name walks the HDF5 tree with h5py and assigns arrays; nothing
stored in a file is ever deserialized as code.
"""

import dataclasses
import logging
import os
import re
import tempfile
import uuid

import h5py
import keras
import numpy as np

logger = logging.getLogger(__name__)

IMAGENET_RESNET50_URL = (
    "https://github.com/fchollet/deep-learning-models/releases/download/v0.2/"
    "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")
IMAGENET_RESNET50_MD5 = "a268eb855778b3df3c7506639542a6af"

# Layers whose weight shapes depend on NUM_CLASSES: skip them to start from
# weights trained on another class count (e.g. COCO's 81).
CLASS_SPECIFIC_LAYERS = ["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox",
                         "mrcnn_mask"]

KERAS3_FORMAT = "keras3"
LEGACY_FORMAT = "legacy_h5"


class WeightsFileError(ValueError):
    """A weights file cannot be read (not HDF5, truncated, unknown layout)."""


class _UnnamedLayersError(WeightsFileError):
    """A Keras 3 file without layer names (written by an older Keras 3)."""


@dataclasses.dataclass
class LoadReport:
    """What load_weights did.

    loaded: names of the model layers that received weights.
    skipped: model layers left alone because `exclude` named them (or the
        sub-model holding them).
    missing: model layers with weights that the file does not have.
    unused: layers of the file that no model layer took.
    """
    filepath: str
    file_format: str
    loaded: list
    skipped: list
    missing: list
    unused: list
    name_mapping: str = None

    def __str__(self):
        mapping = (" (names mapped from {})".format(self.name_mapping)
                   if self.name_mapping else "")
        text = ("Loaded weights of {} layers from {} [{}]{}; skipped "
                "(exclude): {}; missing from the file: {}; unused in the "
                "file: {}")
        return text.format(len(self.loaded), self.filepath, self.file_format,
                           mapping, _short_list(self.skipped),
                           _short_list(self.missing), _short_list(self.unused))


def _short_list(names, limit=12):
    if len(names) <= limit:
        return "[{}]".format(", ".join(names))
    return "[{}, ... {} more]".format(", ".join(names[:limit]),
                                       len(names) - limit)


############################################################
#  The file side: a tree of named layers holding h5py datasets
############################################################

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


############################################################
#  The model side and the matching
############################################################

def _is_sub_model(layer):
    return isinstance(layer, keras.Model) and hasattr(layer, "layers")


def _model_units(model, parents=()):
    """Yields (parents, layer) for every layer that owns weights. Sub-models
    (rpn_model) are expanded: their layers are the units, as in the files."""
    for layer in model.layers:
        if _is_sub_model(layer):
            yield from _model_units(layer, parents + (layer.name,))
        elif layer.weights:
            yield parents, layer


def _flat_index(layers, whole_layers, index=None):
    """name -> _FileLayer over the whole file tree (outer layers first).

    The parts of a file layer named like a plain layer of the model
    (whole_layers) are not indexed: that layer is loaded whole. This keeps
    a Keras 2 TimeDistributed group whose weights carry an inner layer's
    name ("mrcnn_mask/conv2d_3/kernel:0") from being split apart.
    """
    index = {} if index is None else index
    for name, layer in layers.items():
        index.setdefault(name, layer)
    for name, layer in layers.items():
        if name not in whole_layers:
            _flat_index(layer.children, whole_layers, index)
    return index


def _find_file_layer(file_layers, flat_index, parents, name):
    """Same nesting first (rpn_model/rpn_conv_shared), then any nesting."""
    layers = file_layers
    for parent in parents:
        if parent not in layers:
            break
        layers = layers[parent].children
    else:
        if name in layers:
            return layers[name]
    return flat_index.get(name)


def _shapes(arrays):
    return [tuple(int(d) for d in a.shape) for a in arrays]


def _match(keras_model, file_layers, exclude):
    """Pairs model layers with file layers.

    Returns (pairs [(layer, file_layer)], skipped, missing, mismatches)
    where mismatches are (layer name, file shapes, model shapes).
    """
    whole_layers = {layer.name for layer in keras_model.layers
                    if not _is_sub_model(layer)}
    flat_index = _flat_index(file_layers, whole_layers)
    pairs, skipped, missing, mismatches = [], [], [], []
    for parents, layer in _model_units(keras_model):
        if layer.name in exclude or any(p in exclude for p in parents):
            skipped.append(layer.name)
            continue
        file_layer = _find_file_layer(file_layers, flat_index, parents,
                                      layer.name)
        if file_layer is None:
            missing.append(layer.name)
            continue
        file_shapes = _shapes(file_layer.arrays)
        model_shapes = _shapes(layer.weights)
        if file_shapes != model_shapes:
            mismatches.append((layer.name, file_shapes, model_shapes))
            continue
        pairs.append((layer, file_layer))
    return pairs, skipped, missing, mismatches


def _unused(file_layers, pairs, exclude):
    """Top-level file layers none of whose parts a model layer took (the
    excluded ones aside)."""
    used = {id(file_layer) for _, file_layer in pairs}

    def is_used(layer):
        return id(layer) in used or any(
            is_used(child) for child in layer.children.values())
    return [name for name, layer in file_layers.items()
            if not is_used(layer) and name not in exclude]


def _mismatch_error(filepath, mismatches):
    names = [name for name, _, _ in mismatches]
    lines = ["  {}: file {} vs model {}".format(
        name, _format_shapes(file_shapes), _format_shapes(model_shapes))
        for name, file_shapes, model_shapes in mismatches]
    fix = list(names)
    hint = ""
    if set(names) & set(CLASS_SPECIFIC_LAYERS):
        # The usual cause: a different NUM_CLASSES. The whole class-specific
        # set must go, not only the layers that happened to differ.
        fix = sorted(set(names) - set(CLASS_SPECIFIC_LAYERS)) + \
            CLASS_SPECIFIC_LAYERS
        hint = (" (the class-specific heads differ: the file was trained "
                "with another NUM_CLASSES)")
    return ValueError(
        "Cannot load {}: weight shapes differ for {} layer(s){}:\n{}\n"
        "Skip them with load_weights(..., by_name=True, exclude={!r})".format(
            filepath, len(names), hint, "\n".join(lines), fix))


def _format_shapes(shapes):
    return "[{}]".format(", ".join(str(tuple(s)) for s in shapes))


def _assign(pairs):
    for layer, file_layer in pairs:
        for variable, dataset in zip(layer.weights, file_layer.arrays):
            variable.assign(np.asarray(dataset[()], dtype=variable.dtype))


############################################################
#  Public API
############################################################

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


def load_weights(keras_model, filepath, by_name=False, exclude=None):
    """Loads weights into keras_model from an HDF5 weights file.

    keras_model: a built Keras model (sub-models such as rpn_model are
        matched layer by layer).
    filepath: a Keras 3 ``.weights.h5`` file, a legacy Keras 2 ``.h5`` file
        (e.g. matterport's mask_rcnn_coco.h5) or ResNet50 ImageNet weights.
    by_name: match layers by name. False on a Keras 3 file uses Keras' own
        structural loading (same model required); on a legacy file it also
        matches by name but every model layer with weights must be found.
        Missing layers are only reported when True.
    exclude: layer names to leave untouched (a sub-model name excludes all
        its layers). Implies by_name=True, as in matterport.
    Returns: a LoadReport, also logged at INFO.
    Raises ValueError naming the file for unreadable files, and for weight
    shape mismatches (found before any weight is changed).
    """
    filepath = os.fspath(filepath)
    exclude = set(exclude or [])
    if exclude:
        by_name = True
        _warn_unknown_names(keras_model, exclude)

    with _open_h5(filepath) as h5file:
        try:
            report = _load_from_h5(keras_model, h5file, filepath, by_name,
                                   exclude)
        except OSError as error:
            raise WeightsFileError(
                "Cannot read weights file {}: it is truncated or corrupt "
                "({})".format(filepath, error)) from error
    if report is None:
        # A Keras 3 file for Keras' own loader (checked above by name).
        _keras_load(keras_model, filepath)
        loaded = [layer.name for _, layer in _model_units(keras_model)]
        report = LoadReport(filepath, KERAS3_FORMAT, loaded, [], [], [])
    logger.info("%s", report)
    return report


def _warn_unknown_names(keras_model, exclude):
    """A misspelt exclude name would silently load that layer: say so."""
    known = {layer.name for _, layer in _model_units(keras_model)}
    known |= {layer.name for layer in keras_model.layers}
    unknown = exclude - known
    if unknown:
        logger.warning("load_weights: exclude names no layer of model %r: %s",
                       keras_model.name, sorted(unknown))


def _load_from_h5(keras_model, h5file, filepath, by_name, exclude):
    """Matches and (unless Keras' own loader should do it) assigns.

    Returns a LoadReport, or None when the file is to be loaded by Keras.
    """
    file_format, _ = _detect_format(h5file)
    keras_loader = file_format == KERAS3_FORMAT and not by_name
    model_names = {layer.name for _, layer in _model_units(keras_model)}
    try:
        file_format, file_layers, mapping = _read_layers(h5file, filepath,
                                                         model_names)
    except _UnnamedLayersError:
        if keras_loader:
            return None
        raise
    keras_loader = keras_loader and mapping is None
    pairs, skipped, missing, mismatches = _match(keras_model, file_layers,
                                                 exclude)
    if mismatches:
        raise _mismatch_error(filepath, mismatches)
    if keras_loader:
        return None
    if not by_name and missing:
        raise ValueError(
            "Cannot load {} with by_name=False: {} model layer(s) with "
            "weights are not in the file: {}. Use by_name=True to load the "
            "layers it has.".format(filepath, len(missing),
                                    _short_list(missing)))
    _assign(pairs)
    loaded = [layer.name for layer, _ in pairs]
    unused = _unused(file_layers, pairs, exclude)
    return LoadReport(filepath, file_format, loaded, sorted(skipped), missing,
                      unused, mapping)


def _keras_load(keras_model, filepath):
    """keras_model.load_weights, whatever the file's suffix."""
    try:
        if filepath.endswith(".weights.h5"):
            keras_model.load_weights(filepath)
            return
        # Keras picks its reader by suffix: give it the name it expects.
        with tempfile.TemporaryDirectory() as folder:
            link = os.path.join(folder, "model.weights.h5")
            os.symlink(os.path.abspath(filepath), link)
            keras_model.load_weights(link)
    except (ValueError, OSError) as error:
        raise ValueError(
            "Cannot load {} into model {!r} with by_name=False (it must "
            "have been saved from the same model structure): {}. Try "
            "by_name=True.".format(filepath, keras_model.name, error)) \
            from error


def save_weights(keras_model, filepath):
    """Saves the model's weights in Keras 3 format, atomically.

    The file is written under a temporary name in the same folder and then
    renamed, so an interrupted save never leaves a half-written file under
    `filepath`. filepath must end with ".weights.h5". Returns filepath.
    """
    filepath = os.fspath(filepath)
    if not filepath.endswith(".weights.h5"):
        raise ValueError("save_weights: the file name must end with "
                         "'.weights.h5', got {}".format(filepath))
    folder = os.path.dirname(os.path.abspath(filepath))
    os.makedirs(folder, exist_ok=True)
    # The temporary name must end with .weights.h5 too, for Keras.
    temporary = os.path.join(folder, ".{}.{}.tmp.weights.h5".format(
        os.path.basename(filepath)[:-len(".weights.h5")], uuid.uuid4().hex))
    try:
        keras_model.save_weights(temporary)
        os.replace(temporary, filepath)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return filepath


def _keras_cache_dir():
    """Where keras.utils.get_file caches files (as Keras computes it)."""
    home = os.environ.get("KERAS_HOME")
    if home is None:
        base = os.path.expanduser("~")
        if not os.access(base, os.W_OK):
            base = "/tmp"
        home = os.path.join(base, ".keras")
    home = os.path.expanduser(home)
    if os.path.isdir(home) and not os.access(home, os.W_OK):
        home = os.path.join("/tmp", ".keras")
    return home


def get_imagenet_weights():
    """Path of the ResNet50 ImageNet weights matterport trained from.

    Downloads them into the Keras cache (``~/.keras/models``) once; later
    calls find them there. Without network access, raises an OSError that
    says which URL to download and where to put the file.
    """
    filename = IMAGENET_RESNET50_URL.rsplit("/", 1)[-1]
    try:
        return keras.utils.get_file(
            filename, IMAGENET_RESNET50_URL, cache_subdir="models",
            file_hash=IMAGENET_RESNET50_MD5, hash_algorithm="md5")
    except Exception as error:
        target = os.path.join(_keras_cache_dir(), "models", filename)
        raise OSError(
            "Could not download the ImageNet ResNet50 weights ({}). Download "
            "{} yourself and put it at {} (md5 {}), then run again.".format(
                error, IMAGENET_RESNET50_URL, target,
                IMAGENET_RESNET50_MD5)) from error
