"""The meter interface, and the background sampler that turns a meter into power-table rows.

A meter answers ``read()`` with one instantaneous sample per rail, stamped with
``bench.clock.now_ns`` so power lines up with the latency rows. The ``Sampler`` calls it at the
profile's rate on its own thread between ``start()`` and ``stop()``, which the measure step places
around exactly the timed window. Both calls also take one sample themselves, so the energy
integrator always has samples on either side of the window's edges.

A meter that fails is never papered over: every failed read is a dropout with its time and
reason, and after ``max_failures`` failures in a row the sampler stops asking.
"""

from __future__ import annotations

import math
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Literal

from bench import clock
from bench.errors import BadInput, BenchError

Row = dict[str, Any]
Status = Literal["ok", "dropped", "unavailable"]

DEFAULT_MAX_FAILURES = 5


class MeterUnavailable(BenchError):
    """The configured meter cannot be read here (no driver, service, library or permission)."""


def power_row(t_ns: int, rail: str, volts: float | None, amps: float | None, watts: float | None) -> Row:
    """One row of the run record's power table; None where the meter does not give that quantity."""
    return {"t_ns": int(t_ns), "rail": rail, "volts": None if volts is None else float(volts),
            "amps": None if amps is None else float(amps), "watts": None if watts is None else float(watts)}


def one_line(exc: BaseException) -> str:
    """An exception as one line, for dropout records and error messages."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def check_rails(kind: str, wanted: list[str] | None, found: list[str]) -> list[str]:
    """The profile's rails (all found ones when it names none); unknown names are a profile error."""
    rails = list(found) if not wanted else [str(r) for r in wanted]
    missing = [r for r in rails if r not in found]
    if missing:
        raise BadInput(f"{kind} rail{'s' if len(missing) > 1 else ''} {', '.join(missing)} not found; "
                       f"found: {', '.join(found) or '(none)'}")
    return rails


class PowerMeter(ABC):
    """A live power meter: ``rails`` it reads, ``read()`` one sample per rail, ``close()`` when done.

    ``source`` says how the figures were obtained where that is not plain (a fallback reading, channels
    left out), so the run record states it next to the samples. ``interval_rails`` are the rails read from
    an energy counter: each of their rows is the average power over the interval ending at its timestamp,
    which the energy integral must take as a step, not as a point to interpolate from."""

    rails: list[str]
    source: str = ""
    interval_rails: frozenset[str] = frozenset()

    @abstractmethod
    def read(self) -> list[Row]:
        """One instantaneous sample per rail as power rows; raises when the meter cannot be read."""

    def close(self) -> None:  # noqa: B027 - most meters hold nothing to release
        """Release the meter; safe to call twice."""

    def __enter__(self) -> PowerMeter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Sampler:
    """Reads a meter at ``rate_hz`` on a background thread over the timed window.

    ``status`` is "ok" when every read succeeded, "dropped" when some read failed (``dropouts``
    says when and why; ``gave_up`` whether sampling stopped for good) and "unavailable" when the
    meter never gave a sample. Rows taken before a dropout are kept.
    """

    def __init__(self, meter: PowerMeter, rate_hz: float, *, max_failures: int = DEFAULT_MAX_FAILURES,
                 stop_timeout_s: float = 5.0) -> None:
        if not (isinstance(rate_hz, int | float) and math.isfinite(rate_hz) and rate_hz > 0):
            raise BadInput(f"power rate_hz must be a positive number, got {rate_hz!r}")
        if max_failures < 1:
            raise BadInput(f"power max_failures must be at least 1, got {max_failures!r}")
        self.meter = meter
        self.rate_hz = float(rate_hz)
        self.max_failures = int(max_failures)
        self._period_ns = max(1, round(1e9 / self.rate_hz))
        self._stop_timeout_s = stop_timeout_s
        self._rows: list[Row] = []
        self._dropouts: list[dict[str, Any]] = []
        self._consecutive = 0
        self._gave_up = False
        self._window_closed = False
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False

    @property
    def rails(self) -> list[str]:
        return list(self.meter.rails)

    def start(self) -> None:
        """Take one sample now (before the window opens), then keep sampling in the background."""
        if self._started:
            raise RuntimeError("a Sampler covers one window; make a new one for the next")
        self._started = True
        self._sample()
        if not self._gave_up:
            self._thread = threading.Thread(target=self._run, name="power-sampler", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread, then take one sample now (after the window closed); safe to call twice."""
        if not self._started or self._window_closed:
            return
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join(self._stop_timeout_s)
            if self._thread.is_alive():
                self._fail(TimeoutError(f"meter read still running {self._stop_timeout_s:g} s after stop"))
                with self._lock:
                    self._gave_up = True
        if not self._gave_up:
            self._sample()
        with self._lock:
            self._window_closed = True

    def close(self) -> None:
        """Stop sampling if needed and release the meter."""
        self.stop()
        self.meter.close()

    def __enter__(self) -> Sampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def rows(self) -> list[Row]:
        with self._lock:
            return list(self._rows)

    @property
    def dropouts(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(d) for d in self._dropouts]

    @property
    def gave_up(self) -> bool:
        return self._gave_up

    @property
    def status(self) -> Status:
        with self._lock:
            if self._dropouts and not self._rows:
                return "unavailable"
            return "dropped" if self._dropouts else "ok"

    @property
    def reason(self) -> str | None:
        """One line on why the status is not "ok" (None when it is)."""
        status = self.status
        with self._lock:
            if status == "ok":
                return None
            first, count = self._dropouts[0], len(self._dropouts)
            if status == "unavailable":
                return f"power meter gave no sample: {first['error']}"
            ending = f"gave up after {self.max_failures} failed reads in a row" if self._gave_up else "recovered"
            return f"power meter dropped out {count} time{'s' if count > 1 else ''} ({ending}); first: {first['error']}"

    def to_manifest(self) -> dict[str, Any]:
        """What the run record keeps about the sampling besides the rows themselves."""
        return {"status": self.status, "reason": self.reason, "rate_hz": self.rate_hz, "rails": self.rails,
                "source": self.meter.source or None, "interval_rails": sorted(self.meter.interval_rails),
                "samples": len(self.rows), "dropouts": self.dropouts,
                "gave_up": self._gave_up}

    def _run(self) -> None:
        next_ns = clock.now_ns() + self._period_ns
        while not self._gave_up:
            wait_s = (next_ns - clock.now_ns()) / 1e9
            if self._stop_event.wait(max(wait_s, 0.0)):
                return
            self._sample()
            next_ns += self._period_ns
            late = clock.now_ns() - next_ns
            if late > 0:
                next_ns += (late // self._period_ns + 1) * self._period_ns

    def _sample(self) -> None:
        try:
            rows = self.meter.read()
        except Exception as exc:  # any meter failure is a recorded dropout, never a crashed run
            self._fail(exc)
            return
        with self._lock:
            if self._window_closed:
                return
            self._rows.extend(rows)
            self._consecutive = 0

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            if self._window_closed:
                return
            self._dropouts.append({"t_ns": clock.now_ns(), "error": one_line(exc)})
            self._consecutive += 1
            if self._consecutive >= self.max_failures:
                self._gave_up = True


def read_sysfs_int(path: Path) -> int:
    """A sysfs attribute holding one integer (hwmon mV/mA, powercap uJ)."""
    return int(path.read_text().split()[0])
