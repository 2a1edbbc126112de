"""Power meters, sampled in the background over exactly the timed window.

This version knows the profile's ``meter: none``: the run then records no power samples
and its energy figures say why they are missing, rather than showing zeros.
"""

from __future__ import annotations

from typing import Any

from bench.errors import BadInput

NO_METER_REASON = "no power meter configured in the device profile"


def meter_name(power: dict[str, Any]) -> str:
    """The profile's meter; only ``none`` is built so far, others are refused before any work."""
    name = str(power.get("meter", "none"))
    if name != "none":
        raise BadInput(f"power meter '{name}' is not built in this version (built: none)")
    return name
