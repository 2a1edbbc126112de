"""INT8 representative sets: the paper's draw reproduced with torch's own random_split, synthetic anomalies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.extras import need

from bench.data.calibration import CALIBRATIONS, choose, paper_test_subset
from bench.data.samples import Sample
from bench.errors import BadInput


def samples(count: int, split: str, label: int = 0) -> list[Sample]:
    return [Sample(f"c/{split}/{i:03d}.png", Path(f"{i}.png"), "c", split, "good" if not label else "x", label, None)
            for i in range(count)]


def load(sample: Sample) -> np.ndarray:
    value = int(sample.image_id[-7:-4])
    rng = np.random.default_rng(value)
    return rng.standard_normal((1, 3, 32, 32)).astype(np.float32)


def test_paper_test_draws_what_run_quant_mvtec_all_draws() -> None:
    """run_quant_mvtec_all.py: random_split(test, [int(0.2 n), rest], Generator().manual_seed(0)), first 10."""
    torch = need("export", "torch")
    from torch.utils.data import random_split

    test = samples(83, "test")
    cal, _ = random_split(list(range(83)), [16, 67], generator=torch.Generator().manual_seed(0))
    assert [s.image_id for s in paper_test_subset(test)] == [test[i].image_id for i in list(cal)[:10]]
    chosen = choose("paper-test", samples(5, "train"), test, load, "c")
    assert chosen.tpc_version == "1.0" and len(chosen.images(32)) == 10 and "leaks the test set" in chosen.description


def test_train_synthetic_mixes_normal_images_and_anomalies_made_from_them() -> None:
    train = samples(40, "train")
    chosen = choose("train-synthetic", train, [], load, "c")
    batch = chosen.images(8)
    assert len(batch) == 8 and all(b.shape == (1, 3, 32, 32) and b.dtype == np.float32 for b in batch)
    normal = choose("train-normal", train, [], load, "c").images(4)
    assert all(np.array_equal(a, b) for a, b in zip(batch[0::2], normal, strict=True))
    assert not any(np.array_equal(a, b) for a, b in zip(batch[1::2], normal, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(batch, chosen.images(8), strict=True))  # seeded
    assert chosen.tpc_version is None


def test_modes_key_the_artifact_cache_apart_and_bad_input_is_named() -> None:
    need("export", "torch")  # paper-test draws with torch's random_split
    train, test = samples(4, "train"), samples(10, "test", label=1)
    keys = {mode: choose(mode, train, test, load, "c").key for mode in CALIBRATIONS}
    assert len(set(keys.values())) == len(CALIBRATIONS)
    with pytest.raises(BadInput, match="unknown 'everything'"):
        choose("everything", train, test, load, "c")
    with pytest.raises(BadInput, match="needs normal training images"):
        choose("train-synthetic", [], test, load, "data/c")
