"""The ablation end to end on digits, CI-sized: two variants × one seed of a one-cycle search of
a C=4, 3-cell supernet (2 steps), each retrained for one 2-step epoch; real processes through
the grid's local runner. Measured: 94 s (77 s of CPU) on the shared 2-core machine, 3.5 min
under heavy load."""

import os
import sys

from prdarts_jax.ablation import cli
from prdarts_jax.ablation.report import FIGURE
from prdarts_jax.ablation.table import COLUMNS
from tests.ablation.test_plan import _in_repo  # noqa: F401  (autouse fixture)

SEARCH = ["channels=4", "layers=3", "schedule.epochs=(1,)", "schedule.grace=(0,)",
          "schedule.morphs=(0,)", "schedule.keep=(1,)", "max_steps_per_epoch=2",
          "eval_max_samples=64"]
TRAIN = ["epochs=1", "final_epochs=1", "eval_every=1", "max_steps_per_epoch=2", "channels=4",
         "aux_weight=0", "drop_path=0"]


def test_two_variants_run_retrain_and_print_the_table(tmp_path, digits_dir, capsys):
    root = str(tmp_path / "ablate")
    args = ["--config", "configs/quick.py", "--workdir", root, "--variants", "uniform,skips",
            "--seeds", "0", "--python", sys.executable]
    for pair in SEARCH + [f"data_dir={digits_dir}"]:
        args += ["--set", pair]
    for pair in TRAIN + [f"data_dir={digits_dir}"]:
        args += ["--train_set", pair]
    try:
        cli.main(args)
    except SystemExit as exit_:
        assert exit_.code == 0
    out = capsys.readouterr().out
    table = out[out.index("| variant"):].splitlines()
    assert table[0] == "| " + " | ".join(COLUMNS) + " |"
    assert len(table) == 5 and table[4].startswith("# wrote"), table
    for line, name in zip(table[2:4], ("uniform", "skips")):
        cells = line.strip("| ").split(" | ")
        assert cells[0] == f"`{name}`" and cells[1] == "0", line
        assert "—" not in cells, line
        assert 0 <= float(cells[5]) <= 1 and int(float(cells[8])) >= 1
    assert os.path.isfile(os.path.join(root, FIGURE))
