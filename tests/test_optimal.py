r"""Revenue-maximising dynamic mechanisms (Yoon 2021, section 2; Battaglini 2005), allocation chosen by the LP.

Closed form: Battaglini's two-type Markov screening, binary-good version on a finite horizon
---------------------------------------------------------------------------------------------
One buyer, types :math:`\theta_L < \theta_H`, :math:`P(H \text{ at } t=1) = \mu`, Markov kernel
:math:`P(H|H) = \alpha_H > \alpha_L = P(H|L)`, actions ``{no, sell}`` with :math:`v(\theta, \text{sell}) = \theta`,
zero cost, horizon ``T``, discount :math:`\delta`. Participation is decided at the start (``ir="ex_ante"``,
Battaglini's setting).

*Rent.* With the downward IC rows binding, the one-shot deviation of the high type at the all-low history
:math:`L^{t-1}` (``t-1`` low reports) gives (docs/design.md section 4.4, one agent so :math:`\bar U = U`)

.. math::
   R_t := U(L^{t-1}, H) - U(L^{t-1}, L) = \Delta\theta\, q_t(L^t) + \delta (\alpha_H - \alpha_L) R_{t+1},
   \qquad R_{T+1} = 0,

so :math:`R_1 = \Delta\theta \sum_{t=1}^{T} [\delta(\alpha_H-\alpha_L)]^{t-1} q_t(L^t)`, where
:math:`q_t(L^t)` is the probability of selling to the low type after ``t-1`` low reports. With the low type's
participation binding, :math:`U(\text{root}, L) = 0`, and revenue is expected surplus minus expected rent:

.. math::
   \Pi = E\Big[\sum_t \delta^{t-1} \theta_t q_t\Big] - \mu \Delta\theta \sum_{t=1}^T
   [\delta(\alpha_H - \alpha_L)]^{t-1} q_t(L^t).

*Pointwise maximisation.* Only the all-low nodes :math:`L^t` carry a rent term; their probability is
:math:`(1-\mu)(1-\alpha_L)^{t-1}`, so the virtual value there is, per unit of :math:`\delta^{t-1}`,

.. math::
   (1-\mu)(1-\alpha_L)^{t-1} \theta_L - \mu \Delta\theta (\alpha_H - \alpha_L)^{t-1}
   \quad\Longrightarrow\quad q_t(L^t) = 1 \iff
   \theta_L \ge \frac{\mu}{1-\mu} \Delta\theta \Big(\frac{\alpha_H - \alpha_L}{1 - \alpha_L}\Big)^{t-1},

and every other node (every high type: "no distortion at the top"; every low type after some high report) is
served. The distortion of the low type decays with ``t`` because :math:`\alpha_H - \alpha_L < 1 - \alpha_L`
(Battaglini's "vanishing distortion"). The allocation is monotone, so the upward IC rows hold (the LP checks all
rows, and the verifier re-checks them). With :math:`\theta = (1, 2)`, :math:`\mu = 0.6`, :math:`\alpha = (0.3,
0.9)`: the threshold is :math:`1.5 \cdot (6/7)^{t-1}`, so the low type is excluded on :math:`L^1, L^2, L^3`
and served from :math:`t = 4` on. The revenue is then

.. math::
   \Pi = \sum_t \delta^{t-1} E[\theta_t] - \sum_{t \le 3} \delta^{t-1} (1-\mu)(1-\alpha_L)^{t-1}\theta_L
   - \mu\Delta\theta \sum_{t=4}^{T} [\delta(\alpha_H - \alpha_L)]^{t-1}.

Not matched: Battaglini's continuous-quantity contract (the LP supports the binary good and finite grids, not a
continuum); periodic participation (``ir="interim"``) is also run and gives the same revenue on this instance,
which is an observation, not a derived result.
"""

from __future__ import annotations

import numpy as np
import pytest

from mechlp.catalog.examples import lamba_usstp
from mechlp.model.environment import Agent, Environment
from mechlp.solve.questions import minmax
from mechlp.solve.second_best import optimal_mechanism, second_best

TH_L, TH_H, MU, A_H, A_L, DELTA, T = 1.0, 2.0, 0.6, 0.9, 0.3, 0.9, 5


def battaglini_env() -> Environment:
    buyer = Agent(
        "buyer", ["L", "H"], [1 - MU, MU], [[1 - A_L, A_L], [1 - A_H, A_H]], [[0, TH_L], [0, TH_H]], values=[TH_L, TH_H]
    )
    return Environment([buyer], ("no", "sell"), DELTA, T)


def closed_form() -> tuple[float, list[bool]]:
    ratio = (A_H - A_L) / (1 - A_L)
    serve = [TH_L >= MU / (1 - MU) * (TH_H - TH_L) * ratio ** (t - 1) for t in range(1, T + 1)]
    surplus, m = 0.0, MU
    for t in range(1, T + 1):
        surplus += DELTA ** (t - 1) * (m * TH_H + (1 - m) * TH_L)
        m = m * A_H + (1 - m) * A_L
    loss = sum(DELTA ** (t - 1) * (1 - MU) * (1 - A_L) ** (t - 1) * TH_L for t in range(1, T + 1) if not serve[t - 1])
    rent = MU * (TH_H - TH_L) * sum((DELTA * (A_H - A_L)) ** (t - 1) for t in range(1, T + 1) if serve[t - 1])
    return surplus - loss - rent, serve


