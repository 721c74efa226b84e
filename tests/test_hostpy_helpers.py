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


def csim_available() -> bool:
    return importlib.util.find_spec("gen.csim") is not None


needs_csim = pytest.mark.skipif(not csim_available(), reason="gen.csim (the HLS C-simulation library builder) "
                                "is not in this tree yet")
