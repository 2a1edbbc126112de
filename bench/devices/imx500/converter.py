"""Sony's IMX500 converter (``imxconv-pt``): MCT-quantized ONNX in, ``packerOut.zip`` out.

The converter lives in its own tool environment because imx500-converter 3.19.2 pins
mct-quantizers 1.6.0 while the MCT 2.6.1 that quantizes the model needs 1.7.0; the two never
share an interpreter. ``python -m bench.devices.imx500.converter install`` creates that
environment (a venv under the cache folder, or ``BENCH_IMXCONV_ENV``) and checks Java 17, which
the converter's back end (sdspconv, a JVM program) needs; where Java is missing and apt is
available as root it installs ``openjdk-17-jre-headless``.

Every conversion writes ``<name>_MemoryReport.json``. It is parsed and a network that does not
fit the sensor's on-chip memory (8 MB) is refused with the figures, before the converter's
own Java stack trace could confuse anyone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import venv
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.paths import cache_dir

CONVERTER_VERSION = "3.19.2"
CONVERTER_REQUIREMENT = f"imx500-converter[pt]=={CONVERTER_VERSION}"
JAVA_MIN = 17
CLI = "imxconv-pt"
DEFAULT_TIMEOUT_S = 1800
_UNITS = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}


class ConversionFailed(BenchError):
    """imxconv-pt rejected the model or failed; the message has the converter's own error line."""

    exit_code = 2


class ConverterMissing(BenchError):
    """The converter tool environment or Java 17 is missing."""

    exit_code = 2


def tool_env() -> Path:
    """Where the converter's own virtual environment lives."""
    return Path(os.environ.get("BENCH_IMXCONV_ENV", cache_dir() / "tools" / f"imx500-converter-{CONVERTER_VERSION}"))


def find_converter(configured: str | None = None) -> Path | None:
    """The profile's ``runtime.converter``, else the tool environment's, else one on PATH."""
    if configured:
        path = Path(os.path.expanduser(configured))
        return path if path.is_file() else None
    bundled = tool_env() / "bin" / CLI
    if bundled.is_file():
        return bundled
    found = shutil.which(CLI)
    return Path(found) if found else None


def java_major(java: str | None = None) -> int | None:
    """The major version of ``java`` on PATH (``java -version`` prints to stderr), or None."""
    exe = java or shutil.which("java")
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if match is None:
        return None
    major = int(match[1])
    return int(match[2]) if major == 1 and match[2] else major  # "1.8.0" is Java 8


def converter_status(configured: str | None = None) -> tuple[bool, str]:
    """Whether a conversion can run here, and the one-line reason (for ``bench doctor``)."""
    cli = find_converter(configured)
    if cli is None:
        return False, (f"{CLI} not found: python -m bench.devices.imx500.converter install "
                       f"(a separate venv with {CONVERTER_REQUIREMENT})")
    java = java_major()
    if java is None or java < JAVA_MIN:
        found = "no java on PATH" if java is None else f"java {java}"
        return False, f"{CLI} needs Java {JAVA_MIN}+, found {found} (apt install openjdk-17-jre-headless)"
    return True, f"{cli} (imx500-converter {CONVERTER_VERSION}), Java {java}"


def ensure_java() -> int:
    """Java 17+ on PATH, installed with apt when missing and possible; returns the major version."""
    java = java_major()
    if java is not None and java >= JAVA_MIN:
        return java
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise ConverterMissing(f"the IMX500 converter needs Java {JAVA_MIN}+ (found {java}); install "
                               f"openjdk-17-jre-headless (as root: apt-get install -y openjdk-17-jre-headless)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([apt, "update", "-q"], check=False, env=env)
    subprocess.run([apt, "install", "-y", "-q", "--no-install-recommends", "openjdk-17-jre-headless"], check=True,
                   env=env)
    java = java_major()
    if java is None or java < JAVA_MIN:
        raise ConverterMissing(f"apt installed openjdk-17-jre-headless but java {JAVA_MIN} is not on PATH")
    return java


def install(env_dir: Path | None = None) -> Path:
    """Create the converter's tool environment (idempotent) and return its ``imxconv-pt``."""
    env_dir = env_dir or tool_env()
    cli = env_dir / "bin" / CLI
    ensure_java()
    if cli.is_file():
        return cli
    print(f"creating the IMX500 converter environment in {env_dir} ...", file=sys.stderr)
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, CONVERTER_REQUIREMENT], check=True)
    if not cli.is_file():
        raise ConverterMissing(f"{CONVERTER_REQUIREMENT} installed but {cli} is missing")
    return cli


