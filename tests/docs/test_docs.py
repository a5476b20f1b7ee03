"""Docs generated from code stay current: the hyperparameter tables of docs/models.md."""


from click.testing import CliRunner
from helpers import REPO_ROOT

from crystalbench.cli import cli


def test_generated_params_tables_are_current():
    result = CliRunner().invoke(cli, ["docs", "params", "--check", "--file", str(REPO_ROOT / "docs" / "models.md")])
    assert result.exit_code == 0, result.output


def test_check_fails_when_a_default_drifts(tmp_path):
    doc = tmp_path / "models.md"
    text = (REPO_ROOT / "docs" / "models.md").read_text()
    doc.write_text(text.replace("| `n_conv` | int | `3` |", "| `n_conv` | int | `4` |"))
    assert CliRunner().invoke(cli, ["docs", "params", "--check", "--file", str(doc)]).exit_code == 1
    assert CliRunner().invoke(cli, ["docs", "params", "--file", str(doc)]).exit_code == 0
    assert doc.read_text() == text
