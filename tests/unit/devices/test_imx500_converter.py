"""The IMX500 converter step: memory reports and error lines recorded from real imxconv-pt 3.19.2 runs,
and a real conversion of the demo TinyGLASS in the converter's own tool environment."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
from support import paths
from support.extras import requires

from bench.devices.imx500.converter import (
    JAVA_MIN,
    ConversionFailed,
    ConverterMissing,
    convert,
    converter_status,
    java_major,
    parse_memory_report,
    parse_size,
)

RECORDED = paths.DATA / "imx500"


def test_sizes_in_every_unit_the_converter_writes() -> None:
    assert parse_size("147744B") == 147744
    assert parse_size("1.00KB") == 1024
    assert parse_size("2.63MB") == round(2.63 * 2**20)
    with pytest.raises(ValueError, match="unreadable size"):
        parse_size("lots")


def test_memory_reports_recorded_from_real_conversions() -> None:
    fits = parse_memory_report(RECORDED / "tinyglass_MemoryReport.json")
    assert fits.fits and fits.utilization == "70%" and fits.available_bytes == 8 * 2**20
    assert fits.usage_bytes == round(5.60 * 2**20) and fits.input_persistent
    exact = parse_memory_report(RECORDED / "tiny_bytes_MemoryReport.json")
    assert (exact.usage_bytes, exact.available_bytes, exact.model_bytes) == (147744, 8388480, 22816)
    big = parse_memory_report(RECORDED / "too_big_MemoryReport.json")
    assert not big.fits and big.utilization == "150%" and "11.99 MiB" in big.describe()


def test_unreadable_memory_report_names_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "m_MemoryReport.json"
    broken.write_text('{"Memory Report": {"Name": "m"}}')
    with pytest.raises(ConversionFailed, match=r"m_MemoryReport.json: unreadable converter memory report"):
        parse_memory_report(broken)


def replaying_converter(tmp_path: Path, log: str, exit_code: int, report: str | None = None) -> Path:
    """A stand-in imxconv-pt that replays a recorded run: its log on stdout, its memory report, its exit code."""
    script = tmp_path / "imxconv-pt"
    lines = [f"cat {RECORDED / log}"]
    if report is not None:
        lines.insert(0, f'cp {RECORDED / report} "$4/model_mctq_MemoryReport.json"')
    script.write_text("#!/bin/sh\n" + "\n".join(lines) + f"\nexit {exit_code}\n")
    script.chmod(0o755)
    return script


@pytest.mark.parametrize("log, exit_code, report, error, words", [
    ("big.log", 1, "too_big_MemoryReport.json", ConversionFailed,
     ["does not fit the IMX500", "11.99 MiB", "8.00 MiB", "150%"]),
    ("float.log", 1, None, ConversionFailed, ["imxconv-pt failed (exit 1)", "[GE] Caught exception", "List is empty"]),
    ("corrupt.log", 1, None, ConversionFailed, ["[EXEC] Failed to load"]),
    ("nojava.log", 127, None, ConverterMissing, ["exit 127", f"Java {JAVA_MIN}+"]),
])
def test_recorded_failures_give_one_clear_line(tmp_path: Path, log: str, exit_code: int, report: str | None,
                                               error: type, words: list[str]) -> None:
    cli = replaying_converter(tmp_path, log, exit_code, report)
    model = tmp_path / "model_mctq.onnx"
    model.write_bytes(b"recorded")
    with pytest.raises(error) as err:
        convert(model, tmp_path / "out", cli)
    message = str(err.value)
    assert "\n" not in message and all(word in message for word in words), message
    assert not (tmp_path / "out" / ".tmp").exists()


def test_java_is_found_and_versioned(tmp_path: Path) -> None:
    fake = tmp_path / "java"
    fake.write_text('#!/bin/sh\necho \'openjdk version "1.8.0_392"\' >&2\n')
    fake.chmod(0o755)
    assert java_major(str(fake)) == 8
    fake.write_text('#!/bin/sh\necho \'openjdk version "17.0.15" 2025-04-15\' >&2\n')
    assert java_major(str(fake)) == 17


def test_status_without_the_tool_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_IMXCONV_ENV", str(tmp_path / "none"))
    monkeypatch.setenv("PATH", str(tmp_path))
    ok, reason = converter_status()
    assert not ok and "python -m bench.devices.imx500.converter install" in reason


@pytest.mark.slow
@requires("imx500", "model_compression_toolkit")
def test_real_conversion_of_the_demo_tinyglass(small_demo: dict, converter_cli: Path, tmp_path: Path) -> None:
    """MCT INT8 of the demo's TinyGLASS with pixels in, then the real imxconv-pt: packerOut.zip that fits."""
    import numpy as np

    from bench.devices.imx500.quant import Normalization, quantize_for_imx500
    from bench.models.cards import load_card
    from bench.models.prepare import prepare

    card = load_card("tinyglass")
    images = [np.random.default_rng(i).normal(size=card.recipe.input_shape).astype("float32") for i in range(4)]
    module = prepare(card, small_demo["checkpoint"], "washer", small_demo["backbone"], images[:1],
                     tmp_path / "exports").module
    report = quantize_for_imx500(module, images, tmp_path / "q",
                                 normalization=Normalization(card.recipe.mean, card.recipe.std))
    assert report.input.startswith("rgb in [0, 1]")
    conversion = convert(Path(report.onnx_path), tmp_path / "converted", converter_cli)
    assert conversion.packer_zip.is_file() and conversion.memory.fits
    assert 0 < conversion.memory.usage_bytes < conversion.memory.available_bytes
    with zipfile.ZipFile(conversion.packer_zip) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["Target"] == "IMX500"
    shutil.rmtree(tmp_path / "q", ignore_errors=True)
