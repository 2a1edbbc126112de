"""A device family: everything the harness knows about one kind of device, exported by its package.

Each package under ``bench/devices/<family>/`` defines ``FAMILY = DeviceFamily(...)`` in its
``__init__.py`` and imports nothing heavy there: the adapter, its emulated numerics and its
deployability rules are named as ``"module:attribute"`` and imported only when used, so a lean
install (a Pi, a Jetson) never imports another family's runtime. The registry
(``bench/devices/registry.py``) lists the packages, one line each.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from bench.errors import BadInput
from bench.util import source_revision


def load_attribute(spec: str, what: str) -> Any:
    """``"package.module:name"`` imported; an ImportError (a missing extra) becomes one line naming it."""
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BadInput(f"{what} cannot load here: {exc}") from exc
    return getattr(module, attr)


@dataclass(frozen=True)
class DeviceFamily:
    """One family's parts. ``name`` is the profile ``kind`` that selects it, the deployability target
    and the registry key: one name everywhere.

    - ``adapter``: the Device subclass, ``"module:Class"``.
    - ``settings``: the frozen dataclass the profile's ``runtime`` section is read into (unknown keys
      refused); its resolved value, defaults included, is part of the artifact cache key.
    - ``compiles_with``: modules besides the family package whose source shapes its artifacts; the
      compiler revision hashes the package and these.
    - ``emulation``: ``"module:Class"`` of the session factory for ``--emulate`` (None: no emulation).
    - ``lint``: ``"module:function"`` taking the lint context and returning findings (None: no rules).
    """

    name: str
    description: str
    adapter: str
    settings: type
    emulation: str | None = None
    lint: str | None = None
    lint_label: str = ""
    compiles_with: tuple[str, ...] = field(default=())

    def adapter_class(self) -> type:
        return load_attribute(self.adapter, f"adapter '{self.name}'")

    def compiler_revision(self) -> str:
        package = self.adapter.partition(":")[0].rsplit(".", 1)[0]
        return source_revision(package, *self.compiles_with)
