"""Make the TinyGLASS official-parity fixture by running the official code (ETH-PBL/TinyGLASS @ 356c7d7).

Nothing of the official code is copied here. This script

1. draws a tiny MVTec-AD-layout dataset (two categories, non-square PNGs) with numpy + PIL,
2. draws a few DTD-like JPG textures (the official training's anomaly source; not kept),
3. writes a seeded random ResNet-18 state dict where torchvision's ``resnet18(pretrained=True)``
   looks for it ($TORCH_HOME/hub/checkpoints/resnet18-f37072fd.pth), so no download happens,
4. runs the official training CLI (``main.py ... net ... dataset ... mvtec DATA AUG``) in a subprocess
   on the CPU; it writes ``models/backbone_0/mvtec_<category>/ckpt_best_<epoch>.pth`` itself,
5. imports the official modules from the path given on the command line (in a second subprocess),
   builds GLASS exactly as main.py does, loads each checkpoint as ``GLASS.tester`` does and records
   ``GLASS._predict`` / ``GLASS.forward`` outputs over the official MVTecDataset TEST split,
6. writes data/, models/, expected.npz and fixture.json under the output folder.

    python benchmarks/official_parity/make_tinyglass_fixture.py --official /path/to/TinyGLASS \
        [--out tests/data/tinyglass_official] [--work /tmp/tinyglass_fixture_work]

The official code's extra imports (imgaug, ...) must be importable, e.g. from a folder put on
PYTHONPATH (see README.md beside this file). Two run-time adaptations are made from this script, never
in the official files: NumPy 2 lacks ``np.sctypes`` which imgaug 0.4.0 reads at import (an alias is
restored), and main.py's ``--gpu`` defaults to (0,), so on a machine without CUDA the device is forced
to the CPU and ``torch.cuda.reset_peak_memory_stats`` / ``max_memory_allocated`` (called by the
tester) become no-ops.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

OFFICIAL_COMMIT = "356c7d7"
BACKBONE_SEED = 20260301
TRAIN_SEED = 0
CATEGORIES = {
    # category: (defect type, (width, height)). Both are shrunk (bottle to a 256 short side, wood to the
    # official 292), landscape and portrait, and both centre crops hit a .5 offset (281-256, 321-256).
    "bottle": ("contamination", (301, 274)),
    "wood": ("scratch", (300, 330)),
}
N_TRAIN, N_TEST_GOOD, N_TEST_BAD = 4, 2, 2
RESIZE = IMAGESIZE = 256
BATCH_SIZE = 2

# The official hyper-parameters of shell/run_tinyglass_mvtec_gpu0.sh, with tiny epochs and batch size.
NET_ARGS = [
    "net", "-b", "resnet18", "-le", "layer2", "-le", "layer3",
    "--pretrain_embed_dimension", "384", "--target_embed_dimension", "384", "--patchsize", "3",
    "--meta_epochs", "2", "--eval_epochs", "1", "--dsc_layers", "2", "--dsc_hidden", "512",
    "--pre_proj", "1", "--mining", "1", "--noise", "0.015", "--radius", "0.75", "--p", "0.5",
    "--step", "20", "--limit", "392",
]  # fmt: skip
# GLASS.load keyword arguments exactly as main.py's get_glass passes them for NET_ARGS (defaults included).
LOAD_KWARGS = {
    "pretrain_embed_dimension": 384, "target_embed_dimension": 384, "patchsize": 3, "meta_epochs": 2,
    "eval_epochs": 1, "dsc_layers": 2, "dsc_hidden": 512, "dsc_margin": 0.5, "train_backbone": False,
    "pre_proj": 1, "mining": 1, "noise": 0.015, "radius": 0.75, "p": 0.5, "lr": 0.0001, "svd": 0,
    "step": 20, "limit": 392,
}  # fmt: skip

# What update_state_dict() writes (pre_proj is forced to 0 by GLASS.load, so no "pre_projection").
CKPT_SHAPES = {
    "body.0.weight": [512, 128, 1, 1], "body.0.bias": [512], "body.1.weight": [512], "body.1.bias": [512],
    "body.1.running_mean": [512], "body.1.running_var": [512], "body.1.num_batches_tracked": [],
    "tail.0.weight": [1, 512, 1, 1],
}  # fmt: skip


def dataset_args(data: Path, aug: Path) -> list[str]:
    args = [
        "dataset", "--distribution", "2", "--mean", "0.5", "--std", "0.1", "--fg", "0", "--rand_aug", "1",
        "--batch_size", str(BATCH_SIZE), "--num_workers", "1", "--resize", str(RESIZE), "--imagesize", str(IMAGESIZE),
    ]  # fmt: skip
    for category in CATEGORIES:
        args += ["-d", category]
    return [*args, "mvtec", str(data), str(aug)]


# --------------------------------------------------------------------------------------------- data


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int, amp: float) -> np.ndarray:
    """Low-frequency noise: a coarse random grid upsampled bilinearly (keeps PNGs small)."""
    coarse = rng.normal(0.0, 1.0, (h // cell + 2, w // cell + 2)).astype(np.float32)
    img = Image.fromarray(coarse).resize((w, h), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32) * amp


def _bottle(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    cx, cy = w / 2 + rng.uniform(-6, 6), h / 2 + rng.uniform(-6, 6)
    r = np.hypot(xx - cx, yy - cy)
    base = 30 + 20 * (xx / w) + 10 * (yy / h)  # dark background with a gentle gradient
    rim = 115 + rng.uniform(-4, 4)
    bottle = np.clip(1.0 - r / rim, 0, 1)  # bright disc fading outwards (top view of a bottle)
    ring = np.exp(-(((r - 0.55 * rim) / 6.0) ** 2))  # the bottle's neck ring
    g = base + 150 * bottle**0.6 + 40 * ring + _smooth_noise(rng, h, w, 16, 3.0)
    g = np.round(g / 4) * 4  # mild posterisation keeps the PNGs small
    rgb = np.stack([g * 0.95, g * 0.85, g * 0.55], axis=-1)  # brownish glass
    return np.clip(rgb, 0, 255)


def _wood(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    warp = _smooth_noise(rng, h, w, 32, 6.0)
    phase = rng.uniform(0, 2 * np.pi)
    grain = np.sin(2 * np.pi * (xx + warp + 0.08 * yy) / 23.0 + phase)  # vertical grain
    g = 150 + 25 * grain + 10 * (yy / h) + _smooth_noise(rng, h, w, 8, 2.0)
    g = np.round(g / 4) * 4
    rgb = np.stack([g * 1.0, g * 0.72, g * 0.45], axis=-1)
    return np.clip(rgb, 0, 255)


def _defect(category: str, rng: np.random.Generator, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paint a visible defect; return the image and its binary (0/255) mask of the same size."""
    h, w = rgb.shape[:2]
    mask = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(mask)
    if category == "bottle":  # a dark irregular blob (a few overlapping ellipses) inside the bottle
        cx, cy = w / 2 + rng.uniform(-40, 40), h / 2 + rng.uniform(-40, 40)
        for _ in range(4):
            ox, oy = rng.uniform(-14, 14, 2)
            rx, ry = rng.uniform(10, 22, 2)
            draw.ellipse([cx + ox - rx, cy + oy - ry, cx + ox + rx, cy + oy + ry], fill=255)
        colour = np.array([20.0, 60.0, 25.0])
    else:  # a bright thin scratch across the grain
        x0, y0 = rng.uniform(0.15 * w, 0.4 * w), rng.uniform(0.15 * h, 0.4 * h)
        x1, y1 = rng.uniform(0.6 * w, 0.85 * w), rng.uniform(0.6 * h, 0.85 * h)
        draw.line([x0, y0, (x0 + x1) / 2 + rng.uniform(-15, 15), (y0 + y1) / 2, x1, y1], fill=255, width=7)
        colour = np.array([235.0, 225.0, 205.0])
    m = np.asarray(mask, dtype=np.float32)[..., None] / 255.0
    soft = np.asarray(mask.filter(ImageFilter.GaussianBlur(1.5)), dtype=np.float32)[..., None] / 255.0
    out = rgb * (1 - soft) + colour * soft
    return out, (m[..., 0] > 0.5).astype(np.uint8) * 255


