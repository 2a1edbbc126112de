"""FAKE ``adbutils`` (adbutils 2.12.0, the calls the RB5 adapter makes) with simulated RB5 boards, for tests
(tests/fakes/README.md).

Follows adbutils 2.12.0 per call (each names its source): ``adb.device(serial=None, transport_id=None)`` with
its ANDROID_SERIAL fallback and its "more than one device/emulator" error, ``device_list()``,
``AdbDevice.serial``, ``shell2(cmdargs, timeout) -> ShellReturn`` (``AdbTimeout`` when the board stays silent),
``sync.push`` (a directory destination receives the file under its own name; ``check`` compares sizes) and
``sync.pull`` (a missing path is pulled as an empty local folder and 0 bytes, without an error; an existing
local folder is a FileExistsError unless ``exist_ok``). The boards' file system is a folder
(``FAKE_ADB_ROOT``); their shell understands ``true``, ``mkdir -p``, ``rm -rf`` and
``cd D && LD_LIBRARY_PATH=D ./qnn-net-run ...``, which it runs like QNN's qnn-net-run: the DLC (a fake: the
ONNX behind a magic line and a channel-last layout line, as tests/fakes/qai_hub_site writes it) on every
input-list line, reading channel-last inputs and writing ``Result_<i>/<output>.raw`` (float32, channel-last
where the layout says) and a profiling log. ``FAKE_ADB_SERIAL`` names the connected boards (comma-separated);
``FAKE_ADB_DROP_AFTER=N`` makes them disappear after N qnn-net-run calls; ``FAKE_ADB_SILENT=1`` makes
qnn-net-run print nothing until the shell's timeout.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__version__ = "2.12.0"
_MAGIC = b"FAKEDLC\n"
_runs = {"count": 0}


class AdbError(Exception):
    """adbutils 2.12.0 adbutils/errors.py AdbError."""


class AdbTimeout(AdbError):
    """adbutils 2.12.0 adbutils/errors.py AdbTimeout: the socket timed out."""


class AdbSyncError(AdbError):
    """adbutils 2.12.0 adbutils/errors.py AdbSyncError."""


@dataclass
class ShellReturn:
    """adbutils 2.12.0 adbutils/_proto.py ShellReturn."""

    command: str
    returncode: int
    output: str = ""
    stderr: str = ""
    stdout: str = ""


@dataclass
class AdbDeviceInfo:
    """adbutils 2.12.0 adbutils/_proto.py AdbDeviceInfo."""

    serial: str
    state: str


def _boards() -> list[str]:
    return [s for s in os.environ.get("FAKE_ADB_SERIAL", "").split(",") if s]


def _root() -> Path:
    return Path(os.environ["FAKE_ADB_ROOT"])


def _local(remote: str) -> Path:
    return _root() / remote.lstrip("/")


class Sync:
    """adbutils 2.12.0 adbutils/sync.py Sync."""

    def __init__(self, device: AdbDevice) -> None:
        self._device = device

    def _stat(self, path: str) -> tuple[int, int]:
        # adbutils 2.12.0 sync.py Sync.stat (mode, size); adbd answers a missing path with zeros (mode 0, size 0)
        self._device._alive()
        target = _local(path)
        if target.is_dir():
            return stat.S_IFDIR | 0o755, 0
        if target.is_file():
            return stat.S_IFREG | 0o644, target.stat().st_size
        return 0, 0

    def push(self, src: Any, dst: Any, mode: int = 0o755, check: bool = False) -> int:
        # adbutils 2.12.0 sync.py Sync.push: a directory dst becomes dst/<src name>; check compares the size after
        dst = dst.as_posix() if isinstance(dst, Path) else str(dst)
        if self._stat(dst)[0] & stat.S_IFDIR:
            if not isinstance(src, (Path, str)):
                raise AdbSyncError("src should be a file path when dst is a directory")
            dst = f"{dst.rstrip('/')}/{Path(src).name}"
        data = Path(src).read_bytes()
        target = _local(dst)
        target.parent.mkdir(parents=True, exist_ok=True)  # adbd's SEND creates missing parent folders
        target.write_bytes(data)
        if check and self._stat(dst)[1] != len(data):
            raise AdbError(f"Push not complete, expect pushed {len(data)}, actually pushed {self._stat(dst)[1]}")
        return len(data)

    def pull(self, src: str, dst: Any, exist_ok: bool = False) -> int:
        # adbutils 2.12.0 sync.py Sync.pull: a regular file is pulled as a file; anything else (a missing path
        # included, whose mode is 0) as a folder: os.makedirs(dst, exist_ok), then its entries, 0 bytes if none
        mode, _ = self._stat(src)
        if mode & stat.S_IFREG:
            data = _local(src).read_bytes()
            Path(dst).write_bytes(data)
            return len(data)
        os.makedirs(dst, exist_ok=exist_ok)
        return self._pull_entries(_local(src), Path(dst), exist_ok)

    def _pull_entries(self, source: Path, dst: Path, exist_ok: bool) -> int:
        # adbutils 2.12.0 sync.py Sync.pull_dir: LIST of a missing folder is empty (adbd answers DONE at once)
        if not source.is_dir():
            return 0
        total = 0
        for entry in sorted(source.iterdir()):
            if entry.is_dir():
                os.makedirs(dst / entry.name, exist_ok=exist_ok)
                total += self._pull_entries(entry, dst / entry.name, exist_ok)
            else:
                shutil.copyfile(entry, dst / entry.name)
                total += entry.stat().st_size
        return total


class AdbDevice:
    """adbutils 2.12.0 adbutils/_device.py AdbDevice: no I/O until the first call."""

    def __init__(self, client: AdbClient, serial: str | None = None, transport_id: int | None = None) -> None:
        if not serial and not transport_id:
            raise AdbError("serial, transport_id must set atleast one")
        self._client = client
        self._serial = serial

    @property
    def serial(self) -> str | None:
        return self._serial

    @property
    def sync(self) -> Sync:
        return Sync(self)

    def _alive(self) -> None:
        # adbutils 2.12.0 _device_base.py BaseDevice.open_transport: the server's FAIL text for an unknown serial
        drop = os.environ.get("FAKE_ADB_DROP_AFTER")
        if self._serial not in _boards() or (drop is not None and _runs["count"] >= int(drop)):
            raise AdbError(f"device '{self._serial}' not found")

    def shell2(self, cmdargs: str | list[str], timeout: float | None = 600, encoding: str | None = "utf-8",
               rstrip: bool = False, v2: bool = False) -> ShellReturn:
        # adbutils 2.12.0 _device_base.py BaseDevice.shell2 (shell v1: output only, exit code from "; echo")
        self._alive()
        command = cmdargs if isinstance(cmdargs, str) else shlex.join(cmdargs)
        if command == "true":
            return ShellReturn(command, 0, "")
        if command.startswith("mkdir -p "):
            _local(shlex.split(command)[2]).mkdir(parents=True, exist_ok=True)
            return ShellReturn(command, 0, "")
        if command.startswith("rm -rf "):
            shutil.rmtree(_local(shlex.split(command)[2]), ignore_errors=True)
            return ShellReturn(command, 0, "")
        if "./qnn-net-run" in command:
            if os.environ.get("FAKE_ADB_SILENT") and timeout:
                raise AdbTimeout("adb read timeout")  # adbutils 2.12.0 _adb.py AdbConnection.read
            return self._qnn_net_run(command)
        return ShellReturn(command, 127, f"/bin/sh: {command.split()[0]}: not found")

    def _qnn_net_run(self, command: str) -> ShellReturn:
        _runs["count"] += 1
        cwd = _local(re.search(r"cd (\S+)", command)[1])
        args = shlex.split(command.split("./qnn-net-run", 1)[1])
        opts = dict(zip(args[::2], args[1::2], strict=False))
        if not (cwd / opts.get("--backend", "")).is_file():
            return ShellReturn(command, 1, f"Failed to load backend {opts.get('--backend')}")
        dlc = (cwd / opts["--dlc_path"]).read_bytes()
        if not dlc.startswith(_MAGIC):
            return ShellReturn(command, 1, "Failed to load DLC: invalid container")
        header, _, onnx_bytes = dlc[len(_MAGIC):].partition(b"\n")
        layout = json.loads(header)
        import onnxruntime as ort

        session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        spec = session.get_inputs()[0]
        names = [o.name for o in session.get_outputs()]
        out = _local(opts["--output_dir"])
        lines = _local(opts["--input_list"]).read_text().split()
        for i, line in enumerate(lines):
            name, _, path = line.partition(":=")
            values = np.fromfile(_local(path), dtype=np.float32)
            if name in layout["channel_last_input"]:
                shape = spec.shape
                values = np.moveaxis(values.reshape(shape[0], *shape[2:], shape[1]), -1, 1)
            folder = out / f"Result_{i}"
            folder.mkdir(parents=True, exist_ok=True)
            for out_name, value in zip(names, session.run(names, {name: values.reshape(spec.shape)}), strict=True):
                value = np.asarray(value, np.float32)
                if out_name in layout["channel_last_output"] and value.ndim >= 3:
                    value = np.moveaxis(value, 1, -1)
                np.ascontiguousarray(value).tofile(folder / f"{re.sub(r'[^A-Za-z0-9_]', '_', out_name)}.raw")
        (out / "qnn-profiling-data_0.log").write_bytes(b"\x00fake qnn profile\x00")
        return ShellReturn(command, 0, "qnn-net-run pid:1234\nFinished Executing Graphs\n")


class AdbClient:
    """adbutils 2.12.0 adbutils/__init__.py AdbClient."""

    def list(self, extended: bool = False) -> list[AdbDeviceInfo]:
        return [AdbDeviceInfo(serial, "device") for serial in _boards()]

    def device_list(self) -> list[AdbDevice]:
        # adbutils 2.12.0 __init__.py AdbClient.iter_device: boards in state "device"
        return [AdbDevice(self, info.serial) for info in self.list() if info.state == "device"]

    def device(self, serial: str | None = None, transport_id: int | None = None) -> AdbDevice:
        # adbutils 2.12.0 __init__.py AdbClient.device: serial, transport_id, ANDROID_SERIAL, else the only board
        if serial:
            return AdbDevice(self, serial=serial)
        if transport_id:
            return AdbDevice(self, transport_id=transport_id)
        serial = os.environ.get("ANDROID_SERIAL")
        if serial:
            return AdbDevice(self, serial)
        boards = self.device_list()
        if not boards:
            raise AdbError("Can't find any android device/emulator")
        if len(boards) > 1:
            raise AdbError("more than one device/emulator, please specify the serial number")
        return boards[0]


adb = AdbClient()
device = adb.device
