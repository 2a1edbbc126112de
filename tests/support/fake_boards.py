"""Fake board file trees (sysfs, /etc, /proc) for the power meters and the Jetson environment.

FAKES of what the Linux drivers and L4T put on a Jetson Orin Nano, as documented by the kernel's
hwmon ABI and NVIDIA's L4T (see bench.power.hwmon and bench.devices.tensorrt.jetson_env).
"""

from __future__ import annotations

from pathlib import Path

ORIN_NANO = {1: ("VDD_CPU_GPU_CV", 5000, 620), 2: ("VDD_SOC", 4992, 410), 3: ("VDD_IN", 5072, 1484)}


def fake_ina3221(root: Path, channels: dict[int, tuple[str, int, int]] = ORIN_NANO) -> Path:
    """A fake Jetson tree: the ina3221 hwmon device under the I2C driver, linked from /sys/class/hwmon,
    with the driver's in7 "sum of shunt voltages" (no curr7) and an unrelated hwmon chip beside it."""
    dev = root / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"
    dev.mkdir(parents=True)
    (dev / "name").write_text("ina3221\n")
    for n, (label, mv, ma) in channels.items():
        (dev / f"in{n}_label").write_text(label + "\n")
        (dev / f"in{n}_input").write_text(f"{mv}\n")
        (dev / f"curr{n}_input").write_text(f"{ma}\n")
        (dev / f"in{n + 3}_input").write_text("7400\n")
    (dev / "in7_label").write_text("sum of shunt voltages\n")
    (dev / "in7_input").write_text("22200\n")
    (root / "sys/class/hwmon").mkdir(parents=True)
    (root / "sys/class/hwmon/hwmon3").symlink_to(dev)
    other = root / "sys/class/hwmon/hwmon0"
    other.mkdir()
    (other / "name").write_text("soc_therm\n")
    (other / "in1_label").write_text("VDD_IN\n")
    (other / "in1_input").write_text("1\n")
    (other / "curr1_input").write_text("1\n")
    return dev


RELEASE = ("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, "
           "DATE: Wed Jan  8 01:49:37 UTC 2025\n# KERNEL_VARIANT: oot\nTARGET_USERSPACE_LIB_DIR=nvidia\n")
NVPMODEL = "NV Power Mode: MAXN_SUPER\n2\n"


def fake_jetson(root: Path, *, gpu: tuple[int, int, int] = (1020000000, 1020000000, 1020000000),
                cpu_pinned: bool = True, emc: int | None = 3199000000) -> Path:
    """A Jetson Orin Nano's release file, model, GPU devfreq, cpufreq and EMC rate as the adapter reads them."""
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc/nv_tegra_release").write_text(RELEASE)
    (root / "proc/device-tree").mkdir(parents=True, exist_ok=True)
    model = b"NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super\x00"
    (root / "proc/device-tree/model").write_bytes(model)
    devfreq = root / "sys/class/devfreq/17000000.gpu"
    devfreq.mkdir(parents=True, exist_ok=True)
    for name, value in zip(("cur_freq", "min_freq", "max_freq"), gpu, strict=True):
        (devfreq / name).write_text(f"{value}\n")
    for cpu in range(6):
        folder = root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "scaling_max_freq").write_text("1728000\n")
        (folder / "scaling_min_freq").write_text("1728000\n" if cpu_pinned else "729600\n")
    if emc is not None:
        rate = root / "sys/kernel/debug/bpmp/debug/clk/emc/rate"
        rate.parent.mkdir(parents=True, exist_ok=True)
        rate.write_text(f"{emc}\n")
    return root


def fake_command(bin_dir: Path, name: str, stdout: str, exit_code: int = 0) -> Path:
    """An executable ``name`` in ``bin_dir`` that prints ``stdout``: a board tool (nvpmodel) for PATH."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / name
    script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{stdout}EOF\nexit {exit_code}\n")
    script.chmod(0o755)
    return script