def make_dataset(root: Path, seed: int = 0) -> list[str]:
    """MVTec AD layout: <cat>/train/good, <cat>/test/{good,<defect>}, <cat>/ground_truth/<defect>/<stem>_mask.png."""
    written = []
    rng = np.random.default_rng(seed)
    for category, (defect, (w, h)) in CATEGORIES.items():
        draw = _bottle if category == "bottle" else _wood
        jobs = [("train/good", i, False) for i in range(N_TRAIN)]
        jobs += [("test/good", i, False) for i in range(N_TEST_GOOD)]
        jobs += [(f"test/{defect}", i, True) for i in range(N_TEST_BAD)]
        for sub, i, bad in jobs:
            rgb = draw(rng, w, h)
            name = f"{i:03d}.png"
            if bad:
                rgb, mask = _defect(category, rng, rgb)
                mpath = root / category / "ground_truth" / defect / f"{i:03d}_mask.png"
                mpath.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask).save(mpath, optimize=True)
                written.append(str(mpath.relative_to(root)))
            path = root / category / sub / name
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.round(rgb).astype(np.uint8)).save(path, optimize=True)
            written.append(str(path.relative_to(root)))
    return written


def make_textures(root: Path, seed: int = 1) -> None:
    """A few DTD-like textures, <root>/<class>/<n>.jpg, as the training's anomaly source."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:320, :320].astype(np.float32)
    for cls in ("banded", "chequered", "dotted"):
        for n in range(2):
            if cls == "banded":
                g = 127 + 120 * np.sin(2 * np.pi * (xx * rng.uniform(0.5, 1) + yy * rng.uniform(0, 0.5)) / 17)
            elif cls == "chequered":
                s = int(rng.integers(12, 30))
                g = 40 + 180 * ((xx // s + yy // s) % 2)
            else:
                g = 200 - 170 * (np.sin(xx / 5.0) * np.sin(yy / 5.0) > 0.6)
            tint = rng.uniform(0.4, 1.0, 3)
            rgb = np.clip(np.stack([g * t for t in tint], -1) + rng.normal(0, 8, (320, 320, 3)), 0, 255)
            path = root / cls / f"{cls}_{n:04d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb.astype(np.uint8)).save(path, quality=90)


def make_backbone(torch_home: Path, seed: int = BACKBONE_SEED) -> dict:
    """The recipe of bench.models.backbones.save_random_resnet18(path, seed) without calibration."""
    import torch
    from torchvision.models import resnet18

    path = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    m = resnet18(weights=None)
    torch.save(m.state_dict(), path)
    return {
        "seed": seed,
        "tensor_sha256": state_dict_sha256(m.state_dict()),
        "path_in_torch_home": str(path.relative_to(torch_home)),
    }


def state_dict_sha256(state_dict) -> str:
    """sha256 over every tensor's bytes (contiguous, CPU, native little-endian) concatenated in key order."""
    h = hashlib.sha256()
    for t in state_dict.values():
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------- run-time adaptations (not official code)


