"""matplotlib figures as deterministic PNG bytes, for every plot the gate and its tools draw.

matplotlib is imported on first use, not when a CLI starts, and with its config directory under the gate's
cache (eval.runtime.matplotlib_config): its default, ~/.config/matplotlib, is read-only in CI sandboxes,
where it would warn on stderr. The bytes depend only on what is drawn: Agg backend, a fixed dpi, and no
`Software` entry (matplotlib's version) in the PNG metadata.
"""

import contextlib
import io
import logging

from eval import runtime

DPI = 100


@contextlib.contextmanager
def figure(style, **subplots):
    """(figure, axes) of a new Agg figure drawn under rc settings `style`; closed on exit."""
    runtime.matplotlib_config()
    # absl shows INFO records on stderr: matplotlib's ("generated new fontManager") would leak into a CLI's
    # output on a fresh cache. Its warnings still show.
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    with matplotlib.rc_context(style):
        fig, axes = pyplot.subplots(**subplots)
        try:
            yield fig, axes
        finally:
            pyplot.close(fig)


def png(fig):
    """The PNG bytes of `fig` (call inside `figure`, so its rc settings still apply)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()
