"""A local RB5 board over adb: QNN's ``qnn-net-run`` with the GPU backend, driven through adbutils.

The compiled DLC and the QNN runtime (qnn-net-run and the backend libraries from the host's QAIRT
SDK, for the board's target triple) are pushed once per session. Each group of inputs is written
as raw float32 files with an input list, pushed, run, and the ``Result_<i>/<output>.raw`` files
pulled back. Every run uses ``--profiling_level basic``; the QNN profile log is read with the
SDK's host ``qnn-profile-viewer`` and its average execute time ("NetRun") becomes ``device_ms`` of a
single-input run, so each timed inference carries the board's own figure, while ``latency_ms``
(host clock) includes the adb round trip. Power comes from an external meter (``meter: csv``).

adbutils 2.12.0 is taken as it behaves: ``sync.pull`` of a missing path creates an empty local folder and
returns 0 instead of failing, so a pull is checked by what arrived; ``sync.push`` to a directory puts the
file inside it under its own name; ``adb.device()`` with several boards and no serial fails, so the
serials are named with the setting to choose one. Tensors the DLC was compiled channel-last
(``--force_channel_last_input`` / ``--force_channel_last_output``) are written and read channel-last.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.devices.base import InferenceResult, Session
from bench.devices.rb5 import BoardSettings
from bench.devices.rb5.aihub import channel_last_names, to_channel_last
from bench.errors import BadInput, DeviceFailure


class BoardError(DeviceFailure):
    """The board, adb or qnn-net-run failed; the message carries the board's own output."""


def netrun_us(viewer_output: str) -> float | None:
    """The average "NetRun" execute time (microseconds) from qnn-profile-viewer's text output."""
    block = re.split(r"Execute Stats \(Average\)", viewer_output, maxsplit=1)
    if len(block) < 2:
        return None
    match = re.search(r"NetRun:\s*([\d.]+)\s*us", block[1])
    return float(match[1]) if match else None


def connect(serial: str | None) -> Any:
    """The adbutils device; a missing server, board or serial is one clear line, and so are several boards
    with no serial named (adbutils 2.12.0 ``AdbClient.device``: "more than one device/emulator")."""
    import adbutils

    try:
        board = adbutils.adb.device(serial=serial)
    except adbutils.AdbError as exc:
        if "more than one device" not in str(exc):
            raise BoardError(f"adb cannot reach the board: {exc}") from exc
        serials = ", ".join(sorted(d.serial for d in adbutils.adb.device_list()))
        raise BadInput(f"several boards are connected over adb ({serials}) and none is named: set runtime.adb.serial "
                       f"in the device profile (or ANDROID_SERIAL) to one of them") from exc
    try:
        board.shell2("true", timeout=30)
    except adbutils.AdbError as exc:
        raise BoardError(f"adb cannot reach the board {board.serial}: {exc}") from exc
    return board