def _numpy2_alias_for_imgaug() -> None:
    try:
        np.sctypes  # noqa: B018
    except AttributeError:
        np.sctypes = {
            "int": [np.int8, np.int16, np.int32, np.int64],
            "uint": [np.uint8, np.uint16, np.uint32, np.uint64],
            "float": [np.float16, np.float32, np.float64, np.longdouble],
            "complex": [np.complex64, np.complex128, np.clongdouble],
            "others": [bool, object, bytes, str, np.void],
        }


def _cpu_when_no_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        return
    import utils  # the official utils module (its folder is on sys.path)

    utils.set_torch_device = lambda gpu_ids: torch.device("cpu")
    torch.cuda.reset_peak_memory_stats = lambda *a, **k: None
    torch.cuda.max_memory_allocated = lambda *a, **k: 0


def run_official_cli(official: Path, argv: list[str]) -> None:
    """Child process: the official main.py as __main__, with the two adaptations above."""
    import runpy

    sys.path.insert(0, str(official))
    _numpy2_alias_for_imgaug()
    _cpu_when_no_cuda()
    sys.argv = [str(official / "main.py"), *argv]
    runpy.run_path(str(official / "main.py"), run_name="__main__")


def compute_expected(official: Path, data: Path, aug: Path, models: Path, out_npz: Path, report: Path) -> None:
    """Child process: official inference (GLASS.load as main.py, checkpoint as GLASS.tester, _predict per batch)."""
    sys.path.insert(0, str(official))
    _numpy2_alias_for_imgaug()
    import backbones  # official modules, imported from `official`
    import glass
    import torch
    import utils
    from datasets import mvtec

    device = torch.device("cpu")
    arrays: dict[str, list] = {
        k: [] for k in ("ids", "scores", "maps", "patch_scores", "masks", "labels", "input_sha256")
    }
    extra: dict[str, np.ndarray] = {}
    info: dict = {"categories": {}}
    for category in CATEGORIES:
        utils.fix_seeds(TRAIN_SEED, device)  # as main.py does before get_glass
        backbone = backbones.load("resnet18")
        backbone.name, backbone.seed = "resnet18", None
        model = glass.GLASS(device)
        model.load(
            backbone=backbone, layers_to_extract_from=("layer2", "layer3"), device=device,
            input_shape=(3, IMAGESIZE, IMAGESIZE), **LOAD_KWARGS,
        )  # fmt: skip
        model = model.to(device)
        ckpt_dir = models / "backbone_0" / f"mvtec_{category}"
        ckpts = sorted(ckpt_dir.glob("ckpt_best*"))
        assert len(ckpts) == 1, ckpts
        state = torch.load(ckpts[0], map_location=device)  # as GLASS.tester
        model.discriminator.load_state_dict(state["discriminator"])
        shapes = {k: list(v.shape) for k, v in state["discriminator"].items()}
        assert list(state) == ["discriminator"] and shapes == CKPT_SHAPES, (list(state), shapes)

        ds = mvtec.MVTecDataset(
            str(data), str(aug), classname=category, resize=RESIZE, imagesize=IMAGESIZE,
            split=mvtec.DatasetSplit.TEST, seed=TRAIN_SEED,
        )  # fmt: skip
        loader = torch.utils.data.DataLoader(ds, batch_size=BATCH_SIZE, shuffle=False, num_workers=0)
        repeat_identical = True
        batch1_max_abs = {"score": 0.0, "map": 0.0}
        first_bad = None
        for batch in loader:
            img = batch["image"]
            scores, maps = model._predict(img)
            scores2, maps2 = model._predict(img)
            repeat_identical &= bool(
                np.array_equal(np.asarray(scores), np.asarray(scores2))
                and np.array_equal(np.stack(maps), np.stack(maps2))
            )
            with torch.no_grad():
                patch = model.forward(img.to(torch.float).to(device)).cpu().numpy()
            for i, path in enumerate(batch["image_path"]):
                rel = Path(path).resolve().relative_to(data.resolve()).as_posix()
                x = np.ascontiguousarray(img[i : i + 1].numpy().astype(np.float32))
                s1, m1 = model._predict(img[i : i + 1])  # batch of one, to report batch-size sensitivity
                batch1_max_abs["score"] = max(batch1_max_abs["score"], float(abs(s1[0] - scores[i])))
                batch1_max_abs["map"] = max(batch1_max_abs["map"], float(np.abs(m1[0] - maps[i]).max()))
                arrays["ids"].append(rel)
                arrays["scores"].append(np.float32(scores[i]))
                arrays["maps"].append(np.asarray(maps[i], dtype=np.float32))
                arrays["patch_scores"].append(patch[i].astype(np.float32))
                arrays["masks"].append(batch["mask_gt"][i].numpy().astype(int)[0] != 0)  # as metrics see it
                arrays["labels"].append(int(batch["is_anomaly"][i]))
                arrays["input_sha256"].append(hashlib.sha256(x.tobytes()).hexdigest())
                if first_bad is None and int(batch["is_anomaly"][i]) == 1:
                    first_bad = rel
                    extra[f"input_{category}"] = x
                    extra[f"input_{category}_id"] = np.array(rel)
                    # the resized mask before astype(int), as uint8 (ToTensor made it k/255, so this is exact)
                    extra[f"mask_raw_{category}"] = np.round(batch["mask_gt"][i].numpy()[0] * 255).astype(np.uint8)
        info["categories"][category] = {
            "checkpoint": ckpts[0].relative_to(models.parent).as_posix(),
            "checkpoint_sha256": _sha256_file(ckpts[0]),
            "checkpoint_keys": {k: {kk: list(v.shape) for kk, v in sd.items()} for k, sd in state.items()},
            "discriminator_tensor_sha256": state_dict_sha256(state["discriminator"]),
            "official_resize": ds.resize,
            "n_test": len(ds),
            "predict_twice_identical": repeat_identical,
            "batch_of_one_max_abs_diff": batch1_max_abs,
            "backbone_tensor_sha256": state_dict_sha256(model.resNet18.state_dict()),
        }
    out = {
        "ids": np.array(arrays["ids"]),
        "scores": np.array(arrays["scores"], dtype=np.float32),
        "maps": np.stack(arrays["maps"]).astype(np.float32),
        "patch_scores": np.stack(arrays["patch_scores"]).astype(np.float32),
        "masks": np.stack(arrays["masks"]).astype(bool),
        "labels": np.array(arrays["labels"], dtype=np.int64),
        "input_sha256": np.array(arrays["input_sha256"]),
        **extra,
    }
    np.savez_compressed(out_npz, **out)
    report.write_text(json.dumps(info, indent=2))


