"""The grid launchers: exact commands of a small grid, local runs with an injected runner (no
training), and SLURM scripts that parse and, run with fake SLURM tools, start the right job."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from prdarts_jax.grid import cli as grid
from prdarts_jax.grid import slurm as grid_slurm
from prdarts_jax.grid.jobs import GridSpec, build_grid
from prdarts_jax.grid.local import run_local
from tests.helpers import ROOT
from tests.helpers.fake_runs import FakeRunner, fake_search, fake_training

SMALL = ["--spaces", "dl,dr", "--seeds", "0,1", "--datasets", "cifar10,cifar100",
         "--python", "python"]


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)   # the config patterns are relative to the repository root


def _search(space, seed):
    return (f"python -m prdarts_jax.search --config configs/{space}.py --workdir "
            f"runs/g/search/{space}/seed_{seed} --config.seed={seed}")


def _train(space, search_seed, dataset, seed):
    return (f"python -m prdarts_jax.train --config configs/train_{dataset}.py "
            f"--config.genotype=runs/g/search/{space}/seed_{search_seed}/genotype.json "
            f"--workdir runs/g/train/{space}_s{search_seed}/{dataset}/seed_{seed} "
            f"--config.seed={seed}")


def test_dry_run_prints_every_command_of_a_small_grid_in_dependency_order(capsys):
    with pytest.raises(SystemExit) as exit_:
        grid.main(["--root", "runs/g", "--local", "--dry_run", *SMALL])
    assert exit_.value.code == 0
    expected = [_search("dl", 0), _search("dl", 1), _search("dr", 0), _search("dr", 1)]
    expected += [_train(space, s, d, t) for space in ("dl", "dr") for s in (0, 1)
                 for d in ("cifar10", "cifar100") for t in (0, 1)]
    assert capsys.readouterr().out.splitlines() == expected
    assert expected[4] == (
        "python -m prdarts_jax.train --config configs/train_cifar10.py "
        "--config.genotype=runs/g/search/dl/seed_0/genotype.json "
        "--workdir runs/g/train/dl_s0/cifar10/seed_0 --config.seed=0")


def test_published_cells_patterns_without_placeholders_and_overrides():
    jobs = build_grid(GridSpec(
        root="r", spaces=("dr",), search_seeds=(3,), train_seeds=(0,), datasets=("digits",),
        published=("dl2",), retrain_search_seeds=(), search_config="configs/quick.py",
        search_set=("channels=4",), train_set=("epochs=2",)))
    assert [" ".join(j.args) for j in jobs] == [
        "-m prdarts_jax.search --config configs/quick.py --workdir r/search/dr/seed_3 "
        "--config.seed=3 --config.space=DR --config.channels=4",
        "-m prdarts_jax.train --config configs/train_digits.py --config.genotype=DL2 "
        "--workdir r/train/DL2/digits/seed_0 --config.seed=0 --config.epochs=2"]
    assert jobs[1].after is None
    only_train = build_grid(GridSpec(root="r", spaces=("ur",), search_seeds=(0,),
                                     train_seeds=(1,), datasets=("cifar10",),
                                     stages=("train",)))
    assert [j.name for j in only_train] == ["train/ur_s0/cifar10/seed_1"]
    assert only_train[0].after.name == "search/ur/seed_0"


@pytest.mark.parametrize("argv, message", [
    (["--spaces", "dl,xl"], "error: unknown search space 'xl'; expected one of"),
    (["--published", "DL3"], "error: unknown published cell 'DL3'; use some of DL1, DL2"),
    (["--search_config", "configs/none_{space}.py"],
     "error: config file configs/none_dl.py not found (from --search_config="),
    (["--datasets", "cifar1000"], "error: config file configs/train_cifar1000.py not found"),
    (["--search_set", "epochs"], "error: --search_set 'epochs' must be key=value"),
    (["--stages", "search,eval"], "error: unknown stage(s) ['eval']"),
    (["--retrain_search_seeds", "7"], "error: --retrain_search_seeds [7] are not search seeds"),
    (["--search_config", "configs/{space_name}.py"],
     "error: --search_config='configs/{space_name}.py' may hold only the placeholder {space}"),
])
def test_bad_input_stops_with_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        grid.main(["--root", "runs/g", "--local", "--dry_run", *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err


def _spec(root, **kw):
    return GridSpec(root=str(root), spaces=("dl",), search_seeds=(0, 1), train_seeds=(0,),
                    datasets=("digits",), **kw)


def _workdir(argv):
    return argv[argv.index("--workdir") + 1]


def test_local_runs_in_order_skips_finished_and_blocks_retrainings_of_failed_searches(tmp_path):
    jobs = build_grid(_spec(tmp_path, published=("DL2",)))
    names = [j.name for j in jobs]
    assert names == ["search/dl/seed_0", "search/dl/seed_1", "train/dl_s0/digits/seed_0",
                     "train/dl_s1/digits/seed_0", "train/DL2/digits/seed_0"]
    fake_search(str(tmp_path / "search/dl/seed_0"))               # finished before
    runner = FakeRunner(fail=[str(tmp_path / "search/dl/seed_1")])
    lines = []
    result = run_local(jobs, "python", runner=runner, out=lines.append)
    assert [_workdir(c) for c in runner.commands] == [
        str(tmp_path / n) for n in ("search/dl/seed_1", "train/dl_s0/digits/seed_0",
                                    "train/DL2/digits/seed_0")]
    assert result.finished_before == ["search/dl/seed_0"]
    assert result.failed == ["search/dl/seed_1"]
    assert result.blocked == ["train/dl_s1/digits/seed_0"]
    assert result.ran == ["train/dl_s0/digits/seed_0", "train/DL2/digits/seed_0"]
    assert result.exit_code == 1
    assert lines[-1] == "# grid: 2 ran, 1 finished before, 1 failed, 1 blocked"

    runner = FakeRunner()                                        # the same grid again
    result = run_local(jobs, "python", runner=runner, out=lambda line: None)
    assert [_workdir(c) for c in runner.commands] == [
        str(tmp_path / n) for n in ("search/dl/seed_1", "train/dl_s1/digits/seed_0")]
    assert (result.exit_code, len(result.finished_before)) == (0, 3)


def test_local_counts_a_job_without_its_done_file_as_failed(tmp_path):
    jobs = build_grid(_spec(tmp_path, stages=("search",)))
    result = run_local(jobs[:1], "python", runner=lambda argv: 0, out=lambda line: None)
    assert result.failed == ["search/dl/seed_0"] and result.exit_code == 1


def test_local_dry_run_comments_finished_jobs(tmp_path, capsys):
    fake_training(str(tmp_path / "train/DL2/digits/seed_0"), "DL2", "digits", 0, 0.1)
    with pytest.raises(SystemExit):
        grid.main(["--root", str(tmp_path), "--local", "--dry_run", "--spaces", "",
                   "--datasets", "digits", "--seeds", "0,1", "--published", "DL2",
                   "--python", "py"])
    assert capsys.readouterr().out.splitlines() == [
        "# [1/2] finished before, skipped: train/DL2/digits/seed_0",
        f"py -m prdarts_jax.train --config configs/train_digits.py --config.genotype=DL2 "
        f"--workdir {tmp_path}/train/DL2/digits/seed_1 --config.seed=1"]


def test_array_spec():
    assert grid_slurm.array_spec([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert grid_slurm.array_spec([4]) == "4"
    assert grid_slurm.array_spec([]) == ""


def _slurm(tmp_path, *extra):
    """Writes the scripts of a 2 spaces × 2 seeds × 2 datasets grid (search dl/seed_0 and one
    of its retrainings already finished) and returns the output directory."""
    root = tmp_path / "runs"
    fake_search(str(root / "search/dl/seed_0"))
    fake_training(str(root / "train/dl_s0/cifar10/seed_1"),
                  str(root / "search/dl/seed_0/genotype.json"), "cifar10", 1, 0.1)
    out = tmp_path / "slurm"
    grid.main(["--root", str(root), "--slurm", str(out), *SMALL, "--partition", "gpu",
               "--published", "DL2", "--train_seeds", "0,1", *extra])
    return out


def _run_task(out, stage, task, **env):
    """Runs one array task of a stage's script as SLURM would, with `env` added."""
    return subprocess.run(["bash", str(out / f"{stage}.sbatch")],
                          env={**os.environ, "SLURM_ARRAY_TASK_ID": str(task), **env},
                          capture_output=True, text=True)


