"""``bench inspect dataset``: counts per category and every problem, before any device time is spent."""

from __future__ import annotations

from collections import Counter
from typing import Any

from PIL import Image, UnidentifiedImageError

from bench.data.datasets import Dataset
from bench.data.preprocess import check_mask_size
from bench.data.samples import Sample
from bench.data.stream import prefetch
from bench.errors import BadInput
from bench.progress import bar


def _verify(path: Any) -> str | None:
    """Header and checksums of the whole file (truncation shows), without decoding pixels."""
    try:
        with Image.open(path) as img:
            img.verify()
    except FileNotFoundError:
        return f"{path}: image not found"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return f"{path}: unreadable image ({exc})"
    return None


def sample_problems(sample: Sample) -> list[str]:
    if sample.problem:
        return [sample.problem]
    problems = [p for p in [_verify(sample.path)] if p]
    if sample.mask_path is not None and not problems:
        try:
            check_mask_size(sample.mask_path, sample.path)
        except BadInput as exc:
            problems.append(str(exc))
    return problems


def inspect_dataset(dataset: Dataset, categories: list[str] | None = None, workers: int = 2) -> dict[str, Any]:
    report: dict[str, Any] = {"dataset": dataset.name, "root": str(dataset.root), "categories": {}}
    layout = getattr(dataset, "layout", None)
    if layout:
        report["layout"] = layout
    selected = dataset.select(categories)
    splits = {c: {s: _samples_or_empty(dataset, c, s) for s in ("train", "test")} for c in selected}
    total = sum(len(v) for c in splits.values() for v in c.values())
    with bar(total, "inspect", "img") as progress:
        for category, by_split in splits.items():
            test = by_split["test"]
            entry: dict[str, Any] = {
                "train": len(by_split["train"]),
                "test": len(test),
                "good": sum(1 for s in test if s.label == 0),
                "defective": sum(1 for s in test if s.label == 1),
                "defect_types": dict(sorted(Counter(s.defect_type for s in test if s.label == 1).items())),
                "masks_found": sum(1 for s in test if s.mask_path is not None),
                "masks_missing": sum(1 for s in test if s.label == 1 and s.mask_path is None),
                "problems": [],
            }
            for _, problems in prefetch(by_split["train"] + test, sample_problems, workers=workers, depth=16):
                entry["problems"].extend(problems)
                progress.update()
            report["categories"][category] = entry
    report["problems"] = sum(len(c["problems"]) for c in report["categories"].values())
    return report


def _samples_or_empty(dataset: Dataset, category: str, split: str) -> list[Sample]:
    try:
        return dataset.samples(category, split)
    except BadInput:
        return []


def format_report(report: dict[str, Any]) -> str:
    lines = [f"{report['dataset']} at {report['root']}" + (f" ({report['layout']} layout)" if "layout" in report
                                                             else "")]
    lines.append(f"{'category':<16}{'train':>7}{'test':>7}{'good':>7}{'defect':>8}{'masks':>7}  defect types")
    for name, c in report["categories"].items():
        types = ", ".join(f"{k} {v}" for k, v in c["defect_types"].items()) or "-"
        lines.append(f"{name:<16}{c['train']:>7}{c['test']:>7}{c['good']:>7}{c['defective']:>8}"
                     f"{c['masks_found']:>7}  {types}")
    lines.append(f"{report['problems']} problem(s)")
    lines += [f"  {p}" for c in report["categories"].values() for p in c["problems"]]
    return "\n".join(lines)
