"""`bench plugin new`: a ready-to-install plugin package (model, task or descriptor set).

The files come from `crystalbench/templates/plugin/*.tmpl` (`string.Template`
placeholders), in the spirit of simonw/llm's `llm-plugin` cookiecutter: a
pyproject.toml with the entry point, one module with the hook, a README, tests
that use the test kit (`crystalbench.testing`), a .gitignore and GitHub
workflows for tests and PyPI publishing. The generated package installs with
``pip install -e .`` and passes its own tests as generated. `render` is a pure
function, so docs/plugins.md and examples/crystalbench-example can be checked
against it (they cannot drift from what users get).

crystalbench is not served by a package index yet, so the README and the
workflows install it from a *source* first (`--crystalbench-source`: a pip URL
such as ``git+https://github.com/OWNER/crystalbench@v0.2.0``, or a local
folder); by default the one this crystalbench was installed from. The
pyproject keeps the plain requirement ``crystalbench>=0.2``: pip finds it
satisfied once crystalbench is installed, and PyPI refuses packages whose
dependencies are URLs.

The generated model is a ridge regression, and it is named after what it is
(``knn-ridge`` for ``crystalbench-knn``): a leaderboard row must not call a
ridge regression "knn" before its author has replaced it.
"""

from __future__ import annotations

import csv
import errno
import importlib.metadata
import importlib.util
import io
import json
import keyword
import os
import re
import shlex
import shutil
import tempfile
import tomllib
import urllib.parse
import urllib.request
from pathlib import Path
from string import Template
from typing import Any

import click

from crystalbench.contract.errors import BadInputError
from crystalbench.contract.specs import NAME_PATTERN, valid_name

from .main import CONTEXT, cli, registry

__all__ = ["render", "names_for", "next_steps", "resolve_source", "installed_source", "KINDS", "SAMPLE_SIZE"]

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
# Where pip finds crystalbench when the source is an index rather than a URL or folder.
INDEX_REQUIREMENT = "crystalbench>=0.2"
# A pip URL the workflows can use as is: no quotes, spaces, `$` or braces (it lands in YAML and shell).
_URL = re.compile(r"(?:[a-z][a-z0-9]*\+)?(?:https?|file|ssh)://[A-Za-z0-9+.:/@%_~=#&?!,;-]+")
_DEPENDENCIES = {
    "model": ["crystalbench>=0.2", "scikit-learn>=1.3"],
    "task": ["crystalbench>=0.2"],
    "descriptors": ["crystalbench>=0.2"],
}


def names_for(dist: str, spec_name: str | None = None, kind: str = "") -> dict[str, str]:
    """The names derived from a distribution name; BadInputError (one line) when one is not usable.

    dist: the distribution name (``crystalbench-knn``): letters, digits and single ``-``, ``_`` or ``.``
        between them, starting with a letter.
    package: the import name (``crystalbench_knn``).
    entry: the entry-point name (``knn``: dist without a ``crystalbench-`` prefix, lower case), or
        `spec_name`.
    name: what users type after -m / -t / --descriptors: `spec_name`, else `entry`; for a model,
        `entry` + ``-ridge`` unless it says ridge already, because the generated model is one.
    """
    if not _DIST.fullmatch(dist):
        raise BadInputError(
            f"plugin name {dist!r} is not a valid package name: use letters, digits and single - _ . between "
            "them, starting with a letter (e.g. crystalbench-knn)"
        )
    package = re.sub(r"[-.]", "_", dist).lower()
    if not package.isidentifier() or keyword.iskeyword(package):
        raise BadInputError(f"plugin name {dist!r} gives the import name {package!r}, which Python cannot import")
    entry = spec_name if spec_name is not None else _PREFIX.sub("", dist).lower()
    name = entry
    if spec_name is None and kind == "model" and "ridge" not in entry:
        name = f"{entry}-ridge"
    for value in (entry, name):
        if not valid_name(value) or not value:
            raise BadInputError(f"name {value!r} is not allowed: names match {NAME_PATTERN} (they become folder names)")
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", name) if p]
    cls = "".join(p[:1].upper() + p[1:] for p in parts)
    if not cls[:1].isalpha():
        cls = "Plugin" + cls
    return {"dist": dist, "package": package, "name": name, "entry": entry, "Class": cls}


def _toml_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a TOML basic string accepts JSON's escapes


