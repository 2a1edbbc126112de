"""Dataset readers on generated trees in every layout, each bad case, the loader, cache and stream."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bench.cli import main
from bench.data.datasets import checked, open_dataset
from bench.data.inspection import inspect_dataset
from bench.data.loader import InputLoader
from bench.data.preprocess import Recipe, preprocess_image
from bench.data.stream import prefetch
from bench.data.tensor_cache import TensorCache
from bench.errors import BadInput

RECIPE = Recipe(resize=(16, 16), crop=(16, 16))


def png(path: Path, size: tuple[int, int] = (20, 20), value: int = 100, mode: str = "RGB", fmt: str = "PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(np.full(shape, value, dtype=np.uint8), mode).save(path, format=fmt)
    return path


def mask(path: Path, size: tuple[int, int] = (20, 20), value: int = 255) -> Path:
    arr = np.zeros((size[1], size[0]), dtype=np.uint8)
    arr[2:6, 2:6] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, "L").save(path)
    return path


def mvtec_tree(root: Path) -> Path:
    for cat in ("bottle", "carpet"):
        png(root / cat / "train" / "good" / "000.png")
        png(root / cat / "train" / "good" / "001.png")
        png(root / cat / "test" / "good" / "000.png")
        png(root / cat / "test" / "crack" / "000.PNG", value=200)
        mask(root / cat / "ground_truth" / "crack" / "000_mask.png")
        png(root / cat / "test" / "crack" / "001.png", value=200)
        mask(root / cat / "ground_truth" / "crack" / "001_mask.png")
        (root / cat / "test" / "good" / ".DS_Store").write_text("x")
        (root / cat / "readme.txt").write_text("stray")
    (root / "license.txt").write_text("CC BY-NC-SA 4.0")
    (root / ".hidden").mkdir()
    return root


def test_mvtec_layout(tmp_path: Path) -> None:
    ds = open_dataset("mvtec", mvtec_tree(tmp_path))
    assert ds.categories() == ["bottle", "carpet"]
    test = ds.samples("bottle", "test")
    assert [s.image_id for s in test] == ["bottle/test/crack/000.PNG", "bottle/test/crack/001.png",
                                         "bottle/test/good/000.png"]
    assert [s.label for s in test] == [1, 1, 0]
    assert test[0].mask_path == tmp_path / "bottle" / "ground_truth" / "crack" / "000_mask.png"
    assert test[2].mask_path is None and all(s.problem is None for s in test)
    assert len(ds.samples("bottle", "train")) == 2
    assert ds.samples("bottle", "test") == test  # deterministic


def test_missing_category_names_it(tmp_path: Path) -> None:
    ds = open_dataset("mvtec", mvtec_tree(tmp_path))
    with pytest.raises(BadInput, match=r"'cable' not in .* \(found: bottle, carpet\)"):
        ds.select(["cable"])


def test_defective_without_mask_is_strict_by_default(tmp_path: Path) -> None:
    root = mvtec_tree(tmp_path)
    (root / "carpet" / "ground_truth" / "crack" / "001_mask.png").unlink()
    samples = open_dataset("mvtec", root).samples("carpet", "test")
    bad = [s for s in samples if s.problem]
    assert len(bad) == 1 and "carpet/test/crack/001.png: defective image without its mask" in bad[0].problem
    with pytest.raises(BadInput, match=r"001\.png: defective image without its mask .*--skip-bad"):
        checked(samples, skip_bad=False)
    assert checked(samples, skip_bad=True) == samples


def test_unknown_dataset_and_missing_root(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="valid datasets: folder, manifest, mms, mvtec, visa"):
        open_dataset("mvtek", tmp_path)
    with pytest.raises(BadInput, match="no such file or folder"):
        open_dataset("mvtec", tmp_path / "absent")


def visa_raw(root: Path) -> Path:
    rows = [["object", "split", "label", "image", "mask"]]
    for i in range(2):
        img = f"candle/Data/Images/Normal/{i:03d}.JPG"
        png(root / img, fmt="JPEG")
        rows.append(["candle", "train" if i == 0 else "test", "normal", img, ""])
    img, msk = "candle/Data/Images/Anomaly/000.JPG", "candle/Data/Masks/Anomaly/000.png"
    png(root / img, fmt="JPEG", value=220)
    mask(root / msk, value=1)  # VisA masks may hold 1, not 255: non-zero is anomalous
    rows.append(["candle", "test", "anomaly", img, msk])
    (root / "split_csv").mkdir(parents=True)
    (root / "split_csv" / "1cls.csv").write_text("\n".join(",".join(r) for r in rows) + "\n")
    return root


def test_visa_raw_layout(tmp_path: Path) -> None:
    ds = open_dataset("visa", visa_raw(tmp_path))
    assert ds.layout == "raw" and ds.categories() == ["candle"]
    test = ds.samples("candle", "test")
    assert [(s.image_id, s.label, s.defect_type) for s in test] == [
        ("candle/Data/Images/Anomaly/000.JPG", 1, "bad"), ("candle/Data/Images/Normal/001.JPG", 0, "good")]
    from bench.data.preprocess import preprocess_mask

    binarised = preprocess_mask(test[0].mask_path, RECIPE, test[0].path)
    assert binarised.dtype == bool and binarised.any()


@pytest.mark.parametrize("content, message", [
    ("object,split,label,image\ncandle,test,normal,a.JPG\n", "missing column 'mask'"),
    ("object,split,label,image,mask\ncandle,test,broken,a.JPG,\n", "label 'broken'"),
])
def test_visa_bad_split_file(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "split_csv").mkdir()
    (tmp_path / "split_csv" / "1cls.csv").write_text(content)
    with pytest.raises(BadInput, match=message):
        open_dataset("visa", tmp_path)


def test_visa_converted_layout(tmp_path: Path) -> None:
    png(tmp_path / "pcb1" / "train" / "good" / "000.JPG", fmt="JPEG")
    png(tmp_path / "pcb1" / "test" / "good" / "001.JPG", fmt="JPEG")
    png(tmp_path / "pcb1" / "test" / "bad" / "002.JPG", fmt="JPEG")
    mask(tmp_path / "pcb1" / "ground_truth" / "bad" / "002.png")
    ds = open_dataset("visa", tmp_path)
    assert ds.layout == "converted"
    bad = [s for s in ds.samples("pcb1", "test") if s.label == 1]
    assert bad[0].mask_path == tmp_path / "pcb1" / "ground_truth" / "bad" / "002.png" and bad[0].problem is None


def test_mms_without_masks(tmp_path: Path) -> None:
    for subset in ("mms_rpi", "mms_stretch"):
        png(tmp_path / subset / "train" / "good" / "IMG_0001.png")
        png(tmp_path / subset / "test" / "good" / "IMG_0002.png")
        for defect in ("crack_hole", "scratch", "half"):
            png(tmp_path / subset / "test" / defect / "IMG_0003.png")
    ds = open_dataset("mms", tmp_path)
    assert ds.categories() == ["mms_rpi", "mms_stretch"]
    test = ds.samples("mms_rpi", "test")
    assert sorted({s.defect_type for s in test if s.label}) == ["crack_hole", "half", "scratch"]
    assert all(s.mask_path is None and s.problem is None for s in test)


def test_mms_masks_pair_by_sorted_position_as_the_official_reader(tmp_path: Path) -> None:
    """The official datasets/mvtec.py sorts test/<type> and ground_truth/<type> and pairs them by index,
    whatever the names: IMG_0007's mask here is named 'a.png', IMG_0009's 'b.png'."""
    png(tmp_path / "mms_rpi" / "train" / "good" / "IMG_0001.png")
    for name in ("IMG_0009.png", "IMG_0007.png"):
        png(tmp_path / "mms_rpi" / "test" / "scratch" / name)
    for name in ("b.png", "a.png"):
        mask(tmp_path / "mms_rpi" / "ground_truth" / "scratch" / name)
    png(tmp_path / "mms_rpi" / "test" / "half" / "IMG_0003.png")
    png(tmp_path / "mms_rpi" / "test" / "half" / "IMG_0004.png")
    mask(tmp_path / "mms_rpi" / "ground_truth" / "half" / "IMG_0003_mask.png")
    test = {s.image_id: s for s in open_dataset("mms", tmp_path).samples("mms_rpi", "test")}
    gt = tmp_path / "mms_rpi" / "ground_truth"
    assert test["mms_rpi/test/scratch/IMG_0007.png"].mask_path == gt / "scratch" / "a.png"
    assert test["mms_rpi/test/scratch/IMG_0009.png"].mask_path == gt / "scratch" / "b.png"
    half = test["mms_rpi/test/half/IMG_0004.png"]
    assert half.mask_path is None and "1 masks for 2 images in test/half" in half.problem


def test_folder_any_names(tmp_path: Path) -> None:
    png(tmp_path / "Line 3 gears" / "test" / "good" / "a.jpg", fmt="JPEG")
    png(tmp_path / "Line 3 gears" / "test" / "burr" / "b.bmp", fmt="BMP")
    mask(tmp_path / "Line 3 gears" / "ground_truth" / "burr" / "b.png")
    ds = open_dataset("folder", tmp_path)
    assert ds.categories() == ["Line 3 gears"]
    burr = next(s for s in ds.samples("Line 3 gears", "test") if s.label)
    assert burr.mask_path is not None and burr.image_id == "Line 3 gears/test/burr/b.bmp"


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_manifest(tmp_path: Path, suffix: str) -> None:
    png(tmp_path / "imgs" / "a.png")
    png(tmp_path / "imgs" / "b.png", value=200)
    mask(tmp_path / "masks" / "b.png")
    frame = pd.DataFrame({"image": ["imgs/b.png", "imgs/a.png", "imgs/c.png"], "category": ["gear"] * 3,
                          "label": ["anomaly", "good", "1"], "mask": ["masks/b.png", "", ""]})
    path = tmp_path / f"lab{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    ds = open_dataset("manifest", path)
    samples = ds.samples("gear", "test")
    assert [s.image_id for s in samples] == ["imgs/a.png", "imgs/b.png", "imgs/c.png"]
    assert [s.label for s in samples] == [0, 1, 1] and samples[1].mask_path == tmp_path / "masks" / "b.png"
    assert "imgs/c.png: image not found (listed in lab" in samples[2].problem


@pytest.mark.parametrize("columns, message", [
    ({"image": ["a.png"], "label": [0]}, "missing column 'category'"),
    ({"image": ["a.png"], "category": ["x"], "label": ["maybe"]}, "label 'maybe' not understood"),
])
def test_manifest_errors(tmp_path: Path, columns: dict, message: str) -> None:
    path = tmp_path / "m.csv"
    pd.DataFrame(columns).to_csv(path, index=False)
    with pytest.raises(BadInput, match=message):
        open_dataset("manifest", path)


def test_mask_of_the_wrong_size_is_named(tmp_path: Path) -> None:
    root = mvtec_tree(tmp_path)
    mask(root / "bottle" / "ground_truth" / "crack" / "001_mask.png", size=(30, 20))
    sample = next(s for s in open_dataset("mvtec", root).samples("bottle", "test") if s.image_id.endswith("001.png"))
    with pytest.raises(BadInput, match=r"001_mask\.png: mask is 30x20, its image is 20x20"):
        InputLoader(RECIPE)(sample)
    loaded = InputLoader(RECIPE, skip_bad=True)(sample)
    assert loaded.tensor is None and "mask is 30x20" in loaded.error


def test_truncated_image_is_named(tmp_path: Path) -> None:
    root = mvtec_tree(tmp_path)
    target = root / "carpet" / "test" / "good" / "000.png"
    big = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(big).save(target)
    target.write_bytes(target.read_bytes()[:-200])
    sample = next(s for s in open_dataset("mvtec", root).samples("carpet", "test") if s.path == target)
    with pytest.raises(BadInput, match=r"carpet/test/good/000\.png: unreadable image"):
        InputLoader(RECIPE)(sample)


def test_tensor_cache_hits_and_rejects_bad_entries(tmp_path: Path) -> None:
    root = mvtec_tree(tmp_path / "data")
    sample = open_dataset("mvtec", root).samples("bottle", "test")[0]
    cache = TensorCache(tmp_path / "cache", RECIPE)
    first = InputLoader(RECIPE, cache=cache)(sample)
    files = list((tmp_path / "cache").rglob("*.npy"))
    assert len(files) == 1
    np.save(files[0], first.tensor * 0 + 5)  # a cached entry is trusted by content key
    assert np.all(InputLoader(RECIPE, cache=cache)(sample).tensor == 5)
    np.save(files[0], np.zeros((1, 3, 8, 8), np.float32))  # wrong shape: recomputed
    again = InputLoader(RECIPE, cache=cache)(sample)
    assert np.array_equal(again.tensor, first.tensor) and again.sha256 == first.sha256
    other = TensorCache(tmp_path / "cache", Recipe(resize=(24, 24), crop=(16, 16)))
    assert other.folder != cache.folder  # keyed by the recipe


def test_lut_normalisation_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    rgb = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    mean, std = np.asarray(RECIPE.mean, np.float32), np.asarray(RECIPE.std, np.float32)
    expected = ((rgb.astype(np.float32) / np.float32(255.0) - mean) / std).transpose(2, 0, 1)[None]
    assert np.array_equal(preprocess_image(path, RECIPE), expected)


def test_prefetch_keeps_order_and_bounds_look_ahead() -> None:
    in_flight, peak, lock = 0, 0, threading.Lock()
    started: list[int] = []

    def work(i: int) -> int:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
            started.append(i)
        time.sleep(0.002 * (i % 3))
        with lock:
            in_flight -= 1
        return i * i

    consumed = 0
    for item, result in prefetch(range(50), work, workers=2, depth=4):
        assert result == item * item and item == consumed
        assert max(started) <= consumed + 4  # never more than `depth` ahead of the consumer
        consumed += 1
    assert consumed == 50 and peak <= 2


def test_inspect_dataset_counts_and_problems(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = mvtec_tree(tmp_path)
    (root / "carpet" / "ground_truth" / "crack" / "001_mask.png").unlink()
    mask(root / "bottle" / "ground_truth" / "crack" / "001_mask.png", size=(10, 10))
    report = inspect_dataset(open_dataset("mvtec", root))
    bottle = report["categories"]["bottle"]
    assert (bottle["train"], bottle["test"], bottle["good"], bottle["defective"]) == (2, 3, 1, 2)
    assert bottle["defect_types"] == {"crack": 2} and bottle["masks_found"] == 2
    assert report["problems"] == 2
    assert any("mask is 10x10" in p for p in bottle["problems"])
    assert report["categories"]["carpet"]["masks_missing"] == 1
    # issue 20: it exited 0 while listing problems; a CI step checking a dataset must see them
    assert main(["inspect", "dataset", "--dataset", "mvtec", "--data-root", str(root), "--json"]) == 2
    out = capsys.readouterr().out
    assert json.loads(out)["problems"] == 2  # stdout holds the JSON alone
    (root / "carpet" / "test" / "crack" / "001.png").unlink()
    (root / "bottle" / "ground_truth" / "crack" / "001_mask.png").unlink()
    (root / "bottle" / "test" / "crack" / "001.png").unlink()
    assert main(["inspect", "dataset", "--dataset", "mvtec", "--data-root", str(root)]) == 0


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "I;16"])
def test_fast_png_decode_is_bit_identical_to_pil(tmp_path: Path, mode: str) -> None:
    from bench.data.preprocess import open_image

    rng = np.random.default_rng(2)
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65535, (24, 20), dtype=np.uint16))
    else:
        img = Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)).convert(mode)
    path = tmp_path / "x.png"
    img.save(path)
    data = path.read_bytes()
    for target in ("RGB", "L"):
        with Image.open(path) as reference:
            expected = np.asarray(reference.convert(target))
        assert np.array_equal(np.asarray(open_image(path, target, data=data)), expected), (mode, target)


@pytest.mark.parametrize("damage", ["truncated", "flipped byte"])
def test_a_damaged_png_is_one_line_without_libpngs_own(tmp_path: Path, damage: str,
                                                        capfd: pytest.CaptureFixture) -> None:
    """Issue 20: OpenCV's libpng printed "libpng error: IDAT: incorrect data check" and "PNG input buffer is
    incomplete" on stderr beside the harness's own line. A damaged PNG now goes to PIL, which names the file."""
    import bench.data.preprocess as preprocess

    path = png(tmp_path / "x.png", size=(48, 40))
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert not preprocess._png_intact(bytes(data))
    with pytest.raises(BadInput, match=r"x\.png: unreadable image"):
        preprocess.open_image(path, "RGB", data=bytes(data))
    err = capfd.readouterr().err
    assert "libpng" not in err and "WARN" not in err, err


