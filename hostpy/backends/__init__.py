"""Backends of the Device protocol. Each module imports its runtime lazily (pynq, pyxrt, gen.csim)."""
BACKENDS = ("numpy", "csim", "pynq", "xrt", "rtl")
