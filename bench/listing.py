"""``bench list``: the names a user can pass to --device, --model and --dataset."""

from __future__ import annotations

from bench.data.datasets import DATASETS
from bench.devices.profiles import load_profile, profile_names
from bench.models.cards import card_names, load_card


def listing(what: str) -> list[dict[str, str]]:
    if what == "devices":
        profiles = [load_profile(n) for n in profile_names()]
        return [{"name": p.name, "kind": p.kind, "role": p.role, "description": p.description} for p in profiles]
    if what == "models":
        return [{"name": n, "description": " ".join(str(load_card(n).data.get("description", "")).split())}
                for n in card_names()]
    return [{"name": n, "description": desc} for n, (_, desc) in sorted(DATASETS.items())]
