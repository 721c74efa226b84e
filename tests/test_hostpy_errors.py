"""Bad input gets a specific error before anything reaches the device (never a wrong answer or a hang)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import hostpy
from hostpy import errors as E
from hostpy import golden
from hostpy.device import KernelCall
from hostpy.layout import im2col
from hostpy.nm import NMCompressed, compress
from hostpy.quant import quantize
from hostpy.train import RunConfig

from test_hostpy_helpers import arch_dir, needs_csim


@pytest.fixture(scope="module")
def acc(tmp_path_factory):
    return hostpy.open(arch_dir(tmp_path_factory, "sat_2x8"), backend="numpy")


@pytest.fixture(scope="module")
def dense_acc(tmp_path_factory):
    return hostpy.open(arch_dir(tmp_path_factory, "dense"), backend="numpy")


RNG = np.random.default_rng(7)
W = RNG.integers(-128, 128, (16, 32)).astype(np.int8)
X = RNG.integers(-128, 128, (32, 4)).astype(np.int8)
DY = RNG.integers(-128, 128, (16, 4)).astype(np.int8)
FF, BP = golden.prune(W, 2, 8, data_bits=8)


def _no_call(acc, fn, exc, match):
    before = acc.calls
    with pytest.raises(exc, match=match):
        fn()
    assert acc.calls == before, "the device was called before the input was rejected"


# ---- operands -------------------------------------------------------------------------------
def test_float_operand_is_a_dtype_error(acc):
    _no_call(acc, lambda: acc.gemm(W.astype(np.float32), X), E.DTypeError, "quantize it first")


def test_bool_operand_is_a_dtype_error(acc):
    _no_call(acc, lambda: acc.wu(DY != 0, X), E.DTypeError, "signed integer")


def test_one_dimensional_operand_is_a_shape_error(acc):
    _no_call(acc, lambda: acc.gemm(W[0], X), E.ShapeError, "2-D")


def test_empty_operand_is_a_shape_error(acc):
    _no_call(acc, lambda: acc.gemm(W[:, :0], X[:0]), E.ShapeError, "empty")


def test_gemm_shapes_that_do_not_chain(acc):
    _no_call(acc, lambda: acc.gemm(W, X[:31]), E.ShapeError, "do not chain")


def test_ff_activation_rows_must_match_cin(acc):
    _no_call(acc, lambda: acc.ff(FF, X[:24]), E.ShapeError, "reduction length 32")


def test_wu_batch_mismatch(acc):
    _no_call(acc, lambda: acc.wu(DY, X[:, :3]), E.ShapeError, "same batch")


def test_value_outside_int8_is_an_overflow_error(acc):
    x = X.astype(np.int16)
    x[3, 2] = 200
    _no_call(acc, lambda: acc.ff(FF, x), E.FixedPointOverflowError, r"\[-128, 127\]")


def test_value_below_the_most_negative_is_an_overflow_error(acc):
    dy = DY.astype(np.int32)
    dy[1, 1] = -129
    _no_call(acc, lambda: acc.wu(dy, X), E.FixedPointOverflowError, "outside the int8")


def test_dense_weight_not_nm_along_cin(acc):
    _no_call(acc, lambda: acc.ff(W, X), E.NotNMError, "not 2:8 sparse along axis 1")


def test_weight_nm_along_cin_but_not_along_cout_for_bp(acc):
    from hostpy.nm import decompress
    w_ff_only = decompress(FF)          # 2:8 along Cin only
    assert not hostpy.nm.is_nm(w_ff_only, 2, 8, 0)
    _no_call(acc, lambda: acc.bp(w_ff_only, DY), E.NotNMError, "along axis 0")


def test_compressed_operand_of_another_nm(acc):
    other = compress(W, 2, 4, axis=1)
    _no_call(acc, lambda: acc.ff(other, X), E.NotNMError, "2:4 compressed but sat_2x8 computes 1:8 or 2:8")


def test_ff_copy_given_to_bp(acc):
    _no_call(acc, lambda: acc.bp(FF, DY), E.NotNMError, "needs axis 0")


def test_indices_not_ascending(acc):
    bad = NMCompressed(FF.values, FF.indices[..., ::-1].copy(), 2, 8, 1, FF.shape)
    _no_call(acc, lambda: acc.ff(bad, X), E.NotNMError, "ascending")


def test_index_out_of_group(acc):
    idx = FF.indices.copy()
    idx[0, 0, 1] = 8
    _no_call(acc, lambda: acc.ff(NMCompressed(FF.values, idx, 2, 8, 1, FF.shape), X), E.NotNMError, "out of range")


def test_compressed_arrays_inconsistent_with_shape(acc):
    bad = NMCompressed(FF.values[:, :3], FF.indices[:, :3], 2, 8, 1, FF.shape)
    _no_call(acc, lambda: acc.ff(bad, X), E.ShapeError, "do not match dense shape")


def test_compressed_operand_where_dense_expected(acc):
    _no_call(acc, lambda: acc.gemm(FF, X), E.DTypeError, "NMCompressed")


def test_prune_on_dense_baseline(dense_acc):
    _no_call(dense_acc, lambda: dense_acc.prune(W), E.UnsupportedOperationError, "dense baseline")


def test_sparse_gemm_on_dense_baseline(dense_acc):
    _no_call(dense_acc, lambda: dense_acc.gemm_sparse(FF, X), E.UnsupportedOperationError, "sparse architecture")


def test_bad_tile(tmp_path_factory):
    with pytest.raises(E.ShapeError, match="at least M=8"):
        hostpy.open(arch_dir(tmp_path_factory, "sat_2x8"), tile=(8, 4, 8))
    with pytest.raises(E.ShapeError, match="kernel limits"):
        hostpy.open(arch_dir(tmp_path_factory, "sat_2x8"), tile=(0, 64, 8))


# ---- quantization ------------------------------------------------------------------------------
def test_nan_is_a_non_finite_error():
    with pytest.raises(E.NonFiniteError, match="NaN"):
        quantize(np.array([1.0, np.nan]), 8)


def test_inf_is_a_non_finite_error():
    with pytest.raises(E.NonFiniteError, match="Inf"):
        quantize(np.array([[1.0, -np.inf]]), 8)


def test_explicit_scale_that_overflows():
    with pytest.raises(E.FixedPointOverflowError, match="overflow int8"):
        quantize(np.array([1.0, 2.0]), 8, scale=0.01)


def test_non_positive_scale():
    with pytest.raises(E.QuantizationError, match="positive finite"):
        quantize(np.ones(3), 8, scale=0.0)


def test_non_numeric_tensor():
    with pytest.raises(E.DTypeError, match="cannot quantize"):
        quantize(np.array(["a", "b"]), 8)


# ---- architecture directories and backends --------------------------------------------------------
def test_missing_arch_dir(tmp_path):
    with pytest.raises(E.ArchError, match="not found"):
        hostpy.open(tmp_path / "nope")


def test_arch_dir_without_regmap(tmp_path_factory, tmp_path):
    shutil.copy(arch_dir(tmp_path_factory, "sat_2x8") / "spec.json", tmp_path / "spec.json")
    with pytest.raises(E.ArchError, match="regmap.json is missing"):
        hostpy.open(tmp_path)


def _copy_with_regmap(src, dst, **changes):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("work"))
    rm = json.loads((dst / "regmap.json").read_text())
    rm.update(changes)
    (dst / "regmap.json").write_text(json.dumps(rm))
    return dst


@pytest.mark.parametrize("version", [1, hostpy.REGMAP_VERSION + 1], ids=["v1_abi", "newer"])
def test_regmap_version_mismatch(tmp_path_factory, tmp_path, version):
    # v1 is the flat row-major memory ABI: its arch directories and libraries must be refused, not misread.
    d = _copy_with_regmap(arch_dir(tmp_path_factory, "sat_2x8"), tmp_path / "a", regmap_version=version)
    with pytest.raises(E.RegmapVersionError, match=f"regmap_version {version}.*regenerate"):
        hostpy.open(d)


def test_regmap_of_another_arch(tmp_path_factory, tmp_path):
    d = _copy_with_regmap(arch_dir(tmp_path_factory, "sat_2x8"), tmp_path / "a", arch="sat_2x4")
    with pytest.raises(E.ArchError, match="regmap.json is for 'sat_2x4'"):
        hostpy.open(d)


def test_mode_the_arch_does_not_have(tmp_path_factory):
    with pytest.raises(E.ArchError, match="no mode 'SPARSE'"):
        hostpy.load_arch(arch_dir(tmp_path_factory, "dense")).mode_code("SPARSE")


def test_unknown_backend(tmp_path_factory):
    with pytest.raises(E.BackendUnavailableError, match="unknown backend 'cuda'"):
        hostpy.open(arch_dir(tmp_path_factory, "sat_2x8"), backend="cuda")


def test_xrt_without_pyxrt_says_so(tmp_path_factory):
    try:
        import pyxrt  # noqa: F401
        pytest.skip("XRT is installed here")
    except ImportError:
        pass
    with pytest.raises(E.BackendUnavailableError, match="pyxrt"):
        hostpy.open(arch_dir(tmp_path_factory, "sat_2x8"), backend="xrt")


@needs_csim
def test_csim_library_of_another_arch(tmp_path_factory):
    from hostpy.backends.csim import build_library
    other = build_library(hostpy.load_arch(arch_dir(tmp_path_factory, "sat_2x4")))
    with pytest.raises(E.ArchMismatchError, match="generated for 'sat_2x4', not for 'sat_2x8'"):
        hostpy.open(arch_dir(tmp_path_factory, "sat_2x8"), backend="csim", library=other)


@needs_csim
def test_csim_kernel_rejects_out_of_limit_call(tmp_path_factory):
    acc = hostpy.open(arch_dir(tmp_path_factory, "sat_2x8"), backend="csim")
    s = acc.spec
    sizes = acc.abi.call_bytes("DENSE", 1, s.max_k + 1, 1)
    call = KernelCall("DENSE", 1, s.max_k + 1, 1, np.zeros(sizes["a_val"], np.uint8), None, np.zeros(sizes["b"], np.uint8))
    with pytest.raises(E.KernelError, match=r"status 0x2 \(bad_size\)"):      # the kernel's own refusal
        acc.device.execute(call)


def test_im2col_needs_nchw():
    with pytest.raises(E.ShapeError, match="NCHW"):
        im2col(np.zeros((1, 8, 8)), 3, 3)


def test_conv_kernel_larger_than_input():
    with pytest.raises(E.ShapeError, match="do not fit"):
        im2col(np.zeros((1, 1, 2, 2)), 3, 3)


def test_unknown_training_method():
    with pytest.raises(ValueError, match="unknown method 'magic'"):
        RunConfig(method="magic")


def test_errors_are_also_builtin_errors():
    assert issubclass(E.DeviceTimeoutError, TimeoutError)
    assert issubclass(E.ShapeError, ValueError) and issubclass(E.DTypeError, TypeError)
    assert issubclass(E.NotNMError, hostpy.nm.NMError)


def test_csim_library_of_another_regmap_version(tmp_path_factory, tmp_path):
    """A library whose C API reports another register-map version is refused at open (a tiny stand-in
    library exercises only hostpy's check; the real kernel library is tested elsewhere)."""
    import shutil as sh
    import subprocess
    if sh.which("g++") is None:
        pytest.skip("g++ not installed")
    src = tmp_path / "stub.cpp"
    src.write_text('extern "C" const char *satgen_arch(void) { return "sat_2x8"; }\n'
                   f'extern "C" int satgen_regmap_version(void) {{ return {hostpy.REGMAP_VERSION + 1}; }}\n'
                   'extern "C" int satgen_run() { return -1; }\n')
    lib = tmp_path / "libstub.so"
    subprocess.run(["g++", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    with pytest.raises(E.RegmapVersionError, match=f"register map version {hostpy.REGMAP_VERSION + 1}"):
        hostpy.open(arch_dir(tmp_path_factory, "sat_2x8"), backend="csim", library=lib)
