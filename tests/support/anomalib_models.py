"""Small real anomalib 2.7.0 exports, and anomalib's own result on them, for the bring-your-own-model tests.

``export_anomalib`` fits a model on a generated dataset and exports ONNX the way ``Engine.export`` does; it runs
in a child process so the offline settings below (read by huggingface_hub and platformdirs at import time) and
lightning's global state never touch the test process. No weights or data can be downloaded here, so:

- Padim and Patchcore take ``pre_trained=False`` (anomalib 2.7.0 models/image/{padim,patchcore}/lightning_model.py).
- Stfpm builds its teacher with ``pre_trained=True`` hard-coded (models/image/stfpm/torch_model.py
  STFPMModel.__init__), which timm resolves through the Hugging Face hub (timm 1.0 models/_builder.py
  _resolve_pretrained_source, models/_hub.py load_state_dict_from_hf). The child runs with HF_HUB_OFFLINE=1 and a
  hub cache under ``root`` holding seeded random resnet18 weights, the way an offline site pre-seeds its cache.
- EfficientAd loads its teacher from anomalib's cache dir when that folder exists and reads ImageNette from
  ``imagenet_dir`` when that folder exists (models/image/efficient_ad/lightning_model.py
  prepare_pretrained_model, prepare_imagenette_data); the child points XDG_CACHE_HOME (platformdirs, anomalib
  utils/path.py _get_cache_subdir) at ``root`` with a seeded random teacher, and ``imagenet_dir`` at the
  generated images. The teachers are untrained, but the export path (pre-processor, model, post-processor with
  statistics from validation) is the one a trained model takes, which is what these files are for.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

MODELS = ("Padim", "Patchcore", "Stfpm", "EfficientAd")
# EfficientAd's autoencoder needs 256 px inside the graph (its encoder ends in an 8x8 conv after five stride-2
# convs: models/image/efficient_ad/torch_model.py Encoder); the others run at the generated image size.
_IN_GRAPH_SIZE = {"EfficientAd": 256}
_TIMM_RESNET18 = "resnet18.a1_in1k"  # timm 1.0 models/resnet.py: resnet18's default pretrained tag
_FAKE_HUB_REVISION = "0" * 40


def make_dataset(root: Path, size: int, seed: int = 0) -> Path:
    """A tiny MVTec-like folder: smooth textured goods, defects as a bright square with its mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size

    def good() -> np.ndarray:
        phase = rng.uniform(0, 2 * np.pi, 3)
        base = 0.5 + 0.2 * np.stack([np.sin(8 * xx + p) * np.cos(6 * yy + p) for p in phase], axis=-1)
        return np.clip(base + rng.normal(0, 0.03, base.shape), 0, 1)

    def save(array: np.ndarray, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((array * 255).round().astype(np.uint8)).save(path)

    for i in range(8):
        save(good(), root / "train" / "good" / f"{i:03d}.png")
    for i in range(4):
        save(good(), root / "test" / "good" / f"{i:03d}.png")
        image, mask = good(), np.zeros((size, size))
        side = size // 4
        y, x = rng.integers(0, size - side, 2)
        image[y : y + side, x : x + side] = [1.0, 0.9, 0.2]
        mask[y : y + side, x : x + side] = 1.0
        save(image, root / "test" / "defect" / f"{i:03d}.png")
        save(mask, root / "ground_truth" / "defect" / f"{i:03d}_mask.png")  # MVTec AD naming
    return root


def export_anomalib(model_name: str, root: Path, image_size: int = 64, dynamic: bool = False) -> Path:
    """The ONNX anomalib 2.7.0 exports for ``model_name`` fitted on a generated dataset, cached under ``root``.

    The static file has a fixed ``image_size`` input (``Engine.export(..., input_size=(s, s))``); the dynamic one
    is the same fitted model exported with anomalib's default ``input_size=None`` (dynamic batch, height, width).
    """
    if model_name not in MODELS:
        raise ValueError(f"unknown anomalib model {model_name!r}; known: {', '.join(MODELS)}")
    out = Path(root) / f"{model_name.lower()}-{image_size}"
    target = out / "weights" / "onnx" / ("model_dynamic.onnx" if dynamic else "model.onnx")
    if target.is_file():
        return target
    work = Path(root) / f".{model_name.lower()}-{image_size}.work"
    shutil.rmtree(work, ignore_errors=True)
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        HF_HUB_CACHE=str(Path(root) / "hf-hub"),
        XDG_CACHE_HOME=str(Path(root) / "xdg-cache"),
        PYTHONWARNINGS="ignore",
    )
    done = subprocess.run(
        [sys.executable, __file__, model_name, str(work), str(image_size)],
        env=env, capture_output=True, text=True, timeout=900, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"anomalib export of {model_name} failed:\n{done.stderr[-4000:]}")
    shutil.rmtree(out, ignore_errors=True)
    (work / "export").rename(out)
    shutil.copytree(work / "data", out / "data")
    shutil.rmtree(work, ignore_errors=True)
    return target


def dataset_of(onnx_path: Path) -> Path:
    """The generated dataset an export was fitted on (kept beside the export)."""
    return Path(onnx_path).parents[2] / "data"


