"""``python -m hostpy train|bench`` — see docs/HOSTPY.md."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .backends import BACKENDS
from .errors import HostError


def _arch_dir(value: str, build: str) -> Path:
    p = Path(value)
    return p if p.is_dir() or "/" in value else Path(build) / value


def _ensure_generated(path: Path, name: str) -> None:
    """Generate a preset's arch dir on first use when the generator is installed (dev machines)."""
    if (path / "regmap.json").is_file() or "/" in name:
        return
    try:
        from gen.render import generate
        from gen.spec import PRESETS
    except ImportError:
        return                      # on a board: load_arch says what is missing
    if name in PRESETS:
        generate(PRESETS[name], path)


def _nm_list(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        try:
            n, m = (int(v) for v in part.split(":"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"N:M list like 2:8,2:4 expected, got {text!r}") from None
        out.append((n, m))
    return out


def _backend_options(args) -> dict:
    if args.backend == "pynq" and args.bitfile:
        return {"bitfile": args.bitfile}
    if args.backend == "xrt" and args.xclbin:
        return {"xclbin": args.xclbin}
    return {}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hostpy", description="satgen host runtime")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, help_ in (("train", "dense vs SR-STE vs BDWP training on sklearn digits, GEMMs on a backend"),
                        ("bench", "GEMM throughput of a backend (e.g. the C-simulated kernel)")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--arch", default="sat_2x8", help="preset name (under --build) or arch directory")
        p.add_argument("--build", default="build", help="where preset arch directories live (default build)")
        p.add_argument("--backend", default="csim", choices=BACKENDS)
        p.add_argument("--bitfile", help="pynq backend: the .bit (with its .hwh beside it)")
        p.add_argument("--xclbin", help="xrt backend: the .xclbin")
    t = sub.choices["train"]
    t.add_argument("--quick", action="store_true", help="small subset and few epochs (< 2 min with csim)")
    t.add_argument("--models", default="mlp,cnn", help="comma list of mlp, cnn")
    t.add_argument("--nm", default="2:8,2:4", type=_nm_list, help="N:M ratios (default 2:8,2:4)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--recipe", default="srste",
                   help="comma list of recipes: srste, mdgf-linear, mdgf-exp, sdgf-sparsify, sdgf-densify, "
                        "sdgf-fine, sdgf-custom (default srste; see docs/RECIPES.md)")
    t.add_argument("--methods", default="srste,bdwp",
                   help="comma list of directions: srste (FF sparse only), bdwp (FF and BP); default both")
    t.add_argument("--plan", default=None,
                   help="layer-wise N:M plan: classifier-dense (default), ends-dense, all, and/or layer=N:M / "
                        "layer=dense entries, e.g. ends-dense,fc2=2:8")
    t.add_argument("--engine", default="device", choices=("device", "float"),
                   help="device: GEMMs on --backend (default); float: host float64, priced on the arch")
    t.add_argument("--frames", default=None, help="sdgf-custom frames, e.g. 15:16,8:16,4:16,2:16,1:16")
    t.add_argument("--dense-frac", type=float, default=0.0, help="PGF dense epochs, fraction (default 0)")
    t.add_argument("--fine-frac", type=float, default=0.0, help="PGF binary-mask fine-tune epochs, fraction (default 0)")
    t.add_argument("--decay-coef", type=float, default=None,
                   help="mdgf decay per step (default: 4 / sparse steps of the run)")
    t.add_argument("--lam", type=float, default=None, help="SR-STE lambda (default: 2e-4 srste, 0 PGF recipes)")
    t.add_argument("--no-verify", action="store_true", help="skip the bit-exact rerun on the numpy backend")
    t.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)

    arch = _arch_dir(args.arch, args.build)
    try:
        _ensure_generated(arch, args.arch)
        if args.cmd == "train":
            from .bdwp import parse_nm_list
            from .suite import run_suite
            ropts = {"plan": args.plan, "dense_frac": args.dense_frac, "fine_frac": args.fine_frac,
                     "decay_coef": args.decay_coef, "lam": args.lam,
                     "frames": parse_nm_list(args.frames) if args.frames else ()}
            run_suite(arch, args.backend, quick=args.quick, models=tuple(args.models.split(",")), nms=args.nm,
                      verify=not args.no_verify, seed=args.seed, backend_options=_backend_options(args),
                      plot=not args.no_plot, recipes=tuple(args.recipe.split(",")),
                      methods=tuple(args.methods.split(",")), engine=args.engine, recipe_options=ropts)
        else:
            from .accel import open_accelerator
            from .bench import bench_gemms
            with open_accelerator(arch, args.backend, **_backend_options(args)) as acc:
                print(f"GEMM throughput of {acc.spec.name} on the {acc.backend} backend")
                recs = bench_gemms(acc)
            out = arch / "reports" / f"hostpy_bench_{args.backend}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps({"arch": acc.spec.name, "backend": args.backend, "gemms": recs},
                                      indent=2, sort_keys=True) + "\n")
            print(f"wrote {out}")
    except (HostError, ValueError) as e:
        print(f"hostpy: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
