"""Small helpers shared by several modules."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import hashlib
import importlib
import importlib.util
from collections.abc import Callable
from importlib import metadata
from pathlib import Path


def installed_version(dist: str) -> str | None:
    """The installed distribution's version, else the importable module's ``__version__``, else None.

    The module fallback covers packages installed without metadata (a distro's python3-* package, a
    test's stand-in module)."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        pass
    try:
        module = importlib.import_module(dist.replace("-", "_"))
    except ImportError:
        return None
    return str(getattr(module, "__version__", "unknown"))


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def source_revision(*packages: str) -> str:
    """sha256 (16 hex digits) over the Python sources of ``packages`` (module names, files or folders).

    A cache key part: any edit to the code that makes an artifact (an FP16 policy, a wrapper, a default,
    the network or its exporter) changes it, so a cache never hands back what an older harness built.
    """
    digest = hashlib.sha256()
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ValueError(f"no module named {name!r}")
        origin = Path(spec.origin)
        files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
        for path in files:
            digest.update(path.relative_to(origin.parent).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc's ``malloc_trim``; a no-op elsewhere):
    after large, short-lived allocations (a quantization) the resident set otherwise stays at its peak."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, looked up once (``find_library`` runs ``ldconfig``); None without glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