# --------------------------------------------------------------------------------------------- driver


def _versions() -> dict:
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    names = ["torch", "torchvision", "numpy", "pillow", "scipy", "imgaug", "click", "scikit-learn", "scikit-image"]
    names += ["opencv-python-headless", "opencv-python", "pandas", "timm", "tensorboard"]
    for name in names:
        with contextlib.suppress(md.PackageNotFoundError):
            out[name] = md.version(name)
    return out


def _tester_scores(log: str) -> dict[str, list[float]]:
    """The scores main.py's tester logged ('y_pred_float: [...]'), per category in run order."""
    found = re.findall(r"y_pred_float: \[(.*?)\]", log)
    return {
        c: [float(v) for v in re.findall(r"[-+]?\d*\.\d+(?:[eE][-+]?\d+)?", s)]
        for c, s in zip(CATEGORIES, found, strict=False)
    }


def main() -> None:
    here = Path(__file__).resolve()
    repo = here.parents[2]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", type=Path, required=True, help="checkout of ETH-PBL/TinyGLASS at 356c7d7")
    ap.add_argument("--out", type=Path, default=repo / "tests" / "data" / "tinyglass_official")
    ap.add_argument("--work", type=Path, default=Path("/tmp/tinyglass_fixture_work"))
    ap.add_argument("--_child", choices=("cli", "expected"), help=argparse.SUPPRESS)
    ap.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    a = ap.parse_args()
    official = a.official.resolve()

    if a._child == "cli":
        run_official_cli(official, a.rest)
        return
    if a._child == "expected":
        data, aug, models, npz, report = (Path(p) for p in a.rest)
        compute_expected(official, data, aug, models, npz, report)
        return

    out, work = a.out.resolve(), a.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    for sub in ("data", "models"):
        shutil.rmtree(out / sub, ignore_errors=True)
    work.mkdir(parents=True)
    out.mkdir(parents=True, exist_ok=True)
    data, aug, torch_home, results = out / "data", work / "dtd" / "images", work / "torch_home", work / "results"
    files = make_dataset(data)
    make_textures(aug)
    backbone = make_backbone(torch_home)
    env = {**os.environ, "TORCH_HOME": str(torch_home), "PYTHONHASHSEED": "0"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(official), env.get("PYTHONPATH", "")) if p)
    run_dir = work / "cwd"  # main.py writes ./results/... relative to its working directory
    run_dir.mkdir()

    cli_args = ["--results_path", str(results), "--seed", str(TRAIN_SEED), "--test", "ckpt",
                *NET_ARGS, *dataset_args(data, aug)]  # fmt: skip
    cmd = [sys.executable, str(here), "--official", str(official), "--_child", "cli", "--", *cli_args]
    print("+", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=run_dir, env=env, capture_output=True, text=True)
    (work / "official_cli.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        sys.exit(f"official CLI failed ({proc.returncode}); see {work / 'official_cli.log'}")

    models = out / "models"
    for category in CATEGORIES:
        src_dir = results / "models" / "backbone_0" / f"mvtec_{category}"
        ckpts = sorted(src_dir.glob("ckpt_best_*.pth"))
        assert len(ckpts) == 1, ckpts
        dst = models / "backbone_0" / f"mvtec_{category}" / ckpts[0].name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ckpts[0], dst)

    npz, report = out / "expected.npz", work / "expected_report.json"
    cmd2 = [sys.executable, str(here), "--official", str(official), "--_child", "expected", "--",
            str(data), str(aug), str(models), str(npz), str(report)]  # fmt: skip
    print("+", " ".join(cmd2), flush=True)
    subprocess.run(cmd2, cwd=run_dir, env=env, check=True)
    info = json.loads(report.read_text())

    exp = np.load(npz)
    tester = _tester_scores(proc.stdout + proc.stderr)
    for category, logged in tester.items():
        mine = [float(s) for i, s in zip(exp["ids"], exp["scores"], strict=True) if i.startswith(category + "/")]
        info["categories"][category]["tester_logged_scores"] = logged
        info["categories"][category]["tester_log_matches"] = bool(np.allclose(mine, logged, rtol=0, atol=1e-6))

    fixture = {
        "official_repo": "https://github.com/ETH-PBL/TinyGLASS",
        "official_commit": OFFICIAL_COMMIT,
        "backbone": {
            "recipe": "torch.manual_seed(seed); m = torchvision.models.resnet18(weights=None); "
            "torch.save(m.state_dict(), $TORCH_HOME/hub/checkpoints/resnet18-f37072fd.pth)",
            "equivalent": "bench.models.backbones.save_random_resnet18(path, seed) without calibration",
            "tensor_sha256_definition": "sha256 of b''.join(t.contiguous().numpy().tobytes() for t in "
            "state_dict.values()) in state_dict key order (includes num_batches_tracked int64)",
            **backbone,
        },
        "versions": _versions(),
        "train_seed": TRAIN_SEED,
        "resize": RESIZE,
        "imagesize": IMAGESIZE,
        "batch_size": BATCH_SIZE,
        "categories": {
            c: {"defect": d, "image_size_wh": list(s), **info["categories"][c]} for c, (d, s) in CATEGORIES.items()
        },
        "commands": {
            "generate": "python benchmarks/official_parity/make_tinyglass_fixture.py --official <TinyGLASS@356c7d7>",
            "official_cli": "cd <work>/cwd && TORCH_HOME=<work>/torch_home python main.py " + " ".join(cli_args),
            "official_cli_argv": cli_args,
            "adaptations": [
                "np.sctypes restored (removed in NumPy 2, read by imgaug 0.4.0 at import)",
                "no CUDA: utils.set_torch_device returns cpu; torch.cuda.reset_peak_memory_stats and "
                "max_memory_allocated are no-ops (main.py --gpu defaults to (0,))",
                "--num_workers 1 (main.py passes prefetch_factor=2, which torch rejects with num_workers 0)",
            ],
        },
        "expected_outputs": {
            "how": "GLASS(cpu).load(...) as main.py; discriminator.load_state_dict(ckpt['discriminator']) as "
            "GLASS.tester; MVTecDataset(split=TEST, resize=256, imagesize=256) in a DataLoader(batch_size=2, "
            "shuffle=False); GLASS._predict(batch) -> scores, maps; GLASS.forward(batch) -> patch_scores",
            "masks": "batch['mask_gt'].numpy().astype(int) != 0 (bilinear-resized mask truncated by astype(int), "
            "as metrics.compute_pixelwise_retrieval_metrics sees it)",
            "input_sha256": "sha256 of "
            "np.ascontiguousarray(batch['image'][i:i+1].numpy().astype(np.float32)).tobytes()",
        },
        "data_files": {f: _sha256_file(data / f) for f in sorted(files)},
    }
    (out / "fixture.json").write_text(json.dumps(fixture, indent=2) + "\n")
    print(json.dumps({c: {k: v for k, v in fixture["categories"][c].items() if k != "checkpoint_keys"}
                      for c in CATEGORIES}, indent=2))  # fmt: skip
    print("scores:", dict(zip(exp["ids"].tolist(), exp["scores"].tolist(), strict=True)))


if __name__ == "__main__":
    main()
