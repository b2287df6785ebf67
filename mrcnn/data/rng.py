"""Random number generators for the numpy target builders."""

import numpy as np


def _as_generator(rng):
    """A numpy Generator: rng itself, or one seeded from np.random."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        # Seeded from the legacy global state so np.random.seed() still
        # makes runs repeatable, as in matterport.
        return np.random.default_rng(np.random.randint(0, 2 ** 31 - 1))
    return np.random.default_rng(rng)
