"""Class balance of a dataset: instance histogram and suggested loss weights.

    counts = class_histogram(dataset)          # [num_classes] instances
    weights = suggest_class_weights(counts)    # for Config.CLASS_LOSS_WEIGHTS
    print(format_class_report(counts, dataset.class_names, weights))

The suggested weights are inverse class frequencies, normalized so that
the average weight over the instances is 1: the classifier loss keeps its
scale, and each class contributes as much as any other. Background keeps
weight 1 (its ROIs come from the sampler, not from the annotations).
"""

import json
import logging

import numpy as np

logger = logging.getLogger(__name__)


def class_histogram(dataset):
    """Instances per class of a prepared mrcnn Dataset.

    Reads every image's masks (dataset.load_mask). Crowd instances
    (negative class ids, as the COCO loader gives them) are not trained on
    as positives and are not counted.
    Returns: [num_classes] int64 counts, index = internal class id, index 0
    (background) always 0.
    """
    counts = np.zeros([dataset.num_classes], np.int64)
    for image_id in dataset.image_ids:
        _, class_ids = dataset.load_mask(image_id)
        class_ids = np.asarray(class_ids, np.int64)
        counts += np.bincount(class_ids[class_ids > 0],
                              minlength=dataset.num_classes)[:len(counts)]
    return counts


def suggest_class_weights(counts, class_names=None):
    """Inverse-frequency weights for Config.CLASS_LOSS_WEIGHTS.

    counts: [num_classes] instances per class, background first (its count
        is ignored).
    class_names: optional names, for the warning about empty classes.
    Returns: list of num_classes floats: 1.0 for background; for class c
    with n_c > 0 instances, N / (K * n_c) where N is the number of
    instances and K the number of classes that have any, so that
    sum(n_c * w_c) / N = 1. A class without instances gets 1.0 and a
    logged warning naming it (its weight cannot matter in training).
    """
    counts = np.asarray(counts, np.float64)
    weights = np.ones(len(counts))
    present = np.flatnonzero(counts[1:] > 0) + 1
    if present.size:
        total = counts[present].sum()
        weights[present] = total / (present.size * counts[present])
    for class_id in range(1, len(counts)):
        if counts[class_id] == 0:
            name = class_names[class_id] if class_names else class_id
            logger.warning("class %r has no instances; its suggested loss "
                           "weight is 1.0", name)
    return [float(w) for w in weights]


def format_class_report(counts, class_names, weights):
    """Text table of instances and suggested weights per class, and the
    `--set CLASS_LOSS_WEIGHTS=...` value to train with."""
    total = max(int(np.sum(counts[1:])), 1)
    width = max(len(str(n)) for n in class_names)
    lines = ["Class histogram ({} instances):".format(int(np.sum(counts[1:])))]
    for class_id in range(1, len(counts)):
        lines.append("  {:>3} {:<{w}} {:>7} {:6.1%}  weight {:.3f}".format(
            class_id, class_names[class_id], int(counts[class_id]),
            counts[class_id] / total, weights[class_id], w=width))
    lines.append("Suggested: --set CLASS_LOSS_WEIGHTS={}".format(
        json.dumps([round(w, 4) for w in weights])))
    return "\n".join(lines)


def class_report(dataset):
    """format_class_report of a dataset's histogram and suggested weights."""
    counts = class_histogram(dataset)
    weights = suggest_class_weights(counts, dataset.class_names)
    return format_class_report(counts, dataset.class_names, weights)
