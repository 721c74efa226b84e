"""Run the cocotb kernel testbench (sim/tb_hls_kernel.py) on the Vitis HLS kernel's exported RTL.

    python -m sim.hls_rtl --out build/sat_2x8

Needs the RTL that `make hls ARCH=...` (Vitis HLS csynth) writes to
``<out>/work/hls_<arch>/solution1/syn/verilog/``. Where Vitis HLS is not installed and no such RTL
exists, it says so and exits with status 0 (tests skip with the same message): nothing is faked.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from gen.regmap import KERNEL_NAME
from gen.spec import load_spec

from .runner import SimError, run_tests

__all__ = ["hls_rtl_sources", "unavailable_reason", "run"]


def hls_rtl_sources(out: Path) -> list[Path]:
    spec = load_spec(out / "spec.json")
    vdir = out / "work" / f"hls_{spec.name}" / "solution1" / "syn" / "verilog"
    return sorted(vdir.glob("*.v")) if vdir.is_dir() else []


def unavailable_reason(out: Path) -> str | None:
    """None when the exported RTL is there; otherwise why this check cannot run."""
    if hls_rtl_sources(out):
        return None
    if shutil.which("vitis_hls") is None:
        return ("Vitis HLS is not installed (no vitis_hls on PATH) and no exported HLS RTL exists under "
                f"{out}/work/hls_*/solution1/syn/verilog: the HLS-RTL cocotb check cannot run here")
    return f"no exported HLS RTL under {out}/work/hls_*/solution1/syn/verilog: run `make hls` first"


def run(out: Path) -> Path:
    return run_tests(out, KERNEL_NAME, "sim.tb_hls_kernel", sources=hls_rtl_sources(out))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.hls_rtl", description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    out = Path(ap.parse_args(argv).out).resolve()
    reason = unavailable_reason(out)
    if reason:
        print(f"sim.hls_rtl: skipped: {reason}")
        return 0
    try:
        rdir = run(out)
    except SimError as e:
        print(f"sim.hls_rtl: error: {e}", file=sys.stderr)
        return 1
    print(f"sim.hls_rtl: the HLS kernel RTL passed the cocotb testbench ({rdir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
