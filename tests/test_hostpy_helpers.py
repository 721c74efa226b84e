"""Shared helpers of the hostpy tests: generated arch dirs (cached per session) and csim availability."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def arch_dir(tmp_path_factory, name: str) -> Path:
    """Generate preset ``name`` once per test session (gen is deterministic and atomic)."""
    from gen.render import generate
    from gen.spec import preset
    base = tmp_path_factory.getbasetemp() / "hostpy_arch"
    out = base / name
    if not (out / "regmap.json").is_file():
        generate(preset(name), out, log=lambda *_: None)
    return out


def generated_spec(spec) -> Path:
    """Generate ``spec`` into build/rtl_tests/<name> (locked: xdist workers and test files share it)."""
    import fcntl
    from gen.render import generate
    out = Path(__file__).resolve().parent.parent / "build" / "rtl_tests" / spec.name
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{spec.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        generate(spec, out, log=lambda *_: None)
    return out


def csim_available() -> bool:
    return importlib.util.find_spec("gen.csim") is not None


needs_csim = pytest.mark.skipif(not csim_available(), reason="gen.csim (the HLS C-simulation library builder) "
                                "is not in this tree yet")


def gemm_operands(seed=3, rows=8, k=16, cols=8):
    """Random int8 A[rows][k], B[k][cols] for the board-driver suites."""
    import numpy as np
    rng = np.random.default_rng(seed)
    return (rng.integers(-128, 128, (rows, k)).astype(np.int8), rng.integers(-128, 128, (k, cols)).astype(np.int8))


def check_gemm_and_ff(acc) -> None:
    """A DENSE GEMM (and, on a sparse kernel, PRUNE + FF) off the tile grid, bit-exact vs hostpy.golden."""
    import numpy as np
    from hostpy import golden
    s = acc.spec
    kw = dict(data_bits=s.data_bits, acc_bits=s.acc_bits)
    a, b = gemm_operands(seed=11, rows=9, k=24, cols=5)
    assert np.array_equal(acc.gemm(a, b), golden.gemm_dense(a, b, **kw))
    if s.sparse:
        p = acc.prune(a)
        ff, _ = golden.prune(a, s.n, s.m, data_bits=s.data_bits)
        assert np.array_equal(acc.ff(p, b), golden.ff(ff, b, **kw))
