"""The NumPy backend: the golden model (hostpy.golden) behind the Device protocol.

It unpacks its inputs from and packs its outputs into the memory ABI v2 layout (hostpy.abi), so
the layout code is exercised on every backend, not only on the kernels.
"""
from __future__ import annotations

import numpy as np

from .. import golden
from ..abi import Abi
from ..device import Device, KernelCall
from ..errors import KernelError
from ..nm import NMCompressed


class NumpyDevice(Device):
    backend = "numpy"

    def execute(self, call: KernelCall) -> dict[str, np.ndarray]:
        s = self.arch.spec
        abi = Abi(s)
        n = s.n if call.n is None else call.n
        if call.mode in ("SPARSE", "PRUNE") and n not in self.arch.regmap["nm"]["runtime_n"]:
            raise KernelError(f"{s.name}: n={n} is not one of the kernel's runtime_n {self.arch.regmap['nm']['runtime_n']}")
        if call.mode in ("SPARSE", "DENSE"):
            b = abi.unpack_grouped(call.b, call.cols, call.k, s.cols).T
            if call.mode == "DENSE":
                a = abi.unpack_grouped(call.a_val, call.rows, call.k, s.rows)
                c = golden.gemm_dense(a, b, data_bits=s.data_bits, acc_bits=s.acc_bits)
            else:
                v, i = abi.unpack_compressed(call.a_val, call.a_idx, call.rows, call.k, s.rows, n)
                a = NMCompressed(values=v, indices=i, n=n, m=s.m, axis=1, shape=(call.rows, call.k))
                c = golden.gemm_sparse(a, b, data_bits=s.data_bits, acc_bits=s.acc_bits)
            return {"c": abi.pack_result(c)}
        if call.mode == "PRUNE":
            w = abi.unpack_grouped(call.a_val, call.rows, call.k, s.rows)
            ff, bp = golden.prune(w, n, s.m, data_bits=s.data_bits)
            ff_v, ff_i = abi.pack_compressed(ff.values, ff.indices, s.rows)
            bp_v, bp_i = abi.pack_compressed(bp.values, bp.indices, s.rows)
            return {"ff_val": ff_v, "ff_idx": ff_i, "bp_val": bp_v, "bp_idx": bp_i}
        raise ValueError(f"unknown mode {call.mode!r}")
