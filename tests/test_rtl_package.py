"""Packaging of the RTL kernel for the vendor flows (no Vivado here: Tcl under tclsh with the vendor
commands stubbed, run_vendor.sh with stand-in tools, kernel.xml checked against regmap.json)."""
from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gen.regmap import regmap
from gen.render import generate, render_files
from gen.spec import preset

from test_hls_templates import _tclsh_run


@pytest.mark.parametrize("arch", ["sat_2x8", "dense", "sat_2x8_int16"])
def test_kernel_xml_matches_regmap(arch):
    """Names, ids, offsets, sizes, ports and port widths of kernel.xml are those of regmap.json."""
    spec = preset(arch)
    rm = regmap(spec)
    root = ET.fromstring(render_files(spec)["scripts/kernel.xml"])
    kernel = root.find("kernel")
    assert kernel.get("name") == rm["kernel"] and kernel.get("vlnv") == rm["vlnv"]
    assert kernel.get("hwControlProtocol") == "ap_ctrl_hs" and kernel.get("interrupt") == "true"
    ports = {p.get("name"): p for p in kernel.find("ports")}
    ctrl = ports.pop("s_axi_control")
    assert ctrl.get("mode") == "slave" and int(ctrl.get("range"), 16) >= rm["address_range"]
    assert ctrl.get("dataWidth") == "32"
    bundles = sorted({a["bundle"] for a in rm["args"] if a["kind"] == "ptr"})
    assert sorted(ports) == [f"m_axi_{b}" for b in bundles]
    for p in ports.values():
        assert p.get("mode") == "master" and int(p.get("dataWidth")) == spec.axi_bits
    args = list(kernel.find("args"))
    assert [a.get("name") for a in args] == [a["name"] for a in rm["args"]]
    for i, (x, r) in enumerate(zip(args, rm["args"])):
        assert int(x.get("id")) == i
        assert int(x.get("offset"), 16) == r["offset"]
        assert int(x.get("size"), 16) == r["width"] // 8
        if r["kind"] == "ptr":
            assert x.get("addressQualifier") == "1" and x.get("port") == f"m_axi_{r['bundle']}"
        else:
            assert x.get("addressQualifier") == "0" and x.get("port") == "s_axi_control"
    assert "scripts/kernel.xml" not in render_files(preset("sat_2x8_kv260"))     # PYNQ boards: no Vitis kernel


@pytest.mark.skipif(shutil.which("tclsh") is None, reason="tclsh not installed")
@pytest.mark.parametrize("arch", ["sat_2x8", "sat_2x8_kv260"])
def test_package_rtl_tcl_packages_the_kernel(tmp_path, arch):
    spec = preset(arch)
    rm = regmap(spec)
    out = tmp_path / arch
    generate(spec, out, log=lambda m: None)
    script = out / "scripts" / "package_rtl.tcl"
    proc, _ = _tclsh_run(tmp_path, script)
    assert proc.returncode == 2 and "usage" in proc.stderr
    xo = tmp_path / "xo" / "sat_kernel.xo"
    extra = [str(xo)] if spec.flow == "xrt" else []
    proc, calls = _tclsh_run(tmp_path, script, str(tmp_path / "ip"), *extra)
    assert proc.returncode == 0, proc.stderr
    names = [c.split()[0] for c in calls]
    assert f"create_project -force sat_kernel_rtl {out}/work/rtl_pkg -part {spec.fpga_part}" in calls
    add = next(c for c in calls if c.startswith("add_files"))
    listed = [ln for ln in (out / "rtl" / "filelist.f").read_text().splitlines() if ln and not ln.startswith("//")]
    assert add.replace("{", "").replace("}", "").split()[2:] == [str(out / "rtl" / n) for n in listed]
    vendor, library, name, version = rm["vlnv"].split(":")
    assert any(c.startswith(f"ipx::package_project -root_dir {tmp_path / 'ip'} -vendor {vendor} -library {library}")
               for c in calls)
    assert f"set_property name {name} stub" in calls and f"set_property version {version} stub" in calls
    bundles = sorted({a["bundle"] for a in rm["args"] if a["kind"] == "ptr"})
    assoc = [c.split()[2] for c in calls if c.startswith("ipx::associate_bus_interfaces")]
    assert sorted(assoc) == sorted(["s_axi_control"] + [f"m_axi_{b}" for b in bundles])
    regs = [c.split()[1] for c in calls if c.startswith("ipx::add_register ")]
    assert regs == ["CTRL", "GIER", "IP_IER", "IP_ISR"] + [a["name"] for a in rm["args"]]
    offsets = [int(c.split()[2], 16) for c in calls if c.startswith("set_property address_offset")]
    assert offsets == [0, 4, 8, 12] + [a["offset"] for a in rm["args"]]
    assert names.index("ipx::save_core") < len(names)
    xo_calls = [c for c in calls if c.startswith("package_xo")]
    if spec.flow == "xrt":
        assert xo_calls and f"-xo_path {xo}" in xo_calls[0] and "-kernel_name sat_kernel" in xo_calls[0]
        assert f"-kernel_xml {out}/scripts/kernel.xml" in xo_calls[0]
    else:
        assert not xo_calls


