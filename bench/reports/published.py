"""Published figures beside measured ones: a model card's per-category AUROC next to the host reference's
and, for IMX500 runs, the published INT8 figures and drop next to the device's.

A card lists them under ``published.<dataset>`` (``fp32_image_auroc``, ``fp32_pixel_auroc``: category ->
percent) and ``published.<dataset>_int8`` (``fp32_image_auroc`` and ``int8_image_auroc`` of the quantization
study, whose FP32 was re-evaluated in the same script, so the published drop uses that FP32). Every figure
here is in percent, drops in points (FP32 minus INT8, host minus device: positive is worse), because
metrics.json holds fractions and the card holds percent; mixing them is the mistake this module avoids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.comparison import quantization_info
from bench.errors import BadInput
from bench.records import RunRecord

INT8_KINDS = ("imx500",)


@dataclass(frozen=True)
class Published:
    card: str
    source: str
    fp32: dict[str, Any]   # published[<dataset>]
    int8: dict[str, Any]   # published[<dataset>_int8], or empty

    def figure(self, block: dict[str, Any], key: str, category: str) -> float | None:
        value = (block.get(key) or {}).get(category)
        return float(value) if value is not None else None

    def categories(self) -> set[str]:
        """The categories with a figure (``mean`` holds the card's dataset means, not a category)."""
        return {c for block in (self.fp32, self.int8) for key, figures in block.items()
                if key.endswith("_auroc") and isinstance(figures, dict) for c in figures}

    def int8_drop(self, category: str) -> float | None:
        fp32, int8 = (self.figure(self.int8, key, category) for key in ("fp32_image_auroc", "int8_image_auroc"))
        # the card's figures have two decimals: round away the float noise of their difference
        return round(fp32 - int8, 2) if fp32 is not None and int8 is not None else None


def published_for(model: dict[str, Any], dataset: str) -> Published | None:
    """The published per-category figures of the card a run's ``model`` section names, or None when it lists none."""
    from bench.models.cards import card_of_run

    try:
        card = card_of_run(model)
    except BadInput:
        return None
    published = card.data.get("published") or {}
    fp32 = published.get(dataset)
    if not isinstance(fp32, dict) or not isinstance(fp32.get("fp32_image_auroc"), dict):
        return None
    return Published(card.name, " ".join(str(published.get("source", "")).split()), fp32,
                     published.get(f"{dataset}_int8") or {})


def _pct(fraction: float | None) -> float | None:
    return fraction * 100 if fraction is not None else None


def _difference(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None


def mask_convention(manifest: dict[str, Any]) -> str | None:
    """How the run's masks became pixel ground truth: pixel AUROC compares only under one convention."""
    return manifest["model"].get("mask_convention") or (manifest.get("request") or {}).get("mask_convention")


DEVICE_COLUMNS = ("device", "emulated", "calibration", "published_int8_image_auroc_pct", "published_int8_drop_points",
                  "device_image_auroc_pct", "measured_drop_points", "device_run")
PUBLISHED_COLUMNS = ("model", "dataset", "category", "published_fp32_image_auroc_pct", "published_fp32_pixel_auroc_pct",
                     "host_image_auroc_pct", "host_pixel_auroc_pct", "mask_convention", *DEVICE_COLUMNS, "host_run",
                     "published_source")


def _device_columns(pub: Published, host_image: float | None, dev: RunRecord | None,
                    category: str) -> dict[str, Any]:
    """The INT8 columns: published next to measured for an IMX500 run, empty without one."""
    if dev is None:
        return dict.fromkeys(DEVICE_COLUMNS)
    device_image = _pct(dev.metrics["categories"].get(category, {}).get("image_auroc"))
    return {
        "device": dev.manifest["device"]["profile"], "emulated": bool(dev.manifest["device"].get("emulated")),
        "calibration": quantization_info(dev.manifest, category).get("calibration"),
        "published_int8_image_auroc_pct": pub.figure(pub.int8, "int8_image_auroc", category),
        "published_int8_drop_points": pub.int8_drop(category),
        "device_image_auroc_pct": device_image, "measured_drop_points": _difference(host_image, device_image),
        "device_run": dev.run_id,
    }


def _row(pub: Published, ref: RunRecord, dev: RunRecord | None, category: str) -> dict[str, Any]:
    host = ref.metrics["categories"][category]
    host_image = _pct(host.get("image_auroc"))
    return {
        "model": ref.manifest["model"]["name"], "dataset": ref.manifest["dataset"]["name"], "category": category,
        "published_fp32_image_auroc_pct": pub.figure(pub.fp32, "fp32_image_auroc", category),
        "published_fp32_pixel_auroc_pct": pub.figure(pub.fp32, "fp32_pixel_auroc", category),
        "host_image_auroc_pct": host_image, "host_pixel_auroc_pct": _pct(host.get("pixel_auroc")),
        "mask_convention": mask_convention(ref.manifest),
        **_device_columns(pub, host_image, dev, category),
        "host_run": ref.run_id, "published_source": f"card {pub.card}: {pub.source}",
    }


def published_rows(references: list[RunRecord], drift: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per published category a reference run covers, once per IMX500 run paired with it
    (or once with no device when none is)."""
    rows = []
    for ref in references:
        pub = published_for(ref.manifest["model"], ref.manifest["dataset"]["name"])
        if pub is None:
            continue
        devices: list[RunRecord | None] = [item["dev"] for item in drift if item["ref"] is ref
                                           and item["dev"].manifest["device"].get("kind") in INT8_KINDS]
        covered = sorted(pub.categories() & set(ref.metrics["categories"]))
        rows += [_row(pub, ref, dev, category) for dev in devices or [None] for category in covered]
    return rows
