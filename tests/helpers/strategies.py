"""Hypothesis strategies shared by the tests: ops and search spaces."""

from hypothesis import strategies as st

from prdarts_jax.space.opspec import OpSpec
from prdarts_jax.space.spaces import PRESETS, SearchSpace


@st.composite
def c_muls(draw, max_len: int = 4, max_entry: int = 4) -> tuple[int, ...]:
    entries = draw(st.lists(st.integers(1, max_entry), max_size=max_len))
    return tuple(sorted(entries, reverse=True))


@st.composite
def conv_ops(draw, max_len: int = 4) -> OpSpec:
    k = draw(st.sampled_from([1, 3, 5, 7]))
    dil = 1 if k == 1 else draw(st.integers(1, 2))
    return OpSpec.conv(k, draw(c_muls(max_len)), dil)


def ops() -> st.SearchStrategy[OpSpec]:
    return st.one_of(st.sampled_from([OpSpec.pool("max"), OpSpec.pool("avg"), OpSpec.skip()]),
                     conv_ops())


@st.composite
def spaces(draw) -> SearchSpace:
    if draw(st.booleans()):
        return draw(st.sampled_from(list(PRESETS.values())))
    min_k = draw(st.sampled_from([1, 3]))
    bound = st.one_of(st.none(), st.integers(0, 5))
    width = st.one_of(st.none(), st.integers(1, 5))
    return SearchSpace("custom", min_k, draw(st.sampled_from([3, 5, 7, 9])),
                       draw(st.integers(1, 3)), draw(bound), draw(bound), draw(width))
