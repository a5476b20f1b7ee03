"""`bench plugin new`: a ready-to-install plugin package (model, task or descriptor set).

The files come from `crystalbench/templates/plugin/*.tmpl` (`string.Template`
placeholders), in the spirit of simonw/llm's `llm-plugin` cookiecutter: a
pyproject.toml with the entry point, one module with the hook, a README, tests
that use the test kit (`crystalbench.testing`), a .gitignore and GitHub
workflows for tests and PyPI publishing. The generated package installs with
``pip install -e .`` and passes its own tests as generated. `render` is a pure
function, so docs/plugins.md and examples/crystalbench-example can be checked
against it (they cannot drift from what users get).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import keyword
import os
import re
import shutil
import tempfile
from pathlib import Path
from string import Template
from typing import Any

import click

from ..harness.errors import BadInputError
from ..harness.specs import NAME_PATTERN, valid_name
from .main import CONTEXT, cli, registry

__all__ = ["render", "names_for", "KINDS", "SAMPLE_SIZE"]

TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "plugin"
KINDS = ("model", "task", "descriptors")
SAMPLE_SIZE = 40
_DIST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_.][A-Za-z0-9]+)*")
_PREFIX = re.compile(r"^crystalbench[-_.]", re.IGNORECASE)

_SUMMARY = {
    "model": "Ridge regression on nearest-neighbour distances and element properties, as a crystalbench model.",
    "task": "A crystalbench benchmark task read from a CSV of crystal structures and a target value.",
    "descriptors": "A few composition and geometry features per structure, as a crystalbench descriptor set.",
}
_KIND_TEXT = {"model": "model", "task": "task", "descriptors": "descriptor set"}
_DEPENDENCIES = {
    "model": ["crystalbench>=0.2", "scikit-learn>=1.3"],
    "task": ["crystalbench>=0.2"],
    "descriptors": ["crystalbench>=0.2"],
}


def names_for(dist: str, spec_name: str | None = None) -> dict[str, str]:
    """The names derived from a distribution name; BadInputError (one line) when one is not usable.

    dist: the distribution name (``crystalbench-knn``): letters, digits and single ``-``, ``_`` or ``.``
        between them, starting with a letter.
    package: the import name (``crystalbench_knn``).
    name: what users type after -m / -t / --descriptors (``knn``: dist without a ``crystalbench-``
        prefix, lower case), also the entry-point name, unless `spec_name` is given.
    """
    if not _DIST.fullmatch(dist):
        raise BadInputError(
            f"plugin name {dist!r} is not a valid package name: use letters, digits and single - _ . between "
            "them, starting with a letter (e.g. crystalbench-knn)"
        )
    package = re.sub(r"[-.]", "_", dist).lower()
    if not package.isidentifier() or keyword.iskeyword(package):
        raise BadInputError(f"plugin name {dist!r} gives the import name {package!r}, which Python cannot import")
    name = spec_name if spec_name is not None else _PREFIX.sub("", dist).lower()
    if not valid_name(name) or not name:
        raise BadInputError(f"name {name!r} is not allowed: names match {NAME_PATTERN} (they become folder names)")
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", name) if p]
    cls = "".join(p[:1].upper() + p[1:] for p in parts)
    if not cls[:1].isalpha():
        cls = "Plugin" + cls
    return {"dist": dist, "package": package, "name": name, "entry": name, "Class": cls}


def _toml_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a TOML basic string accepts JSON's escapes


def _usage(kind: str, names: dict[str, str]) -> str:
    n = names["name"]
    if kind == "model":
        return (
            "Run the model on a benchmark task:\n\n"
            f"    bench run -m {n} -t chain1d_short\n\n"
            f"Its hyperparameters (`bench list models --json`) can be set in a `--config` TOML file under `[{n}]`.\n"
        )
    if kind == "task":
        return (
            f"The task reads `<data dir>/{n}/data.csv` (columns `id`, `cif`, `target`; one crystal per row). "
            "With the file in place:\n\n"
            f"    bench list tasks\n    bench run -m dummy -m rf -t {n} --data-dir DIR\n\n"
            f"`tests/data/{n}/data.csv` is a small generated sample in this format.\n"
        )
    return (
        "Attach the descriptor set to a feature-based or hybrid model:\n\n"
        f"    bench run -m rf --descriptors {n} -t chain1d_short\n"
        f"    bench featurize --descriptors {n} -t chain1d_short --out {n}.csv\n"
    )


def _sample_csv(n: int = SAMPLE_SIZE) -> str:
    """The task template's sample: the kit's toy crystals as CIF text with their nearest-neighbour distance."""
    from ..testing.data import toy_dataset

    data = toy_dataset(n)
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "cif", "target"])
    structures: tuple = data.structures or ()
    for sid, s, y in zip(data.ids, structures, data.targets):
        writer.writerow([f"sample-{sid.split('-')[-1]}", s.to(fmt="cif"), f"{float(y):.6f}"])
    return buf.getvalue()


def render(
    kind: str,
    dist: str,
    *,
    spec_name: str | None = None,
    description: str = "",
    author: str = "",
    github_user: str = "",
    license: str = "MIT",
) -> dict[str, str]:
    """The files of a new plugin package: {relative path: text}. Pure: writes nothing."""
    if kind not in KINDS:
        raise BadInputError(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}")
    names = names_for(dist, spec_name)
    module = {"model": "model", "task": "task", "descriptors": "descriptors"}[kind]
    summary = description.strip() or _SUMMARY[kind]
    urls = ""
    if github_user and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}", github_user):
        raise BadInputError(f"--github-user {github_user!r} is not a GitHub user or organisation name")
    if github_user:
        base = f"https://github.com/{github_user}/{dist}"
        urls = (f'\n[project.urls]\nHomepage = "{base}"\nChangelog = "{base}/releases"\n'
                f'Issues = "{base}/issues"\nCI = "{base}/actions"\n')
    values = {
        **names,
        "module": module,
        "kind_text": _KIND_TEXT[kind],
        "summary": summary,
        "description_toml": _toml_str(summary),
        "license_toml": _toml_str(license),
        "authors_line": f"authors = [{{ name = {_toml_str(author)} }}]\n" if author else "",
        "dependencies": ", ".join(_toml_str(d) for d in _DEPENDENCIES[kind]),
        "urls": urls,
        "usage": _usage(kind, names),
        "sample_size": str(SAMPLE_SIZE),
    }

    def fill(template: str) -> str:
        return Template((TEMPLATES / template).read_text()).substitute(values)

    pkg = names["package"]
    files = {
        "pyproject.toml": fill("pyproject.toml.tmpl"),
        "README.md": fill("README.md.tmpl"),
        ".gitignore": fill("gitignore.tmpl"),
        ".github/workflows/test.yml": fill("workflows/test.yml.tmpl"),
        ".github/workflows/publish.yml": fill("workflows/publish.yml.tmpl"),
        f"{pkg}/__init__.py": fill("init.py.tmpl"),
        f"{pkg}/{module}.py": fill(f"{module}.py.tmpl"),
        "tests/conftest.py": fill("conftest.py.tmpl"),
        f"tests/test_{module}.py": fill(f"test_{module}.py.tmpl"),
    }
    if kind == "task":
        files[f"tests/data/{names['name']}/data.csv"] = _sample_csv()
    return files


def _check_new(kind: str, names: dict[str, str], ctx: click.Context) -> None:
    """Refuse names that would shadow an importable module or clash with what installed plugins provide."""
    pkg = names["package"]
    try:
        found = importlib.util.find_spec(pkg)
    except (ImportError, ValueError):
        found = None
    if found is not None:
        raise BadInputError(f"a module named {pkg!r} is already importable ({found.origin or 'installed'}); "
                            "choose another NAME")
    reg = registry(ctx)
    pool: dict[str, Any] = reg.models if kind == "model" else reg.tasks if kind == "task" else reg.descriptors
    if names["name"].lower() in {n.lower() for n in pool}:
        what = _KIND_TEXT[kind]
        raise BadInputError(f"a {what} named {names['name']!r} is already provided by an installed plugin "
                            f"(see `bench plugins`); choose another NAME or --spec-name")
    if names["entry"] in {p.name for p in reg.plugins}:
        raise BadInputError(f"a plugin named {names['entry']!r} is already installed (see `bench plugins`); "
                            "choose another NAME or --spec-name")


def write_plugin(files: dict[str, str], target: Path) -> None:
    """Write all files into a fresh folder, then move it to `target` (never over an existing path)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for rel, text in files.items():
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        if target.exists() or target.is_symlink():
            raise BadInputError(f"{target} already exists; nothing was written (choose another NAME or --dir)")
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@cli.group("plugin", context_settings=CONTEXT)
def plugin_group() -> None:
    """Write your own plugin: `bench plugin new NAME` (see docs/plugins.md)."""