class QnnBoardSession(Session):
    # qnn-net-run's profile gives the execute time on the board; the host clock adds adb round trips
    timing_source = "device_clock"

    def __init__(self, dlc: Path, input_name: str, input_shape: tuple[int, ...],
                 output_shapes: dict[str, tuple[int, ...]], settings: BoardSettings, compile_options: str = "") -> None:
        import adbutils

        self._adb_error = adbutils.AdbError
        self._adb_timeout = adbutils.AdbTimeout
        self.input_channel_last = input_name in channel_last_names(compile_options, "--force_channel_last_input")
        self.output_channel_last = channel_last_names(compile_options, "--force_channel_last_output")
        self.settings = settings
        self.input_name = input_name
        self.input_shape = input_shape
        self.output_shapes = output_shapes
        self.chunk = max(1, settings.chunk_images)
        self.runs = 0
        self.board = connect(settings.serial)
        self.remote = settings.remote_dir.rstrip("/")
        self._local = tempfile.TemporaryDirectory(prefix="qnn-board-")
        self._shell(f"rm -rf {shlex.quote(self.remote)}")  # a dropped session's leftovers must not be read back
        self._shell(f"mkdir -p {shlex.quote(self.remote)}")
        for path in settings.sdk_files():
            self._push(path, self.remote)  # a directory destination: adbutils pushes into it under the file's name
        self._push(dlc, f"{self.remote}/model.dlc")

    def _push(self, local: Path, remote: str) -> None:
        try:
            self.board.sync.push(str(local), remote, check=True)  # check: adbutils compares the size on the board
        except self._adb_error as exc:
            raise BoardError(f"adb push {local} failed ({exc}); the board may have dropped") from exc

    def _shell(self, command: str) -> str:
        step = command.split("&&")[-1].strip()[:80]
        try:
            done = self.board.shell2(command, timeout=self.settings.timeout_s)
        except self._adb_timeout as exc:  # adbutils' timeout is the socket's: silence, not total run time
            raise BoardError(f"on the board, '{step}' gave no output for {self.settings.timeout_s} s ({exc}); the "
                             f"board may have dropped, or raise runtime.adb.timeout_s") from exc
        except self._adb_error as exc:
            raise BoardError(f"adb shell failed ({exc}); the board may have dropped") from exc
        if done.returncode != 0:
            tail = (done.output or "").strip().splitlines()[-3:]
            raise BoardError(f"on the board, '{step}' exited {done.returncode}: "
                             f"{' | '.join(tail) or 'no output'}")
        return done.output or ""

    def _run(self, batches: list[np.ndarray]) -> tuple[list[dict[str, np.ndarray]], float | None]:
        self.runs += 1
        local = Path(self._local.name) / f"run{self.runs}"
        local.mkdir()
        remote = f"{self.remote}/run{self.runs}"
        lines = []
        for i, batch in enumerate(batches):
            name = f"input_{i}.raw"
            sent = to_channel_last(batch) if self.input_channel_last else batch
            np.ascontiguousarray(sent, dtype=np.float32).tofile(local / name)
            lines.append(f"{self.input_name}:={remote}/{name}")
        (local / "input_list.txt").write_text("\n".join(lines) + "\n")
        self._shell(f"mkdir -p {remote}")
        for path in sorted(local.iterdir()):
            self._push(path, remote)
        self._shell(f"cd {self.remote} && LD_LIBRARY_PATH={self.remote} ./qnn-net-run --backend "
                    f"{self.settings.backend} --dlc_path model.dlc --input_list {remote}/input_list.txt "
                    f"--output_dir {remote}/out --profiling_level basic {self.settings.extra_args}".strip())
        try:
            pulled = self.board.sync.pull(f"{remote}/out", str(local / "out"))
        except self._adb_error as exc:
            raise BoardError(f"adb pull {remote}/out failed ({exc}); the board may have dropped") from exc
        if not pulled or not any((local / "out").glob("Result_*")):  # adbutils: a missing path pulls as nothing
            raise BoardError(f"adb pull {remote}/out brought back nothing ({pulled} bytes): qnn-net-run left no "
                             f"outputs on the board")
        self._shell(f"rm -rf {remote}")
        results = []
        for i in range(len(batches)):
            folder = local / "out" / f"Result_{i}"
            named = {}
            for name, shape in self.output_shapes.items():
                raw = folder / f"{re.sub(r'[^A-Za-z0-9_]', '_', name)}.raw"
                if not raw.is_file():
                    raise BoardError(f"qnn-net-run wrote no {raw.name} for input {i} (outputs: "
                                     f"{sorted(p.name for p in folder.glob('*.raw')) if folder.is_dir() else 'none'})")
                values = np.fromfile(raw, dtype=np.float32)
                if values.size != int(np.prod(shape)):
                    raise BoardError(f"{raw.name} holds {values.size} values; the model's {name} has shape {shape}")
                named[name] = self._model_layout(values, name, shape)
            results.append(named)
        return results, self._device_ms(local / "out")

    def _model_layout(self, values: np.ndarray, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """The raw output in the model's shape; a channel-last output is read as such and turned back."""
        if name not in self.output_channel_last or len(shape) < 3:
            return values.reshape(shape)
        return np.ascontiguousarray(np.moveaxis(values.reshape(shape[0], *shape[2:], shape[1]), -1, 1))

    def _device_ms(self, out: Path) -> float | None:
        viewer = self.settings.profile_viewer()
        logs = sorted(out.glob("qnn-profiling-data*.log"))
        if viewer is None or not logs:
            return None
        done = subprocess.run([str(viewer), "--input_log", str(logs[0])], capture_output=True, text=True,
                              timeout=120, check=False)
        us = netrun_us(done.stdout) if done.returncode == 0 else None
        return None if us is None else us / 1e3

    def infer_many(self, batches: list[np.ndarray]) -> list[InferenceResult]:
        if not batches:
            return []
        results, _ = self._run(batches)
        return [InferenceResult(outputs) for outputs in results]

    def infer(self, batch: np.ndarray) -> InferenceResult:
        results, device_ms = self._run([batch])
        return InferenceResult(results[0], device_ms)

    def audit(self) -> dict[str, Any]:
        return {"board": self.board.serial, "qnn_runs": self.runs, "backend": self.settings.backend}

    def _close(self) -> None:
        try:
            self.board.shell2(f"rm -rf {shlex.quote(self.remote)}", timeout=60)
        except self._adb_error:
            pass  # a board that dropped cannot be cleaned; nothing recorded depends on it
        finally:
            self._local.cleanup()
