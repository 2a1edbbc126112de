"""CLI contract: every command registered, exit codes 0/2, one-line reasons, nothing silent."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support.cli import run_cli
from support.extras import need

from bench.cli import build_parser, main

DESIGN_COMMANDS = {"run", "report", "compare", "nightly", "list", "inspect", "compile", "fit", "demo", "doctor"}


def test_every_design_command_is_registered() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == DESIGN_COMMANDS


def test_compile_needs_a_data_root(capsys: pytest.CaptureFixture) -> None:
    assert main(["compile", "--device", "host", "--model", "tinyglass"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--data-root" in err


def test_compile_fills_the_artifact_cache_and_reuses_it(small_demo: dict[str, Path], tmp_path: Path) -> None:
    args = ["compile", "--device", "host", "--model", "tinyglass", "--dataset", "mvtec",
            "--data-root", str(small_demo["data_root"]), "--checkpoint", str(small_demo["checkpoint"]),
            "--backbone-weights", str(small_demo["backbone"]), "--json"]
    env = {"BENCH_CACHE_DIR": str(tmp_path / "cache")}
    first = run_cli(args, cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    rows = json.loads(first.stdout)
    assert rows and all(not r["cached"] and Path(r["artifact"]).is_file() for r in rows)
    again = json.loads(run_cli(args, cwd=tmp_path, env=env).stdout)
    assert [r["sha256"] for r in again] == [r["sha256"] for r in rows] and all(r["cached"] for r in again)


@pytest.mark.parametrize("what, name", [("devices", "host"), ("models", "tinyglass"), ("datasets", "mvtec")])
def test_list_json(what: str, name: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["list", what, "--json"]) == 0
    out = capsys.readouterr().out
    assert name in [row["name"] for row in json.loads(out)]


def test_list_devices_names_each_family_and_role(capsys: pytest.CaptureFixture) -> None:
    """The shipped profiles: the Jetson is the tensorrt family on a board; only the host CPU is the reference."""
    assert main(["list", "devices", "--json"]) == 0
    rows = {row["name"]: (row["kind"], row["role"]) for row in json.loads(capsys.readouterr().out)}
    assert rows["jetson"] == ("tensorrt", "device") and rows["host-cuda"] == ("host", "device")
    assert [name for name, (_, role) in rows.items() if role == "reference"] == ["host"]


def test_doctor_reports_host(capsys: pytest.CaptureFixture) -> None:
    assert main(["doctor", "--json"]) == 0
    rows = {row["check"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["device host"]["ok"] and "CPUExecutionProvider" in rows["device host"]["reason"]


@pytest.mark.parametrize("flag, value, valid", [
    ("--device", "jetsn", "host"), ("--model", "tinyglas", "tinyglass"), ("--dataset", "mvtek", "mvtec"),
])
def test_unknown_names_list_the_valid_ones(tmp_path: Path, flag: str, value: str, valid: str,
                                           capsys: pytest.CaptureFixture) -> None:
    assert main(["run", "--data-root", str(tmp_path), "--out", str(tmp_path / "r"), flag, value]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"'{value}'" in err and valid in err


def test_missing_data_root(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    assert main(["run", "--out", str(tmp_path)]) == 2
    assert "--data-root" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere, so no folder is unwritable")
def test_unwritable_out_fails_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert main(["run", "--data-root", str(tmp_path / "nowhere"), "--out", str(locked / "results")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_out_that_is_a_file_fails_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    # --data-root does not exist either: the --out check must come first
    assert main(["run", "--data-root", str(tmp_path / "nowhere"), "--out", str(blocker / "results")]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "not writable" in err


def test_argparse_errors_exit_2(tmp_path: Path) -> None:
    done = run_cli(["run", "--limit", "0"], cwd=tmp_path)
    assert done.returncode == 2 and "--limit" in done.stderr
    assert run_cli(["frobnicate"], cwd=tmp_path).returncode == 2


def test_report_without_runs_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 2
    assert "no run records" in capsys.readouterr().err


def test_missing_checkpoint_names_the_category(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from support.tiny_model import write_mvtec_tree

    need("export", "torch")  # the checkpoint is looked for while the model is prepared for export
    data = write_mvtec_tree(tmp_path / "data")
    code = main(["run", "--data-root", str(data), "--checkpoint", str(tmp_path / "ckpts"), "--out",
                 str(tmp_path / "r")])
    assert code == 2
    assert "--checkpoint" in capsys.readouterr().err


def test_inspect_model_json(capsys: pytest.CaptureFixture) -> None:
    need("export", "torch")
    assert main(["inspect", "model", "tinyglass", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["input_shape"] == [1, 3, 256, 256]
    assert report["macs_agree"] and report["macs"] == report["torch_macs"]
    assert report["params"]["torch_module"] == 2_850_368  # ResNet-18 to layer3 + the official discriminator
    assert report["ops"]["Conv"] == 15 + 2 + 2  # ResNet-18 to layer3, two patch extractions, the discriminator
    assert report["deployability"]["tensorrt"] == []
    # the official network pools layer2 onto layer3's grid instead of upsampling: no Resize for QNN GPU to reject
    assert [f for f in report["deployability"]["rb5"] if f["severity"] == "error"] == []


def test_inspect_model_needs_a_name(capsys: pytest.CaptureFixture) -> None:
    assert main(["inspect", "model"]) == 2
    assert "needs a model" in capsys.readouterr().err


def test_host_cuda_without_the_provider_says_why(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has ONNX Runtime's CUDA provider; the GPU tests cover host-cuda")
    from bench.devices.profiles import load_profile
    from bench.devices.registry import create_device

    ok, reason = create_device(load_profile("host-cuda")).availability()
    assert not ok and "lacks CUDAExecutionProvider" in reason and "onnxruntime-gpu" in reason


def test_a_device_that_cannot_run_here_is_refused_before_any_export(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime

    from bench.run import plan

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has ONNX Runtime's CUDA provider, so host-cuda can run")

    def no_export(*args: object, **kwargs: object) -> None:
        raise AssertionError("models were prepared for a device that cannot run")

    monkeypatch.setattr(plan, "_inputs", no_export)
    assert main(["run", "--device", "host-cuda", "--data-root", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "host-cuda" in err and "CUDAExecutionProvider" in err


def test_a_fitting_bar_counts_time_from_its_first_step() -> None:
    """Issue 20: the first fitting bar showed an ETA of 4:33:01, the setup before step 1 counted as a step."""
    from bench.progress import bar, loss_callback

    with bar(300, "fit widget") as progress:
        progress.start_t -= 1000.0  # as if reading and embedding the training images took 1000 s
        loss_callback(progress)(1, 300, 0.5)
        assert progress.n == 1 and progress.format_dict["elapsed"] < 60