@plugin_group.command("new", context_settings=CONTEXT)
@click.argument("name")
@click.option("--kind", type=click.Choice(KINDS), default="model", show_default=True,
              help="What the plugin provides.")
@click.option("--dir", "parent", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Folder in which the package folder NAME is created.")
@click.option("--spec-name", metavar="NAME",
              help="Name users type after -m/-t/--descriptors (default: NAME without a crystalbench- prefix).")
@click.option("--description", default="", help="One-line description (pyproject.toml, README).")
@click.option("--author", default="", help="Author name for pyproject.toml.")
@click.option("--github-user", default="", help="GitHub user or organisation, for the project URLs.")
@click.option("--license", "license_", default="MIT", show_default=True, help="License of the new package.")
@click.pass_context
def plugin_new(ctx: click.Context, name: str, kind: str, parent: Path, spec_name: str | None, description: str,
               author: str, github_user: str, license_: str) -> None:
    """Write a ready-to-install plugin package NAME (a distribution name such as crystalbench-knn).

    \b
    The package has a pyproject.toml with the entry point, a module with the
    hook (a ridge model on neighbour distances, a CSV task with a sample, or a
    small descriptor set), a README, tests using crystalbench.testing, a
    .gitignore and GitHub workflows. It installs and passes its tests at once:
    \b
      bench plugin new crystalbench-knn --kind model
      cd crystalbench-knn && pip install -e '.[test]' && python -m pytest
      bench run -m knn -t chain1d_short
    """
    names = names_for(name, spec_name)
    target = parent / name
    if target.exists() or target.is_symlink():
        raise BadInputError(f"{target} already exists; nothing was written (choose another NAME or --dir)")
    ctx.ensure_object(dict)["quiet_problems"] = True
    _check_new(kind, names, ctx)
    files = render(kind, name, spec_name=spec_name, description=description, author=author,
                   github_user=github_user, license=license_)
    write_plugin(files, target)
    flag = {"model": "-m", "task": "-t", "descriptors": "--descriptors"}[kind]
    click.echo(f"created {target}/: a {_KIND_TEXT[kind]} plugin; `{flag} {names['name']}` once installed")
    for rel in sorted(files):
        click.echo(f"  {rel}")
    run_line = {
        "model": f"bench run -m {names['name']} -t chain1d_short",
        "task": f"bench run -m dummy -t {names['name']} --data-dir {target / 'tests' / 'data'}",
        "descriptors": f"bench run -m rf --descriptors {names['name']} -t chain1d_short",
    }[kind]
    click.echo("next:")
    click.echo(f"  cd {target} && pip install -e '.[test]' && python -m pytest")
    click.echo(f"  bench plugins && {run_line}")
