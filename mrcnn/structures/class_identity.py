"""A class is the same class everywhere: ids follow a reference by name.

Every loader numbers the classes it finds (sorted names, COCO category
ids). A validation or evaluation set that lacks one of the training set's
classes would then shift the ids of the classes after it, and losses,
metrics and the confusion matrix would compare "fox" with "dog". The
training run's class names are the reference instead: ``align_classes``
reorders a loaded dataset's classes so that internal class ids follow
them by name, and ``check_class_count`` is the last line of defence in
``MaskRCNN.train``.

Datasets you build with ``add_class`` yourself keep matterport's numbering
unless you call ``align_classes``.
"""

BACKGROUND = "BG"


def object_class_names(reference):
    """The object classes of reference (class names in id order, with or
    without the leading "BG", as ``Dataset.class_names`` and
    ``run_config.json`` hold them), "BG" left out."""
    names = list(reference)
    if names and names[0] == BACKGROUND:
        names = names[1:]
    return names


def _clean(name):
    # Dataset.prepare keeps the text before the first comma of a name.
    return str(name).split(",")[0]


def align_classes(dataset, reference, where, locate=None):
    """Reorders dataset.class_info (call before prepare()) so that internal
    class ids are the positions of the class names in reference.

    reference: class names in id order, "BG" first or not (a training
        set's ``class_names``, or those of ``run_config.json``).
    where: the dataset's file or folder, for error messages.
    locate: optional callable name -> the file that holds that class (a
        better place to name than ``where``), or None.
    A class of the reference this dataset lacks gets a placeholder entry
    (same source as the dataset's classes, an unused source id): no
    instance has it, the ids after it stay put, and the model's guesses of
    it still count. A class not in the reference raises ValueError naming
    the file and the class. Returns the dataset.
    """
    names = object_class_names(reference)
    if len(set(names)) != len(names):
        raise ValueError("reference class names repeat a name: {}".format(
            names))
    by_name = {}
    for info in dataset.class_info[1:]:
        name = _clean(info["name"])
        if name not in names:
            place = (locate(info["name"]) if locate else None) or where
            raise ValueError(
                "{}: class {!r} is not one of the model's classes ({}); "
                "rename it, or leave its class out (class_names, --classes)"
                .format(place, name, ", ".join(names)))
        if name in by_name:
            raise ValueError("{}: two classes are named {!r}; a model class "
                             "can match only one".format(where, name))
        by_name[name] = info
    source = _placeholder_source(dataset.class_info[1:])
    free_ids = _unused_ids(dataset.class_info, source)
    dataset.class_info = dataset.class_info[:1] + [
        by_name.get(name)
        or {"source": source, "id": next(free_ids), "name": name}
        for name in names]
    return dataset


def _placeholder_source(classes):
    """The source of the dataset's classes when they share one, else ""."""
    sources = {info["source"] for info in classes}
    return sources.pop() if len(sources) == 1 else ""


def _unused_ids(class_info, source):
    """Integer source ids (as COCO category ids must be) that no class of
    source has, in increasing order."""
    used = [info["id"] for info in class_info
            if info["source"] == source and isinstance(info["id"], int)]
    return iter(range(max(used + [0]) + 1, 1 << 62))


def check_class_count(dataset, config, role):
    """ValueError when a prepared dataset's class count differs from
    config.NUM_CLASSES (the heads' size), naming both numbers; role is
    "training" or "validation"."""
    if dataset is None:
        return
    count = getattr(dataset, "num_classes", None)
    if count is None:
        raise ValueError("the {} dataset is not prepared: call prepare() "
                         "before train()".format(role))
    if count != config.NUM_CLASSES:
        raise ValueError(
            "the {} dataset has {} classes (background included: {}) but "
            "config.NUM_CLASSES is {}; set NUM_CLASSES = {}, or load the "
            "dataset with the training set's class names".format(
                role, count, ", ".join(dataset.class_names),
                config.NUM_CLASSES, count))
