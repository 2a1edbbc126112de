"""Run records built directly (no device), for the tests of pairing, compare, nightly and the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.records import RunWriter


def make_run(root: Path, run_id: str, scores: np.ndarray, labels: np.ndarray, device: str = "host",
             sha: str = "c" * 64, inputs: list[str] | None = None, maps: np.ndarray | None = None,
             metrics: dict | None = None, artifact: dict | None = None, role: str | None = None,
             created: str | None = None, kind: str | None = None, index: str | None = None,
             status: str = "complete", error: str | None = None, emulated: bool = False,
             errors: dict[int, str] | None = None) -> Path:
    """A run of one category 'cat'; another ``status`` ends it as the harness ends a broken run (no metrics);
    ``errors`` gives images (by position) the error the loader records for them, with no score."""
    ids = [f"cat/test/{i:03d}.png" for i in range(len(scores))]
    entry = {"checkpoint_sha256": sha} | ({"artifact_details": artifact} if artifact is not None else {})
    manifest = {
        "command": "test", "device": {"profile": device, "kind": kind or device, "emulated": emulated,
                                      "role": role or ("reference" if device == "host" else "device")},
        "model": {"name": "tinyglass", "categories": {"cat": entry}},
        "dataset": {"name": "mvtec", "root": str(root), "categories": ["cat"], "index_sha256": index},
    }
    if created is not None:
        manifest["created_at"] = created
    writer = RunWriter.create(root, manifest, run_id)
    for i, image_id in enumerate(ids):
        if maps is not None:
            writer.save_map("cat", image_id, maps[i])
        writer.append("images", [{"image_id": image_id, "category": "cat", "defect_type": "x", "label": int(labels[i]),
                                  "input_sha256": (inputs or ids)[i],
                                  "score": None if i in (errors or {}) else float(scores[i]),
                                  "error": (errors or {}).get(i)}])
    if status != "complete":
        writer.finish(status, None, error=error)
    else:
        writer.finish("complete", metrics if metrics is not None else {})
    return root / run_id


def swap_pairs(scores: np.ndarray, labels: np.ndarray, pairs: int) -> np.ndarray:
    """Moves the lowest-scored defective image below ``pairs`` more good images, one at a time: each move adds
    exactly one discordant pair, so image AUROC falls by ``pairs / (goods x defectives)``."""
    out = scores.astype(np.float64).copy()
    for _ in range(pairs):
        worst = np.flatnonzero(labels == 1)[np.argmin(out[labels == 1])]
        below = np.sort(out[labels == 0][out[labels == 0] < out[worst]])
        assert below.size, "no good image below the lowest defective one"
        out[worst] = (below[-1] + below[-2]) / 2 if below.size > 1 else below[-1] - 1.0
    return out


def drift_of(scores: np.ndarray, labels: np.ndarray, pairs: int) -> float:
    """The expected AUROC change in points, counted independently of the code under test."""
    return -100 * pairs / ((labels == 0).sum() * (labels == 1).sum())
