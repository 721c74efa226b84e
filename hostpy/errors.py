"""Every error hostpy raises on bad input or a misbehaving device.

All derive from :class:`HostError`, and also from the matching built-in (ValueError, TypeError,
TimeoutError, ...) so callers can catch either. Shape/dtype/N:M checks run before anything is sent
to a device, so a bad call never produces a wrong answer or leaves a device half-programmed.
"""
from __future__ import annotations

from .nm import NMError

__all__ = [
    "HostError", "ShapeError", "DTypeError", "NotNMError", "QuantizationError", "FixedPointOverflowError",
    "NonFiniteError", "ArchError", "RegmapVersionError", "ArchMismatchError", "UnsupportedOperationError",
    "BackendUnavailableError", "DeviceTimeoutError", "DeviceBusyError", "KernelError",
]


class HostError(Exception):
    """Base class of hostpy errors."""


class ShapeError(HostError, ValueError):
    """Operand shapes that do not chain, are empty, or are not 2-D."""


class DTypeError(HostError, TypeError):
    """An operand of the wrong dtype (e.g. float where the kernel takes fixed-point integers)."""


class NotNMError(HostError, NMError):
    """A weight given to a sparse call that is not N:M along the required axis (or N:M of another N, M)."""


class QuantizationError(HostError, ValueError):
    """A tensor that cannot be represented in the fixed-point operand format."""


class FixedPointOverflowError(QuantizationError):
    """Values outside the signed ``data_bits`` range of the operand format."""


class NonFiniteError(QuantizationError):
    """NaN or Inf in a tensor to be quantized."""


class ArchError(HostError, ValueError):
    """An architecture directory that is missing, incomplete or inconsistent."""


class RegmapVersionError(ArchError):
    """regmap.json (or a compiled library/bitstream) of another register-map version than this hostpy."""


class ArchMismatchError(ArchError):
    """A compiled kernel (csim library, bitstream) generated for another architecture."""


class UnsupportedOperationError(HostError, ValueError):
    """An operation the architecture does not have (e.g. PRUNE on the dense baseline)."""


class BackendUnavailableError(HostError, RuntimeError):
    """A backend whose runtime (pynq, pyxrt, g++/ap_types) is not available here."""


class DeviceTimeoutError(HostError, TimeoutError):
    """The kernel did not signal ap_done within the timeout."""


class DeviceBusyError(HostError, RuntimeError):
    """The kernel is still running a job that timed out earlier: wait for it (``wait_idle``) or reset."""


class KernelError(HostError, RuntimeError):
    """The kernel (or its C API) rejected a call."""
