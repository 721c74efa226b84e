"""Throughput of a backend's GEMMs (the csim figure: MAC/s of the C-simulated kernel).

Counts two figures per GEMM: dense-equivalent MACs (rows*k*cols, what the layer computes) and
multiplies actually executed (rows*k*cols*N/M for SPARSE, the PE multipliers' work). Wall time
includes the host side of one call (operand checks, packing, ctypes), measured with
time.perf_counter over ``repeat`` calls after one warm-up call.
"""
from __future__ import annotations

import time

import numpy as np

from .accel import Accelerator

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
            pw = acc.prune(w)
            cases.append(("SPARSE", lambda: acc.ff(pw, b), s.n / s.m))
            cases.append(("PRUNE", lambda: acc.prune(w), None))
        for mode, fn, mult_ratio in cases:
            fn()
            t0 = time.perf_counter()
            for _ in range(repeat):
                fn()
            dt = (time.perf_counter() - t0) / repeat
            rec = {"mode": mode, "rows": rows, "k": k, "cols": cols, "seconds_per_call": dt}
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
