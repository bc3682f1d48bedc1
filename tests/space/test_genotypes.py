import json

import numpy as np
import pytest

from prdarts_jax.space.genotypes import (
    PUBLISHED,
    Genotype,
    derive_genotype,
    edge_score,
    load_genotype,
    parse_cell,
    save_genotype,
)
from prdarts_jax.space.opspec import OpSpec


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_round_trip_through_json(name, tmp_path):
    g = PUBLISHED[name]
    path = tmp_path / "genotype.json"
    save_genotype(g, str(path))
    assert load_genotype(str(path)) == g
    assert load_genotype(name.lower()) == g


def test_published_cells_follow_the_spec_text():
    dl1 = PUBLISHED["DL1"]
    assert dl1.normal[0] == (OpSpec.conv(5, (1,)), 0)
    assert dl1.reduce[2] == (OpSpec.pool("max"), 0)
    assert PUBLISHED["UR"].normal[2] == (OpSpec.conv(3, (1, 1, 1)), 1)
    assert PUBLISHED["DARTS_V2"].normal[7] == (OpSpec.conv(3, (), 2), 2)
    assert all(not op.is_conv or op.dil == 1 for name in ("DL1", "DL2", "DR", "UR")
               for op, _ in PUBLISHED[name].normal + PUBLISHED[name].reduce)
    assert "conv(k3,[1,1,1])@1" in PUBLISHED["UR"].describe()


@pytest.mark.parametrize("mutate, msg", [
    (lambda d: d["normal"].pop(), "needs 8"),
    (lambda d: d["normal"].__setitem__(0, ["skip", 2]), "input 2 out of range"),
    (lambda d: d["reduce"].__setitem__(1, ["conv_k4_d1", 0]), "conv_k4_d1"),
    (lambda d: d.pop("reduce"), "malformed genotype"),
])
def test_invalid_genotypes_raise_clearly(mutate, msg):
    d = json.loads(json.dumps(PUBLISHED["DL2"].to_json()))
    mutate(d)
    with pytest.raises(ValueError, match=msg):
        Genotype.from_json(d)


def test_unknown_name_and_bad_file(tmp_path):
    with pytest.raises(ValueError, match="unknown genotype 'DL9'"):
        load_genotype("DL9")
    bad = tmp_path / "g.json"
    bad.write_text("{nope")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_genotype(str(bad))


def test_group_mass_keeps_an_edge_whose_weight_two_similar_convs_share():
    """Node 1 (edges 2, 3, 4 from inputs 0, 1, 2): two convs share edge 2's weight (0.5 each,
    1.0 together); edge 3's max pool has 0.750 and edge 4's skip 0.711."""
    conv3, conv5, skip = OpSpec.conv(3), OpSpec.conv(5), OpSpec.skip()
    maxp, avgp = OpSpec.pool("max"), OpSpec.pool("avg")
    edges = {t: [(conv3, skip) for _ in range(14)] for t in ("normal", "reduce")}
    alphas = {t: [np.zeros(2) for _ in range(14)] for t in ("normal", "reduce")}
    edges["normal"][2:5] = [(conv3, conv5), (maxp, conv3), (skip, avgp)]
    alphas["normal"][2:5] = [np.array([1.0, 1.0]), np.array([1.1, 0.0]), np.array([0.9, 0.0])]
    assert edge_score(edges["normal"][2], alphas["normal"][2]) == (0.5, 0)
    assert edge_score(edges["normal"][2], alphas["normal"][2], "group_mass") == (1.0, 0)
    default = derive_genotype(edges, alphas)
    grouped = derive_genotype(edges, alphas, rule="group_mass")
    assert default.normal[2:4] == ((maxp, 1), (skip, 2))
    assert grouped.normal[2:4] == ((conv3, 0), (maxp, 1))
    assert default.reduce == grouped.reduce
    with pytest.raises(ValueError, match="unknown edge score"):
        derive_genotype(edges, alphas, rule="mean")


def test_derive_picks_two_strongest_edges_per_node():
    conv, skip, pool = OpSpec.conv(3), OpSpec.skip(), OpSpec.pool("max")
    edges = {t: tuple((conv, skip) for _ in range(14)) for t in ("normal", "reduce")}
    alphas = {t: [np.zeros(2) for _ in range(14)] for t in ("normal", "reduce")}
    # node 1 (edges 2, 3, 4 from inputs 0, 1, 2): edge 4 strongest (skip), edge 2 next (conv)
    alphas["normal"][2] = np.array([1.0, 0.0])
    alphas["normal"][3] = np.array([0.1, 0.0])
    alphas["normal"][4] = np.array([0.0, 3.0])
    edges["reduce"] = tuple((pool,) for _ in range(14))
    alphas["reduce"] = [np.zeros(1) for _ in range(14)]
    g = derive_genotype(edges, alphas)
    assert g.normal[2:4] == ((conv, 0), (skip, 2))
    assert g.reduce[:2] == ((pool, 0), (pool, 1))
    assert parse_cell(g.describe().splitlines()[0][len("normal: "):]) == g.normal


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_describe_writes_op_notation_and_parses_back(name):
    g = PUBLISHED[name]
    normal, reduce = g.describe().splitlines()
    assert parse_cell(normal[len("normal: "):]) == g.normal
    assert parse_cell(reduce[len("reduce: "):]) == g.reduce
    assert normal.split()[1] == f"{g.normal[0][0].notation}@{g.normal[0][1]}"