def anomalib_reference(onnx_path: Path, image_paths: list[Path]) -> list[tuple[float, np.ndarray | None]]:
    """anomalib's own result per image: its image reading and pre-processing, then onnxruntime on the file.

    anomalib 2.7.0 has no ONNX Runtime inferencer; OpenVINOInferencer (deploy/inferencers/openvino_inferencer.py)
    also takes an .onnx, and its ``predict`` reads the image with data/utils/image.py ``read_image`` (RGB, /255)
    and applies the static ``OpenVINOInferencer.pre_process`` (float32, /255 again only if max > 1, NCHW). Both
    are called here as they are; only the runtime differs. Returns (pred_score, anomaly_map[H, W] or None).
    """
    import onnxruntime as ort
    from anomalib.data.utils import read_image
    from anomalib.deploy.inferencers.openvino_inferencer import OpenVINOInferencer

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0]
    names = [output.name for output in session.get_outputs()]
    results = []
    for path in image_paths:
        image = OpenVINOInferencer.pre_process(read_image(path, as_tensor=False))
        fixed = [dim for dim in feed.shape[2:] if isinstance(dim, int)]
        if len(fixed) == 2 and list(image.shape[2:]) != fixed:
            raise ValueError(f"{path}: image is {image.shape[2:]}, the graph's static input is {fixed}")
        outputs = dict(zip(names, session.run(None, {feed.name: image}), strict=True))
        amap = outputs.get("anomaly_map")
        results.append((float(np.asarray(outputs["pred_score"]).reshape(-1)[0]),
                        None if amap is None else np.asarray(amap).reshape(amap.shape[-2:])))
    return results


def _seed_offline_weights(model_name: str) -> None:
    """Seeded random 'pre-trained' weights where anomalib or timm would download them (see module docstring)."""
    import torch

    torch.manual_seed(0)
    if model_name == "Stfpm":
        import timm
        from safetensors.torch import save_file

        snapshot = Path(os.environ["HF_HUB_CACHE"]) / f"models--timm--{_TIMM_RESNET18}"
        if not (snapshot / "refs" / "main").is_file():
            files = snapshot / "snapshots" / _FAKE_HUB_REVISION
            files.mkdir(parents=True, exist_ok=True)
            save_file(timm.create_model(_TIMM_RESNET18, pretrained=False).state_dict(), files / "model.safetensors")
            (snapshot / "refs").mkdir(exist_ok=True)
            (snapshot / "refs" / "main").write_text(_FAKE_HUB_REVISION)
    if model_name == "EfficientAd":
        from anomalib.models.image.efficient_ad.torch_model import EfficientAdModel, EfficientAdModelSize
        from anomalib.utils.path import get_pretrained_weights_dir

        folder = get_pretrained_weights_dir() / "efficientad_pretrained_weights"
        folder.mkdir(parents=True, exist_ok=True)
        teacher = EfficientAdModel(teacher_out_channels=384, model_size=EfficientAdModelSize.S).teacher
        torch.save(teacher.state_dict(), folder / "pretrained_teacher_small.pth")


def _build(model_name: str, work: Path, size: int):
    from anomalib.models import EfficientAd, Padim, Patchcore, Stfpm

    in_graph = _IN_GRAPH_SIZE.get(model_name, size)
    if model_name == "Padim":
        return Padim(backbone="resnet18", layers=["layer1", "layer2"], pre_trained=False, n_features=32,
                     pre_processor=Padim.configure_pre_processor((in_graph, in_graph)))
    if model_name == "Patchcore":
        return Patchcore(backbone="resnet18", layers=["layer2", "layer3"], pre_trained=False,
                         coreset_sampling_ratio=0.1, num_neighbors=3,
                         pre_processor=Patchcore.configure_pre_processor((in_graph, in_graph)))
    if model_name == "Stfpm":
        return Stfpm(backbone="resnet18", layers=["layer1", "layer2"],
                     pre_processor=Stfpm.configure_pre_processor((in_graph, in_graph)))
    imagenet = work / "imagenet"
    shutil.copytree(work / "data" / "train", imagenet)  # ImageFolder wants class folders: train/good is one
    return EfficientAd(imagenet_dir=imagenet, model_size="small",
                       pre_processor=EfficientAd.configure_pre_processor((in_graph, in_graph)))


def _fit_and_export(model_name: str, work: Path, size: int) -> None:
    import torch
    from anomalib.data import Folder
    from anomalib.deploy import ExportType
    from anomalib.engine import Engine
    from lightning.pytorch import seed_everything

    started = time.perf_counter()
    seed_everything(0, workers=True)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    _seed_offline_weights(model_name)
    data = make_dataset(work / "data", size)
    datamodule = Folder(
        name="generated", root=data, normal_dir="train/good", abnormal_dir="test/defect",
        normal_test_dir="test/good", mask_dir="ground_truth/defect",
        train_batch_size=1 if model_name == "EfficientAd" else 4, eval_batch_size=4, num_workers=0, seed=0,
    )
    model = _build(model_name, work, size)
    # EfficientAd's steps run three networks at 256 px; two of them are enough to exercise the export.
    steps = {"limit_train_batches": 2} if model_name == "EfficientAd" else {}
    engine = Engine(default_root_dir=work / "runs", logger=False, accelerator="cpu", devices=1, max_epochs=1,
                    enable_progress_bar=False, enable_model_summary=False, **steps)
    engine.fit(model=model, datamodule=datamodule)
    fitted = time.perf_counter()
    export = work / "export"
    engine.export(model=model, export_type=ExportType.ONNX, export_root=export, input_size=(size, size))
    engine.export(model=model, export_type=ExportType.ONNX, export_root=export, model_file_name="model_dynamic")
    timing = {"fit_s": round(fitted - started, 2), "export_s": round(time.perf_counter() - fitted, 2)}
    (export / "timing.json").write_text(json.dumps(timing))


if __name__ == "__main__":
    _fit_and_export(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]))
