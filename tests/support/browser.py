"""Headless Chromium for the browser tests, driven over the DevTools protocol with the standard library only.

``ensure_chromium`` finds Debian's ``chromium`` (installing it with apt-get when running as root on a fresh
Debian machine) and ``load_page`` opens a local HTML file in it and reports console messages, images, tables
and a full-page PNG screenshot. The DevTools protocol is spoken over a minimal RFC 6455 WebSocket client;
every connection goes to 127.0.0.1 and every wait is bounded.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser")
APT_TIMEOUT_S = 600
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
MAX_SCREENSHOT_HEIGHT = 16384
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--disable-extensions", "--hide-scrollbars", "--mute-audio")

# Runs in the page once it has loaded: waits (bounded) for every image to settle, then describes the page.
PAGE_FACTS_JS = """
(async () => {
  const settle = (img) => img.complete ? Promise.resolve()
    : new Promise((done) => { img.addEventListener('load', done); img.addEventListener('error', done); });
  const images = Array.from(document.images);
  await Promise.race([Promise.all(images.map(settle)), new Promise((done) => setTimeout(done, %d))]);
  await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
  const root = document.documentElement;
  return {
    title: document.title,
    width: Math.ceil(Math.max(root.scrollWidth, document.body ? document.body.scrollWidth : 0)),
    height: Math.ceil(Math.max(root.scrollHeight, document.body ? document.body.scrollHeight : 0)),
    images: images.map((img) => ({src: (img.currentSrc || img.src || '').slice(0, 120), alt: img.alt,
                                  complete: img.complete, naturalWidth: img.naturalWidth,
                                  naturalHeight: img.naturalHeight})),
    tables: Array.from(document.querySelectorAll('table')).map((t) => ({id: t.id, className: t.className,
                                                                        rows: t.rows.length})),
  };
})()
"""


class BrowserError(RuntimeError):
    """Chromium could not be started, or the DevTools conversation failed or timed out."""


# ---------------------------------------------------------------------------------------------------------------
# Finding or installing Debian's chromium
# ---------------------------------------------------------------------------------------------------------------

def _which_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _tail(text: str, lines: int = 5) -> str:
    return " | ".join(line for line in text.strip().splitlines()[-lines:] if line.strip())


@functools.lru_cache(maxsize=1)
def locate_chromium() -> tuple[str | None, str]:
    """``(path, how)``: the chromium binary and how it was found, or ``(None, why not)``.

    When no binary is on PATH and this is a Debian machine running as root (a fresh CI machine), Debian's
    ``chromium`` package is installed with apt-get. The result is cached: apt runs at most once per session.
    """
    found = _which_chromium()
    if found:
        return found, f"{found} already installed"
    missing = f"no chromium binary on PATH (looked for {', '.join(CHROMIUM_NAMES)})"
    if shutil.which("apt-get") is None:
        return None, f"{missing}; cannot install it: apt-get not found (not a Debian machine)"
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None, f"{missing}; cannot install it: apt-get install chromium needs root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium"])
    deadline = time.monotonic() + APT_TIMEOUT_S
    for step in steps:
        label = " ".join(step)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None, f"{missing}; `{label}` not started: the {APT_TIMEOUT_S} s apt budget was spent"
        try:
            done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=remaining, check=False)
        except subprocess.TimeoutExpired:
            return None, f"{missing}; `{label}` timed out (apt budget {APT_TIMEOUT_S} s)"
        except OSError as exc:
            return None, f"{missing}; `{label}` could not run: {exc}"
        if done.returncode != 0:
            return None, f"{missing}; `{label}` failed with exit {done.returncode}: {_tail(done.stderr or done.stdout)}"
    installed = _which_chromium()
    if installed is None:
        return None, f"{missing}; apt-get installed the chromium package but no chromium binary is on PATH"
    return installed, f"{installed} installed with apt-get"


def ensure_chromium() -> str | None:
    """The chromium binary, installed from Debian's repositories if needed and possible; None if not."""
    return locate_chromium()[0]


# ---------------------------------------------------------------------------------------------------------------
# A minimal RFC 6455 WebSocket client (text messages, masked client frames, fragments, 16/64-bit lengths)
# ---------------------------------------------------------------------------------------------------------------

def _mask(payload: bytes, key: bytes) -> bytes:
    if not payload:
        return payload
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    masked = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return masked.to_bytes(len(payload), "big")


def encode_frame(opcode: int, payload: bytes, *, fin: bool = True, mask_key: bytes | None = None) -> bytes:
    """One WebSocket frame; client frames carry a 4-byte ``mask_key`` (servers send none)."""
    first = (0x80 if fin else 0) | opcode
    mask_bit = 0x80 if mask_key is not None else 0
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", first, mask_bit | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    if mask_key is None:
        return header + payload
    return header + mask_key + _mask(payload, mask_key)


