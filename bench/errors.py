"""Error types that map onto the CLI's exit codes.

DESIGN.md: 2 bad input, 3 gate failed, 4 gate inconclusive, 5 device failed; 130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


class BenchError(Exception):
    """An expected failure with a one-line reason; the CLI prints it and exits with ``exit_code``."""

    exit_code = 1


class BadInput(BenchError):
    """The user gave something unusable: a wrong name, a missing file, an unwritable folder."""

    exit_code = 2


class GateFailed(BenchError):
    """A quality gate (for example the drift limit of ``bench compare``) was exceeded."""

    exit_code = 3


class GateInconclusive(BenchError):
    """A quality gate could not be decided: the 95 % interval straddles the limit (more images would tell)."""

    exit_code = 4


class DeviceFailure(BenchError):
    """The device or its runtime failed: an engine that would not build or load, a CUDA error, a timeout, a
    dropped link, a failed cloud job. The run record keeps what was measured and says which."""

    exit_code = 5


class Interrupted(BenchError):
    """Stopped by Ctrl-C or a termination signal (128 + SIGINT, as a shell reports it); a run can be resumed."""

    exit_code = 130


def one_of(kind: str, name: str, valid: list[str] | tuple[str, ...]) -> BadInput:
    """The error for an unknown name, listing the valid ones so the user can correct it."""
    choices = ", ".join(sorted(valid)) or "(none)"
    return BadInput(f"unknown {kind} '{name}'; valid {kind}s: {choices}")


@contextmanager
def cleanup(what: str) -> Iterator[None]:
    """Guard a cleanup step in a ``finally``: when an error is already propagating, the step's own failure is
    reported on stderr so it cannot replace that error; otherwise it propagates as usual."""
    earlier = sys.exc_info()[1]
    try:
        yield
    except Exception as error:
        if earlier is None:
            raise
        print(f"warning: {what} failed after an earlier error: {error}", file=sys.stderr)
