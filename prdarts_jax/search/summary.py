"""What a finished search tells its user: one metrics record with the totals, and the closing
lines on the console (the result, the time and its compile share, the commands to run next)."""

from __future__ import annotations

import os
import shlex
from typing import Any, Mapping, Sequence

from prdarts_jax.loops.progress import duration
from prdarts_jax.runtime import workdirs
from prdarts_jax.space.genotypes import Genotype


def finished_record(epochs: Sequence[Mapping[str, Any]], *, seconds: float,
                    compile_seconds: float) -> dict[str, Any]:
    """The `finished` record of metrics.jsonl: cycles, epochs and the last epoch's α-half
    validation accuracy, with the search's wall and compile seconds over all its processes."""
    return {"type": "finished", "cycles": len({r["cycle"] for r in epochs}),
            "epochs": len(epochs), "val_acc": epochs[-1]["val_acc"] if epochs else None,
            "seconds": seconds, "compile_seconds": compile_seconds}


def summary_text(record: Mapping[str, Any], genotype: Genotype, workdir: str) -> str:
    """The closing lines: the result first, then the genotype and the next commands."""
    share = record["compile_seconds"] / record["seconds"] if record["seconds"] else 0.0
    acc = "?" if record["val_acc"] is None else f"{record['val_acc']:.3f}"
    cells = "\n".join(f"  {line}" for line in genotype.describe().splitlines())
    return (f"search finished: {record['cycles']} cycles, {record['epochs']} epochs in "
            f"{duration(record['seconds'])} ({duration(record['compile_seconds'])} of it "
            f"compiling, {share:.0%}); final α-half validation accuracy {acc}\n"
            f"genotype ({os.path.join(workdir, 'genotype.json')}):\n{cells}\n"
            f"next:\n  python -m prdarts_jax.report --workdir {shlex.quote(workdir)}\n"
            f"  {workdirs.retrain_command(workdir)}")