def _usage(kind: str, names: dict[str, str]) -> str:
    n = names["name"]
    if kind == "model":
        return (
            "Run the model on a benchmark task, beside the mean predictor:\n\n"
            f"    bench run -m {n} -m dummy -t chain1d_short\n\n"
            f"Its hyperparameters (`bench list models --json`) can be set in a `--config` TOML file under `[{n}]`.\n\n"
            f"The generated model is a ridge regression, hence its name `{n}`. When you replace it with your own "
            "model,\nrename it too (`name=` in `bench_models`): results are filed under that name.\n"
        )
    if kind == "task":
        return (
            f"The task reads `<data dir>/{n}/data.csv` (columns `id`, `cif`, `target`; one crystal per row). "
            f"`tests/data/{n}/data.csv`\nis a small generated sample in this format; from this folder:\n\n"
            f"    bench list tasks\n    bench run -m dummy -m rf -t {n} --data-dir tests/data\n\n"
            "Descriptor columns that compute the target are listed in `exclude_features` and withheld from every "
            "model;\nmodel inputs that reveal it are listed in `leaks` and flag the result. Update both for your "
            "own target.\n"
        )
    return (
        "Attach the descriptor set to a feature-based or hybrid model:\n\n"
        f"    bench run -m rf --descriptors {n} -t chain1d_short\n"
        f"    bench featurize --descriptors {n} -t chain1d_short --out {n}.csv\n"
    )


def _is_checkout(folder: Path) -> bool:
    """A crystalbench source folder: its pyproject.toml names the crystalbench project."""
    try:
        meta = tomllib.loads((folder / "pyproject.toml").read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    return bool(meta.get("project", {}).get("name") == "crystalbench")


def _from_direct_url(text: str) -> str:
    """A pip-installable source from pip's record of a direct install (PEP 610), or "" when unusable."""
    try:
        info = json.loads(text)
    except ValueError:
        return ""
    url = info.get("url") if isinstance(info, dict) else None
    if not isinstance(url, str) or not url:
        return ""
    vcs = info.get("vcs_info")
    if isinstance(vcs, dict) and isinstance(vcs.get("vcs"), str):
        commit = vcs.get("commit_id")
        return f"{vcs['vcs']}+{url}" + (f"@{commit}" if isinstance(commit, str) and commit else "")
    if "dir_info" in info and url.startswith("file://"):
        return urllib.request.url2pathname(urllib.parse.urlparse(url).path)
    return url


def installed_source() -> str:
    """Where the running crystalbench came from, as pip can install it again; "" for a package index.

    Its source folder when it runs from one (an editable install); else pip's record
    of a direct install: a VCS URL pinned to the installed commit, an archive URL
    or a folder. An index install leaves no record: the index serves it.
    """
    root = Path(__file__).resolve().parents[2]
    if _is_checkout(root):
        return str(root)
    try:
        text = importlib.metadata.distribution("crystalbench").read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        return ""
    return _from_direct_url(text) if text else ""


def resolve_source(given: str | None, target: Path) -> str:
    """The crystalbench source to write into the package at `target` (BadInputError when unusable).

    None: `installed_source()`. ``index``: the package index (``crystalbench>=0.2``).
    A URL is kept as given. A folder must hold a crystalbench checkout; an absolute
    path stays absolute, a relative one (to the current folder) is rewritten relative
    to the new package's folder, where the README's commands run.
    """
    if given is None:
        return installed_source()
    if given == "index":
        return ""
    if "://" in given:
        if not _URL.fullmatch(given):
            raise BadInputError(f"--crystalbench-source {given!r} is not a URL pip can install from "
                                "(e.g. git+https://github.com/OWNER/crystalbench@v0.2.0)")
        return given
    if not given.isprintable() or not given.strip():
        raise BadInputError(f"--crystalbench-source {given!r} is not a usable path")
    folder = Path(given).expanduser()
    if not _is_checkout(folder):
        raise BadInputError(f"--crystalbench-source {given}: not a crystalbench source folder (no pyproject.toml "
                            "naming crystalbench there), nor a URL such as git+https://github.com/OWNER/crystalbench")
    if folder.is_absolute():
        return str(folder.resolve())
    return os.path.relpath(folder.resolve(), target.resolve())


def _install_values(source: str) -> dict[str, str]:
    """Template values saying how the README and the workflows install crystalbench from `source`."""
    if not source:
        requirement, line = INDEX_REQUIREMENT, f'pip install "{INDEX_REQUIREMENT}"'
        where = "from the package index that serves it"
    elif "://" in source:
        requirement = f"crystalbench @ {source}"
        line, where = f"pip install {shlex.quote(requirement)}", "from its repository"
    else:
        requirement, line = "", f"pip install {shlex.quote(source)}"
        where = ("from the crystalbench source folder this package was generated with"
                 + ("" if os.path.isabs(source) else " (the path is relative to this package's folder)"))
    # the workflows run on GitHub and write the requirement into YAML: a remote URL of plain characters only
    usable = not source or (_URL.fullmatch(source) is not None and not re.match(r"(?:[a-z]+\+)?file:", source))
    if usable:
        note = (f"The workflows in `.github/workflows` install it with `pip install {shlex.quote(requirement)}` "
                "(their `CRYSTALBENCH_REQUIREMENT`).\n")
    else:
        note = ("The workflows in `.github/workflows` run on GitHub, which cannot reach a folder or file on this "
                "machine:\nset `CRYSTALBENCH_REQUIREMENT` at the top of each to a pip requirement, e.g. "
                "`crystalbench @ git+https://github.com/OWNER/crystalbench`;\nuntil then they stop at their "
                "install step with that message.\n")
    return {"crystalbench_install": line, "crystalbench_from": where,
            "workflow_requirement": requirement if usable else "", "workflow_note": note}


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
    crystalbench_source: str = "",
) -> dict[str, str]:
    """The files of a new plugin package: {relative path: text}. Pure: writes nothing.

    crystalbench_source: where the README and the workflows install crystalbench from
    (see `resolve_source`; "" for a package index).
    """
    if kind not in KINDS:
        raise BadInputError(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}")
    names = names_for(dist, spec_name, kind)
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
        **_install_values(crystalbench_source),
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