def _tools(bin_dir: Path, log: Path) -> None:
    """vivado / v++ stand-ins: log the call, create what the next step reads."""
    bin_dir.mkdir()
    body = {
        # package_rtl.tcl: the last argument is the .xo (Alveo) or the IP directory (PYNQ); bd.tcl: DEST
        "vivado": 'last="${@: -1}"; case "$last" in *.xo) mkdir -p "$(dirname "$last")"; echo xo > "$last";; '
                  '*/ip) mkdir -p "$last";; *) mkdir -p "$last"; n=$(basename "$last"); '
                  'echo bit > "$last/$n.bit"; echo hwh > "$last/$n.hwh";; esac',
        "v++": 'while [ $# -gt 0 ]; do [ "$1" = -o ] && { mkdir -p "$(dirname "$2")"; echo xclbin > "$2"; }; shift; done',
        "vitis_hls": 'mkdir -p work/hls/ip && touch work/hls/sat_kernel.xo',
    }
    for tool, action in body.items():
        p = bin_dir / tool
        p.write_text(f'#!/bin/bash\necho "{tool} $*" >> {log}\n{action}\n')
        p.chmod(0o755)


@pytest.mark.parametrize("arch", ["sat_2x8", "sat_2x8_kv260"])
def test_run_vendor_impl_rtl(tmp_path, arch):
    """IMPL=rtl packages the RTL kernel (no Vitis HLS needed) and links it; IMPL=hls after it rebuilds the HLS IP."""
    spec = preset(arch)
    out = tmp_path / arch
    generate(spec, out, log=lambda m: None)
    log = tmp_path / "tools.log"
    run = lambda step, impl, path: subprocess.run(
        ["bash", str(out / "scripts" / "run_vendor.sh"), step], capture_output=True, text=True,
        env=dict(os.environ, PATH=path, IMPL=impl, SATGEN_BITSTREAMS=str(tmp_path / "bits")))
    # without tools: exit 2 and the commands it would run
    r = run("bitstream", "rtl", "/usr/bin:/bin")
    assert r.returncode == 2 and "package_rtl.tcl" in r.stderr and "vivado" in r.stderr
    assert run("bitstream", "nope", "/usr/bin:/bin").returncode == 2
    assert run("hls", "rtl", "/usr/bin:/bin").returncode == 2
    _tools(tmp_path / "bin", log)
    path = f"{tmp_path / 'bin'}:/usr/bin:/bin"
    r = run("bitstream", "rtl", path)
    assert r.returncode == 0, r.stderr
    calls = log.read_text().splitlines()
    dest = tmp_path / "bits" / arch
    if spec.flow == "xrt":
        xo = f"{out}/work/rtl/sat_kernel.xo"
        assert calls == [f"vivado -mode batch -source {out}/scripts/package_rtl.tcl -tclargs {out}/work/rtl/ip {xo}",
                         f"v++ -l -t hw --config {out}/scripts/vpp.cfg -o {out}/work/xclbin/{arch}.xclbin {xo}"]
        assert (dest / f"{arch}.xclbin").is_file()
    else:
        assert calls == [f"vivado -mode batch -source {out}/scripts/package_rtl.tcl -tclargs {out}/work/hls/ip",
                         f"vivado -mode batch -source {out}/scripts/bd.tcl -tclargs {dest}"]
        assert (dest / f"{arch}.bit").is_file()
    assert (dest / "kernel_impl").read_text() == "rtl\n"
    # switching back to the HLS kernel re-runs the HLS export instead of reusing the RTL artifact
    log.unlink()
    r = run("bitstream", "hls", path)
    assert r.returncode == 0, r.stderr
    assert log.read_text().splitlines()[0] == f"vitis_hls -f {out}/scripts/hls.tcl -tclargs csynth export"
    assert (dest / "kernel_impl").read_text() == "hls\n"
