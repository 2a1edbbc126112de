"""The system OpenSSH client as transport: the lab's keys, agents, jump hosts and known_hosts just work.

A profile names its target under ``location``::

    location:
      where: ssh
      host: jetson-01.lab          # required
      user: bench                  # default: ssh's own default
      port: 22
      identity: ~/.ssh/id_ed25519  # default: ssh's own choice (agent, config)
      known_hosts: ~/.ssh/known_hosts
      strict_host_key_checking: "yes"   # or accept-new for a first contact
      python: /home/bench/edge-ad-bench/.venv/bin/python   # the device's lean install
      workdir: /tmp/edge-ad-bench  # where job bundles are unpacked (removed after each run)
      env: {BENCH_CACHE_DIR: /var/cache/edge-ad-bench}     # extra environment for the worker

Connections use ``BatchMode=yes`` (never a password prompt in CI) and keep-alives, so a device
that drops off the network ends the run within seconds with a clear error instead of hanging.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BadInput, DeviceFailure

KEYS = ("where", "host", "user", "port", "identity", "known_hosts", "strict_host_key_checking", "python", "workdir",
        "env", "connect_timeout_s")


def is_remote(location: dict[str, Any]) -> bool:
    """Whether a profile's ``location`` puts its device behind SSH."""
    return str(location.get("where", "local")) == "ssh"


class SshFailed(DeviceFailure):
    """ssh or scp failed or timed out: the device is unreachable, refused the key, or the connection dropped."""


@dataclass(frozen=True)
class SshTarget:
    host: str
    user: str | None = None
    port: int = 22
    identity: str | None = None
    known_hosts: str | None = None
    strict_host_key_checking: str = "yes"
    python: str = "python3"
    workdir: str = "/tmp/edge-ad-bench"
    env: dict[str, str] = field(default_factory=dict)
    connect_timeout_s: int = 10

    @classmethod
    def from_location(cls, location: dict[str, Any], source: Path | None = None) -> SshTarget:
        unknown = sorted(set(location) - set(KEYS))
        if unknown:
            raise BadInput(f"{source}: location: unknown key(s) {', '.join(unknown)}; valid: {', '.join(KEYS)}")
        if not location.get("host"):
            raise BadInput(f"{source}: location.where is ssh but location.host is missing")
        values = {k: v for k, v in location.items() if k != "where"}
        values["env"] = {str(k): str(v) for k, v in (values.get("env") or {}).items()}
        return cls(**values)

    @property
    def name(self) -> str:
        return f"{self.user + '@' if self.user else ''}{self.host}:{self.port}"

    def options(self) -> list[str]:
        opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout_s}", "-o",
                "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-o",
                f"StrictHostKeyChecking={self.strict_host_key_checking}"]
        if self.identity:
            opts += ["-i", os.path.expanduser(self.identity), "-o", "IdentitiesOnly=yes"]
        if self.known_hosts:
            opts += ["-o", f"UserKnownHostsFile={os.path.expanduser(self.known_hosts)}"]
        return opts

    def _destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def command(self, argv: list[str]) -> list[str]:
        """The ssh command line running ``argv`` on the target with the profile's environment."""
        remote = " ".join(shlex.quote(a) for a in argv)
        if self.env:
            remote = "env " + " ".join(shlex.quote(f"{k}={v}") for k, v in self.env.items()) + " " + remote
        return ["ssh", *self.options(), "-p", str(self.port), self._destination(), remote]

    def run(self, argv: list[str], timeout: float = 120) -> str:
        """Run a short command remotely; its stdout, or SshFailed with ssh's own words."""
        _require("ssh")
        try:
            done = subprocess.run(self.command(argv), capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise SshFailed(f"ssh {self.name}: '{' '.join(argv)[:80]}' did not finish within {timeout:.0f} s; the "
                            "device may be down or the link dropped") from None
        if done.returncode != 0:
            raise SshFailed(f"ssh {self.name}: '{' '.join(argv)[:80]}' failed (exit {done.returncode}): "
                            f"{_tail(done.stderr or done.stdout)}")
        return done.stdout

    def put(self, local: Path, remote: str, timeout: float = 3600) -> None:
        """Copy a local folder to ``remote`` (created), with scp."""
        _require("scp")
        self.run(["mkdir", "-p", remote])
        command = ["scp", "-q", "-r", *self.options(), "-P", str(self.port), *[str(p) for p in sorted(local.iterdir())],
                   f"{self._destination()}:{remote}/"]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise SshFailed(f"scp to {self.name}:{remote} did not finish within {timeout:.0f} s") from None
        if done.returncode != 0:
            raise SshFailed(f"scp to {self.name}:{remote} failed (exit {done.returncode}): {_tail(done.stderr)}")

    def stream(self, argv: list[str]) -> subprocess.Popen:
        """Start ``argv`` remotely with its stdout as a line stream (the worker's events)."""
        _require("ssh")
        return subprocess.Popen(self.command(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                bufsize=1)


def _require(tool: str) -> None:
    if shutil.which(tool) is None:
        raise BadInput(f"{tool} not found: remote devices need the OpenSSH client (apt install openssh-client)")


def _tail(text: str) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
