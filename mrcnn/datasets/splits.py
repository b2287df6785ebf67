"""Fixed train/validation splits of a loaded dataset, the same on every run.

    from mrcnn.datasets import load_dataset
    from mrcnn.datasets.splits import split_dataset
    train, val = split_dataset(load_dataset("nuclei/stage1_train"))

The split depends on the image ids alone (their sorted order), never on a
random seed or on the order the loader listed the files in, so figures
measured on it stay comparable from run to run and between programs (the
time-to-accuracy benchmark and the nucleus sample share it).
"""

import copy

# Every VALIDATION_EVERY-th image id, in sorted order, goes to validation.
VALIDATION_EVERY = 5


def every_nth_split(ids, every=VALIDATION_EVERY):
    """(train ids, validation ids) of a list of image ids (strings or
    numbers, unique): the ids sorted, the 1st, (1 + every)-th, ... to
    validation, the rest to training; both lists sorted. For the 141
    nuclei images: 112 training and 29 validation images."""
    if every < 2:
        raise ValueError("every must be at least 2, got {}".format(every))
    ordered = sorted(ids)
    if len(set(ordered)) != len(ordered):
        raise ValueError("image ids must be unique to split them")
    validation = ordered[::every]
    chosen = set(validation)
    return [i for i in ordered if i not in chosen], validation


def subset(dataset, source_ids):
    """A prepared copy of a dataset (of any loader class) holding only the
    images whose source id ("id" in image_info) is in source_ids, with the
    same classes and class ids; the given dataset is left as it was."""
    wanted = set(source_ids)
    part = copy.copy(dataset)
    part.image_info = [dict(info) for info in dataset.image_info
                       if info["id"] in wanted]
    part.class_info = [dict(info) for info in dataset.class_info]
    part.prepare()
    return part


def split_dataset(dataset, every=VALIDATION_EVERY):
    """(training, validation) prepared datasets of a loaded dataset, split
    by every_nth_split on its images' source ids."""
    train_ids, val_ids = every_nth_split(
        [info["id"] for info in dataset.image_info], every)
    return subset(dataset, train_ids), subset(dataset, val_ids)
