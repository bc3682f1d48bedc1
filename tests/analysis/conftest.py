"""Fixtures of the report tests: one rendered report of the finished quick run, shared."""

import pytest

from prdarts_jax.analysis.report import write_report
from tests.analysis.reports import copy_run


@pytest.fixture(scope="session")
def full_report(tmp_path_factory):
    """(workdir, report.html) of a copy of the finished quick run, with DL2 drawn too."""
    workdir = copy_run(tmp_path_factory.mktemp("full"))
    return workdir, write_report(workdir, extra_genotypes=["DL2"])
