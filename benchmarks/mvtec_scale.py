"""The harness at MVTec AD scale: wall time and peak memory of each step on a generated tree (issue 19).

Generates a tree of MVTec AD's dimensions (15 categories with their real train/test counts, 3,629
training and 1,725 test images, 700-1024 px PNG with per-pixel sensor noise, grayscale where MVTec
is), scaled by ``--scale`` (each count times the fraction, at least one normal and one defective test
image and two training images per category). The scenes come from the demo generator
(``bench.data.demo.render_sample``): textures from its fabric and tiles, objects from its washer.
Then, each step in its own child process (wall time; peak resident memory from ``os.wait4``):
TinyGLASS checkpoints fitted briefly on a seeded random backbone (setup, not a goal; skipped when ``--out``
already holds them), a host run,
a bare ONNX Runtime loop over as many inferences as the warm host run made (its pure inference time),
an FP16 emulated run (Jetson), an INT8 emulated run (IMX500) cold (MCT PTQ per category) and warm
(artifacts cached), ``compare`` host against INT8, and ``report`` over 20 run records (the runs above
and copies of them under new run ids: the report's work depends on the records, not their origin).
The host runs four times: cold (ONNX export and parity check per category), warm (cached), and twice
with ``--tensor-cache`` (filling it, then reading preprocessed tensors instead of decoding the PNGs, as
a nightly's second and third runs over the same data do); the goal is read on the warm runs, as for INT8.

Goals: host run within 1.3x of its pure inference time, INT8 emulation (warm) within 3x of the host
run, report under 60 s, peak memory under 4 GiB for every step.

    python benchmarks/mvtec_scale.py [--scale 0.1] [--out DIR] [--fit-steps 30] [--fit-images 16]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from bench.data.demo import DEMO_CATEGORIES, render_sample

# MVTec AD: (train good, test good, test defective, image side, grayscale, demo scene) per category
MVTEC_AD = {
    "bottle": (209, 20, 63, 900, False, "washer"),
    "cable": (224, 58, 92, 1024, False, "washer"),
    "capsule": (219, 23, 109, 1000, False, "washer"),
    "carpet": (280, 28, 89, 1024, False, "fabric"),
    "grid": (264, 21, 57, 1024, True, "tiles"),
    "hazelnut": (391, 40, 70, 1024, False, "washer"),
    "leather": (245, 32, 92, 1024, False, "fabric"),
    "metal_nut": (220, 22, 93, 700, False, "washer"),
    "pill": (267, 26, 141, 800, False, "washer"),
    "screw": (320, 41, 119, 1024, True, "washer"),
    "tile": (230, 33, 84, 840, False, "tiles"),
    "toothbrush": (60, 12, 30, 1024, False, "washer"),
    "transistor": (213, 60, 40, 1024, False, "washer"),
    "wood": (247, 19, 60, 1024, False, "fabric"),
    "zipper": (240, 32, 119, 1024, True, "fabric"),
}
GIB = 1024 ** 3
CHILD = r"""
import sys, time, json, numpy as np, onnxruntime as ort
path, count, threads, side = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
o = ort.SessionOptions(); o.intra_op_num_threads = threads
s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
x = np.random.default_rng(0).standard_normal((1, 3, side, side), dtype=np.float32)
name = s.get_inputs()[0].name
tick = time.perf_counter()
for _ in range(count):
    s.run(None, {name: x})