@pytest.mark.parametrize("ir", ["ex_ante", "interim"])
def test_battaglini_binary_closed_form(ir):
    env = battaglini_env()
    res = optimal_mechanism(env, ir=ir)
    assert res.status == "optimal", res.message
    assert res.certificate.ok
    value, serve = closed_form()
    assert serve == [False, False, False, True, True]
    assert res.value == pytest.approx(value, abs=1e-8)
    assert res.dual.ok and res.dual.bound == pytest.approx(value, abs=1e-8)
    sp, p = res.space, res.allocation[:, 1]  # probability of selling per node
    # no distortion at the top: the high type is served after every history
    np.testing.assert_allclose(p[1::2], 1.0, atol=1e-9)
    # the low type: distorted exactly on the all-low histories L^1..L^3, served everywhere else
    all_low = []
    h = 0
    for _ in range(T):
        all_low.append(h * 2)  # node (L^{t-1}, L)
        h = int(sp.child_hist[h * 2])
        if h < 0:
            break
    expected = np.ones(sp.n_nodes)
    for t, g in enumerate(all_low):
        expected[g] = 1.0 if serve[t] else 0.0
    np.testing.assert_allclose(p, expected, atol=1e-9)


def test_two_agent_optimal_mechanism_beats_efficient_rule():
    """Two agents (USSTP, 2 periods): choosing the allocation raises revenue at least to the min-max surplus of
    the efficient rule, Pi*(root) (its allocation is feasible in the revenue LP)."""
    env = lamba_usstp(alpha=0.7, delta=0.9, horizon=2)
    res = optimal_mechanism(env)
    assert res.status == "optimal" and res.certificate.ok, res.message
    pi_eff = minmax(env).surplus[0]
    assert res.value >= pi_eff - 1e-9
    assert res.dual.ok
    assert res.revenue == pytest.approx(res.value, abs=1e-12)


def infinite_closed_form() -> float:
    """Battaglini's revenue on the infinite horizon by the module docstring's formula with T -> infinity: the low
    type is excluded on L^1..L^3 and served afterwards (the threshold 1.5 (6/7)^(t-1) falls below 1 at t = 4);
    the series are summed until their terms are below 1e-18."""
    ratio = (A_H - A_L) / (1 - A_L)
    surplus, loss, rent, m, t = 0.0, 0.0, 0.0, MU, 1
    while DELTA ** (t - 1) > 1e-18:
        surplus += DELTA ** (t - 1) * (m * TH_H + (1 - m) * TH_L)
        m = m * A_H + (1 - m) * A_L
        if TH_L >= MU / (1 - MU) * (TH_H - TH_L) * ratio ** (t - 1):
            rent += MU * (TH_H - TH_L) * (DELTA * (A_H - A_L)) ** (t - 1)
        else:
            loss += DELTA ** (t - 1) * (1 - MU) * (1 - A_L) ** (t - 1) * TH_L
        t += 1
    return surplus - loss - rent


def test_infinite_horizon_optimum_is_history_dependent_by_default():
    buyer = battaglini_env().agents[0]
    env = Environment([buyer], ("no", "sell"), DELTA, "infinite")
    res = optimal_mechanism(env, ir="ex_ante")
    assert res.status == "optimal" and res.certificate.ok
    assert res.space.kind == "tail"
    assert res.value == pytest.approx(infinite_closed_form(), abs=1e-9)
    search = res.method["tail_search"]
    assert search["depth"] == 3 and search["depths"][0] == 0  # excluded on L^1..L^3: three periods of history
    markov = optimal_mechanism(env, ir="ex_ante", tail=False)
    assert search["values"][0] == pytest.approx(markov.value, abs=1e-12)
    assert markov.value < res.value - 0.05  # the best Markov mechanism leaves revenue behind
    assert all(b >= a - 1e-9 for a, b in zip(search["values"], search["values"][1:], strict=False))  # nested spaces
    assert "best Markov value" in res.message and "heuristic" in res.message


def test_tail_auto_needs_an_infinite_horizon_without_a_space():
    with pytest.raises(ValueError, match="tail='auto' searches the depth of history dependence on an infinite"):
        second_best(battaglini_env(), objective="revenue", tail="auto")
    env = Environment([battaglini_env().agents[0]], ("no", "sell"), DELTA, "infinite")
    with pytest.raises(ValueError, match="tail='auto' searches"):
        second_best(env, objective="revenue", tail="auto", horizon=3)
    with pytest.raises(ValueError, match="tail must be one of"):
        second_best(env, objective="revenue", tail="deep")
