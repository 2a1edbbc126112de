"""The procedural demo dataset: MVTec layout, masks that match the defects, determinism and caching."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from bench.data import demo
from bench.data.demo import DEMO_CATEGORIES, DemoSpec, generate_demo_dataset, render_sample
from bench.errors import BadInput

TINY = DemoSpec(size=64, n_train=3, n_test_good=2, n_test_per_defect=2)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def _fail_if_rendered(*args: object, **kwargs: object) -> None:
    raise AssertionError("rendered an image although the dataset was cached")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo_dataset(tmp_path_factory.mktemp("demo") / "data", TINY)


def test_layout_matches_mvtec(tiny: Path) -> None:
    assert sorted(p.name for p in tiny.iterdir()) == sorted([*DEMO_CATEGORIES, demo.SPEC_FILE])
    for category, defects in DEMO_CATEGORIES.items():
        base = tiny / category
        assert sorted(p.name for p in base.iterdir()) == ["ground_truth", "test", "train"]
        assert [p.name for p in (base / "train").iterdir()] == ["good"]
        assert sorted(p.name for p in (base / "test").iterdir()) == sorted(["good", *defects])
        assert sorted(p.name for p in (base / "ground_truth").iterdir()) == sorted(defects)
        assert sorted(p.name for p in (base / "train" / "good").iterdir()) == [
            "000.png",
            "001.png",
            "002.png",
        ]
        assert sorted(p.name for p in (base / "test" / "good").iterdir()) == ["000.png", "001.png"]
        for defect in defects:
            images = sorted(p.name for p in (base / "test" / defect).iterdir())
            masks = sorted(p.name for p in (base / "ground_truth" / defect).iterdir())
            assert images == ["000.png", "001.png"]
            assert masks == [f"{Path(name).stem}_mask.png" for name in images]


def test_images_are_rgb_and_masks_binary_nonempty_and_aligned(tiny: Path) -> None:
    for image_path in tiny.rglob("*.png"):
        if "ground_truth" in image_path.parts:
            continue
        with Image.open(image_path) as image:
            assert (image.mode, image.size) == ("RGB", (TINY.size, TINY.size))
    for category, defects in DEMO_CATEGORIES.items():
        for defect in defects:
            for image_path in (tiny / category / "test" / defect).iterdir():
                mask_path = tiny / category / "ground_truth" / defect / f"{image_path.stem}_mask.png"
                with Image.open(mask_path) as mask:
                    assert (mask.mode, mask.size) == ("L", (TINY.size, TINY.size))
                values = set(np.unique(_pixels(mask_path)).tolist())
                assert values == {0, 255}, (mask_path, values)


def test_spec_file_records_spec_fingerprint_and_version(tiny: Path) -> None:
    meta = json.loads((tiny / demo.SPEC_FILE).read_text())
    assert meta["fingerprint"] == TINY.fingerprint()
    assert meta["generator_version"] == demo.GENERATOR_VERSION
    assert {k: meta[k] for k in TINY.to_dict()} == TINY.to_dict()


def test_files_are_what_render_sample_returns(tiny: Path) -> None:
    image, mask = render_sample("tiles", "test", "crack", 1, size=TINY.size, seed=TINY.seed)
    assert np.array_equal(_pixels(tiny / "tiles" / "test" / "crack" / "001.png"), image)
    assert mask is not None
    assert np.array_equal(_pixels(tiny / "tiles" / "ground_truth" / "crack" / "001_mask.png") > 0, mask)
    good, no_mask = render_sample("washer", "train", "good", 2, size=TINY.size, seed=TINY.seed)
    assert no_mask is None
    assert np.array_equal(_pixels(tiny / "washer" / "train" / "good" / "002.png"), good)


def test_generation_is_deterministic_and_seeded(tmp_path: Path) -> None:
    first = _files(generate_demo_dataset(tmp_path / "a", TINY))
    second = _files(generate_demo_dataset(tmp_path / "b", TINY))
    assert first == second
    reseeded = _files(generate_demo_dataset(tmp_path / "c", DemoSpec(**{**TINY.to_dict(), "seed": 1})))
    assert reseeded.keys() == first.keys()
    pngs = [name for name in first if name.endswith(".png") and "ground_truth" not in name]
    assert all(reseeded[name] != first[name] for name in pngs)


def test_images_do_not_depend_on_what_else_is_generated(tiny: Path, tmp_path: Path) -> None:
    spec = DemoSpec(size=64, n_train=2, n_test_good=1, n_test_per_defect=1, categories=("washer", "tiles"))
    subset = _files(generate_demo_dataset(tmp_path / "subset", spec))
    full = _files(tiny)
    pngs = [name for name in subset if name.endswith(".png")]
    assert len(pngs) == 2 * (2 + 1 + 3 + 3)  # two categories: train, test/good, 3 defects and their masks
    assert all(subset[name] == full[name] for name in pngs)


def test_second_call_is_a_cache_hit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = generate_demo_dataset(tmp_path / "data", TINY)
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    monkeypatch.setattr(demo, "render_sample", _fail_if_rendered)
    assert generate_demo_dataset(root, TINY) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == stamps


def test_spec_change_replaces_the_dataset(tmp_path: Path) -> None:
    root = generate_demo_dataset(tmp_path / "data", TINY)
    changed = DemoSpec(size=64, n_train=2, n_test_good=1, n_test_per_defect=1, seed=3, categories=("fabric",))
    generate_demo_dataset(root, changed)
    assert _files(root) == _files(generate_demo_dataset(tmp_path / "fresh", changed))
    assert json.loads((root / demo.SPEC_FILE).read_text())["fingerprint"] == changed.fingerprint()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "fresh"]  # no temporary or old folders left


def test_incomplete_cached_dataset_is_regenerated(tmp_path: Path) -> None:
    root = generate_demo_dataset(tmp_path / "data", TINY)
    missing = root / "fabric" / "test" / "hole" / "001.png"
    missing.unlink()
    generate_demo_dataset(root, TINY)
    assert missing.is_file()


def test_interrupted_generation_keeps_the_previous_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = generate_demo_dataset(tmp_path / "data", TINY)
    before = _files(root)
    calls = []

    def crash_midway(*args: object, **kwargs: object) -> tuple[np.ndarray, np.ndarray | None]:
        calls.append(args)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return render_sample(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(demo, "render_sample", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        generate_demo_dataset(root, DemoSpec(**{**TINY.to_dict(), "seed": 9}))
    assert _files(root) == before
    assert [p.name for p in tmp_path.iterdir()] == ["data"]
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        generate_demo_dataset(tmp_path / "new", TINY)
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


def test_refuses_to_replace_a_folder_that_is_not_a_demo_dataset(tmp_path: Path) -> None:
    root = tmp_path / "precious"
    root.mkdir()
    (root / "notes.txt").write_text("keep me")
    with pytest.raises(BadInput):
        generate_demo_dataset(root, TINY)
    assert (root / "notes.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (generate_demo_dataset(empty, TINY) / demo.SPEC_FILE).is_file()


def test_progress_counts_every_image(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    root = generate_demo_dataset(
        tmp_path / "data", TINY, progress=lambda done, total: seen.append((done, total))
    )
    images = [p for p in root.rglob("*.png") if "ground_truth" not in p.parts]
    assert seen == [(done, len(images)) for done in range(len(images) + 1)]


def test_fingerprint_tracks_every_field_and_the_generator_version(monkeypatch: pytest.MonkeyPatch) -> None:
    base = DemoSpec()
    assert len(base.fingerprint()) == 64 and int(base.fingerprint(), 16) >= 0
    assert DemoSpec().fingerprint() == base.fingerprint()
    assert DemoSpec(categories=["fabric", "tiles", "washer"]).fingerprint() == base.fingerprint()  # type: ignore[arg-type]
    variants = [
        DemoSpec(size=256),
        DemoSpec(n_train=5),
        DemoSpec(n_test_good=3),
        DemoSpec(n_test_per_defect=2),
        DemoSpec(seed=1),
        DemoSpec(categories=("washer",)),
    ]
    prints = {v.fingerprint() for v in variants}
    assert base.fingerprint() not in prints and len(prints) == len(variants)
    before = base.fingerprint()
    monkeypatch.setattr(demo, "GENERATOR_VERSION", demo.GENERATOR_VERSION + 1)
    assert DemoSpec().fingerprint() != before


@pytest.mark.parametrize(
    "fields",
    [
        {"size": 8},
        {"n_train": 0},
        {"seed": -1},
        {"n_test_good": 1.5},
        {"categories": ("carpet",)},
        {"categories": ()},
        {"categories": ("tiles", "tiles")},
    ],
)
def test_invalid_specs_are_rejected(fields: dict[str, object]) -> None:
    with pytest.raises(BadInput):
        DemoSpec(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("category", sorted(DEMO_CATEGORIES))
def test_good_images_vary_beyond_sensor_noise(category: str) -> None:
    def smooth(index: int) -> np.ndarray:
        image = render_sample(category, "train", "good", index, size=96)[0].astype(np.float64)
        return ndimage.gaussian_filter(image, (1.5, 1.5, 0))

    images = [smooth(i) for i in range(4)]
    for i in range(len(images)):
        for j in range(i):
            assert np.abs(images[i] - images[j]).mean() > 5, (category, i, j)


@pytest.mark.parametrize("category", sorted(DEMO_CATEGORIES))
def test_good_images_are_not_one_pattern_in_the_same_place(category: str) -> None:
    """Random phase, offset and pose blur the fine detail of the mean image; a fixed layout would not."""

    def detail(image: np.ndarray) -> np.ndarray:
        return image - ndimage.gaussian_filter(image, 3)

    images = [
        render_sample(category, "train", "good", i, size=96)[0].astype(np.float64).mean(axis=2)
        for i in range(8)
    ]
    ratio = detail(np.mean(images, axis=0)).std() / np.mean([detail(image).std() for image in images])
    assert ratio < 0.6, ratio


@pytest.mark.parametrize(("category", "defect"), [(c, d) for c, ds in DEMO_CATEGORIES.items() for d in ds])
def test_defects_change_pixels_only_inside_their_mask(category: str, defect: str) -> None:
    areas, contrasts = [], []
    for index in range(6):
        image, mask = render_sample(category, "test", defect, index, size=128)
        clean, _ = render_sample(category, "test", defect, index, size=128, apply_defect=False)
        assert mask is not None and mask.shape == image.shape[:2] and mask.any()
        changed = np.abs(image.astype(np.int16) - clean).max(axis=2) > 0
        assert not (changed & ~mask).any(), "pixels changed outside the mask"
        assert changed[mask].mean() > 0.3, "most of the mask should be visibly altered"
        areas.append(int(mask.sum()))
        contrasts.append(float(np.abs(image.astype(np.int16) - clean).max(axis=2)[mask].mean()))
    assert max(areas) >= 3 * min(areas), f"defect sizes should range from tiny to large: {areas}"
    subtle = [
        area < 0.003 * 128 * 128 or contrast < 25 for area, contrast in zip(areas, contrasts, strict=True)
    ]
    assert any(subtle) and not all(subtle), f"want subtle and obvious defects: {areas} {contrasts}"


def test_good_test_images_and_training_images_are_distinct_draws() -> None:
    train = render_sample("fabric", "train", "good", 0, size=64)[0]
    test = render_sample("fabric", "test", "good", 0, size=64)[0]
    assert not np.array_equal(train, test)


def test_unknown_labels_are_rejected() -> None:
    with pytest.raises(BadInput):
        render_sample("fabric", "train", "hole", 0, size=64)
    with pytest.raises(BadInput):
        render_sample("fabric", "test", "crack", 0, size=64)
    with pytest.raises(BadInput):
        render_sample("fabric", "val", "good", 0, size=64)