def test_a_png_without_its_end_chunk_is_not_given_to_libpng() -> None:
    import bench.data.preprocess as preprocess

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, format="PNG")
    assert preprocess._png_intact(buffer.getvalue())
    assert not preprocess._png_intact(buffer.getvalue()[:-12])  # IEND cut off
    assert not preprocess._png_intact(preprocess.PNG_MAGIC)


def test_an_intact_png_takes_the_fast_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.data.preprocess as preprocess

    if preprocess.cv2 is None:
        pytest.skip("opencv is not installed: every PNG goes through PIL")
    path = png(tmp_path / "x.png", size=(48, 40))
    data = path.read_bytes()
    assert preprocess._png_intact(data)
    decoded = []
    real = preprocess.cv2.imdecode
    monkeypatch.setattr(preprocess.cv2, "imdecode", lambda *a: decoded.append(1) or real(*a))
    preprocess.open_image(path, "RGB", data=data)
    assert decoded == [1]


def test_spread_keeps_both_classes_in_their_order() -> None:
    """``run --limit`` and a zero-shot fit's ``--max-train`` take the first N of a label-balanced interleaving:
    a category's first images are often all good, and a fit or an AUROC needs both classes."""
    from bench.data.samples import Sample, spread

    samples = [Sample(f"c/{i}", Path(f"{i}.png"), "c", "test", "good" if i < 6 else "bad", int(i >= 6), None)
               for i in range(9)]
    assert [s.image_id for s in spread(samples, 4)] == ["c/0", "c/1", "c/6", "c/7"]
    assert spread(samples, None) == samples and spread(samples, 20) == samples
