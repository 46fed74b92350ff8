"""The compiled kernels: built where a C compiler exists, cached, and optional."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from hashrepro.retrieval import HammingIndex, mean_average_precision, native

TIES, DEPTHS = ("index", "average"), (None, 100)


def test_kernels_build_where_a_compiler_exists() -> None:
    if shutil.which(os.environ.get("CC", "cc")) is None:
        pytest.skip("no C compiler: the NumPy kernels are used")
    assert native.kernels() is not None


def test_a_fresh_cache_builds_and_disabled_kernels_fall_back(tmp_path) -> None:
    if shutil.which(os.environ.get("CC", "cc")) is None:
        pytest.skip("no C compiler")
    script = (
        "import numpy as np\n"
        "from hashrepro.retrieval import mean_average_precision, native\n"
        "rng = np.random.default_rng(0)\n"
        "qc, dc = rng.normal(size=(5, 16)), rng.normal(size=(300, 16))\n"
        "ql, dl = rng.integers(0, 3, 5), rng.integers(0, 3, 300)\n"
        "print(native.kernels() is not None, mean_average_precision(qc, dc, ql, dl))\n"
    )
    env = {**os.environ, "HASHREPRO_CACHE": str(tmp_path)}
    runs = {}
    for enabled in ("1", "0"):
        out = subprocess.run(
            [sys.executable, "-c", script],
            env={**env, "HASHREPRO_NATIVE": enabled},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        runs[enabled] = (out[0] == "True", float(out[1]))
    assert list((tmp_path / "kernels").glob("kernels-*.so"))
    assert runs["1"][0] and not runs["0"][0]
    assert runs["1"][1] == pytest.approx(runs["0"][1], abs=1e-12)


def test_label_bitsets_renumber_class_ids() -> None:
    q_words, db_bits = native.label_bitsets(np.array([7, 3, 10**12]), np.array([3, 7, 7, 3]))
    assert db_bits.shape == (2, 1) and q_words.shape == (3, 1)
    # classes 3 -> 0 (items 0, 3) and 7 -> 1 (items 1, 2); a query class absent: no label
    assert db_bits[:, 0].tolist() == [0b1001, 0b0110]
    assert q_words[:, 0].tolist() == [0b10, 0b01, 0]


def test_kernels_agree_with_numpy_path(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    qc, dc = rng.normal(size=(7, 40)), rng.normal(size=(1000, 40))
    ql, dl = rng.integers(0, 5, 7), rng.integers(0, 5, 1000)
    ours = [mean_average_precision(qc, dc, ql, dl, ties=t) for t in ("index", "average")]
    monkeypatch.setattr(native, "_ENABLED", False)
    numpy_only = [mean_average_precision(qc, dc, ql, dl, ties=t) for t in ("index", "average")]
    np.testing.assert_allclose(ours, numpy_only, rtol=0, atol=1e-12)


@pytest.fixture
def portable_build(monkeypatch: pytest.MonkeyPatch):
    """The kernels built without AVX2 (the SSE2 / scalar paths), restored afterwards."""
    if native.kernels() is None:
        pytest.skip("no compiled kernels here")
    monkeypatch.setattr(native, "_X86", ("popcnt",))
    native._load.cache_clear()
    yield native.kernels()
    monkeypatch.undo()
    native._load.cache_clear()


def test_kernels_without_avx2_agree(portable_build, monkeypatch: pytest.MonkeyPatch) -> None:
    assert portable_build is not None
    rng = np.random.default_rng(2)
    proto = rng.choice([-1.0, 1.0], size=(4, 48))
    pick = rng.integers(0, 4, 2000)
    dc = proto[pick] * np.where(rng.random((2000, 48)) < 0.1, -1, 1)
    qc, ql, dl = dc[:9] * -1, rng.integers(0, 4, 9), pick
    ours = [mean_average_precision(qc, dc, ql, dl, ties=t, topk=k) for t in TIES for k in DEPTHS]
    top = HammingIndex.from_codes(dc).search(qc, 50)
    monkeypatch.setattr(native, "_ENABLED", False)
    numpy_only = [
        mean_average_precision(qc, dc, ql, dl, ties=t, topk=k) for t in TIES for k in DEPTHS
    ]
    np.testing.assert_allclose(ours, numpy_only, rtol=0, atol=1e-12)
    want = HammingIndex.from_codes(dc).search(qc, 50)
    for a, b in zip(top, want, strict=True):
        np.testing.assert_array_equal(a, b)