class WebSocket:
    """A blocking WebSocket client over an already connected socket; ``connect`` does the opening handshake."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = bytearray()
        self.closed = False

    @classmethod
    def connect(cls, url: str, timeout: float) -> WebSocket:
        match = re.fullmatch(r"ws://(127\.0\.0\.1|localhost):(\d+)(/.*)", url)
        if not match:
            raise BrowserError(f"refusing a DevTools WebSocket that is not on 127.0.0.1: {url}")
        port, path = int(match.group(2)), match.group(3)
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        ws = cls(sock)
        try:
            ws._handshake(port, path, time.monotonic() + timeout)
        except BaseException:
            sock.close()
            raise
        return ws

    def _handshake(self, port: int, path: str, deadline: float) -> None:
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(request.encode("ascii"))
        while b"\r\n\r\n" not in self._buffer:
            if len(self._buffer) > 65536:
                raise BrowserError("WebSocket handshake: response headers too long")
            self._fill(deadline)
        head, _, rest = bytes(self._buffer).partition(b"\r\n\r\n")
        self._buffer = bytearray(rest)
        lines = head.decode("latin-1").split("\r\n")
        if not re.match(r"HTTP/1\.1 101\b", lines[0]):
            raise BrowserError(f"WebSocket handshake refused: {lines[0]}")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        expected = base64.b64encode(hashlib.sha1((key + WS_GUID).encode("ascii")).digest()).decode("ascii")
        if headers.get("sec-websocket-accept") != expected:
            raise BrowserError("WebSocket handshake: wrong Sec-WebSocket-Accept")

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out waiting for the DevTools WebSocket")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(1 << 20)
        except TimeoutError as exc:
            raise TimeoutError("timed out waiting for the DevTools WebSocket") from exc
        if not chunk:
            self.closed = True
            raise ConnectionError("the DevTools WebSocket was closed by the browser")
        self._buffer += chunk

    def _read_exact(self, count: int, deadline: float) -> bytes:
        while len(self._buffer) < count:
            self._fill(deadline)
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        self.sock.settimeout(10)
        self.sock.sendall(encode_frame(opcode, payload, mask_key=os.urandom(4)))

    def send_text(self, text: str) -> None:
        self._send_frame(OP_TEXT, text.encode("utf-8"))

    def _read_frame(self, deadline: float) -> tuple[bool, int, bytes]:
        first, second = self._read_exact(2, deadline)
        fin, opcode = bool(first & 0x80), first & 0x0F
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read_exact(2, deadline))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read_exact(8, deadline))
        if length > MAX_MESSAGE_BYTES:
            raise BrowserError(f"WebSocket frame of {length} bytes is larger than {MAX_MESSAGE_BYTES}")
        key = self._read_exact(4, deadline) if second & 0x80 else None
        payload = self._read_exact(length, deadline)
        return fin, opcode, _mask(payload, key) if key else payload

    def recv_message(self, deadline: float) -> str:
        """The next text (or binary) message, reassembled from fragments; answers pings on the way."""
        parts: list[bytes] = []
        message_opcode: int | None = None
        while True:
            fin, opcode, payload = self._read_frame(deadline)
            if opcode == OP_PING:
                self._send_frame(OP_PONG, payload)
                continue
            if opcode == OP_PONG:
                continue
            if opcode == OP_CLOSE:
                self.closed = True
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                raise ConnectionError(f"the browser closed the DevTools WebSocket (code {code})")
            if opcode in (OP_TEXT, OP_BINARY):
                if message_opcode is not None:
                    raise BrowserError("WebSocket protocol error: new message inside a fragmented one")
                message_opcode = opcode
            elif opcode == OP_CONTINUATION:
                if message_opcode is None:
                    raise BrowserError("WebSocket protocol error: continuation frame without a message")
            else:
                raise BrowserError(f"WebSocket protocol error: unknown opcode {opcode:#x}")
            parts.append(payload)
            if sum(map(len, parts)) > MAX_MESSAGE_BYTES:
                raise BrowserError(f"WebSocket message larger than {MAX_MESSAGE_BYTES} bytes")
            if fin:
                return b"".join(parts).decode("utf-8")

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(OSError):
                self._send_frame(OP_CLOSE, struct.pack("!H", 1000))
            self.closed = True
        self.sock.close()


# ---------------------------------------------------------------------------------------------------------------
# The DevTools protocol over that WebSocket
# ---------------------------------------------------------------------------------------------------------------

class DevTools:
    """Commands and events on one browser-level connection; page commands go to a flattened session."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self._next_id = 0

    def _receive(self, deadline: float) -> dict[str, Any]:
        message = json.loads(self.ws.recv_message(deadline))
        if "method" in message:
            self.events.append(message)
        return message

    def call(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None,
             timeout: float = 30) -> dict[str, Any]:
        self._next_id += 1
        command: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            command["sessionId"] = session
        self.ws.send_text(json.dumps(command))
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self._receive(deadline)
            except TimeoutError as exc:
                raise BrowserError(f"DevTools {method}: no answer within {timeout:g} s") from exc
            if message.get("id") == command["id"]:
                if "error" in message:
                    raise BrowserError(f"DevTools {method} failed: {message['error']}")
                return message.get("result", {})

    def wait_event(self, method: str, *, session: str | None = None, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event["method"] == method and (session is None or event.get("sessionId") == session):
                    return event.get("params", {})
            seen = len(self.events)
            try:
                self._receive(deadline)
            except TimeoutError as exc:
                raise BrowserError(f"DevTools: no {method} event within {timeout:g} s") from exc

    def drain(self, seconds: float) -> None:
        """Collect whatever events arrive in the next ``seconds``."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                self._receive(deadline)
            except TimeoutError:
                return


# ---------------------------------------------------------------------------------------------------------------
# Loading a page
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class ConsoleMessage:
    level: str  # "error", "warning", "info", "log", "debug", "verbose", ...
    text: str
    source: str  # "console-api", "exception", or a Log domain source such as "network" or "javascript"
    url: str = ""

    def __str__(self) -> str:
        where = f" ({self.url})" if self.url else ""
        return f"[{self.level}/{self.source}] {self.text}{where}"


@dataclass
class PageResult:
    url: str
    title: str
    console: list[ConsoleMessage]
    images: list[dict[str, Any]]
    tables: list[dict[str, Any]]
    screenshot: Path
    size: tuple[int, int]
    browser: str = ""
    stderr_tail: str = field(default="", repr=False)

    @property
    def errors(self) -> list[ConsoleMessage]:
        return [m for m in self.console if m.level == "error"]

    @property
    def warnings(self) -> list[ConsoleMessage]:
        return [m for m in self.console if m.level == "warning"]

    @property
    def broken_images(self) -> list[dict[str, Any]]:
        return [img for img in self.images if not (img["complete"] and img["naturalWidth"] > 0)]

    @property
    def images_loaded(self) -> bool:
        return not self.broken_images

    @property
    def table_names(self) -> list[str]:
        """Each table as ``#id`` or ``.class`` (or ``table`` when it has neither)."""
        names = []
        for table in self.tables:
            if table["id"]:
                names.append(f"#{table['id']}")
            elif table["className"]:
                names.append("." + ".".join(table["className"].split()))
            else:
                names.append("table")
        return names


def _remote_object_text(obj: dict[str, Any]) -> str:
    if "value" in obj:
        value = obj["value"]
        return value if isinstance(value, str) else json.dumps(value)
    return str(obj.get("description") or obj.get("unserializableValue") or obj.get("type", ""))


def _console_messages(events: list[dict[str, Any]], session: str) -> list[ConsoleMessage]:
    levels = {"error": "error", "assert": "error", "warning": "warning"}
    messages = []
    for event in events:
        if event.get("sessionId") != session:
            continue
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(_remote_object_text(arg) for arg in params.get("args", []))
            frames = (params.get("stackTrace") or {}).get("callFrames") or [{}]
            messages.append(ConsoleMessage(levels.get(params["type"], params["type"]), text, "console-api",
                                           frames[0].get("url", "")))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = (details.get("exception") or {}).get("description") or details.get("text", "exception")
            messages.append(ConsoleMessage("error", text, "exception", details.get("url", "")))
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            messages.append(ConsoleMessage(entry.get("level", "info"), entry.get("text", ""),
                                           entry.get("source", "other"), entry.get("url", "")))
    return messages


class Chromium:
    """A headless chromium process with a throwaway profile; a context manager that always ends it."""

    def __init__(self, binary: str, timeout: float = 30) -> None:
        self.binary = binary
        self.timeout = timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._profile = tempfile.TemporaryDirectory(prefix="bench-chromium-", ignore_cleanup_errors=True)
        self.profile = Path(self._profile.name)
        self._stderr_path = self.profile / "chromium-stderr.log"
        self._stderr = None
        self.ws_url = ""

    def stderr_tail(self, lines: int = 15) -> str:
        try:
            text = self._stderr_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def __enter__(self) -> Chromium:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        profile_dir = self.profile / "profile"
        self._stderr = self._stderr_path.open("wb")
        args = [self.binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", "--remote-debugging-port=0",
                "about:blank"]
        env = {**os.environ, "HOME": str(self.profile)}
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._stderr, stderr=self._stderr,
                                     env=env, start_new_session=True)
        self.ws_url = self._wait_for_devtools(profile_dir / "DevToolsActivePort")

    def _wait_for_devtools(self, port_file: Path) -> str:
        assert self.proc is not None
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                port, path = port_file.read_text().split("\n")[:2]
                if port.strip() and path.strip():
                    return f"ws://127.0.0.1:{int(port)}{path.strip()}"
            except (OSError, ValueError):
                pass
            listening = re.search(r"DevTools listening on (ws://127\.0\.0\.1:\d+/\S+)", self.stderr_tail(200))
            if listening:
                return listening.group(1)
            if self.proc.poll() is not None:
                raise BrowserError(f"{self.binary} exited with {self.proc.returncode} before DevTools was up:\n"
                                   f"{self.stderr_tail()}")
            time.sleep(0.05)
        raise BrowserError(f"{self.binary}: DevTools not listening after {self.timeout:g} s:\n{self.stderr_tail()}")

    def stop(self) -> None:
        """End the browser and its helpers (renderer, GPU, zygote): they share the session it was started in."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self._signal_group(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._signal_group(signal.SIGKILL)
                    self.proc.wait(timeout=5)
            self._signal_group(signal.SIGKILL)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        self._profile.cleanup()

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)


def load_page(binary: str, html: Path, screenshot: Path, *, width: int = 1280, timeout: float = 60,
              settle_s: float = 0.5) -> PageResult:
    """Open ``html`` (a local file) in headless chromium; collect console output, images, tables and a PNG.

    The page is laid out ``width`` CSS pixels wide; the screenshot covers its full height (up to
    ``MAX_SCREENSHOT_HEIGHT``). Raises ``BrowserError`` when chromium or the page does not cooperate in time.
    """
    url = Path(html).resolve().as_uri()
    deadline = time.monotonic() + timeout

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrowserError(f"loading {url} took longer than {timeout:g} s")
        return remaining

    with Chromium(binary, timeout=min(30, timeout)) as browser:
        ws = WebSocket.connect(browser.ws_url, timeout=left())
        try:
            cdp = DevTools(ws)
            version = cdp.call("Browser.getVersion", timeout=left()).get("product", "")
            target = cdp.call("Target.createTarget", {"url": "about:blank"}, timeout=left())["targetId"]
            session = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                               timeout=left())["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                cdp.call(f"{domain}.enable", session=session, timeout=left())
            cdp.call("Emulation.setDeviceMetricsOverride",
                     {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": False},
                     session=session, timeout=left())
            cdp.events = [e for e in cdp.events if e["method"] != "Page.loadEventFired"]
            navigated = cdp.call("Page.navigate", {"url": url}, session=session, timeout=left())
            if navigated.get("errorText"):
                raise BrowserError(f"navigating to {url} failed: {navigated['errorText']}")
            cdp.wait_event("Page.loadEventFired", session=session, timeout=left())

            facts = _evaluate(cdp, session, PAGE_FACTS_JS % int(min(10, left()) * 1000), left())
            height = max(1, min(int(facts["height"]), MAX_SCREENSHOT_HEIGHT))
            cdp.call("Emulation.setDeviceMetricsOverride",
                     {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                     session=session, timeout=left())
            # Images that only load once in view (loading="lazy") get their chance at the full height.
            facts = _evaluate(cdp, session, PAGE_FACTS_JS % int(min(10, left()) * 1000), left())
            shot = cdp.call("Page.captureScreenshot",
                            {"format": "png", "captureBeyondViewport": True, "fromSurface": True},
                            session=session, timeout=left())
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            cdp.drain(min(settle_s, left()))
            console = _console_messages(cdp.events, session)
            with contextlib.suppress(BrowserError, ConnectionError, OSError):
                cdp.call("Browser.close", timeout=min(5, left()))
        finally:
            ws.close()
        return PageResult(url=url, title=facts["title"], console=console, images=facts["images"],
                          tables=facts["tables"], screenshot=screenshot, size=(width, height),
                          browser=version, stderr_tail=browser.stderr_tail())


def _evaluate(cdp: DevTools, session: str, expression: str, timeout: float) -> Any:
    result = cdp.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True},
                      session=session, timeout=timeout)
    if "exceptionDetails" in result:
        raise BrowserError(f"evaluating page facts failed: {result['exceptionDetails'].get('text')}")
    return result["result"]["value"]
