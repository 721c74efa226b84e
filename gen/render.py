"""Render a spec into a self-contained output project, deterministically and atomically.

Template layout (hls_templates/): every ``*.j2`` file renders to the same relative path in the
output without the ``.j2`` suffix, except files under a ``flow_<name>/`` folder, which render only
for specs whose board uses that flow (``xrt`` or ``pynq``) and lose that folder level. Templates
see ``spec`` (the ArchSpec), ``regmap`` (gen.regmap.regmap(spec)) and ``args`` (kernel_args).

Output = the rendered templates + spec.json + regmap.json + manifest.json (sha256 of every file).
Writing goes to a temporary sibling directory that replaces ``out`` only when everything rendered,
so a failure leaves the previous output (or nothing) in place, never a half-written tree.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jinja2

from . import __version__
from .atomic import write_tree
from .regmap import kernel_args, regmap
from .spec import ArchSpec, spec_to_json

__all__ = ["TEMPLATE_DIR", "render_files", "generate", "GenerationError", "rtl_prune_shape"]

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "hls_templates"


class GenerationError(RuntimeError):
    pass


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["hex"] = lambda v, width=2: f"0x{int(v):0{int(width)}x}"
    env.filters["clog2"] = lambda v: max(1, (int(v) - 1).bit_length())
    return env


def rtl_prune_shape(spec: ArchSpec) -> str | None:
    """The RTL kernel's PRUNE shape for ``spec`` ("eq", "wide", "tall", "blocks"), or None where the
    RTL kernel refuses PRUNE with bad_mode. Read from hls_templates/rtl/_sat_layout.j2 (K_BPX), the one
    place that decides it (docs/RTL.md "PRUNE")."""
    module = _environment().get_template("rtl/_sat_layout.j2").make_module({"spec": spec})
    return module.K_BPX


def _templates_for(spec: ArchSpec) -> list[tuple[str, str]]:
    """(template name, output path) pairs, sorted, for this spec."""
    pairs = []
    for p in sorted(TEMPLATE_DIR.rglob("*.j2")):
        rel = p.relative_to(TEMPLATE_DIR)
        parts = list(rel.parts)
        flows = [x for x in parts[:-1] if x.startswith("flow_")]
        if flows and any(f != f"flow_{spec.flow}" for f in flows):
            continue
        if any(x.startswith("_") for x in parts):      # _partials are included, never rendered alone
            continue
        out_parts = [x for x in parts[:-1] if not x.startswith("flow_")] + [parts[-1][: -len(".j2")]]
        pairs.append((rel.as_posix(), "/".join(out_parts)))
    return pairs


# Folders inside an output directory that belong to later build steps, not to the generator.
PRESERVED = ("reports", "work")


def _up_to_date(out: Path, files: dict[str, bytes]) -> bool:
    try:
        return all((out / rel).read_bytes() == data for rel, data in files.items())
    except OSError:
        return False


def render_files(spec: ArchSpec) -> dict[str, bytes]:
    """Every output file of ``spec`` as {relative path: bytes}, manifest included."""
    env = _environment()
    rm = regmap(spec)
    ctx = {"spec": spec, "regmap": rm, "args": kernel_args(spec), "satgen_version": __version__}
    files: dict[str, bytes] = {}
    for tname, out in _templates_for(spec):
        try:
            text = env.get_template(tname).render(**ctx)
        except jinja2.TemplateError as e:
            raise GenerationError(f"template {tname} failed: {e}") from e
        files[out] = text.encode("utf-8")
    files["spec.json"] = spec_to_json(spec).encode("utf-8")
    files["regmap.json"] = (json.dumps(rm, indent=2, sort_keys=True) + "\n").encode("utf-8")
    manifest = {
        "arch": spec.name,
        "generator": f"satgen {__version__}",
        "files": {k: hashlib.sha256(v).hexdigest() for k, v in sorted(files.items())},
    }
    files["manifest.json"] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
    return files


def generate(spec: ArchSpec, out: str | Path, *, log=print) -> dict[str, bytes]:
    """Render ``spec`` into directory ``out`` atomically; returns the files written."""
    out = Path(out).resolve()
    files = render_files(spec)           # render everything first: template errors write nothing
    if out.exists() and not out.is_dir():
        raise GenerationError(f"output path {out} exists and is not a directory")
    if _up_to_date(out, files):
        log(f"satgen: {out} is up to date ({len(files)} files for {spec.name})")
        return files
    write_tree(out, files, keep=PRESERVED)       # build products and reports survive a regeneration
    log(f"satgen: wrote {len(files)} files for {spec.name} to {out}")
    return files
