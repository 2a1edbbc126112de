"""Project hygiene: README's two set-up commands, CI running the README's test line, ruff."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import paths

REPO = paths.REPO


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    return [b.strip() for b in blocks if "python3 -m venv" in b]


def test_readme_has_exactly_two_setup_commands() -> None:
    commands = readme_commands()
    assert len(commands) == 2
    assert commands[0].endswith("python -m bench demo")
    assert commands[1].endswith("python -m pytest")


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci_lines = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line and not line.startswith(
        ("#", "set ", "cd "))]
    assert ci_lines == [readme_commands()[1]]


@pytest.mark.skipif(shutil.which("ruff") is None and not Path(sys.executable).with_name("ruff").exists(),
                    reason="ruff is not installed (it comes with the dev extra)")
def test_ruff_clean() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    done = subprocess.run([ruff, "check", "bench", "tests", "benchmarks"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_a_wheel_ships_the_profiles_and_cards(tmp_path: Path) -> None:
    """A non-editable install (a lab board's) has every device profile and model card beside the code."""
    source = tmp_path / "source"  # setuptools writes build/ into the tree it builds: build a copy
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in tracked.decode().split("\0"):
        if name and (REPO / name).exists():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name, follow_symlinks=False)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            str(source), "-w", str(tmp_path / "dist")], capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("edge_ad_bench-*.whl")
    site = tmp_path / "site"
    shutil.unpack_archive(wheel, site, format="zip")
    probe = ("from bench.paths import devices_dir, models_dir\n"
             "from bench.devices.profiles import load_profile, profile_names\n"
             "from bench.models.cards import load_card\n"
             "print(devices_dir(), models_dir(), sorted(profile_names()), load_card('tinyglass').name,"
             " load_profile('host').name, sep='|')")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")} | {"PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    devices, models, names, card, host = done.stdout.strip().split("|")
    assert Path(devices).is_relative_to(site) and Path(models).is_relative_to(site)
    shipped = sorted(p.stem for p in (REPO / "devices").glob("*.yaml"))
    assert names == str(shipped) and card == "tinyglass" and host == "host"