def _missing_ancestor(folder: Path) -> Path | None:
    """The outermost folder of `folder`'s path that does not exist yet (what a mkdir -p would create)."""
    missing = None
    for candidate in (folder, *folder.parents):
        if candidate.exists() or candidate.is_symlink():
            break
        missing = candidate
    return missing


def _stage(files: dict[str, str], parent: Path, name: str) -> Path:
    """Write all files into a fresh hidden folder in `parent` (removed again if any write fails)."""
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=parent))
    try:
        for rel, text in files.items():
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def _move_into(staging: Path, target: Path) -> None:
    """Move the staged files to `target`, which this creates and so owns: never over an existing path.

    os.rename(staging, target) would replace an empty folder made by someone else
    in the meantime; an exclusive mkdir cannot.
    """
    try:
        os.mkdir(target)
    except FileExistsError:
        raise BadInputError(f"{target} already exists; nothing was written (choose another NAME or --dir)") from None
    try:
        for child in staging.iterdir():
            os.rename(child, target / child.name)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise


def write_plugin(files: dict[str, str], target: Path) -> None:
    """Write all files to the new folder `target`, all or nothing; BadInputError (one line) when impossible.

    Nothing is left behind by a failure (no staging folder, no empty or partial
    files, no folders this call created), and nothing that exists is overwritten.
    """
    parent = target.parent
    if parent.exists() and not parent.is_dir():
        raise BadInputError(f"--dir {parent} is a file, not a folder; nothing was written")
    if target.exists() or target.is_symlink():
        raise BadInputError(f"{target} already exists; nothing was written (choose another NAME or --dir)")
    created = _missing_ancestor(parent)
    staging: Path | None = None
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = _stage(files, parent, target.name)
        _move_into(staging, target)
        staging.rmdir()
    except OSError as exc:
        where = exc.filename or parent
        reason = "no space left on the device" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise BadInputError(f"cannot write the plugin to {target} ({where}: {reason}); nothing was written") from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if created is not None and not target.exists():
            _remove_empty(parent, created)


def _remove_empty(folder: Path, up_to: Path) -> None:
    """Remove `folder` and its parents up to `up_to` while they are empty (the ones a failed call created)."""
    for candidate in (folder, *folder.parents):
        try:
            candidate.rmdir()
        except OSError:
            return
        if candidate == up_to:
            return


@cli.group("plugin", context_settings=CONTEXT)
def plugin_group() -> None:
    """Write your own plugin: `bench plugin new NAME` (see docs/plugins.md)."""


