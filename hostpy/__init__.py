"""hostpy: the host runtime of satgen accelerators (numpy only; pynq / pyxrt optional).

    import hostpy
    acc = hostpy.open("build/sat_2x8", backend="csim")    # "numpy" | "csim" | "pynq" | "xrt"
    w2 = acc.prune(w)        # PRUNE on the kernel: FF copy (N:M along Cin) + BP copy (along Cout)
    y = acc.ff(w2, x)        # sparse forward GEMM          Y  = W_ff . X
    dx = acc.bp(w2, dy)      # sparse backward-data GEMM    dX = W_bp^T . dY
    dw = acc.wu(dy, x)       # dense weight-update GEMM     dW = dY . X^T

See docs/HOSTPY.md. The golden models live in hostpy.nm, hostpy.golden and hostpy.bdwp.
"""
from .accel import Accelerator, PrunedWeight, open_accelerator as open  # noqa: A001 (hostpy.open is the API)
from .archdir import REGMAP_VERSION, Arch, load_arch
from .device import Device, KernelCall
from .errors import (ArchError, ArchMismatchError, BackendUnavailableError, DeviceTimeoutError, DTypeError,
                     FixedPointOverflowError, HostError, KernelError, NonFiniteError, NotNMError, QuantizationError,
                     RegmapVersionError, ShapeError, UnsupportedOperationError)
from .layout import col2im, im2col
from .nm import NMCompressed
from .quant import QTensor, dequantize, quantize

# `open` is deliberately not in __all__: `from hostpy import *` must not shadow the builtin open().
__all__ = [
    "Accelerator", "PrunedWeight", "Device", "KernelCall", "Arch", "load_arch", "REGMAP_VERSION",
    "NMCompressed", "QTensor", "quantize", "dequantize", "im2col", "col2im",
    "HostError", "ShapeError", "DTypeError", "NotNMError", "QuantizationError", "FixedPointOverflowError",
    "NonFiniteError", "ArchError", "RegmapVersionError", "ArchMismatchError", "UnsupportedOperationError",
    "BackendUnavailableError", "DeviceTimeoutError", "KernelError",
]
