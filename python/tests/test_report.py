"""``iisan.report`` writes the page ``iisan report --html`` writes, and replaces nothing else."""

import pytest

import iisan
from conftest import cli


def page_lines(path):
    # the line under the title says when the page was written: the only one allowed to differ
    return [line for line in path.read_text().splitlines() if not line.startswith('<p class="note">') or " written " not in line]


def test_report_writes_the_clis_page(tmp_path, cli_run, id_run):
    mine, theirs = tmp_path / "py.html", tmp_path / "cli.html"
    iisan.report([cli_run, id_run.path], mine, progress=False)
    cli("report", "--html", theirs, cli_run, id_run.path)
    assert page_lines(mine) == page_lines(theirs)
    text = mine.read_text()
    assert text.count('<figure class="curve"') == 2 and text.count('<figure class="breakdown">') == 3
    iisan.report([id_run.path], mine, mask="none", breakdowns=False, progress=False)
    assert '<figure class="breakdown">' not in mine.read_text()


def test_report_refuses_to_replace_what_is_not_a_report(tmp_path, id_run):
    target = id_run.path / "summary.json"
    before = target.read_bytes()
    with pytest.raises(iisan.DataError, match="is not an iisan report"):
        iisan.report([id_run.path], target, progress=False)
    assert target.read_bytes() == before
    with pytest.raises(iisan.InputError, match="mask"):
        iisan.report([id_run.path], tmp_path / "r.html", mask="both", progress=False)