@dataclass(frozen=True)
class MemoryReport:
    """The converter's ``<name>_MemoryReport.json``, sizes in bytes."""

    name: str
    usage_bytes: int
    available_bytes: int
    runtime_bytes: int
    model_bytes: int
    utilization: str
    fits: bool
    input_persistent: bool

    def describe(self) -> str:
        return (f"{self.usage_bytes / 2**20:.2f} MiB of the IMX500's {self.available_bytes / 2**20:.2f} MiB "
                f"({self.utilization}; model {self.model_bytes / 2**20:.2f} MiB, runtime "
                f"{self.runtime_bytes / 2**20:.2f} MiB)")


def parse_size(text: str) -> int:
    """``2.63MB`` / ``656.00KB`` / ``147744B`` -> bytes (the converter's units are binary)."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMG]?B)\s*", str(text))
    if match is None:
        raise ValueError(f"unreadable size '{text}'")
    return round(float(match[1]) * _UNITS[match[2]])


def parse_memory_report(path: Path) -> MemoryReport:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))["Memory Report"]
        return MemoryReport(
            name=str(data["Name"]), usage_bytes=parse_size(data["Memory Usage"]),
            available_bytes=parse_size(data["Total Memory Available On Chip"]),
            runtime_bytes=parse_size(data["Runtime Memory Physical Size"]),
            model_bytes=parse_size(data["Model Memory Physical Size"]),
            utilization=str(data["Memory Utilization"]), fits=bool(data["Fit In Chip"]),
            input_persistent=bool(data.get("Input Persistent", True)))
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConversionFailed(f"{path}: unreadable converter memory report ({exc})") from exc


def _error_line(log: str) -> str:
    """The converter's most telling error line: its coded ERROR, without the Java class prefix."""
    lines = [line.strip() for line in log.splitlines() if "ERROR" in line]
    coded = [line for line in lines if "CODE: [" in line]
    chosen = (coded or lines or [log.strip().splitlines()[-1] if log.strip() else "no output"])[0]
    chosen = re.sub(r"^.*?ERROR\s*:?\s*", "", chosen)
    return re.sub(r"\s*\[/\S+:\d+\]$", "", chosen).strip()


@dataclass(frozen=True)
class Conversion:
    packer_zip: Path
    memory: MemoryReport
    seconds: float
    log: Path
    command: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"packer_zip": self.packer_zip.name, "memory": asdict(self.memory), "seconds": round(self.seconds, 1),
                "log": self.log.name, "command": self.command, "converter_version": CONVERTER_VERSION}


def convert(onnx_path: Path, out_dir: Path, cli: Path, input_persistency: bool = True,
            timeout_s: float = DEFAULT_TIMEOUT_S) -> Conversion:
    """Run ``imxconv-pt`` on an MCT-quantized ONNX; raise with the reason when it fails or does not fit."""
    out_dir.mkdir(parents=True, exist_ok=True)
    command = [str(cli), "-i", str(onnx_path), "-o", str(out_dir), "--overwrite-output", "--report-size-unit", "B",
               "--input-persistency" if input_persistency else "--no-input-persistency"]
    log_path = out_dir / "converter.log"
    scratch = out_dir / ".tmp"  # the converter leaves its temporary folder behind when it fails
    scratch.mkdir(exist_ok=True)
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False,
                              env={**os.environ, "TMPDIR": str(scratch)})
    except subprocess.TimeoutExpired as exc:
        raise ConversionFailed(f"{onnx_path}: {CLI} did not finish within {timeout_s:.0f} s") from exc
    except OSError as exc:
        raise ConverterMissing(f"{cli}: cannot run the converter ({exc.strerror})") from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    seconds = time.perf_counter() - started
    log = done.stdout + done.stderr
    log_path.write_text(log, encoding="utf-8")
    report_path = out_dir / f"{onnx_path.stem}_MemoryReport.json"
    memory = parse_memory_report(report_path) if report_path.is_file() else None
    if memory is not None and not memory.fits:
        raise ConversionFailed(f"{onnx_path}: the network does not fit the IMX500: it needs {memory.describe()}; "
                               f"use a smaller backbone or input size")
    if "exited with error code: 127" in log:
        raise ConverterMissing(f"{CLI}: its back end could not start (exit 127): Java {JAVA_MIN}+ must be on PATH")
    packer = out_dir / "packerOut.zip"
    if done.returncode != 0 or memory is None or not packer.is_file():
        raise ConversionFailed(f"{onnx_path}: {CLI} failed (exit {done.returncode}): {_error_line(log)} "
                               f"(full log: {log_path})")
    return Conversion(packer, memory, seconds, log_path, command)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.devices.imx500.converter install|status``."""
    args = argv if argv is not None else sys.argv[1:]
    if args not in (["install"], ["status"]):
        print("usage: python -m bench.devices.imx500.converter install|status", file=sys.stderr)
        return 2
    try:
        if args == ["install"]:
            print(install())
        ok, reason = converter_status()
    except (BenchError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(("ok  " if ok else "NO  ") + reason)
    return 0 if ok else 2


if __name__ == "__main__":
    raise SystemExit(main())

