"""The NumPy backend: the golden model (hostpy.golden) behind the Device protocol."""
from __future__ import annotations

import numpy as np

from .. import golden
from ..device import Device, KernelCall
from ..nm import NMCompressed, unpack_indices


class NumpyDevice(Device):
    backend = "numpy"

    def execute(self, call: KernelCall) -> dict[str, np.ndarray]:
        s = self.arch.spec
        acc = self.arch.acc_dtype
        if call.mode == "DENSE":
            a = call.a_val.reshape(call.rows, call.k)
            b = call.b.reshape(call.k, call.cols)
            return {"c": golden.gemm_dense(a, b, data_bits=s.data_bits, acc_bits=s.acc_bits).astype(acc).ravel()}
        if call.mode == "SPARSE":
            g = -(-call.k // s.m)
            count = call.rows * g * s.n
            a = NMCompressed(values=call.a_val.reshape(call.rows, g, s.n),
                             indices=unpack_indices(call.a_idx.tobytes(), s.m, count).reshape(call.rows, g, s.n),
                             n=s.n, m=s.m, axis=1, shape=(call.rows, call.k))
            b = call.b.reshape(call.k, call.cols)
            return {"c": golden.gemm_sparse(a, b, data_bits=s.data_bits, acc_bits=s.acc_bits).astype(acc).ravel()}
        if call.mode == "PRUNE":
            w = call.a_val.reshape(call.rows, call.k)
            ff, bp = golden.prune(w, s.n, s.m, data_bits=s.data_bits)
            return {"ff_val": ff.values.ravel().copy(), "ff_idx": np.frombuffer(ff.packed_indices(), np.uint8).copy(),
                    "bp_val": bp.values.ravel().copy(), "bp_idx": np.frombuffer(bp.packed_indices(), np.uint8).copy()}
        raise ValueError(f"unknown mode {call.mode!r}")
