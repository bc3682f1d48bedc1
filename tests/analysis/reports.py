"""Helpers of the report tests: copies of the quick run's workdir and checks of report.html."""

from __future__ import annotations

import os
import re
import shutil

QUICK_RUN = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "quick_run")


def copy_run(tmp_path, name="run", drop_last=0, genotype=True):
    """A copy of the quick run in `tmp_path/name`, without its last `drop_last` records and,
    unless `genotype`, without genotype.json (a search stopped part-way)."""
    workdir = tmp_path / name
    shutil.copytree(QUICK_RUN, workdir)
    if drop_last:
        lines = (workdir / "metrics.jsonl").read_text().splitlines(keepends=True)
        (workdir / "metrics.jsonl").write_text("".join(lines[:-drop_last]))
    if not genotype:
        (workdir / "genotype.json").unlink()
    return str(workdir)


def check_html(html_path):
    """Every src/href of report.html is a relative link to an existing, non-empty file."""
    out_dir = os.path.dirname(html_path)
    with open(html_path) as f:
        text = f.read()
    refs = re.findall(r'(?:src|href)="([^"]+)"', text)
    assert refs
    for ref in refs:
        assert not os.path.isabs(ref) and "://" not in ref
        path = os.path.join(out_dir, ref)
        assert os.path.isfile(path) and os.path.getsize(path) > 0, ref
    return text, refs


def summary_section(text):
    """The HTML of the report's opening summary."""
    start = text.index("<section class='summary'>")
    return text[start:text.index("</section>", start)]
