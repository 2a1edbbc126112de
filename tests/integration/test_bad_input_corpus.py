"""Bad input, one case per row (issue 20): the command as a user types it, the exit code DESIGN.md gives it, a
fragment of the one-line error; never a traceback, and a run record that was created stays readable and keeps
every row it had.

The model is an exported ONNX with a card (no torch export, so each case takes a second or two), the data a
generated MVTec-layout tree that each case breaks in its own way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.cli import run_cli
from support.exported_models import anomaly_onnx, exported_card
from support.extras import need
from support.report_runs import make_run
from support.tiny_model import write_mvtec_tree

from bench.records import load_run

pytestmark = pytest.mark.slow


def _nan_model(work: Path) -> None:
    """A graph whose score is NaN for every image: Div of the map by zero, then 0/0."""
    onnx = need("export", "onnx")
    path = anomaly_onnx(work / "model.onnx")
    model = onnx.load(path)
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    model.graph.initializer.append(numpy_helper.from_array(np.array(0.0, np.float32), "nothing"))
    for node in model.graph.node:
        if node.op_type == "ReduceMax":
            node.output[0] = "raw_score"
    model.graph.node.extend([helper.make_node("Mul", ["raw_score", "nothing"], ["zero_score"]),
                             helper.make_node("Div", ["zero_score", "nothing"], ["pred_score"])])
    onnx.save(model, path)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:60])


def _wrong_mask(root: Path) -> None:
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "widget" / "ground_truth" / "dent" / "001_mask.png")


def _one_class(root: Path) -> None:
    for image in (root / "widget" / "test" / "dent").iterdir():
        image.unlink()


def _manifest_without_label(root: Path) -> Path:
    rows = [f"{p.relative_to(root)},widget" for p in sorted((root / "widget" / "test").rglob("*.png"))]
    (root / "index.csv").write_text("image,category\n" + "\n".join(rows) + "\n")
    return root / "index.csv"


def _complete_run(work: Path) -> str:
    make_run(work / "results", "done-1", "host", "host", "2026-11-20T01:00:00+00:00")
    return "done-1"


def _model_changed_since_the_run_started(work: Path, data: Path) -> None:
    """A run that failed on a truncated image leaves a resumable record; the image is then mended, and the model
    replaced in place by another (a refit, an edited export)."""
    image = data / "widget" / "test" / "dent" / "002.png"
    intact = image.read_bytes()
    _truncate(image)
    failed = run_cli([part.format(card=work / "byo.yaml", data=data, work=work) for part in RUN], cwd=work,
                     timeout=300)
    assert failed.returncode == 2 and load_run(_only_run(work)).status == "failed", failed.stderr[-2000:]
    image.write_bytes(intact)
    anomaly_onnx(work / "model.onnx", resize=True)  # the same scores through another graph


def _only_run(work: Path) -> Path:
    (run_dir,) = [path.parent for path in (work / "results").glob("*/manifest.json")]
    return run_dir


def _file_as_out(work: Path) -> Path:
    (work / "not-a-folder").write_text("a file where the results folder should be\n")
    return work / "not-a-folder" / "results"


RUN = ["run", "--device", "host", "--model", "{card}", "--data-root", "{data}", "--out", "{work}/results"]
Case = tuple[str, Callable[[Path, Path], object] | None, list[str], int, str]
CASES: list[Case] = [
    ("truncated image", lambda w, d: _truncate(d / "widget" / "test" / "dent" / "002.png"), RUN, 2,
     "002.png"),
    ("missing mask", lambda w, d: (d / "widget" / "ground_truth" / "dent" / "001_mask.png").unlink(), RUN, 2,
     "001_mask.png"),
    ("wrong-size mask", lambda w, d: _wrong_mask(d), RUN, 2, "001_mask.png"),
    ("empty dataset", None, [*RUN[:5], "--data-root", "{work}/empty", *RUN[7:]], 2, "empty"),
    ("dataset manifest missing a column", lambda w, d: _manifest_without_label(d),
     ["run", "--device", "host", "--model", "{card}", "--dataset", "manifest", "--data-root", "{data}/index.csv",
      "--out", "{work}/results"], 2, "label"),
    ("unknown device", None, [*RUN[:2], "toaster", *RUN[3:]], 2, "unknown device 'toaster'"),
    ("unknown model", None, [*RUN[:4], "nosuchmodel", *RUN[5:]], 2, "nosuchmodel"),
    ("unknown dataset", None, [*RUN, "--dataset", "imagenet"], 2, "unknown dataset 'imagenet'"),
    ("unknown category", None, [*RUN, "--categories", "gizmo"], 2, "gizmo"),
    ("resume of a missing run", None, ["run", "--out", "{work}/results", "--resume", "nope-1"], 2,
     "--resume nope-1: no such run"),
    ("resume of a complete run", lambda w, d: _complete_run(w), ["run", "--out", "{work}/results", "--resume",
                                                                 "done-1"], 2, "complete"),
    ("output that cannot be written (root too)", None, [*RUN[:7], "--out", "{work}/not-a-folder/results"], 2,
     "not-a-folder"),
    ("NaN scores from the device", lambda w, d: _nan_model(w), RUN, 2, "non-finite"),
    ("one class in a category", lambda w, d: _one_class(d), RUN, 2, "only good images"),
    ("a run compared with itself", lambda w, d: _complete_run(w),
     ["compare", "{work}/results/done-1", "{work}/results/done-1"], 2, "not with itself"),
    ("resume after the model changed", _model_changed_since_the_run_started,
     ["run", "--out", "{work}/results", "--resume", "{run}"], 2, "checkpoint_sha256"),
    ("a text file as a checkpoint", None, ["run", "--device", "host", "--model", "tinyglass", "--data-root",
                                            "{data}", "--checkpoint", "{work}/text.pth", "--out", "{work}/results"],
     2, "a text file"),
]


@pytest.mark.parametrize("name, prepare, command, code, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_with_its_exit_code(tmp_path: Path, name: str, prepare, command: list[str],
                                                 code: int, fragment: str) -> None:
    data = write_mvtec_tree(tmp_path / "data", size=32)
    card = exported_card(tmp_path / "byo.yaml", tmp_path / "model.onnx")
    anomaly_onnx(tmp_path / "model.onnx")
    (tmp_path / "empty").mkdir()
    (tmp_path / "text.pth").write_text("not a checkpoint\n")
    if name.startswith("output"):
        _file_as_out(tmp_path)
    if prepare is not None:
        prepare(tmp_path, data)
    run = _only_run(tmp_path).name if "{run}" in command else None
    argv = [part.format(card=card, data=data, work=tmp_path, run=run) for part in command]
    done = run_cli(argv, cwd=tmp_path, timeout=300)
    lines = [line for line in done.stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == code, done.stderr[-3000:]
    assert lines and lines[-1].startswith("error: ") and fragment in lines[-1], lines[-3:]
    for run_dir in (tmp_path / "results").glob("*/manifest.json"):  # a record that exists stays readable
        record = load_run(run_dir.parent)
        assert record.status in ("complete", "failed", "interrupted")
        if record.status != "complete":
            assert record.manifest["error"], "a broken run says why"