print(json.dumps({"seconds": time.perf_counter() - tick}))
"""


def counts(scale: float) -> dict[str, tuple[int, int, int]]:
    """(train, test good, test defective) per category at ``scale``."""
    return {c: (max(2, round(tr * scale)), max(1, round(g * scale)), max(1, round(d * scale)))
            for c, (tr, g, d, *_) in MVTEC_AD.items()}


RENDER_SIDE = 320  # scenes are drawn at this side and upscaled: drawing at 1024 px costs ~1 s an image


def _write_image(job: tuple[Path, str, str, str, int, int, bool, int]) -> None:
    """One image (and its mask): the demo scene drawn small, upscaled, then per-pixel sensor noise at full size,
    so it decodes like a camera image (noise does not compress)."""
    root, category, split, label, index, side, gray, seed = job
    scene = MVTEC_AD[category][5]
    image, mask = render_sample(scene, split, label, index, size=min(side, RENDER_SIDE), seed=seed)
    big = np.asarray(Image.fromarray(image).resize((side, side), Image.BICUBIC), dtype=np.float32)
    noise = np.random.default_rng([seed, index, len(split), len(label)]).normal(0.0, 1.6, big.shape)
    pixels = np.clip(np.rint(big + noise), 0, 255).astype(np.uint8)
    folder = root / category / split / label
    folder.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(pixels).convert("L") if gray else Image.fromarray(pixels)
    picture.save(folder / f"{index:03d}.png", compress_level=1)
    if mask is not None:
        masks = root / category / "ground_truth" / label
        masks.mkdir(parents=True, exist_ok=True)
        full = Image.fromarray(mask.astype(np.uint8) * 255).resize((side, side), Image.NEAREST)
        full.save(masks / f"{index:03d}_mask.png", compress_level=1)


def generate(root: Path, scale: float, workers: int) -> int:
    """The tree under ``root`` (kept when it is complete for ``scale``); returns the number of images."""
    stamp = root / "generated.json"
    jobs = []
    for category, (train, good, bad) in counts(scale).items():
        _, _, _, side, gray, scene = MVTEC_AD[category]
        defects = DEMO_CATEGORIES[scene]
        seed = zlib.crc32(category.encode()) % 1000
        labelled = [("train", "good", i) for i in range(train)] + [("test", "good", i) for i in range(good)]
        labelled += [("test", defects[i % len(defects)], i) for i in range(bad)]
        jobs += [(root, category, split, label, index, side, gray, seed) for split, label, index in labelled]
    if stamp.exists() and json.loads(stamp.read_text()) == {"scale": scale, "images": len(jobs)}:
        return len(jobs)
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for _ in pool.imap_unordered(_write_image, jobs, chunksize=8):
            pass
    stamp.write_text(json.dumps({"scale": scale, "images": len(jobs)}))
    return len(jobs)


def child(args: list[str], cwd: Path, module: bool = True) -> dict:
    """One step in a child process: wall seconds, peak resident bytes (ru_maxrss), exit code and stdout."""
    command = [sys.executable, "-m", "bench", *args] if module else [sys.executable, *args]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        tick = time.perf_counter()
        proc = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=err, env=os.environ.copy())
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - tick
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode not in (0, 3, 4):
        raise SystemExit(f"{' '.join(command[2:5])} failed ({proc.returncode}): {stderr[-2000:]}")
    return {"seconds": seconds, "peak_bytes": usage.ru_maxrss * 1024, "rc": proc.returncode, "stdout": stdout}


def host_artifact(manifest: dict) -> Path:
    """The host run's ONNX in the artifact cache (any category's: latency does not depend on the weights)."""
    from bench.paths import cache_dir

    wanted = {e["artifact_sha256"] for e in manifest["model"]["categories"].values()}
    for info in (cache_dir() / "artifacts" / "host").glob("*/artifact.json"):
        if json.loads(info.read_text())["sha256"] in wanted:
            return info.parent / json.loads(info.read_text())["path"]
    raise SystemExit("the host run's artifact is not in the cache; cannot time the bare loop")


def new_run(results: Path, before: set[Path]) -> Path:
    return next(iter(set(results.iterdir()) - before))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of MVTec AD's image counts (0 < s <= 1)")
    parser.add_argument("--out", type=Path, default=None, help="keep the tree, records and JSON here")
    parser.add_argument("--fit-steps", type=int, default=30, help="TinyGLASS fitting steps per category (setup)")
    parser.add_argument("--fit-images", type=int, default=16, help="training images per category the setup fit "
                        "decodes (all of them took ~3 min a category at full scale)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes generating the tree")
    parser.add_argument("--threads", type=int, default=2, help="threads of the bare inference loop (the host's)")
    args = parser.parse_args()
    if not 0 < args.scale <= 1:
        raise SystemExit(f"--scale must be in (0, 1], got {args.scale}")
    work = args.out or Path(tempfile.mkdtemp(prefix="mvtec-scale-"))
    data, results, ckpt = work / "data", work / "results", work / "checkpoints"
    results.mkdir(parents=True, exist_ok=True)
    steps: dict[str, dict] = {}

    tick = time.perf_counter()
    images = generate(data, args.scale, args.workers)
    steps["generate"] = {"seconds": time.perf_counter() - tick, "peak_bytes": None, "images": images}
    setup = ("from pathlib import Path; import numpy as np; from bench.data.datasets import open_dataset; "
             "from bench.data.preprocess import preprocess_image; from bench.fitting import fit_categories; "
             "from bench.models.backbones import save_random_resnet18; from bench.models.cards import load_card; "
             f"d = open_dataset('mvtec', Path('{data}')); card = load_card('tinyglass'); "
             "cal = np.concatenate([preprocess_image(s.path, card.recipe) for c in d.categories() "
             "for s in d.samples(c, 'train')[:2]]); "
             f"b = save_random_resnet18(Path('{work}/backbone.pth'), 0, calibration=cal); "
             f"fit_categories(card, d, d.categories(), Path('{ckpt}'), b, seed=0, steps={args.fit_steps}, "
             f"max_train={args.fit_images})")
    fitted = all((ckpt / f"{c}.pth").is_file() for c in MVTEC_AD) and (work / "backbone.pth").is_file()
    steps["fit (setup)"] = ({"seconds": 0.0, "peak_bytes": None, "skipped": f"checkpoints already in {ckpt}"}
                            if fitted else child(["-c", setup], work, module=False))
    common = ["--model", "tinyglass", "--dataset", "mvtec", "--data-root", str(data), "--checkpoint", str(ckpt),
              "--backbone-weights", str(work / "backbone.pth"), "--out", str(results),
              "--warmup", "0", "--min-count", "1", "--min-duration", "0"]
    runs: dict[str, Path] = {}
    for name, device in (("host run, cold", ["--device", "host"]), ("host run", ["--device", "host"]),
                         ("host run, filling the tensor cache", ["--device", "host", "--tensor-cache"]),
                         ("host run, tensor cache", ["--device", "host", "--tensor-cache"]),
                         ("FP16 emulated run", ["--device", "jetson", "--emulate"]),
                         ("INT8 emulated run, cold", ["--device", "imx500", "--emulate"]),
                         ("INT8 emulated run, warm", ["--device", "imx500", "--emulate"])):
        before = set(results.iterdir())
        steps[name] = child(["run", *device, *common], work)
        runs[name] = new_run(results, before)

    from bench.records import load_run

    host = load_run(runs["host run"])
    inferences = len(host.images) + len(host.latency)
    host_onnx = host_artifact(host.manifest)
    side = int(host.manifest["model"]["input_shape"][-1])
    steps["pure inference (bare loop)"] = child(["-c", CHILD, str(host_onnx), str(inferences), str(args.threads),
                                                 str(side)], work, module=False)
    steps["pure inference (bare loop)"]["inferences"] = inferences
    steps["compare host vs INT8"] = child(["compare", str(runs["host run"]), str(runs["INT8 emulated run, warm"]),
                                           "--json"], work)
    pool = work / "report-runs"
    pool.mkdir(exist_ok=True)
    sources = list(runs.values())
    for i in range(20):
        source = sources[i % len(sources)]
        target = pool / (source.name if i < len(sources) else f"{source.name}-copy{i}")
        shutil.copytree(source, target, dirs_exist_ok=True, copy_function=os.link)  # links: 20 runs of maps
        if i >= len(sources):
            manifest = target / "manifest.json"
            data_ = json.loads(manifest.read_text())
            data_["run_id"] = target.name
            manifest.unlink()  # a link to the source's manifest: replace it, never write through it
            manifest.write_text(json.dumps(data_))
    steps["report over 20 runs"] = child(["report", str(pool), "--out", str(work / "report" / "index.html")], work)

    host_s, pure_s = steps["host run"]["seconds"], steps["pure inference (bare loop)"]["seconds"]
    int8_s = steps["INT8 emulated run, warm"]["seconds"]
    cached_s = steps["host run, tensor cache"]["seconds"]
    goals = {"host run / pure inference <= 1.3": host_s / pure_s,
             "host run, tensor cache / pure inference <= 1.3": cached_s / pure_s,
             "INT8 emulated (warm) / host run <= 3": int8_s / host_s,
             "report seconds < 60": steps["report over 20 runs"]["seconds"],
             "largest peak GiB < 4": max(s["peak_bytes"] or 0 for s in steps.values()) / GIB}
    print(f"scale {args.scale}: {images} images ({sum(c[1] + c[2] for c in counts(args.scale).values())} test)")
    print("| step | wall s | peak RSS MiB |")
    print("|---|---|---|")
    for name, s in steps.items():
        peak = f"{s['peak_bytes'] / 2 ** 20:.0f}" if s["peak_bytes"] else "-"
        print(f"| {name} | {s['seconds']:.1f} | {peak} |")
    limits = [1.3, 1.3, 3.0, 60.0, 4.0]
    for (goal, value), limit in zip(goals.items(), limits, strict=True):
        print(f"{goal}: {value:.2f} ({'met' if value <= limit else 'missed'})")
    for s in steps.values():
        s.pop("stdout", None)
    (work / "mvtec_scale.json").write_text(json.dumps({"scale": args.scale, "steps": steps, "goals": goals,
                                                       "runs": {k: str(v) for k, v in runs.items()}}, indent=2))
    print(f"tree, records and JSON in {work}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
