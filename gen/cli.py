"""The `satgen` command line."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from . import __version__
from .render import GenerationError, generate
from .spec import PRESET_SUMMARIES, SpecError, load_spec, preset, preset_names


def resolve_spec(arch: str | None, spec_file: str | None):
    """The spec named by --arch (a preset) or --spec (a file); exactly one may be given."""
    if arch and spec_file:
        raise click.UsageError("give either --arch or --spec, not both")
    if spec_file:
        return load_spec(spec_file)
    return preset(arch or "sat_2x8")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="satgen")
def main() -> None:
    """Generate N:M sparse-training (SAT/BDWP) accelerators: Vitis HLS C++, SystemVerilog, scripts."""


@main.command("list")
def list_cmd() -> None:
    """List the architecture presets."""
    width = max(len(n) for n in preset_names())
    for name in preset_names():
        click.echo(f"{name:<{width}}  {PRESET_SUMMARIES[name]}")


@main.command()
@click.option("--arch", metavar="NAME", help="preset name (default sat_2x8); see `satgen list`")
@click.option("--spec", "spec_file", metavar="FILE", help="spec file (.toml or .json)")
@click.option("--out", metavar="DIR", help="output directory (default build/<name>)")
def gen(arch: str | None, spec_file: str | None, out: str | None) -> None:
    """Generate the accelerator project for a spec."""
    try:
        spec = resolve_spec(arch, spec_file)
        generate(spec, Path(out or f"build/{spec.name}"), log=click.echo)
    except (SpecError, GenerationError) as e:
        click.echo(f"satgen: error: {e}", err=True)
        sys.exit(2)


@main.command()
@click.option("--arch", metavar="NAME", help="preset name (default sat_2x8)")
@click.option("--spec", "spec_file", metavar="FILE", help="spec file (.toml or .json)")
def show(arch: str | None, spec_file: str | None) -> None:
    """Print a spec as JSON (a valid spec file) with its derived figures."""
    from .spec import spec_to_json
    try:
        spec = resolve_spec(arch, spec_file)
    except SpecError as e:
        click.echo(f"satgen: error: {e}", err=True)
        sys.exit(2)
    click.echo(spec_to_json(spec), nl=False)
    click.echo(f"# part {spec.fpga_part}, flow {spec.flow}, {spec.macs_per_cycle} MAC/cycle, "
               f"index {spec.idx_bits} b, ideal step speedup {spec.ideal_step_speedup:.2f}x", err=True)


if __name__ == "__main__":
    main()
