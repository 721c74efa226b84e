"""End-to-end training step: the accelerator's GEMMs *and* the host's share, BDWP vs dense.

    python -m gen.e2e --arch sat_2x8 [--batch 32] [--pcie-gbps 12] [--json FILE]

A training step of a network on the card is three kinds of time, added (no overlap assumed
between host work, transfers and the kernel: the host code runs them one after the other):

* **accelerator** (modelled): gen/perf.py ``step_cost`` cycles / ``spec.clock_mhz``, the figure
  behind bench.json's ``networks.<net>.speedup`` (accelerator-only speedup);
* **host** (measured on this machine): the project's own host code (what hostpy.train's
  ``DeviceEngine`` and hostpy.accel run per step) timed at the network's real GEMM shapes:
  ``im2col`` (FF operand of each conv), ``col2im`` (BP result of each conv whose input needs a
  gradient), ``quantize`` (W once per step; X, dY per GEMM as DeviceEngine does, WU quantizing
  both again), ``dequantize`` (each GEMM's result), ``optimizer`` (SGD with momentum on the float
  master W, plus under BDWP the masks from the pruned copies, ``kept_mask``, and the SR-STE
  decay, ``hostpy.bdwp.srste_decay``), ``partial_sums`` (a reduction longer than ``max_k`` runs as
  several launches whose int64 partial sums the host adds and wraps, as hostpy.accel does),
  ``abi_pack`` (memory ABI v2, ``hostpy.abi.Abi``, as hostpy.accel lays out every call: A packed
  grouped (DENSE) or compressed (SPARSE), B grouped, the result unpacked; under BDWP each
  layer's PRUNE packs the dense W and unpacks both compressed copies (``hostpy.train`` reads
  both as masks every step), and a SPARSE call whose A is one of PRUNE's output blocks
  (``hostpy.accel.prune_reuse`` at the default tiles) takes those bytes as they stand: no A
  packing. Timed on whole operands: the per-launch slicing of calls beyond the kernel's limits
  is not counted).
  Each distinct shape is timed once per run (best of 2-3 calls: the steady state) and
  multiplied by how often the step uses it. The figure is the process's CPU time
  (``time.process_time``: these NumPy host functions are single-threaded, so on an idle machine it
  equals their wall time; on a loaded shared machine wall time would mostly measure waiting). Convs are timed as stride-1 "same" convs with the
  layer's output size (the im2col/col2im arrays have the layer's real shapes).
* **transfers** (modelled at ``pcie_gbps``, default 12 GB/s, an effective PCIe Gen3 x16): each
  GEMM's activation operands uploaded and its int32/int64 results downloaded; the weights once per
  step (BDWP: the dense W for PRUNE, whose sparse copies stay in device memory; dense: W and its
  transposed copy for BP).

Not counted: softmax, norms, activations, pooling, the loss (not part of the project's host code),
kernel launch latency, and any overlap of host work with the kernel.
``end_to_end_speedup`` = dense step / BDWP step; ``speedup_if_on_accelerator[part]`` recomputes
it with that host part (or the transfers) taken off both steps, i.e. as if the accelerator did it
for free: an upper bound of what moving that part onto the card buys.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import click
import numpy as np

from hostpy.accel import default_tile, prune_reuse

from .perf import step_cost
from .spec import ArchSpec, SpecError, preset
from .workloads import Layer, lower_layer, network, network_names

__all__ = ["HOST_PARTS", "DEFAULT_PCIE_GBPS", "HostTimer", "network_step", "end_to_end", "merge_into_bench"]

HOST_PARTS = ("im2col", "col2im", "quantize", "dequantize", "optimizer", "partial_sums", "abi_pack")
DEFAULT_PCIE_GBPS = 12.0
SMALL = 2_000_000            # arrays below this many elements: best of REPEATS runs, larger ones best of 2
REPEATS = 3                  # (the first call of a large shape pays the page faults of its fresh outputs;
                             # a training loop reuses that memory step after step: the steady state counts)


class HostTimer:
    """Times the project's host functions at given shapes; each (function, shape) once per run."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.cache: dict[tuple, float] = {}
        self.seconds_measuring = 0.0

    def _time(self, key: tuple, setup, fn) -> float:
        if key not in self.cache:
            t_start = time.perf_counter()
            args = setup()
            size = max((a.size for a in args if isinstance(a, np.ndarray)), default=0)
            best = math.inf
            for _ in range(REPEATS if size < SMALL else 2):
                t0 = time.process_time()
                fn(*args)
                best = min(best, time.process_time() - t0)
            self.cache[key] = best
            del args
            self.seconds_measuring += time.perf_counter() - t_start
        return self.cache[key]

    def _f(self, *shape) -> np.ndarray:
        return self.rng.standard_normal(shape)

    def im2col(self, b: int, c: int, h: int, k: int) -> float:
        from hostpy.layout import im2col
        return self._time(("im2col", b, c, h, k), lambda: (self._f(b, c, h, h),),
                          lambda x: im2col(x, k, k, 1, k // 2))

    def col2im(self, b: int, c: int, h: int, k: int) -> float:
        from hostpy.layout import col2im
        return self._time(("col2im", b, c, h, k), lambda: (self._f(c * k * k, b * h * h),),
                          lambda cols: col2im(cols, (b, c, h, h), k, k, 1, k // 2))

    def quantize(self, rows: int, cols: int, bits: int) -> float:
        from hostpy.quant import quantize
        return self._time(("quantize", rows, cols, bits), lambda: (self._f(rows, cols),), lambda x: quantize(x, bits))

    def dequantize(self, rows: int, cols: int, acc_dtype) -> float:
        from hostpy.quant import dequantize
        return self._time(("dequantize", rows, cols, np.dtype(acc_dtype).name),
                          lambda: (self.rng.integers(-1000, 1000, (rows, cols)).astype(acc_dtype),),
                          lambda a: dequantize(a, 0.01, 0.02))

    def sgd(self, rows: int, cols: int) -> float:
        """SGD with momentum on the float master W, as hostpy.train.train_run updates it."""
        def step(w, vw, dw):
            vw *= 0.9
            vw += dw
            w -= 0.05 * vw
        return self._time(("sgd", rows, cols), lambda: (self._f(rows, cols), self._f(rows, cols), self._f(rows, cols)),
                          step)

    def bdwp_masks_decay(self, rows: int, cols: int, n: int, m: int) -> float:
        """Under BDWP: the FF/BP masks from the pruned copies (hostpy.train.kept_mask) and the SR-STE
        decay term (hostpy.bdwp.srste_decay) added to dW."""
        from hostpy import bdwp, nm
        from hostpy.train import kept_mask

        def setup():
            w = self._f(rows, cols)
            return w, nm.compress(w, n, m, axis=1), nm.compress(w, n, m, axis=0), self._f(rows, cols)

        def run(w, ff, bp, dw):
            masks = bdwp.LayerMasks(ff=kept_mask(ff), bp=kept_mask(bp))
            dw += bdwp.srste_decay(w, masks)
        return self._time(("bdwp_masks_decay", rows, cols, n, m), setup, run)

    def partial_sums(self, rows: int, cols: int, splits: int, acc_bits: int, acc_dtype) -> float:
        """hostpy.accel's k split: int64 adds of each launch's result, then golden.wrap to acc_bits."""
        from hostpy.golden import wrap

        def setup():
            return (self.rng.integers(-1000, 1000, (rows, cols)).astype(acc_dtype),)

        def run(res):
            acc = np.zeros((rows, cols), dtype=np.int64)
            for _ in range(splits):
                acc += res.astype(np.int64)
            wrap(acc, acc_bits)
        return self._time(("partial_sums", rows, cols, splits, acc_bits), setup, run)


    def abi_gemm(self, spec: ArchSpec, rows: int, k: int, cols: int, sparse: bool, a_from_prune: bool = False) -> float:
        """One GEMM call's ABI v2 work in hostpy.accel: A packed (grouped, or compressed at the spec's
        n), B[k][cols] packed grouped as its columns, the result tile set unpacked. ``a_from_prune``
        (SPARSE only): A is PRUNE's own output, passed as it stands (hostpy.accel.prune_reuse), not packed."""
        from hostpy.abi import Abi
        if a_from_prune and not sparse:
            raise ValueError("a_from_prune: only a SPARSE call's A comes from PRUNE")
        abi, g = Abi(spec), -(-k // spec.m)

        def setup():
            b = self.rng.integers(-100, 100, (k, cols)).astype(abi.data_dtype)
            res = np.zeros(abi.result_bytes(rows, cols), np.uint8)
            if a_from_prune:
                return b, res
            if sparse:
                vals = self.rng.integers(-100, 100, (rows, g, spec.n)).astype(abi.data_dtype)
                idx = np.sort(self.rng.integers(0, spec.m, (rows, g, spec.n)), axis=2).astype(np.uint8)
                return vals, idx, b, res
            return self.rng.integers(-100, 100, (rows, k)).astype(abi.data_dtype), b, res

        def run(*args):
            *a, b, res = args
            if a_from_prune:
                pass
            elif sparse:
                abi.pack_compressed(a[0], a[1], spec.rows)
            else:
                abi.pack_grouped(a[0], spec.rows)
            abi.pack_grouped(b.T, spec.cols)
            abi.unpack_result(res, rows, cols)
        return self._time(("abi_gemm", spec.rows, spec.cols, spec.m, spec.n, spec.data_bits, spec.axi_bits,
                           rows, k, cols, sparse, a_from_prune), setup, run)

    def abi_prune(self, spec: ArchSpec, rows: int, k: int) -> float:
        """One PRUNE call's ABI v2 work in hostpy.accel: the dense W packed grouped, both compressed
        copies (FF: lanes = rows, BP: lanes = columns) unpacked."""
        from hostpy.abi import Abi
        abi = Abi(spec)
        sizes = abi.call_bytes("PRUNE", rows, k, 0)

        def setup():
            w = self.rng.integers(-100, 100, (rows, k)).astype(abi.data_dtype)
            return (w, *(np.zeros(sizes[b], np.uint8) for b in ("ff_val", "ff_idx", "bp_val", "bp_idx")))

        def run(w, fv, fi, bv, bi):
            abi.pack_grouped(w, spec.rows)
            abi.unpack_compressed(fv, fi, rows, k, spec.rows)
            abi.unpack_compressed(bv, bi, k, rows, spec.rows)
        return self._time(("abi_prune", spec.rows, spec.cols, spec.m, spec.n, spec.data_bits, spec.axi_bits, rows, k),
                          setup, run)


def _acc_dtype(spec: ArchSpec):
    return np.int32 if spec.mem_acc_bits == 32 else np.int64


def _layer_host(spec: ArchSpec, layer: Layer, batch: int, bdwp: bool, timer: HostTimer) -> dict[str, float]:
    """Host seconds of one layer (all ``count`` copies) per part, and its PCIe bytes."""
    parts = dict.fromkeys(HOST_PARTS, 0.0)
    bits, acc_dt, cnt = spec.data_bits, _acc_dtype(spec), layer.count
    gemms = lower_layer(layer, batch=batch, m=spec.m, bdwp=bdwp)
    d, a = spec.mem_data_bits // 8, spec.mem_acc_bits // 8
    xfer = 0.0
    if layer.kind == "attn":
        for g in gemms:              # both operands quantized and sent, result dequantized and returned
            parts["quantize"] += g.count * (timer.quantize(g.rows, g.k, bits) + timer.quantize(g.k, g.cols, bits))
            parts["dequantize"] += g.count * timer.dequantize(g.rows, g.cols, acc_dt)
            xfer += g.count * ((g.rows * g.k + g.k * g.cols) * d + g.rows * g.cols * a)
            parts["abi_pack"] += g.count * timer.abi_gemm(spec, g.rows, g.k, g.cols, False)
        return {**parts, "pcie_bytes": xfer}
    red, pos, cout = layer.reduction, batch * layer.positions, layer.cout
    by_pass = {g.pass_: g for g in gemms}
    # FF: X_col [red, pos] (im2col for a conv), quantized, sent; Y [cout, pos] back, dequantized.
    if layer.kind == "conv":
        parts["im2col"] += cnt * timer.im2col(batch, layer.cin, layer.hout, layer.kernel)
    parts["quantize"] += cnt * (timer.quantize(cout, red, bits) + timer.quantize(red, pos, bits))
    parts["dequantize"] += cnt * timer.dequantize(cout, pos, acc_dt)
    xfer += cnt * (red * pos * d + cout * pos * a)
    # BP: dY [cout, pos] quantized, sent; dX_col [red, pos] back, dequantized (col2im for a conv).
    if "BP" in by_pass:
        parts["quantize"] += cnt * timer.quantize(cout, pos, bits)
        parts["dequantize"] += cnt * timer.dequantize(red, pos, acc_dt)
        if layer.kind == "conv":
            parts["col2im"] += cnt * timer.col2im(batch, layer.cin, layer.hout, layer.kernel)
        xfer += cnt * (cout * pos * d + red * pos * a)
    # WU: dY and X_col quantized again (DeviceEngine.wu), sent; dW [cout, red] back, dequantized.
    parts["quantize"] += cnt * (timer.quantize(cout, pos, bits) + timer.quantize(red, pos, bits))
    parts["dequantize"] += cnt * timer.dequantize(cout, red, acc_dt)
    xfer += cnt * ((cout + red) * pos * d + cout * red * a)
    splits = math.ceil(pos / spec.max_k)
    if splits > 1:
        parts["partial_sums"] += cnt * timer.partial_sums(cout, red, splits, spec.acc_bits, acc_dt)
        xfer += cnt * (splits - 1) * cout * red * a        # every launch returns its own partial sums
    # Weights: once per step. Dense also sends W^T for BP; BDWP's sparse copies stay on the card.
    sparse_layer = any(g.sparse for g in gemms)
    xfer += cnt * cout * red * d * (1 if sparse_layer or "BP" not in by_pass else 2)
    parts["optimizer"] += cnt * timer.sgd(cout, red)
    if sparse_layer:
        parts["optimizer"] += cnt * timer.bdwp_masks_decay(cout, red, spec.n, spec.m)
        parts["abi_pack"] += cnt * timer.abi_prune(spec, cout, red)      # PRUNE: both copies from the dense W
    # FF/BP SPARSE calls whose blocks are PRUNE's take its output bytes as A (hostpy.accel, default tiles).
    kept = prune_reuse(spec, default_tile(spec), cout, red) if sparse_layer else {}
    for g in gemms:
        from_prune = g.sparse and kept.get(g.pass_.lower(), False)
        parts["abi_pack"] += g.count * timer.abi_gemm(spec, g.rows, g.k, g.cols, g.sparse, a_from_prune=from_prune)
    return {**parts, "pcie_bytes": xfer}


def network_step(spec: ArchSpec, name: str, batch: int, bdwp: bool, timer: HostTimer,
                 pcie_gbps: float = DEFAULT_PCIE_GBPS) -> dict:
    """Seconds of one training step: modelled accelerator, measured host parts, modelled PCIe."""
    acc = step_cost(spec, name, bdwp=bdwp, batch=batch).seconds()
    host = dict.fromkeys(HOST_PARTS, 0.0)
    pcie = 0.0
    for layer in network(name):
        lh = _layer_host(spec, layer, batch, bdwp, timer)
        pcie += lh.pop("pcie_bytes")
        for k, v in lh.items():
            host[k] += v
    xfer = pcie / (pcie_gbps * 1e9)
    return {"accelerator_s_modelled": acc, "host_s_measured": host, "host_s_measured_total": sum(host.values()),
            "pcie_bytes": int(pcie), "pcie_s_modelled": xfer,
            "step_s": acc + sum(host.values()) + xfer}


def end_to_end(spec: ArchSpec, name: str, batch: int, timer: HostTimer, pcie_gbps: float = DEFAULT_PCIE_GBPS) -> dict:
    """BDWP vs dense end-to-end step of ``name`` on ``spec`` (module docstring)."""
    if not spec.sparse:
        raise SpecError(None, f"{spec.name} is the dense baseline: the end-to-end comparison needs a sparse spec")
    bd = network_step(spec, name, batch, True, timer, pcie_gbps)
    de = network_step(spec, name, batch, False, timer, pcie_gbps)
    e2e = de["step_s"] / bd["step_s"]
    without = {}
    for part in HOST_PARTS + ("pcie",):
        def rest(s):
            return s["step_s"] - (s["pcie_s_modelled"] if part == "pcie" else s["host_s_measured"][part])
        without[part] = rest(de) / rest(bd)
    without["all_host"] = ((de["accelerator_s_modelled"] + de["pcie_s_modelled"])
                           / (bd["accelerator_s_modelled"] + bd["pcie_s_modelled"]))
    shares = {p: bd["host_s_measured"][p] / bd["step_s"] for p in HOST_PARTS}
    shares["pcie"] = bd["pcie_s_modelled"] / bd["step_s"]
    shares["accelerator"] = bd["accelerator_s_modelled"] / bd["step_s"]
    return {"accelerator_only_speedup": de["accelerator_s_modelled"] / bd["accelerator_s_modelled"],
            "end_to_end_speedup": e2e, "bdwp": bd, "dense": de, "bdwp_step_share": shares,
            "dominant_host_parts": sorted(HOST_PARTS, key=lambda p: -bd["host_s_measured"][p])[:3],
            "speedup_if_on_accelerator": without, "pcie_gbps_modelled": pcie_gbps, "batch": batch,
            "what": "accelerator time modelled (gen/perf.py), host parts measured on this machine with hostpy's "
                    f"host code at the network's shapes, PCIe transfers modelled at {pcie_gbps:g} GB/s; "
                    "the three added (no overlap)"}


def _ms(s: float) -> str:
    return f"{1e3 * s:.1f}"


def report_lines(spec: ArchSpec, results: dict[str, dict]) -> list[str]:
    any_r = next(iter(results.values()))
    lines = [f"== end-to-end training step on {spec.name} (batch {any_r['batch']}): accelerator modelled, "
             f"host measured on this machine, PCIe modelled at {any_r['pcie_gbps_modelled']:g} GB/s =="]
    head = ["network", "accel-only", "end-to-end", "BDWP step ms (acc + host + PCIe)", "dense step ms (acc + host + PCIe)",
            "top host parts (BDWP)"]
    rows = []
    for n, r in results.items():
        b, d = r["bdwp"], r["dense"]
        rows.append([n, f"{r['accelerator_only_speedup']:.3f}x", f"{r['end_to_end_speedup']:.3f}x",
                     f"{_ms(b['step_s'])} ({_ms(b['accelerator_s_modelled'])} + {_ms(b['host_s_measured_total'])} + "
                     f"{_ms(b['pcie_s_modelled'])})",
                     f"{_ms(d['step_s'])} ({_ms(d['accelerator_s_modelled'])} + {_ms(d['host_s_measured_total'])} + "
                     f"{_ms(d['pcie_s_modelled'])})",
                     ", ".join(f"{p} {100 * r['bdwp_step_share'][p]:.0f} %" for p in r["dominant_host_parts"])])
    lines += _table(head, rows)
    lines.append("end-to-end speedup if that part ran on the accelerator for free (upper bound of moving it):")
    parts = list(HOST_PARTS) + ["pcie", "all_host"]
    lines += _table(["network"] + parts,
                    [[n] + [f"{r['speedup_if_on_accelerator'][p]:.3f}x" for p in parts] for n, r in results.items()])
    return lines


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    w = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    out = ["  ".join(str(h).ljust(k) for h, k in zip(headers, w)), "  ".join("-" * k for k in w)]
    return out + ["  ".join(str(c).ljust(k) for c, k in zip(r, w)) for r in rows]


def merge_into_bench(report: dict, spec: ArchSpec, batch: int, log=print, pcie_gbps: float = DEFAULT_PCIE_GBPS) -> None:
    """Add ``networks.<net>.end_to_end_speedup`` (+ ``end_to_end`` details) to a bench report and print them."""
    if not spec.sparse:
        for r in report.get("networks", {}).values():
            r["end_to_end_speedup"] = 1.0
        return
    timer = HostTimer()
    results = {n: end_to_end(spec, n, batch, timer, pcie_gbps) for n in report["networks"]}
    for n, r in results.items():
        report["networks"][n]["end_to_end_speedup"] = r["end_to_end_speedup"]
        report["networks"][n]["end_to_end"] = r
    log("")
    for line in report_lines(spec, results):
        log(line)
    log(f"(host parts timed in {timer.seconds_measuring:.1f} s, {len(timer.cache)} distinct shapes)")


@click.command()
@click.option("--arch", default="sat_2x8", show_default=True, help="sparse preset")
@click.option("--batch", default=32, show_default=True)
@click.option("--pcie-gbps", default=DEFAULT_PCIE_GBPS, show_default=True, help="modelled host<->card bandwidth")
@click.option("--network", "networks", multiple=True, type=click.Choice(network_names()), help="default: all")
@click.option("--json", "json_out", default="", metavar="FILE")
def main(arch: str, batch: int, pcie_gbps: float, networks: tuple[str, ...], json_out: str) -> None:
    """End-to-end BDWP vs dense training step: accelerator modelled, host measured, PCIe modelled."""
    if batch < 1:
        raise click.BadParameter("must be >= 1", param_hint="--batch")
    if not pcie_gbps > 0:
        raise click.BadParameter("must be > 0", param_hint="--pcie-gbps")
    try:
        spec = preset(arch)
        timer = HostTimer()
        results = {n: end_to_end(spec, n, batch, timer, pcie_gbps) for n in (networks or network_names())}
    except SpecError as e:
        click.echo(f"e2e: error: {e}", err=True)
        sys.exit(2)
    for line in report_lines(spec, results):
        click.echo(line)
    if json_out:
        from .sweep import _write_json
        _write_json(Path(json_out), {"arch": spec.name, "networks": results})
        click.echo(f"wrote {json_out}")


if __name__ == "__main__":
    main()