@plugin_group.command("new", context_settings=CONTEXT)
@click.argument("name")
@click.option("--kind", type=click.Choice(KINDS), default="model", show_default=True,
              help="What the plugin provides.")
@click.option("--dir", "parent", type=click.Path(path_type=Path), default=Path("."),
              show_default=True, help="Folder in which the package folder NAME is created.")
@click.option("--spec-name", metavar="NAME",
              help="Name users type after -m/-t/--descriptors (default: NAME without a crystalbench- prefix; "
                   "for a model, + '-ridge', what the generated model is).")
@click.option("--crystalbench-source", "source", metavar="URL|PATH",
              help="Where the README and workflows install crystalbench from (it is not on PyPI yet): a pip URL "
                   "(git+https://github.com/OWNER/crystalbench@TAG), a source folder, or 'index'. "
                   "Default: where this crystalbench was installed from.")
@click.option("--description", default="", help="One-line description (pyproject.toml, README).")
@click.option("--author", default="", help="Author name for pyproject.toml.")
@click.option("--github-user", default="", help="GitHub user or organisation, for the project URLs.")
@click.option("--license", "license_", default="MIT", show_default=True, help="License of the new package.")
@click.pass_context
def plugin_new(ctx: click.Context, name: str, kind: str, parent: Path, spec_name: str | None, source: str | None,
               description: str, author: str, github_user: str, license_: str) -> None:
    """Write a ready-to-install plugin package NAME (a distribution name such as crystalbench-knn).

    \b
    The package has a pyproject.toml with the entry point, a module with the
    hook (a ridge model on neighbour distances, a CSV task with a sample, or a
    small descriptor set), a README, tests using crystalbench.testing, a
    .gitignore and GitHub workflows. It installs and passes its tests at once:
    \b
      bench plugin new crystalbench-knn --kind model
      cd crystalbench-knn && pip install -e '.[test]' && python -m pytest
      bench run -m knn-ridge -m dummy -t chain1d_short
    """
    names = names_for(name, spec_name, kind)
    target = parent / name
    if parent.exists() and not parent.is_dir():
        raise BadInputError(f"--dir {parent} is a file, not a folder; nothing was written")
    if target.exists() or target.is_symlink():
        raise BadInputError(f"{target} already exists; nothing was written (choose another NAME or --dir)")
    ctx.ensure_object(dict)["quiet_problems"] = True
    _check_new(kind, names, ctx)
    crystalbench_source = resolve_source(source, target)
    files = render(kind, name, spec_name=spec_name, description=description, author=author,
                   github_user=github_user, license=license_, crystalbench_source=crystalbench_source)
    write_plugin(files, target)
    _report(kind, names, target, files, crystalbench_source)


def next_steps(kind: str, names: dict[str, str], target: Path) -> list[str]:
    """The commands from a new package to a leaderboard row; all but the first run in the package's folder."""
    n = names["name"]
    run_line = {
        "model": f"bench run -m {n} -m dummy -t chain1d_short",
        "task": f"bench run -m dummy -m rf -t {n} --data-dir tests/data",
        "descriptors": f"bench run -m rf --descriptors {n} -t chain1d_short",
    }[kind]
    return [
        f"cd {shlex.quote(str(target))}",
        "pip install -e '.[test]' && python -m pytest",
        "bench plugins",
        run_line,
        "bench leaderboard build --results-dir results --out results/LEADERBOARD.md && cat results/LEADERBOARD.md",
    ]


def _report(kind: str, names: dict[str, str], target: Path, files: dict[str, str], source: str) -> None:
    flag = {"model": "-m", "task": "-t", "descriptors": "--descriptors"}[kind]
    what = "a ridge regression, " if kind == "model" and names["name"].endswith("-ridge") else ""
    click.echo(f"created {target}/: a {_KIND_TEXT[kind]} plugin ({what}`{flag} {names['name']}` once installed)")
    for rel in sorted(files):
        click.echo(f"  {rel}")
    click.echo(f"crystalbench: its README installs it {_install_values(source)['crystalbench_from']}"
               + (f" ({source})" if source else ""))
    if not _install_values(source)["workflow_requirement"]:
        click.echo("  the workflows cannot reach it from GitHub: set CRYSTALBENCH_REQUIREMENT in them (see the "
                   "README), or use --crystalbench-source URL")
    click.echo("next:")
    for line in next_steps(kind, names, target):
        click.echo(f"  {line}")
