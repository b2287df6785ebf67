"""What the checks return: :class:`Problem`, and helpers over lists of them."""

import dataclasses
import os

ERROR = "error"
WARNING = "warning"


@dataclasses.dataclass(frozen=True)
class Problem:
    """One problem: severity ("error" | "warning"), file (the image file or
    annotation file, or an image reference where there is no file), and
    message (what is wrong). cause and count: for instances the loaders or
    the training feed drop, the mrcnn.structures.dropped cause and how many."""

    severity: str
    file: str
    message: str
    cause: str = None
    count: int = 0

    def __post_init__(self):
        if self.severity not in (ERROR, WARNING):
            raise ValueError("severity must be 'error' or 'warning', not {!r}"
                             .format(self.severity))

    @property
    def is_error(self):
        return self.severity == ERROR

    def __str__(self):
        return "{}: {}: {}".format(self.severity, self.file, self.message)


def has_errors(problems):
    """True when any problem is an error (the dataset is unusable)."""
    return any(p.is_error for p in problems)


def dropped_counts(problems):
    """{cause: (instances, images)} of the dropped instances reported."""
    counts = {}
    for problem in problems:
        if problem.cause:
            instances, images = counts.get(problem.cause, (0, set()))
            counts[problem.cause] = (instances + problem.count,
                                     images | {problem.file})
    return {cause: (instances, len(images))
            for cause, (instances, images) in counts.items()}


class Collector:
    """Collects problems about one annotation file."""

    def __init__(self, json_path):
        self.json_path = json_path
        self.problems = []

    def add(self, severity, where, message):
        self.problems.append(Problem(severity, os.path.normpath(where),
                                     message))
