"""The README's settings table is what `python -m rag settings --markdown` prints."""

from rag.cli import main
from tests.conftest import REPO


def test_the_readme_lists_every_setting_as_the_cli_prints_it(capsys, monkeypatch):
    monkeypatch.chdir(REPO / "tests")  # away from any .env
    assert main(["settings", "--markdown"]) == 0
    table = capsys.readouterr().out.strip()
    assert table.count("\n") > 20
    assert table in (REPO / "README.md").read_text()
