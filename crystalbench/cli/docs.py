"""`bench docs params`: the hyperparameter tables of docs/models.md, generated from the models' params classes.

The tables live between markers in the Markdown file; `--check` fails (exit 1)
when the file is out of date, so a test keeps the docs from drifting.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import click

from crystalbench.contract.errors import CrystalbenchError
from crystalbench.contract.params import params_table
from crystalbench.contract.store import atomic_write, check_output_file
from crystalbench.runtime.registry import Registry

from .main import CONTEXT, cli, registry

BEGIN = "<!-- BEGIN GENERATED: params (bench docs params) -->"
END = "<!-- END GENERATED: params -->"
BUILTIN_DIST = "crystalbench"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def params_markdown(reg: Registry, only_builtin: bool = True) -> str:
    """One table per model: name, type, default, description."""
    out = [BEGIN, "", "Generated from each model's typed hyperparameters; unknown keys in `--config` are errors.", ""]
    for name, spec in sorted(reg.models.items()):
        owner = reg.owner.get(("model", name))
        dist = next((p.distribution for p in reg.plugins if p.name == owner), None)
        if only_builtin and dist != BUILTIN_DIST:
            continue
        rows = params_table(spec.params_class)
        out.append(f"#### `{name}`")
        out.append("")
        if not rows:
            out += ["No hyperparameters.", ""]
            continue
        out += ["| hyperparameter | type | default | meaning |", "|---|---|---|---|"]
        out += [f"| `{r[0]}` | {_cell(r[1])} | `{_cell(r[2])}` | {_cell(r[3])} |" for r in rows]
        if spec.poolings and not any(r[0] == "pooling" for r in rows):
            default = spec.default_pooling or "mean; sum for extensive targets"
            choices = " \\| ".join(map(repr, spec.poolings))
            out.append(f"| `pooling` | {choices} | {default} | readout (`--pooling`) |")
        out.append("")
    out.append(END)
    return "\n".join(out)


def render_into(text: str, block: str) -> str:
    if BEGIN in text and END in text:
        head = text[: text.index(BEGIN)]
        tail = text[text.index(END) + len(END):]
        return head + block + tail
    return text.rstrip("\n") + "\n\n## Hyperparameters of every built-in model\n\n" + block + "\n"


@cli.group(context_settings=CONTEXT)
def docs() -> None:
    """Generate the parts of the docs that come from code."""


@docs.command("params")
@click.option("--file", "path", type=click.Path(path_type=Path), default=Path("docs/models.md"), show_default=True)
@click.option("--check", is_flag=True, help="Exit 1 if the file is out of date instead of writing it.")
@click.pass_context
def docs_params(ctx: click.Context, path: Path, check: bool) -> None:
    """Write (or --check) the generated hyperparameter tables in docs/models.md."""
    if not path.is_file():
        raise CrystalbenchError(f"{path} does not exist (run from the repository root or pass --file)")
    if not check:  # never onto a result record (a mistyped --file once replaced one)
        check_output_file(path, option="--file")
    ctx.ensure_object(dict)["quiet_problems"] = True
    old = path.read_text()
    new = render_into(old, params_markdown(registry(ctx)))
    if check:
        if new != old:
            diff = "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), str(path), "generated", n=1))
            click.echo(diff[:4000], err=True)
            click.echo(f"{path} is out of date: run `bench docs params`", err=True)
            raise SystemExit(1)
        click.echo(f"{path} is up to date", err=True)
        return
    if new != old:
        atomic_write(path, new)
    click.echo(f"wrote {path}", err=True)
