"""Parameters and MAdds counted analytically (`models.cost`), checked against the modules'
own parameter shapes and against XLA's cost analysis of the compiled forward."""

import jax
import jax.numpy as jnp
import pytest

from prdarts_jax.models.cost import Cost, compiled_flops, human, network_cost, op_cost, xla_flops
from prdarts_jax.models.formulations import use_impls
from prdarts_jax.models.network import param_count
from prdarts_jax.models.ops import make_op
from prdarts_jax.space.genotypes import PUBLISHED
from prdarts_jax.space.opspec import OpSpec

OPS = (OpSpec.conv(3), OpSpec.conv(5, (1,)), OpSpec.conv(3, (), 2), OpSpec.conv(7, (2,)),
       OpSpec.skip(), OpSpec.pool("max"))


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_params_equal_the_modules_parameter_count(name):
    """The analytic count sums what `param_count` reads from the modules' shapes."""
    assert network_cost(PUBLISHED[name], 10, 8, 5).params == param_count(
        PUBLISHED[name], 10, 8, 5)


def test_published_cells_at_the_paper_size():
    """C=36, 20 cells, CIFAR-10 32×32: the params are those `--count_params` prints (DARTS V2:
    DARTS' own log); DARTS V2's 528 M MAdds is what the usual counters report for it."""
    darts, dl2 = network_cost(PUBLISHED["DARTS_V2"], 10), network_cost(PUBLISHED["DL2"], 10)
    assert (darts.params, darts.madds) == (3_349_342, 528_359_040)
    assert (dl2.params, dl2.madds) == (4_017_646, 650_369_664)
    assert dl2.text() == "params 4.02 M, MAdds 0.65 G"
    assert human(34_130) == "34.13 K" and human(476_032) == "0.48 M"


def test_cost_by_measure():
    assert Cost(5, 7).of("madds") == 5 and Cost(5, 7).of("params") == 7
    with pytest.raises(ValueError, match="unknown cost measure"):
        Cost().of("flops")


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.notation)
@pytest.mark.parametrize("stride", (1, 2))
def test_each_op_against_xla(op, stride):
    """XLA counts 2 flops per multiply-add over the taps that read the input, plus about 5 per
    element of a layer's input and output (ReLU, BatchNorm): at C=64 that is within 10 %."""
    c, side = 64, 16
    module, x = make_op(op, c, stride, True), jnp.zeros((1, side, side, c))
    with use_impls("grouped", "reduce_window"):
        variables = module.init(jax.random.PRNGKey(0), x, False)
        flops = compiled_flops(lambda v, x: module.apply(v, x, False), variables, x)
    valid = op_cost(op, c, stride, side, padded=False).madds
    assert op_cost(op, c, stride, side).madds >= valid
    if valid == 0:
        out = -(-side // stride)
        assert flops <= 9 * c * out * out       # a pool: 8 compares per output, no MAdds
    else:
        assert 2 * valid <= flops <= 1.10 * 2 * valid


@pytest.mark.parametrize("name", ("DARTS_V2", "DL2"))
def test_network_against_xla(name):
    """The whole network (stem, preprocessing, both reductions, classifier) at C=16, 3 cells,
    16×16: XLA's flops lie between 2× the valid-tap MAdds and 12 % above (the elementwise
    ops: about 7-10 % here); the DARTS count (padding taps included) is larger still."""
    genotype = PUBLISHED[name]
    flops = xla_flops(genotype, 10, 16, 3, (16, 16, 3))
    valid = network_cost(genotype, 10, 16, 3, (16, 16, 3), padded=False).madds
    assert 2 * valid <= flops <= 1.12 * 2 * valid
    assert network_cost(genotype, 10, 16, 3, (16, 16, 3)).madds > valid
