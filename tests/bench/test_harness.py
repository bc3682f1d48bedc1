"""The benchmarks' timing orders and tables (benchmarks/harness.py); no PyTorch needed."""

import pytest

from benchmarks import harness


def _recording_steps(log):
    return {name: (lambda name=name: log.append(name)) for name in ("A", "B")}


def test_interleaved_alternates_after_warmup():
    log = []
    times = harness.timed(_recording_steps(log), reps=3, warmup=1, order="interleaved")
    assert log == ["A", "B"] * 4
    assert {k: len(v) for k, v in times.items()} == {"A": 3, "B": 3}


def test_blocks_run_each_step_in_a_row():
    log = []
    times = harness.timed(_recording_steps(log), reps=3, warmup=2, order="blocks")
    assert log == ["A"] * 5 + ["B"] * 5
    assert {k: len(v) for k, v in times.items()} == {"A": 3, "B": 3}


def test_unknown_order_is_one_line():
    with pytest.raises(ValueError, match="unknown timing order 'random'; use one of"):
        harness.timed({}, reps=1, warmup=0, order="random")


@pytest.mark.parametrize("order, warmup, untimed", [("interleaved", 2, 0), ("blocks", 2, 1),
                                                    ("blocks", 4, 2)])
def test_compare_counts_parity_steps_as_warmup(order, warmup, untimed):
    """Two parity steps each, then `warmup - 2` untimed ones (blocks: at least one per block,
    the first after the other framework's), then the timed ones."""
    log = []
    losses = iter(range(1000))

    def contender(name):
        def run():
            log.append(name)
            return (1.0,) if name == "ref" else (1.0 + 1e-9 * next(losses),)
        return harness.Contender(run, lambda: 1)

    rows, parity = harness.compare("cfg", {"x": contender("x"), "ref": contender("ref")},
                                   reps=3, warmup=warmup, images_per_step=8,
                                   tolerances=(1e-6, 1e-6), reference="ref", order=order)
    assert parity["x"]["first"] < 1e-6
    assert log.count("x") == log.count("ref") == 2 + untimed + 3
    if order == "blocks":
        assert log[4:] == ["x"] * (untimed + 3) + ["ref"] * (untimed + 3)
    assert [r.framework for r in rows] == ["x", "ref"] and all(len(r.times) == 3 for r in rows)
    assert "| cfg | x |" in harness.table(rows, reference="ref")


def test_processes_run_each_framework_with_its_own_arguments():
    argv = ["--pools", "cycle1", "--order", "processes", "--json", "out.json"]
    jax_argv = harness.process_argv(argv, "jax", "/tmp/j.json")
    torch_argv = harness.process_argv(argv, "torch", "/tmp/t.json")
    assert harness._order(jax_argv) == "blocks"
    assert jax_argv[-4:] == ["--frameworks", "jax", "--json", "/tmp/j.json"]
    assert torch_argv[-4:] == ["--frameworks", "torch", "--json", "/tmp/t.json"]
    from prdarts_jax.runtime import host_memory
    user = {"PATH": "/bin", host_memory.ENV: "auto"}
    assert harness.process_environ(user, "jax") == user
    assert harness.process_environ(user, "torch") == {"PATH": "/bin",
                                                      host_memory.ENV: "huge_pages"}
    assert harness._order(["--order=processes"]) == harness.PROCESSES
    assert harness._order(["--reps", "3"]) is None


def test_the_parent_of_the_processes_does_not_restart(monkeypatch):
    from prdarts_jax.runtime import host_memory

    calls = []
    monkeypatch.setattr(host_memory, "restart", lambda: calls.append(1))
    harness.restart_host_memory(["--order", "processes"])
    harness.restart_host_memory(["--order", "blocks", "--malloc-defaults"])
    assert calls == []
    harness.restart_host_memory(["--order", "blocks"])
    assert calls == [1]


def _result(framework, loss, config="cfg"):
    row = harness.Row(config, framework, [0.5, 0.6, 0.7], 8, 1 << 20, None, losses=(loss, loss))
    return {"environment": {}, "rows": [row.to_json()]}


def test_merge_processes_checks_parity_on_the_reported_losses(capsys):
    rows, parity = harness.merge_processes(
        [_result("JAX", 2.0), _result("PyTorch eager", 2.0 * (1 + 1e-6))], (1e-4, 1e-3))
    assert [r.framework for r in rows] == ["JAX", "PyTorch eager"]
    assert rows[0].losses == (2.0, 2.0) and rows[0].median == 0.6
    assert parity["cfg JAX"]["first"] == pytest.approx(1e-6, rel=1e-3)
    assert "cfg: JAX vs PyTorch eager: losses 2.000000" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="parity check failed: first loss"):
        harness.merge_processes([_result("JAX", 2.1), _result("PyTorch eager", 2.0)],
                                (1e-4, 1e-3))
    assert "| cfg | JAX | 600.0 |" in harness.table(rows)
