"""Where a device fact comes from (a deployability rule, an op list, an FP16 policy), so a maintainer can
re-read the source and update the fact when the vendor's does."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    what: str
    where: str
    date: str
