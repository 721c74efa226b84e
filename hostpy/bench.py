"""Throughput of a backend's GEMMs (the csim figure: MAC/s of the C-simulated kernel).

Counts two figures per GEMM: dense-equivalent MACs (rows*k*cols, what the layer computes) and
multiplies actually executed (rows*k*cols*N/M for SPARSE, the PE multipliers' work). Wall time
includes the host side of one call (operand checks, packing, ctypes), measured with
time.perf_counter over ``repeat`` calls after one warm-up call. On a simulating backend that counts
cycles (rtl: ``device.total_cycles``), each record also gets ``sim_kernel_cycles`` (simulated
kernel cycles per call, ap_start to ap_done) and ``sim_cycles_per_s`` (those per wall-clock second).
"""
from __future__ import annotations

import time

import numpy as np

from . import golden
from .accel import Accelerator, PrunedWeight
from .errors import KernelError

__all__ = ["bench_gemms"]


def bench_gemms(acc: Accelerator, shapes=((64, 512, 64), (128, 1024, 128)), repeat: int = 3, log=print) -> list[dict]:
    s = acc.spec
    rng = np.random.default_rng(0)
    hi = 1 << (s.data_bits - 1)
    rows_out = []
    for rows, k, cols in shapes:
        w = rng.integers(-hi, hi, (rows, k)).astype(acc.arch.data_dtype)
        b = rng.integers(-hi, hi, (k, cols)).astype(acc.arch.data_dtype)
        cases = [("DENSE", lambda: acc.gemm(w, b), 1.0)]
        if s.sparse:
            try:
                pw = acc.prune(w)
                prune_ok = True
            except KernelError as e:         # a kernel without PRUNE (status bad_mode): say so, bench the GEMMs
                if "bad_mode" not in str(e):
                    raise
                log(f"  {acc.backend} PRUNE refused by the kernel (status bad_mode): not measured; SPARSE runs on "
                    f"the golden model's pruned copy")
                pw = PrunedWeight(*golden.prune(w, s.n, s.m, data_bits=s.data_bits))
                prune_ok = False
            cases.append(("SPARSE", lambda: acc.ff(pw, b), s.n / s.m))
            if prune_ok:
                cases.append(("PRUNE", lambda: acc.prune(w), None))
        for mode, fn, mult_ratio in cases:
            fn()
            cyc0 = getattr(acc.device, "total_cycles", None)      # simulated backends (rtl) count kernel cycles
            t0 = time.perf_counter()
            for _ in range(repeat):
                fn()
            dt = (time.perf_counter() - t0) / repeat
            rec = {"mode": mode, "rows": rows, "k": k, "cols": cols, "seconds_per_call": dt}
            if cyc0 is not None:
                rec["sim_kernel_cycles"] = (acc.device.total_cycles - cyc0) // repeat
                rec["sim_cycles_per_s"] = rec["sim_kernel_cycles"] / dt
                log(f"  {acc.backend} {mode:6s} {rows}x{k}x{cols}: {rec['sim_kernel_cycles']} simulated kernel cycles "
                    f"per call, {rec['sim_cycles_per_s'] / 1e3:.1f} k cycles/s wall-clock")
            if mult_ratio is not None:
                rec["dense_equiv_macs_per_s"] = rows * k * cols / dt
                rec["executed_macs_per_s"] = rows * k * cols * mult_ratio / dt
                log(f"  {acc.backend} {mode:6s} {rows}x{k}x{cols}: {dt * 1e3:9.2f} ms/call  "
                    f"{rec['dense_equiv_macs_per_s'] / 1e6:9.2f} M dense-equiv MAC/s  "
                    f"{rec['executed_macs_per_s'] / 1e6:9.2f} M executed MAC/s")
            else:
                rec["weights_per_s"] = rows * k / dt
                log(f"  {acc.backend} {mode:6s} {rows}x{k}: {dt * 1e3:9.2f} ms/call  "
                    f"{rec['weights_per_s'] / 1e6:9.2f} M weights/s")
            rows_out.append(rec)
    return rows_out
