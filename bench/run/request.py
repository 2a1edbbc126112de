"""What defines a run: stored in the manifest, so ``--resume`` needs nothing else."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.errors import BadInput
from bench.records import read_manifest
from bench.run.measure import Measurement

PATH_FIELDS = ("data_root", "checkpoint", "backbone_weights")


@dataclass(frozen=True)
class RunRequest:
    """Everything that defines a run, as the user gave it."""

    device: str
    model: str
    dataset: str
    data_root: Path
    checkpoint: Path | None  # None: the card's default (bench fit's folder, or an exported card's model path)
    categories: list[str] | None = None
    limit: int | None = None
    backbone_weights: Path | None = None
    skip_bad: bool = False
    tensor_cache: bool = False
    emulate: bool = False
    mask_convention: str | None = None
    calibration: str | None = None  # INT8 representative set (bench.data.calibration); None: the profile's
    measurement: Measurement = field(default_factory=Measurement)
    note: str | None = None  # one line the report shows with the run (the demo says why its AUROC is low)

    def to_manifest(self) -> dict[str, Any]:
        data = asdict(self)
        for key in PATH_FIELDS:
            data[key] = str(Path(data[key]).resolve()) if data[key] is not None else None
        return data

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> RunRequest:
        data = dict(data)
        for key in PATH_FIELDS:
            data[key] = Path(data[key]) if data[key] is not None else None
        data["measurement"] = Measurement(**data["measurement"])
        return cls(**data)

    def with_measurement(self, **overrides: Any) -> RunRequest:
        """The request with the measurement settings given (None leaves one as it is)."""
        values = {k: v for k, v in overrides.items() if v is not None}
        return replace(self, measurement=replace(self.measurement, **values))


def resumed_request(run_dir: Path) -> RunRequest:
    """The request an unfinished run was started with, read from its manifest."""
    if not run_dir.is_dir():
        raise BadInput(f"--resume {run_dir.name}: no such run in {run_dir.parent}")
    manifest = read_manifest(run_dir)
    if manifest.get("status") == "complete":
        raise BadInput(f"--resume {run_dir.name}: the run is complete; nothing to resume (start a new run instead)")
    if not manifest.get("request"):
        raise BadInput(f"--resume {run_dir.name}: its manifest records no request, so it cannot be resumed")
    return RunRequest.from_manifest(manifest["request"])
