"""The HTML report in a real browser: headless Chromium renders it with no console errors, its tables
present and its images loaded; a full-page screenshot is kept as a CI artifact (reports/test-artifacts/).

Chromium is Debian's ``chromium`` package, installed by ``tests/browser.py`` on a fresh Debian CI machine
(running as root); where it can be neither found nor installed the browser tests skip, saying why.
"""

from __future__ import annotations

import shutil
import socket
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import paths
from support.browser import (
    OP_BINARY,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    PageResult,
    WebSocket,
    encode_frame,
    load_page,
    locate_chromium,
)
from support.report_runs import INT8, make_run

from bench.reports.html import write_report

REPO = paths.REPO
ARTIFACTS = REPO / "reports" / "test-artifacts"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="session")
def chromium() -> str:
    path, how = locate_chromium()
    if path is None:
        pytest.skip(f"headless Chromium unavailable: {how}")
    return path


def describe(page: PageResult) -> str:
    lines = [f"{page.browser} on {page.url}: title {page.title!r}, tables {page.table_names}"]
    lines += [f"console {message}" for message in page.console]
    lines += [f"image not loaded: {image}" for image in page.broken_images]
    return "\n".join(lines)


@pytest.mark.slow
def test_report_renders_in_headless_chromium(chromium: str, small_demo: dict, tmp_path: Path) -> None:
    report = write_report([small_demo["run"]], tmp_path / "report" / "index.html")
    page = load_page(chromium, report, tmp_path / "report.png")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(page.screenshot, ARTIFACTS / "report.png")

    summary = describe(page)  # warnings are allowed; they show up here if anything else fails
    assert not page.errors, summary
    assert page.title, summary
    assert page.tables, summary
    assert page.images and page.images_loaded, summary
    shot = page.screenshot.read_bytes()
    assert shot.startswith(PNG_SIGNATURE) and len(shot) > 10_000, f"{len(shot)} bytes\n{summary}"
    width, height = struct.unpack("!II", shot[16:24])
    assert width == 1280 and height >= 600, summary


@pytest.mark.slow
def test_gates_published_and_saturation_render_in_headless_chromium(chromium: str, tmp_path: Path) -> None:
    cats = ("carpet", "wood")
    on_rail = lambda scores, labels: np.minimum(scores, np.sort(scores)[-6])  # noqa: E731
    root = tmp_path / "results"
    make_run(root, "host-1", "host", "host", "2026-11-20T01:00:00+00:00", categories=cats, pixel=True)
    make_run(root, "imx500-1", "imx500", "imx500", "2026-11-20T02:00:00+00:00", categories=cats, perturb=on_rail,
             artifact=INT8)
    report = write_report([root], tmp_path / "report" / "index.html")
    page = load_page(chromium, report, tmp_path / "gates.png")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(page.screenshot, ARTIFACTS / "report-gates-published.png")

    summary = describe(page)
    assert not page.errors and page.images_loaded, summary
    assert {"#drift-table", "#published-tinyglass"} <= set(page.table_names), summary
    html = report.read_text()
    assert "(card tinyglass, imx500)" in html and "Warning: carpet: 6 device scores" in html


@pytest.mark.slow
def test_browser_check_catches_console_errors_exceptions_and_broken_images(chromium: str, tmp_path: Path) -> None:
    Image.new("RGB", (8, 8), (200, 30, 30)).save(tmp_path / "ok.png")
    html = tmp_path / "bad.html"
    html.write_text("""<!DOCTYPE html><html><head><meta charset="utf-8"><title>self-test</title></head><body>
<table id="good"><tr><td>1</td></tr></table><table class="plain x"><tr><td>2</td></tr></table>
<img src="ok.png" alt="fine"><img src="missing.png" alt="broken">
<script>console.error("x")</script><script>console.warn("careful")</script>
<script>throw new Error("boom")</script>
</body></html>
""", encoding="utf-8")
    page = load_page(chromium, html, tmp_path / "bad.png")
    summary = describe(page)

    assert page.title == "self-test"
    assert page.table_names == ["#good", ".plain.x"]
    assert any(m.source == "console-api" and m.text == "x" for m in page.errors), summary
    assert any(m.source == "exception" and "boom" in m.text for m in page.errors), summary
    assert any("careful" in m.text for m in page.warnings), summary
    assert [image["alt"] for image in page.broken_images] == ["broken"], summary
    assert not page.images_loaded
    assert page.screenshot.read_bytes().startswith(PNG_SIGNATURE)


def test_websocket_reads_fragmented_and_long_frames_and_masks_its_own() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ws = WebSocket(ours)
        long_text = "é" * 40_000  # 80 000 bytes: a 64-bit length
        medium = "m" * 300  # a 16-bit length
        theirs.sendall(encode_frame(OP_TEXT, b'{"a":', fin=False) + encode_frame(OP_PING, b"hi")
                       + encode_frame(OP_CONTINUATION, b"1}") + encode_frame(OP_TEXT, long_text.encode())
                       + encode_frame(OP_BINARY, medium.encode()))
        deadline = time.monotonic() + 10
        assert ws.recv_message(deadline) == '{"a":1}'
        assert ws.recv_message(deadline) == long_text
        assert ws.recv_message(deadline) == medium

        pong = theirs.recv(64)
        assert pong[0] == 0x80 | OP_PONG and pong[1] & 0x80, "client frames must be masked"
        ws.send_text("x" * 200)
        frame = theirs.recv(1024)
        assert frame[0] == 0x80 | OP_TEXT and frame[1] == 0x80 | 126
        (length,) = struct.unpack("!H", frame[2:4])
        key, masked = frame[4:8], frame[8:]
        assert length == 200 and bytes(b ^ key[i % 4] for i, b in enumerate(masked)) == b"x" * 200
