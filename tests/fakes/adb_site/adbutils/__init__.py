"""FAKE ``adbutils`` (2.12 API subset) with a simulated RB5 board, for tests (tests/fakes/README.md).

Follows adbutils' names and return types: ``adb.device(serial=None)``, ``AdbDevice.serial``,
``shell2(cmd, timeout) -> ShellReturn(command, returncode, output)``, ``sync.push(src, dst)`` and
``sync.pull(src, dst)``, ``AdbError`` with its messages for a missing board or serial. The board's
file system is a folder (``FAKE_ADB_ROOT``); its shell understands ``true``, ``mkdir -p``, ``rm -rf``
and ``cd D && LD_LIBRARY_PATH=D ./qnn-net-run ...``, which it runs like QNN's qnn-net-run: the
DLC (a fake: the ONNX behind a magic line) on every input-list line, writing
``Result_<i>/<output>.raw`` (float32) and a profiling log. ``FAKE_ADB_SERIAL`` names the board;
``FAKE_ADB_DROP_AFTER=N`` makes the board disappear after N qnn-net-run calls.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_MAGIC = b"FAKEDLC\n"
_runs = {"count": 0}


class AdbError(Exception):
    pass


class AdbTimeout(AdbError):
    pass


@dataclass
class ShellReturn:
    command: str
    returncode: int
    output: str
    stderr: str = ""
    stdout: str = ""


def _root() -> Path:
    return Path(os.environ["FAKE_ADB_ROOT"])


def _local(remote: str) -> Path:
    return _root() / remote.lstrip("/")


class _Sync:
    def __init__(self, device: AdbDevice) -> None:
        self.device = device

    def push(self, src: Any, dst: str, mode: int = 0o755, check: bool = False) -> int:
        self.device._alive()
        target = _local(dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
        return target.stat().st_size

    def pull(self, src: str, dst: str, exist_ok: bool = False) -> int:
        self.device._alive()
        source = _local(src)
        if not source.exists():
            raise AdbError(f"remote path {src} does not exist")
        if source.is_dir():
            shutil.copytree(source, dst, dirs_exist_ok=exist_ok)
        else:
            shutil.copyfile(source, dst)
        return 1


class AdbDevice:
    def __init__(self, serial: str) -> None:
        self.serial = serial
        self.sync = _Sync(self)

    def _alive(self) -> None:
        if self.serial != os.environ.get("FAKE_ADB_SERIAL"):
            raise AdbError(f"device '{self.serial}' not found")
        drop = os.environ.get("FAKE_ADB_DROP_AFTER")
        if drop is not None and _runs["count"] >= int(drop):
            raise AdbError(f"device '{self.serial}' not found")

    def shell2(self, cmdargs: str | list[str], timeout: float | None = 600, encoding: str = "utf-8",
               rstrip: bool = False, v2: bool = False) -> ShellReturn:
        self._alive()
        command = cmdargs if isinstance(cmdargs, str) else " ".join(cmdargs)
        if command == "true":
            return ShellReturn(command, 0, "")
        if command.startswith("mkdir -p "):
            _local(shlex.split(command)[2]).mkdir(parents=True, exist_ok=True)
            return ShellReturn(command, 0, "")
        if command.startswith("rm -rf "):
            shutil.rmtree(_local(shlex.split(command)[2]), ignore_errors=True)
            return ShellReturn(command, 0, "")
        if "./qnn-net-run" in command:
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
        import onnxruntime as ort

        session = ort.InferenceSession(dlc[len(_MAGIC):], providers=["CPUExecutionProvider"])
        spec = session.get_inputs()[0]
        names = [o.name for o in session.get_outputs()]
        out = _local(opts["--output_dir"])
        lines = _local(opts["--input_list"]).read_text().split()
        for i, line in enumerate(lines):
            name, _, path = line.partition(":=")
            values = np.fromfile(_local(path), dtype=np.float32).reshape(spec.shape)
            folder = out / f"Result_{i}"
            folder.mkdir(parents=True, exist_ok=True)
            for out_name, value in zip(names, session.run(names, {name: values}), strict=True):
                np.asarray(value, np.float32).tofile(folder / f"{re.sub(r'[^A-Za-z0-9_]', '_', out_name)}.raw")
        (out / "qnn-profiling-data_0.log").write_bytes(b"\x00fake qnn profile\x00")
        return ShellReturn(command, 0, "qnn-net-run pid:1234\nFinished Executing Graphs\n")


class AdbClient:
    def device(self, serial: str | None = None, transport_id: int | None = None) -> AdbDevice:
        board = os.environ.get("FAKE_ADB_SERIAL")
        if board is None:
            raise AdbError("Can't find any android device/emulator")
        if serial is not None and serial != board:
            return AdbDevice(serial)  # like adbutils: no I/O until the first call, which then fails
        return AdbDevice(board)


adb = AdbClient()
