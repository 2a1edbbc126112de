"""Progress bars on stderr, one style for every long step (stdout stays free for --json)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from tqdm import tqdm


def bar(total: int | None, desc: str, unit: str = "it") -> tqdm:
    """A transient bar; redrawn rarely when stderr is a log file (CI), not a terminal."""
    interval = 0.1 if sys.stderr.isatty() else 10.0
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True,
                mininterval=interval)


def close_bars() -> None:
    """Clear every bar still open, so an error line printed after an interrupt starts on a line of its own (a
    Ctrl-C can land after a bar is drawn and before its ``with`` block closes it)."""
    bars = list(getattr(tqdm, "_instances", ()))
    for progress in bars:
        progress.close()
    if bars and not sys.stderr.isatty():  # a log file keeps the bar's text: end its line
        sys.stderr.write("\n")


def loss_callback(progress: tqdm) -> Callable[[int, int, float], None]:
    """The ``progress(step, total, loss)`` callback of the fitting loops, shown on ``progress``.

    The bar's clock restarts at the first step: the time before it (reading and embedding the training images)
    is not a step, and counting it made the first ETA hours long (issue 20: 4:33:01 for a 5-minute fit)."""
    def update(step: int, total: int, loss: float) -> None:
        if progress.n == 0:
            progress.reset(total=total)
        progress.set_postfix(loss=f"{loss:.3f}", refresh=False)
        progress.update()

    return update
