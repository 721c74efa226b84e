"""The generated HLS project: every preset renders, deterministically and atomically; the kernel's
signature, interfaces and constants come from the spec and regmap; synthesizable sources stay
synthesizable; the vendor wrapper explains what is missing instead of failing obscurely."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import gen.render as render
from gen.regmap import kernel_args, regmap
from gen.render import GenerationError, generate, render_files
from gen.spec import PRESETS, load_spec, preset

REPO = Path(__file__).resolve().parent.parent
SYNTHESIZABLE = ("hls/sat_kernel.cpp", "hls/sat_kernel.h", "hls/sat_pe.h", "hls/sat_config.h")
HLS_FILES = ("hls/sat_config.h", "hls/sat_kernel.h", "hls/sat_pe.h", "hls/sat_kernel.cpp",
             "hls/sat_csim_api.cpp", "hls/sat_tb.cpp", "scripts/hls.tcl", "scripts/run_vendor.sh")


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, bytes]]:
    return {name: render_files(spec) for name, spec in PRESETS.items()}


def _text(files: dict[str, bytes], rel: str) -> str:
    return files[rel].decode("utf-8")


def _strip_comments(src: str) -> str:
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    return re.sub(r"//[^\n]*", "", src)


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_renders_its_flow(rendered, name):
    spec, files = PRESETS[name], rendered[name]
    for rel in HLS_FILES:
        assert rel in files, rel
    assert ("scripts/vpp.cfg" in files) == (spec.flow == "xrt")
    assert ("scripts/bd.tcl" in files) == (spec.flow == "pynq")
    assert not any("flow_" in rel or rel.endswith(".j2") or "/_" in rel for rel in files)


def test_generation_is_byte_identical_across_runs(tmp_path):
    for name, spec in PRESETS.items():
        assert render_files(spec) == render_files(spec), name
    a, b = tmp_path / "a", tmp_path / "b"
    generate(preset("sat_2x8_kv260"), a, log=lambda m: None)
    generate(preset("sat_2x8_kv260"), b, log=lambda m: None)
    assert _tree(a) == _tree(b)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_generation_is_byte_identical_across_hash_seeds(tmp_path):
    trees = []
    for seed in ("0", "4242"):
        out = tmp_path / f"seed{seed}"
        env = dict(os.environ, PYTHONHASHSEED=seed)
        for arch in ("sat_2x8", "sat_2x8_kv260", "dense"):
            subprocess.run([sys.executable, "-m", "gen", "gen", "--arch", arch, "--out", str(out / arch)],
                           cwd=REPO, env=env, check=True, capture_output=True)
        trees.append(_tree(out))
    assert trees[0] == trees[1]
    assert any(k.endswith("hls/sat_kernel.cpp") for k in trees[0])


@pytest.mark.parametrize("name", list(PRESETS))
def test_regenerating_from_written_spec_json_is_identical(rendered, name, tmp_path):
    spec_file = tmp_path / "spec.json"
    spec_file.write_bytes(rendered[name]["spec.json"])
    assert render_files(load_spec(spec_file)) == rendered[name]


@pytest.mark.parametrize("name", list(PRESETS))
def test_manifest_hashes_every_file(rendered, name):
    files = rendered[name]
    manifest = json.loads(files["manifest.json"])
    assert manifest["arch"] == name
    assert set(manifest["files"]) == set(files) - {"manifest.json"}
    for rel, digest in manifest["files"].items():
        assert hashlib.sha256(files[rel]).hexdigest() == digest, rel


def _signature(src: str) -> list[tuple[str, str]]:
    m = re.search(r'extern "C" void sat_kernel\(([^)]*)\)', src)
    assert m, "sat_kernel prototype not found"
    params = []
    for p in m.group(1).split(","):
        ctype, name = p.strip().rsplit(" ", 1)
        if name.startswith("*"):
            ctype, name = ctype + " *", name[1:]
        params.append((ctype, name))
    return params


@pytest.mark.parametrize("name", list(PRESETS))
def test_kernel_signature_and_interfaces_follow_regmap(rendered, name):
    spec, files = PRESETS[name], rendered[name]
    args = kernel_args(spec)
    want = [((("const " if a.direction == "in" else "") + a.ctype + " *") if a.kind == "ptr" else
             a.ctype + " *" if a.kind == "scalar_out" else a.ctype, a.name) for a in args]
    assert all(a.ctype == "word_t" for a in args if a.kind == "ptr")          # whole AXI words
    kernel = _text(files, "hls/sat_kernel.cpp")
    assert _signature(kernel) == want
    assert _signature(_text(files, "hls/sat_kernel.h")) == want
    pragmas = re.findall(r"#pragma HLS INTERFACE ([^\n]*)", kernel)
    burst = min(256, 4096 * 8 // spec.axi_bits)           # beats of one 4 KiB burst
    for a in args:
        if a.kind == "ptr":
            rw = "read" if a.direction == "in" else "write"
            assert any(re.fullmatch(rf"mode=m_axi port={a.name} offset=slave bundle={a.bundle} depth=\d+ "
                                    rf"max_{rw}_burst_length={burst} num_{rw}_outstanding=16", p) for p in pragmas), a.name
        assert f"mode=s_axilite port={a.name} bundle=control" in pragmas
    assert "mode=s_axilite port=return bundle=control" in pragmas
    assert "mode=ap_ctrl_hs port=return" in pragmas
    assert len(pragmas) == len(args) + sum(a.kind == "ptr" for a in args) + 2


@pytest.mark.parametrize("name", list(PRESETS))
def test_config_constants_come_from_the_spec(rendered, name):
    spec, files = PRESETS[name], rendered[name]
    cfg = _text(files, "hls/sat_config.h")
    consts = {k: int(v) for k, v in re.findall(r"const (?:int|uint32_t) (\w+) = (\d+);", cfg)}
    assert consts["R"] == spec.rows and consts["C"] == spec.cols
    assert consts["N"] == spec.n and consts["M"] == spec.m and consts["IDX_BITS"] == spec.idx_bits
    assert consts["DATA_BITS"] == spec.data_bits and consts["ACC_BITS"] == spec.acc_bits
    assert consts["ABUF_DEPTH"] == spec.abuf_depth
    assert consts["MAX_K"] == spec.max_k and consts["MAX_DIM"] == spec.max_dim
    assert consts["AXI_BITS"] == spec.axi_bits and consts["MEM_DATA_BITS"] == spec.mem_data_bits
    assert consts["MEM_ACC_BITS"] == spec.mem_acc_bits
    modes = {k[len("MODE_"):]: v for k, v in consts.items() if k.startswith("MODE_")}
    assert modes == regmap(spec)["modes"]
    # The memory ABI v2 record geometry comes from regmap.json "abi" (hostpy.abi), not from a second rule.
    abi = regmap(spec)["abi"]
    assert f"typedef ap_uint<{abi['word_bits']}> word_t;" in cfg
    assert f"const int GA_BITS = {abi['grouped_record_bits']['a']}," in cfg
    assert f"const int GB_BITS = {abi['grouped_record_bits']['b']}," in cfg
    assert consts["TILE_WORDS"] == abi["result_tile_words"] and consts["WORD_BYTES"] == abi["word_bytes"]
    if spec.sparse:
        assert f"const int V_BITS = {abi['value_record_bits']}," in cfg
        assert f"const int I_BITS = {abi['index_record_bits']}," in cfg
    # Runtime N: the kernel accepts n in [N_MIN, N_MAX] = regmap.json nm.runtime_n (every n below M).
    if spec.sparse:
        assert [*range(consts["N_MIN"], consts["N_MAX"] + 1)] == regmap(spec)["nm"]["runtime_n"] == [*range(1, spec.m)]
    else:
        assert "N_MIN" not in consts and regmap(spec)["nm"]["runtime_n"] == []
    status = {k[len("STATUS_"):].lower(): v for k, v in re.findall(r"const uint32_t (STATUS_\w+) = 1u << (\d+);", cfg)}
    assert {k: int(v) for k, v in status.items()} == regmap(spec)["status_bits"]
    assert f'#define SAT_ARCH_NAME "{spec.name}"' in cfg


def _loop_body(src: str, label: str) -> str:
    """The body of the loop labelled ``label`` (brace matching)."""
    m = re.search(label + r":\s*for \([^)]*\) \{", src)
    assert m, label
    depth, i = 1, m.end()
    while depth:
        depth += {"{": 1, "}": -1}.get(src[i], 0)
        i += 1
    return src[m.end():i - 1]


@pytest.mark.parametrize("name", list(PRESETS))
def test_kernel_has_the_microarchitecture_pragmas(rendered, name):
    spec, files = PRESETS[name], rendered[name]
    kernel = _strip_comments(_text(files, "hls/sat_kernel.cpp"))
    # One flattened II=1 loop over (column tile, row tile, step), the R x C PEs unrolled inside;
    # first/last flags start and hand off a tile's accumulators in that same loop (no restore/save loops).
    steps = _loop_body(kernel, "array_steps")
    assert steps.lstrip().startswith("#pragma HLS PIPELINE II=1")
    assert re.search(r"array_rows:\s*for[^{]*\{\s*#pragma HLS UNROLL", steps)
    assert re.search(r"array_cols:\s*for[^{]*\{\s*#pragma HLS UNROLL", steps)
    assert "(first ? acc_t(0) : acc[r][j])" in steps and "if (last) tiles.write(done);" in steps
    assert "#pragma HLS ARRAY_PARTITION variable=acc complete dim=0" in kernel
    assert "acc_bank" not in kernel and "restore" not in kernel
    assert kernel.count("#pragma HLS DATAFLOW") == (4 if spec.sparse else 1)
    # The memory side: every m_axi access is a whole word in an unconditional PIPELINE II=1 loop
    # over consecutive words (the BP fallback's single-element reads are the one documented exception).
    for label, access in (("read_words", "const word_t word = base[w];"), ("write_words", "dst[w] = line.range("),
                          ("drain_words", "dst[w] = word;")) + ((("bp_read_words", "= base[q];"),) if spec.sparse else ()):
        body = _loop_body(kernel, label)
        assert body.lstrip().startswith("#pragma HLS PIPELINE II=1"), label
        lines = [x for x in body.splitlines() if x.strip() and not x.lstrip().startswith("#pragma")]
        i = next(n for n, x in enumerate(lines) if access in x)
        indent = lambda x: len(x) - len(x.lstrip())
        # At the loop body's own level (not inside an if/else block), and not the tail of a braceless if.
        assert indent(lines[i]) == indent(lines[0]), (label, lines[i])
        assert i == 0 or lines[i - 1].rstrip().endswith((";", "}")), (label, lines[i - 1])
    ptr_names = [a.name for a in kernel_args(spec) if a.kind == "ptr"]
    body_src = kernel[kernel.index(f'extern "C" void {regmap(spec)["kernel"]}('):]
    for p in ptr_names:         # the top function only passes pointers on (and checks their alignment)
        assert not re.search(rf"\b{p}\s*\[", body_src), p
    # Every loop with a runtime trip count carries LOOP_TRIPCOUNT (reports, cosim).
    counted = 0
    for m in re.finditer(r"(\w+):\s*for \((uint32_t|int) \w+ = [^;]*; \w+ < ([^;]*);", kernel):
        label, kind, bound = m.groups()
        if kind == "int":
            continue                                     # compile-time bounds (R, C, M, TILE_WORDS, ...)
        pragmas_ = []
        for x in _loop_body(kernel, label).splitlines():
            if x.strip() and not x.lstrip().startswith("#pragma"):
                break
            pragmas_.append(x)
        assert any("#pragma HLS LOOP_TRIPCOUNT" in x for x in pragmas_), label
        counted += 1
    assert counted == (18 if spec.sparse else 9)
    # Runtime N: SPARSE steps over spg = ceil(n / N) A records per group with a step counter inside the
    # one flattened loop (no loop nested in it but the unrolled PE loops); PRUNE's record loops likewise.
    assert re.findall(r"\b(\w+):\s*for", steps) == ["array_rows", "array_cols"]
    assert "s.sub = dense ? uint32_t(SPR) : ceil_div(n, N);" in kernel and "const bool group_end = u + 1 == sub;" in steps
    if spec.sparse:
        for label in ("ff_recs", "bp_records"):
            body = _loop_body(kernel, label)
            assert "const bool group_end = u + 1 == p.spg;" in body and not re.search(r"\w+:\s*for", body), label
        assert "(n < sat::N_MIN || n > sat::N_MAX)" in body_src
    # Ping-pong B banks (one read and one write per cycle, different banks by construction).
    assert "static bline_t bank[2][B_BUF_LINES];" in kernel
    assert "#pragma HLS ARRAY_PARTITION variable=bank dim=1 complete" in kernel
    pe = _text(files, "hls/sat_pe.h")
    if spec.sparse:
        # PRUNE's BP stage: banks [QR][QC] indexed only by the unrolled loop indices, one runtime address.
        assert "static grec_t stage[QR][QC][BP_STAGE_DEPTH];" in kernel
        for dim in (1, 2):
            assert f"#pragma HLS ARRAY_PARTITION variable=stage dim={dim} complete" in kernel
        rec = _loop_body(kernel, "bp_records")
        assert rec.lstrip().startswith("#pragma HLS PIPELINE II=1")
        reads = re.findall(r"stage\[([^]]*)\]\[([^]]*)\]\[([^]]*)\]", rec)
        assert reads == [("qr", "qc", "addr")]
        assert re.search(r"for \(int qr = 0; qr < QR; \+\+qr\)", rec) and re.search(r"for \(int qc = 0; qc < QC; \+\+qc\)", rec)
        assert "act[idx[s]]" in pe and "void top_n(" in pe and "MODE_PRUNE" in kernel and "a_idx" in kernel
    else:
        assert "idx" not in _strip_comments(pe) and "MODE_PRUNE" not in kernel and "top_n" not in kernel


@pytest.mark.parametrize("name", list(PRESETS))
def test_synthesizable_sources_avoid_heap_stl_and_recursion(rendered, name):
    files = rendered[name]
    for rel in SYNTHESIZABLE:
        src = _strip_comments(_text(files, rel))
        for bad in (r"\bnew\b", r"\bdelete\b", r"\bmalloc\b", r"\bcalloc\b", r"\bfree\s*\(", r"std::",
                    r"#include\s*<(vector|map|list|deque|string|memory|algorithm)>"):
            assert not re.search(bad, src), f"{rel}: {bad}"
        # No function calls itself: find each definition's body by brace matching.
        for m in re.finditer(r"\b(\w+)\s*\([^;{)]*\)\s*\{", src):
            fname, start, depth, i = m.group(1), m.end(), 1, m.end()
            if fname in ("if", "for", "while", "switch"):
                continue
            while depth and i < len(src):
                depth += {"{": 1, "}": -1}.get(src[i], 0)
                i += 1
            assert not re.search(rf"\b{fname}\s*\(", src[start:i]), f"{rel}: {fname} is recursive"


def test_dense_baseline_has_no_sparse_or_prune_ports(rendered):
    api = _text(rendered["dense"], "hls/sat_csim_api.cpp")
    kernel = _text(rendered["dense"], "hls/sat_kernel.cpp")
    assert [n for _, n in _signature(kernel)] == [a.name for a in kernel_args(PRESETS["dense"])]
    assert "a_idx" not in _signature(kernel).__repr__()
    assert "(void)a_idx" in api          # the C API keeps its one signature and ignores them


def _run_vendor(out: Path, step: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH="/usr/bin:/bin")
    env.pop("SATGEN_BITSTREAMS", None)
    return subprocess.run(["bash", str(out / "scripts" / "run_vendor.sh"), step], env=env,
                          capture_output=True, text=True)


@pytest.mark.skipif(any(shutil.which(t, path="/usr/bin:/bin") for t in ("vitis_hls", "vivado", "v++")),
                    reason="vendor tools installed in /usr/bin")
@pytest.mark.parametrize("arch,tools", [("sat_2x8", ("vitis_hls", "v++")), ("sat_2x8_kv260", ("vitis_hls", "vivado"))])
def test_run_vendor_without_tools_explains_and_exits_2(tmp_path, arch, tools):
    out = tmp_path / arch
    generate(preset(arch), out, log=lambda m: None)
    assert subprocess.run(["bash", "-n", str(out / "scripts" / "run_vendor.sh")]).returncode == 0
    hls = _run_vendor(out, "hls")
    assert hls.returncode == 2
    assert "not found on PATH: vitis_hls" in hls.stderr and "scripts/hls.tcl" in hls.stderr
    bit = _run_vendor(out, "bitstream")
    assert bit.returncode == 2
    assert f"not found on PATH: {' '.join(tools)}" in bit.stderr
    assert f"bitstreams/{arch}/" in bit.stderr
    assert ("scripts/vpp.cfg" if tools[1] == "v++" else "scripts/bd.tcl") in bit.stderr
    assert not (out / "work" / "xclbin").exists()
    usage = _run_vendor(out, "")
    assert usage.returncode == 2 and "usage" in usage.stderr


def _broken_template_dir(tmp_path: Path) -> Path:
    tdir = tmp_path / "templates"
    shutil.copytree(render.TEMPLATE_DIR, tdir)
    (tdir / "hls" / "zz_broken.h.j2").write_text("{{ spec.no_such_field }}\n")
    return tdir


def test_template_error_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(render, "TEMPLATE_DIR", _broken_template_dir(tmp_path))
    out = tmp_path / "build" / "x"
    with pytest.raises(GenerationError, match="zz_broken"):
        generate(preset("sat_2x8"), out, log=lambda m: None)
    assert not out.exists()
    leftovers = list((tmp_path / "build").iterdir()) if (tmp_path / "build").exists() else []
    assert leftovers == []


def test_failed_regeneration_keeps_previous_output(tmp_path, monkeypatch):
    out = tmp_path / "build" / "x"
    generate(preset("sat_2x8"), out, log=lambda m: None)
    before = _tree(out)
    # A template error: nothing is touched.
    with monkeypatch.context() as mp:
        mp.setattr(render, "TEMPLATE_DIR", _broken_template_dir(tmp_path))
        with pytest.raises(GenerationError):
            generate(preset("sat_2x4"), out, log=lambda m: None)
    assert _tree(out) == before
    # A write error half-way through: the old tree survives and no temporary directory is left.
    real_write = Path.write_bytes
    calls = {"n": 0}

    def flaky_write(self, data):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError("disk full (simulated)")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", flaky_write)
    with pytest.raises(OSError, match="simulated"):
        generate(preset("sat_2x4"), out, log=lambda m: None)
    monkeypatch.undo()
    assert _tree(out) == before
    assert sorted(p.name for p in (tmp_path / "build").iterdir()) == ["x"]


@pytest.mark.parametrize("name", list(PRESETS))
def test_vendor_scripts_carry_the_spec(rendered, name):
    spec, files = PRESETS[name], rendered[name]
    tcl = _text(files, "scripts/hls.tcl")
    assert f"set_part {{{spec.fpga_part}}}" in tcl
    assert f"create_clock -period {1000.0 / spec.clock_mhz:.3f} -name default" in tcl
    assert "set_top sat_kernel" in tcl
    assert f"config_interface -m_axi_addr64=true -m_axi_alignment_byte_size {spec.axi_bits // 8}" in tcl
    for step in ("csim_design", "csynth_design", "cosim_design", "export_design"):
        assert step in tcl
    ptrs = [a for a in kernel_args(spec) if a.kind == "ptr"]
    if spec.flow == "xrt":
        assert "-flow_target vitis" in tcl and "export_design -format xo" in tcl
        cfg = _text(files, "scripts/vpp.cfg")
        assert f"platform={spec.platform}\n" in cfg
        # Each bundle on the bank regmap.json names; the GEMM's four streams on four different banks.
        want = [(r["name"], r["memory"]) for r in regmap(spec)["args"] if r["kind"] == "ptr"]
        assert re.findall(r"^sp=sat_kernel_1\.(\w+):(\S+)$", cfg, re.M) == want
        gemm_ports = [m for n, m in want if n in ("a_val", "a_idx", "b", "c")]
        assert len(set(gemm_ports)) == len(gemm_ports)
    else:
        assert "-flow_target vivado" in tcl and "export_design -format ip_catalog" in tcl
        bd = _text(files, "scripts/bd.tcl")
        assert f"-part {spec.fpga_part}\n" in bd and f"board_part {spec.platform} " in bd
        want = [(r["bundle"], r["memory"]) for r in regmap(spec)["args"] if r["kind"] == "ptr"]
        got = re.findall(r"Master /sat/m_axi_(\w+) Slave /ps/(\w+) ", bd)
        assert sorted(got) == sorted(want) and len(got) == len(ptrs)
        for port in {m for _, m in want}:           # the PS port is enabled, with its own SmartConnect
            assert f"smc_{port.lower()}" in bd
            assert (f"CONFIG.PCW_USE_{port} {{1}}" in bd) if spec.fpga_part.startswith("xc7z") else \
                (f"CONFIG.PSU__USE__S_AXI_GP{int(port[8]) + 2} {{1}}" in bd)
        assert "sat/s_axi_control" in bd and "write_bitstream" in bd
        assert f"{spec.name}.bit" in bd and f"{spec.name}.hwh" in bd
        assert ("processing_system7" in bd) == spec.fpga_part.startswith("xc7z")


@pytest.mark.parametrize("name", [n for n, s in PRESETS.items() if s.sparse])
def test_prune_selection_is_hardware_not_a_sort(rendered, name):
    src = "".join(_strip_comments(_text(rendered[name], rel)) for rel in SYNTHESIZABLE)
    assert "sort" not in src.lower() and "top_n(grp[l], n, kept, kept_idx)" in src
    # The rank network: an M x M comparison of (magnitude, index) pairs, fully unrolled; the job's
    # runtime n is the threshold on the rank (keep e iff fewer than n elements beat it).
    assert "mag[f] > mag[e] || (mag[f] == mag[e] && f < e)" in src and "keep[e] = beaten_by < n;" in src


# ---- the vendor Tcl scripts under tclsh, vendor commands stubbed --------------------------------
TCL_STUBS = r"""
set ::calls {}
proc unknown {args} {
    lappend ::calls $args
    switch -- [lindex $args 0] {
        get_property { return 100% }
        get_ipdefs { return xilinx.com:ip:stub:1.0 }
        make_wrapper { return /stub/design_1_wrapper.v }
        default { return stub }
    }
}
rename exec _real_exec
proc exec {args} { lappend ::calls [concat exec $args]; return "" }
rename exit _real_exit
proc exit {{code 0}} {
    set f [open $::env(SATGEN_TCL_LOG) w]
    foreach c $::calls { puts $f $c }
    close $f
    _real_exit $code
}
set script [lindex $argv 0]
set argv [lrange $argv 1 end]
set argc [llength $argv]
if {[catch {source $script} err]} {
    puts stderr "tcl error: $err"
    exit 1
}
exit 3   ;# the script must end with its own exit
"""


def _tclsh_run(tmp_path: Path, script: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    stubs = tmp_path / "stubs.tcl"
    stubs.write_text(TCL_STUBS)
    log = tmp_path / "calls.log"
    env = dict(os.environ, SATGEN_TCL_LOG=str(log))
    proc = subprocess.run(["tclsh", str(stubs), str(script), *args], capture_output=True, text=True, env=env)
    return proc, (log.read_text().splitlines() if log.exists() else [])


@pytest.mark.skipif(shutil.which("tclsh") is None, reason="tclsh not installed")
@pytest.mark.parametrize("arch", ["sat_2x8", "sat_2x8_kv260"])
def test_hls_tcl_runs_the_flow_in_order(tmp_path, arch):
    spec = preset(arch)
    out = tmp_path / arch
    generate(spec, out, log=lambda m: None)
    # Without vectors the csim step stops with a clear error (the work folder is created first).
    proc, _ = _tclsh_run(tmp_path, out / "scripts" / "hls.tcl")
    assert proc.returncode != 0 and "make csim" in proc.stderr
    assert (out / "work").is_dir()
    (out / "work" / "csim" / "vectors").mkdir(parents=True)
    (out / "work" / "csim" / "vectors" / "cases.txt").write_text("x.bin\n")
    proc, calls = _tclsh_run(tmp_path, out / "scripts" / "hls.tcl")
    assert proc.returncode == 0, proc.stderr
    names = [c.split()[0] for c in calls]
    order = ["open_project", "set_top", "add_files", "add_files", "open_solution", "set_part", "create_clock"]
    assert names[: len(order)] == order
    assert [n for n in names if n.endswith("_design")] == ["csim_design", "csynth_design", "cosim_design",
                                                          "export_design"]
    assert f"set_part {spec.fpga_part}" in calls
    assert any(c.startswith("csim_design -argv ") and c.endswith("work/csim/vectors") for c in calls)
    export = next(c for c in calls if c.startswith("export_design"))
    assert ("-format xo" in export) == (spec.flow == "xrt")
    # Steps can be chosen: synthesis + export only (what run_vendor.sh bitstream runs).
    proc, calls = _tclsh_run(tmp_path, out / "scripts" / "hls.tcl", "csynth", "export")
    assert proc.returncode == 0, proc.stderr
    assert [c.split()[0] for c in calls if c.split()[0].endswith("_design")] == ["csynth_design", "export_design"]


@pytest.mark.skipif(shutil.which("tclsh") is None, reason="tclsh not installed")
@pytest.mark.parametrize("arch", ["sat_2x8_kv260"])
def test_bd_tcl_builds_the_block_design_and_copies_bit_and_hwh(tmp_path, arch):
    spec = preset(arch)
    out = tmp_path / arch
    generate(spec, out, log=lambda m: None)
    dest = tmp_path / "bitstreams" / arch
    proc, _ = _tclsh_run(tmp_path, out / "scripts" / "bd.tcl", str(dest))
    assert proc.returncode != 0 and "no exported HLS IP" in proc.stderr
    (out / "work" / "hls" / "ip").mkdir(parents=True)
    # What Vivado would leave behind after implementation.
    proj = out / "work" / "vivado"
    (proj / f"{arch}.runs" / "impl_1").mkdir(parents=True)
    (proj / f"{arch}.runs" / "impl_1" / "design_1_wrapper.bit").write_bytes(b"bit")
    hwh = proj / f"{arch}.gen" / "sources_1" / "bd" / "design_1" / "hw_handoff"
    hwh.mkdir(parents=True)
    (hwh / "design_1.hwh").write_text("<hwh/>")
    proc, calls = _tclsh_run(tmp_path, out / "scripts" / "bd.tcl", str(dest))
    assert proc.returncode == 0, proc.stderr
    names = [c.split()[0] for c in calls]
    for cmd in ("create_project", "create_bd_design", "create_bd_cell", "apply_bd_automation", "connect_bd_net",
                "assign_bd_address", "validate_bd_design", "make_wrapper", "launch_runs", "wait_on_run"):
        assert cmd in names, cmd
    assert names.index("validate_bd_design") < names.index("launch_runs")
    bundles = sorted({a.bundle for a in kernel_args(spec) if a.kind == "ptr"})
    assert sum("/sat/m_axi_" in c for c in calls) == len(bundles)
    assert (dest / f"{arch}.bit").read_bytes() == b"bit"
    assert (dest / f"{arch}.hwh").read_text() == "<hwh/>"


def _fake_tools(bin_dir: Path, log: Path) -> None:
    """vitis_hls / v++ / vivado stand-ins that log their arguments and create what the next step reads."""
    bin_dir.mkdir()
    body = {
        "vitis_hls": 'mkdir -p work/hls/ip && touch work/hls/sat_kernel.xo',
        "v++": 'while [ $# -gt 0 ]; do [ "$1" = -o ] && { mkdir -p "$(dirname "$2")"; echo xclbin > "$2"; }; shift; done',
        "vivado": 'dest="${@: -1}"; mkdir -p "$dest"; name=$(basename "$dest"); '
                  'echo bit > "$dest/$name.bit"; echo hwh > "$dest/$name.hwh"',
    }
    for tool, action in body.items():
        p = bin_dir / tool
        p.write_text(f'#!/bin/bash\necho "{tool} $*" >> {log}\n{action}\n')
        p.chmod(0o755)


@pytest.mark.parametrize("arch", ["sat_2x8", "sat_2x8_kv260"])
def test_run_vendor_with_tools_runs_them_and_copies_results(tmp_path, arch):
    spec = preset(arch)
    out = tmp_path / arch
    generate(spec, out, log=lambda m: None)
    log = tmp_path / "tools.log"
    _fake_tools(tmp_path / "bin", log)
    env = dict(os.environ, PATH=f"{tmp_path / 'bin'}:/usr/bin:/bin", SATGEN_BITSTREAMS=str(tmp_path / "bits"))
    run = lambda step: subprocess.run(["bash", str(out / "scripts" / "run_vendor.sh"), step], env=env,
                                      capture_output=True, text=True)
    hls = run("hls")
    assert hls.returncode == 2 and "make csim" in hls.stderr          # vectors first
    (out / "work" / "csim" / "vectors").mkdir(parents=True)
    (out / "work" / "csim" / "vectors" / "cases.txt").write_text("x.bin\n")
    assert run("hls").returncode == 0
    assert log.read_text().splitlines() == [f"vitis_hls -f {out}/scripts/hls.tcl"]
    log.unlink()
    bit = run("bitstream")
    assert bit.returncode == 0, bit.stderr
    dest = tmp_path / "bits" / arch
    calls = log.read_text().splitlines()
    if spec.flow == "xrt":
        assert calls == [f"v++ -l -t hw --config {out}/scripts/vpp.cfg -o {out}/work/xclbin/{arch}.xclbin "
                         f"{out}/work/hls/sat_kernel.xo"]
        assert (dest / f"{arch}.xclbin").read_text() == "xclbin\n"
    else:
        assert calls == [f"vivado -mode batch -source {out}/scripts/bd.tcl -tclargs {dest}"]
        assert (dest / f"{arch}.bit").is_file() and (dest / f"{arch}.hwh").is_file()
    for meta in ("spec.json", "regmap.json", "manifest.json"):
        assert (dest / meta).read_bytes() == (out / meta).read_bytes()