def test_slurm_scripts_submit_chain_and_tasks(tmp_path, capsys):
    out = _slurm(tmp_path)
    root = tmp_path / "runs"
    assert f"submit with: bash {out}/submit.sh" in capsys.readouterr().out
    for name in ("search.sbatch", "train.sbatch", "submit.sh"):
        subprocess.run(["bash", "-n", str(out / name)], check=True)
    search = (out / "search.sbatch").read_text()
    for line in ("#SBATCH --job-name=prdarts-search", "#SBATCH --partition=gpu",
                 "#SBATCH --gres=gpu:1", "#SBATCH --cpus-per-task=8",
                 "#SBATCH --time=2-00:00:00", f"#SBATCH --output={out}/logs/%x-%A_%a.out",
                 f"cd {ROOT}", "PYTHON=${PYTHON:-python}"):
        assert line in search.splitlines()
    assert "PRDARTS_" not in search and "srun" not in search   # one node: no jax.distributed
    # 4 searches (0 finished) and 16 + 4 retrainings (task 1 finished); 0-3 are dl_s0's
    assert (out / "submit.sh").read_text() == textwrap.dedent(f"""\
        #!/bin/bash
        # Submits the unfinished jobs of the PR-DARTS grid (written by python -m prdarts_jax.grid).
        set -euo pipefail
        mkdir -p {out}/logs
        search=$(sbatch --parsable --array=1-3 {out}/search.sbatch)
        search=${{search%%;*}}
        echo "3 searches: job array $search"
        echo "3 retrainings of search/dl/seed_0: job array $(sbatch --parsable --array=0,2-3 {out}/train.sbatch)"
        echo "4 retrainings of search/dl/seed_1: job array $(sbatch --parsable --array=4-7 "--dependency=afterok:${{search}}_1" {out}/train.sbatch)"
        echo "4 retrainings of search/dr/seed_0: job array $(sbatch --parsable --array=8-11 "--dependency=afterok:${{search}}_2" {out}/train.sbatch)"
        echo "4 retrainings of search/dr/seed_1: job array $(sbatch --parsable --array=12-15 "--dependency=afterok:${{search}}_3" {out}/train.sbatch)"
        echo "4 retrainings of published cells: job array $(sbatch --parsable --array=16-19 {out}/train.sbatch)"
        """)

    fake_python = tmp_path / "python"
    fake_python.write_text('#!/bin/bash\necho "ran: $*"\n')
    fake_python.chmod(0o755)
    done = _run_task(out, "search", 2, PYTHON=str(fake_python))
    assert done.returncode == 0 and done.stdout == (
        f"ran: -m prdarts_jax.search --config configs/dr.py --workdir {root}/search/dr/seed_0 "
        "--config.seed=0\n")
    done = _run_task(out, "train", 19, PYTHON=str(fake_python))
    assert done.stdout == (
        f"ran: -m prdarts_jax.train --config configs/train_cifar100.py --config.genotype=DL2 "
        f"--workdir {root}/train/DL2/cifar100/seed_1 --config.seed=1\n")
    done = _run_task(out, "train", 1, PYTHON=str(fake_python))
    assert done.returncode == 0 and "finished before" in done.stdout and "ran:" not in done.stdout
    done = _run_task(out, "train", 20, PYTHON=str(fake_python))
    assert done.returncode == 2 and "no task 20 in this array (0-19)" in done.stderr
    done = subprocess.run(["bash", str(out / "search.sbatch")], capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items()
                               if k != "SLURM_ARRAY_TASK_ID"})
    assert done.returncode != 0 and "submit this script as a job array" in done.stderr

    # submit.sh with a fake sbatch on PATH: the search array's id reaches the dependencies
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f'#!/bin/bash\necho "$*" >> {tmp_path}/sbatch.log\n'
                                    'echo "777;cluster"\n')
    (bin_dir / "sbatch").chmod(0o755)
    subprocess.run(["bash", str(out / "submit.sh")], check=True, capture_output=True,
                   env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    log = (tmp_path / "sbatch.log").read_text().splitlines()
    assert log[0] == f"--parsable --array=1-3 {out}/search.sbatch"
    assert log[2] == f"--parsable --array=4-7 --dependency=afterok:777_1 {out}/train.sbatch"


def test_submit_chains_retrainings_to_their_search_task(tmp_path):
    root = tmp_path / "runs"
    jobs = build_grid(_spec(root, published=("DL2",)))
    calls = []
    ids = iter(["41;c", "42", "43", "44"])

    def sbatch(argv):
        calls.append(list(argv))
        return next(ids) + "\n"

    out = tmp_path / "slurm"
    got = grid_slurm.main(jobs, grid_slurm.SlurmOptions(python="python"), str(out),
                          submit_now=True, sbatch=sbatch, out=lambda line: None)
    assert got == ["41", "42", "43", "44"]
    assert calls == [
        ["sbatch", "--parsable", "--array=0-1", f"{out}/search.sbatch"],
        ["sbatch", "--parsable", "--array=0", "--dependency=afterok:41_0", f"{out}/train.sbatch"],
        ["sbatch", "--parsable", "--array=1", "--dependency=afterok:41_1", f"{out}/train.sbatch"],
        ["sbatch", "--parsable", "--array=2", f"{out}/train.sbatch"]]
    with pytest.raises(ValueError, match="search/dl/seed_0 need its genotype.json, but that "
                       "search is neither finished nor in this grid"):
        grid_slurm.plan(build_grid(_spec(root, stages=("train",))))
    with pytest.raises(ValueError, match="printed 'Submitted batch job 5', not a job id"):
        grid_slurm.submit(grid_slurm.plan(jobs), {"search": "s", "train": "t"},
                          sbatch=lambda argv: "Submitted batch job 5", out=lambda line: None)


def test_submit_without_sbatch_is_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SystemExit) as exit_:
        grid.main(["--root", str(tmp_path / "r"), "--slurm", str(tmp_path / "s"), "--submit",
                   "--spaces", "dl", "--seeds", "0", "--datasets", "cifar10"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        "error: sbatch not found: --submit needs SLURM's sbatch on PATH (without --submit the "
        "scripts are only written)\n")


def test_multi_host_script_exports_the_distributed_variables(tmp_path):
    out = _slurm(tmp_path, "--nodes", "2", "--port", "20000")
    script = (out / "search.sbatch").read_text()
    assert "#SBATCH --nodes=2" in script.splitlines()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tools = {
        "scontrol": 'echo node17; echo node18',
        # two tasks, as srun would start them on two nodes; options are dropped
        "srun": 'while [[ "$1" == --* ]]; do shift; done\n'
                'for id in 0 1; do SLURM_PROCID=$id "$@"; done',
        "python": 'echo "$PRDARTS_COORDINATOR $PRDARTS_NUM_PROCESSES $PRDARTS_PROCESS_ID $*"',
    }
    for name, body in tools.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    done = _run_task(out, "search", 3, PYTHON=str(bin_dir / "python"),
                      PATH=f"{bin_dir}:{os.environ['PATH']}", SLURM_JOB_ID="5123",
                      SLURM_JOB_NODELIST="node[17-18]", SLURM_NTASKS="2",
                      SLURM_CPUS_PER_TASK="8")
    args = (f"-m prdarts_jax.search --config configs/dr.py --workdir "
            f"{tmp_path}/runs/search/dr/seed_1 --config.seed=1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"node17:20123 2 0 {args}", f"node17:20123 2 1 {args}"]


def test_launch_wrappers_pass_their_arguments_through(tmp_path):
    env = {**os.environ, "PYTHON": os.path.join(ROOT, ".venv", "bin", "python")}
    if not os.path.exists(env["PYTHON"]):
        import sys
        env["PYTHON"] = sys.executable
    done = subprocess.run(["launch/grid_local.sh", "runs/g", "--dry_run", "--spaces", "ur",
                           "--seeds", "4", "--stages", "search", "--python", "py"],
                          capture_output=True, text=True, env=env, check=True)
    assert done.stdout == ("py -m prdarts_jax.search --config configs/ur.py --workdir "
                           "runs/g/search/ur/seed_4 --config.seed=4\n")
    done = subprocess.run(["launch/grid_slurm.sh", "runs/g", str(tmp_path / "s"), "--dry_run",
                           "--spaces", "ur", "--seeds", "4", "--stages", "search"],
                          capture_output=True, text=True, env=env, check=True)
    assert f"# ===== {tmp_path}/s/search.sbatch" in done.stdout
    assert not (tmp_path / "s").exists()


@pytest.mark.multihost
@pytest.mark.slow
def test_a_two_node_grid_job_runs_a_two_process_search(tmp_path, digits_dir):
    """launch/grid_slurm.sh --nodes 2, submitted through stand-ins for sbatch, srun and
    scontrol (tests/helpers/fake_slurm: every node is this machine): the generated job script
    really starts a two-process search, which finishes."""
    from tests.helpers.multihost import TINY_SEARCH
    out, root = tmp_path / "slurm", tmp_path / "runs"
    sets = [f"--search_set={arg[len('--config.'):]}" for arg in TINY_SEARCH]
    done = subprocess.run(
        ["launch/grid_slurm.sh", str(root), str(out), "--nodes", "2", "--gres", "", "--cpus",
         "1", "--spaces", "dl", "--seeds", "0", "--stages", "search",
         "--search_config", "configs/quick.py", f"--search_set=data_dir={digits_dir}", *sets],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 0, done.stderr
    fake_bin = os.path.join(ROOT, "tests", "helpers", "fake_slurm")
    env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}", "PYTHON": sys.executable,
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu",
           "PRDARTS_HOST_MEMORY": "off", "FAKE_SLURM_LOG": str(tmp_path / "jobs.log")}
    submitted = subprocess.run(["bash", str(out / "submit.sh")], capture_output=True, text=True,
                               env=env, timeout=1200)
    log = (tmp_path / "jobs.log").read_text()
    assert submitted.returncode == 0, log[-3000:]
    workdir = root / "search" / "dl" / "seed_0"
    assert (workdir / "genotype.json").exists()
    assert "process 0 of 2" in log and "process 1 of 2" in log
    assert log.count("search finished") == 1
    epochs = [x for x in (workdir / "metrics.jsonl").read_text().splitlines()
              if '"type": "epoch"' in x]
    assert len(epochs) == 2 and json.loads(epochs[0])["num_devices"] == 4
