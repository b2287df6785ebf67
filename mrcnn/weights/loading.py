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
import tempfile

import keras
import numpy as np

from mrcnn import atomic_files
from mrcnn.network.layer_names import CLASS_SPECIFIC_LAYERS
from mrcnn.weights import channels as weights_channels
from mrcnn.weights.hdf5 import (KERAS3_FORMAT, LEGACY_FORMAT,  # noqa: F401
                                WeightsFileError, _UnnamedLayersError,
                                _detect_format, _open_h5, _read_layers,
                                add_checksum, applications_resnet_name,
                                check_checksum)

logger = logging.getLogger(__name__)

IMAGENET_RESNET50_URL = (
    "https://github.com/fchollet/deep-learning-models/releases/download/v0.2/"
    "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")
IMAGENET_RESNET50_MD5 = "a268eb855778b3df3c7506639542a6af"


@dataclasses.dataclass
class LoadReport:
    """What load_weights did.

    loaded: names of the model layers that received weights.
    skipped: model layers left alone because `exclude` named them (or the
        sub-model holding them).
    missing: model layers with weights that the file does not have.
    unused: layers of the file that no model layer took.
    adapted: input layers loaded from RGB weights adapted to the model's
        channel count (mrcnn.weights.channels); also in `loaded`.
    """
    filepath: str
    file_format: str
    loaded: list
    skipped: list
    missing: list
    unused: list
    name_mapping: str = None
    adapted: list = dataclasses.field(default_factory=list)

    def __str__(self):
        mapping = (" (names mapped from {})".format(self.name_mapping)
                   if self.name_mapping else "")
        text = ("Loaded weights of {} layers from {} [{}]{}; skipped "
                "(exclude): {}; missing from the file: {}; unused in the "
                "file: {}")
        text = text.format(len(self.loaded), self.filepath, self.file_format,
                           mapping, _short_list(self.skipped),
                           _short_list(self.missing), _short_list(self.unused))
        if self.adapted:
            text += "; adapted to the model's channel count: {}".format(
                _short_list(self.adapted))
        return text


def _short_list(names, limit=12):
    if len(names) <= limit:
        return "[{}]".format(", ".join(names))
    return "[{}, ... {} more]".format(", ".join(names[:limit]),
                                       len(names) - limit)


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


def _match(keras_model, file_layers, exclude, adapt_channels=False):
    """Pairs model layers with file layers.

    Returns (pairs [(layer, file_layer)], skipped, missing, mismatches,
    adaptable) where mismatches are (layer name, file shapes, model shapes)
    and, with adapt_channels, adaptable are the (layer, file_layer) pairs
    of RGB input layers for a model of another channel count.
    """
    whole_layers = {layer.name for layer in keras_model.layers
                    if not _is_sub_model(layer)}
    flat_index = _flat_index(file_layers, whole_layers)
    pairs, skipped, missing, mismatches, adaptable = [], [], [], [], []
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
            if adapt_channels and weights_channels.is_adaptable(
                    layer.name, file_shapes, model_shapes):
                adaptable.append((layer, file_layer))
                continue
            mismatches.append((layer.name, file_shapes, model_shapes))
            continue
        pairs.append((layer, file_layer))
    return pairs, skipped, missing, mismatches, adaptable


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
            check_checksum(h5file, filepath)  # before any weight changes
            report = _load_from_h5(keras_model, h5file, filepath, by_name,
                                   exclude)
        except (OSError, RuntimeError) as error:  # h5py: damaged metadata
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
    pairs, skipped, missing, mismatches, adaptable = _match(
        keras_model, file_layers, exclude, adapt_channels=by_name)
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
    _assign([(layer, weights_channels.adapted_file_layer(
        file_layer, int(layer.weights[0].shape[2]), filepath))
        for layer, file_layer in adaptable])
    loaded = [layer.name for layer, _ in pairs + adaptable]
    unused = _unused(file_layers, pairs + adaptable, exclude)
    return LoadReport(filepath, file_format, loaded, sorted(skipped), missing,
                      unused, mapping,
                      adapted=[layer.name for layer, _ in adaptable])


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
    Raises WeightsWriteError (an OSError) naming the file when it cannot
    be written.
    """
    filepath = os.fspath(filepath)
    if not filepath.endswith(".weights.h5"):
        raise ValueError("save_weights: the file name must end with "
                         "'.weights.h5', got {}".format(filepath))
    try:
        # The temporary name must end with .weights.h5 too, for Keras.
        with atomic_files.replacing(filepath,
                                    suffix=".tmp.weights.h5") as tmp:
            keras_model.save_weights(tmp)
            add_checksum(tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())  # on disk before it takes the name
    except Exception as error:  # a full disk, a lost mount, a quota...
        raise WeightsWriteError(filepath, error) from error
    return filepath


class WeightsWriteError(OSError):
    """save_weights could not write a file; whatever was at its path
    before is unchanged. ``path``: the file; ``errno``: the cause's."""

    def __init__(self, filepath, cause):
        super().__init__(*error_args(
            "Could not write weights file {}: {}: {}. Nothing was written "
            "under that name: the file there before, if any, is unchanged"
            .format(filepath, type(cause).__name__, cause), cause))
        self.path = filepath


def error_args(message, cause):
    """OSError arguments: (errno, message) keeping the cause's errno (ENOSPC
    for a full disk) where it has one, else (message,)."""
    code = getattr(cause, "errno", None)
    return (code, message) if code is not None else (message,)


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
