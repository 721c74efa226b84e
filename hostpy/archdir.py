"""Load a generated architecture directory (spec.json + regmap.json) and check it fits this hostpy.

The arch directory is the output of ``python -m gen gen --arch X --out build/X``. hostpy reads the
register map from it and never hardcodes an offset; :data:`REGMAP_VERSION` is the register-map
format this hostpy understands (the same number as ``gen.regmap.REGMAP_VERSION``, kept here so a
board needs no generator installed; a test checks the two agree).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gen.spec import ArchSpec, SpecError, load_spec

from .errors import ArchError, RegmapVersionError

__all__ = ["REGMAP_VERSION", "Arch", "load_arch"]

REGMAP_VERSION = 2
_REQUIRED_REGMAP_KEYS = ("regmap_version", "kernel", "arch", "control", "args", "modes", "operand", "nm", "limits",
                         "status_bits", "abi")


@dataclass(frozen=True)
class Arch:
    """A loaded architecture: its directory, spec and register map, plus the operand dtypes."""

    path: Path
    spec: ArchSpec
    regmap: dict[str, Any] = field(repr=False)

    @property
    def data_dtype(self) -> np.dtype:
        return np.dtype(f"int{self.spec.mem_data_bits}")

    @property
    def acc_dtype(self) -> np.dtype:
        return np.dtype(f"int{self.spec.mem_acc_bits}")

    def mode_code(self, mode: str) -> int:
        try:
            return int(self.regmap["modes"][mode])
        except KeyError:
            raise ArchError(f"architecture {self.spec.name} has no mode {mode!r}; "
                            f"modes: {', '.join(sorted(self.regmap['modes']))}") from None

    def arg(self, name: str) -> dict[str, Any]:
        for a in self.regmap["args"]:
            if a["name"] == name:
                return a
        raise ArchError(f"register map of {self.spec.name} has no argument {name!r}")

    @property
    def arg_names(self) -> list[str]:
        return [a["name"] for a in self.regmap["args"]]


def load_arch(path: str | Path) -> Arch:
    """Read ``path``/spec.json and ``path``/regmap.json; raise ArchError/RegmapVersionError on any mismatch."""
    p = Path(path)
    if not p.is_dir():
        raise ArchError(f"architecture directory not found: {p} "
                        f"(generate it with: python -m gen gen --arch NAME --out {p})")
    for name in ("spec.json", "regmap.json"):
        if not (p / name).is_file():
            raise ArchError(f"{p} is not a generated architecture directory: {name} is missing")
    try:
        spec = load_spec(p / "spec.json")
    except SpecError as e:
        raise ArchError(f"{p / 'spec.json'}: {e}") from None
    try:
        rm = json.loads((p / "regmap.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ArchError(f"{p / 'regmap.json'}: not valid JSON: {e}") from None
    if not isinstance(rm, dict):
        raise ArchError(f"{p / 'regmap.json'}: top level must be an object")
    version = rm.get("regmap_version")
    if version != REGMAP_VERSION:
        raise RegmapVersionError(f"{p / 'regmap.json'} has regmap_version {version!r}, this hostpy reads "
                                 f"version {REGMAP_VERSION}: regenerate the architecture with the matching satgen")
    missing = [k for k in _REQUIRED_REGMAP_KEYS if k not in rm]
    if missing:
        raise ArchError(f"{p / 'regmap.json'} lacks {', '.join(missing)}")
    if rm["arch"] != spec.name:
        raise ArchError(f"{p}: regmap.json is for {rm['arch']!r} but spec.json for {spec.name!r}")
    op, nm = rm["operand"], rm["nm"]
    if (op["data_bits"], op["acc_bits"], nm["n"], nm["m"], nm["sparse"]) != \
            (spec.data_bits, spec.acc_bits, spec.n, spec.m, spec.sparse):
        raise ArchError(f"{p}: regmap.json operand/N:M fields disagree with spec.json")
    return Arch(path=p.resolve(), spec=spec, regmap=rm)
