"""Figure plumbing shared by the figure modules (mrcnn.visualize,
mrcnn.evaluation.plots): draw on the caller's axes or a new figure, save it,
then show it or release it from pyplot (see mrcnn.visualize)."""

import matplotlib
import matplotlib.pyplot as plt

# Backends that cannot show a window: plt.show() would only warn there.
_NON_INTERACTIVE_BACKENDS = {"agg", "cairo", "pdf", "pgf", "ps", "svg",
                             "template"}


def _is_interactive_backend():
    """True when plt.show() can display something (GUI or Jupyter inline)."""
    return matplotlib.get_backend().lower() not in _NON_INTERACTIVE_BACKENDS


def _figure_and_axes(ax, figsize):
    """Returns (figure, axes, created): the given axes or a fresh figure."""
    if ax is not None:
        return ax.figure, ax, False
    fig, ax = plt.subplots(1, figsize=figsize)
    return fig, ax, True


def _finish(fig, created, save_path):
    """Saves the figure if asked, then shows it (returns None) or releases
    it from pyplot (returns it).

    Only a figure this module created is shown/closed: one drawn on the
    caller's axes belongs to the caller.
    """
    if save_path is not None:
        fig.savefig(save_path)
    if created:
        if _is_interactive_backend():
            plt.show()
            return None
        plt.close(fig)
    return fig
