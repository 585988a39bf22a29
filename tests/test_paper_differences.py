"""Where mechlp's numbers differ from the papers' statements (README, "Where our numbers differ"): each pinned."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq

import mechlp as ml
from mechlp.catalog.examples import lamba_usstp, yoon_binary
from mechlp.constructions.lamba import minmax_closed_form
from mechlp.model.mechanism import Mechanism
from mechlp.model.spaces import MarkovSpace

LL, LH, HL, HH = 1, 2, 3, 4  # Markov states after (v_L, c_L), (v_L, c_H), (v_H, c_L), (v_H, c_H)


def pi_star(alpha: float, delta: float = 0.5) -> np.ndarray:
    return ml.minmax(lamba_usstp(alpha, delta)).surplus


@pytest.fixture(scope="module")
def grid():
    alphas = np.round(np.arange(0.5, 0.995, 0.005), 3)
    return alphas, np.array([pi_star(a) for a in alphas])


def test_the_recursion_agrees_with_lambas_closed_forms_on_the_grid_points_used():
    for a in (0.6, 0.9):
        cf = minmax_closed_form(lamba_usstp(a, 0.5)).pi_by_state  # eqs. (8)-(9), by linear algebra
        np.testing.assert_allclose(pi_star(a)[1:], cf.reshape(-1), atol=1e-12)


def test_figure_2_exceptions_at_delta_one_half(grid):
    alphas, pi = grid
    rises = np.diff(pi, axis=0) > 1e-12  # rises[i]: Pi* higher at alphas[i + 1] than at alphas[i]
    at = alphas[1:]
    lh = at[rises[:, LH]]
    assert lh.min() == 0.505 and lh.max() == 0.665 and lh.size == int(round((0.665 - 0.505) / 0.005)) + 1
    ll = at[rises[:, LL]]
    assert ll.min() == 0.83 and ll.max() == 0.99
    np.testing.assert_allclose(pi[:, LL], pi[:, HH], atol=1e-12)  # symmetric values and costs
    assert not rises[:, HL].any()
    cross = brentq(lambda a: pi_star(a)[LH] - pi_star(a)[LL], 0.9, 0.99, xtol=1e-10)
    assert cross == pytest.approx(0.94789, abs=1e-5)


@pytest.mark.parametrize("alpha", [0.5, 0.6, 0.7, 0.8, 0.9])
def test_section_7_1_ex_post_everything_is_possible_here(alpha):
    env = lamba_usstp(alpha, 0.95)
    res = ml.feasibility(env, "ex_post", ic="ex_post", ir="ex_post")
    assert res.status == "optimal"
    ver = ml.verify(res.mechanism, ic="ex_post", ir="ex_post", budget="ex_post")
    assert ver.ok
    x = res.mechanism.transfers
    assert np.abs(x.sum(axis=0)).max() <= 1e-9  # payments sum to zero at every node


@pytest.mark.parametrize("price", [0.25, 0.5, 0.75])
def test_yoon_binary_posted_price_is_ex_post_ic_ir_and_balanced(price):
    env = yoon_binary()
    space = MarkovSpace(env)
    trade = env.allocation[space.node_profile, 1]  # trade only at (v = 1, c = 0)
    mech = Mechanism(space, np.stack([price * trade, -price * trade]))
    assert ml.verify(mech, ic="ex_post", ir="ex_post", budget="ex_post").ok
    assert ml.verify(mech, ic="ex_post", ir="ex_post", budget="ex_post", exact=True).ok
    with pytest.raises(AssertionError):  # a price outside [0, 1] breaks participation
        assert ml.verify(Mechanism(space, np.stack([1.5 * trade, -1.5 * trade])), ir="ex_post").ok
