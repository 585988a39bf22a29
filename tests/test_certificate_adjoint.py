"""The certificate check's coefficients: A^T y computed by one adjoint pass over the verifier's rows.

``L(x) = sum_r y_r slack_r(x)`` is affine in the transfers. The adjoint (``certificate_coefficients``) must equal
the forward evaluation's change exactly, ``L(x) - L(0) = coef . x`` in rationals, for any multipliers (not only
certificates) on every kind of space and every row family; a genuine certificate has every coefficient zero,
and one multiplier moved by 1e-12 exactly is rejected with the coordinate named.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from mechlp.audit.verifier import (
    ImpossibilityCertificate,
    _certificate_affine,
    _certificate_value,
    certificate_coefficients,
    check_impossibility,
)
from mechlp.catalog.examples import lamba_usstp
from mechlp.model.environment import Agent, Environment
from mechlp.model.exact import Numbers
from mechlp.model.question import outside_options
from mechlp.model.spaces import HistoryTree, MarkovSpace, TreeWithTail
from mechlp.solve import questions


def three_agents() -> Environment:
    """Decimal numbers (exact in rationals), three agents, a non-FOSD kernel, two actions."""
    agents = [
        Agent("a", ["lo", "hi"], [0.3, 0.7], [[0.6, 0.4], [0.8, 0.2]], [[0.0, 0.5], [0.0, 1.0]]),
        Agent(
            "b",
            ["x", "y", "z"],
            [0.2, 0.5, 0.3],
            [[0.5, 0.25, 0.25], [0.1, 0.1, 0.8], [0.4, 0.4, 0.2]],
            [[0.0, -0.2], [0.0, -0.6], [0.0, -0.9]],
        ),
        Agent("c", ["u", "v"], [0.5, 0.5], [[0.9, 0.1], [0.25, 0.75]], [[0.1, 0.0], [0.4, 0.0]]),
    ]
    return Environment(agents, ["no", "yes"], 0.8, "infinite")


def random_multipliers(space, ic: str, ir: str, budget: str, seed: int) -> ImpossibilityCertificate:
    """Nonnegative random fractions on about a third of the rows: an arbitrary combination, not a certificate."""
    rng = np.random.default_rng(seed)
    env = space.env

    def draw(shape):
        vals = rng.integers(0, 7, size=shape) * (rng.random(shape) < 0.35)
        return np.vectorize(lambda v: Fraction(int(v), 4), otypes=[object])(vals)

    pairs = {
        (i, t, r)
        for i, ag in enumerate(env.agents)
        for t in range(ag.n_types)
        for r in range(ag.n_types)
        if t != r and (ic != "local" or abs(t - r) == 1)
    }
    n_ir = space.n_hist if ir == "interim" else 1
    n_b = space.n_hist if budget == "interim" else 1
    opts = {"ic": ic, "ir": ir, "budget": budget, "question_budget": budget, "outside_option": 0.25}
    return ImpossibilityCertificate(
        space,
        opts,
        Fraction(1),
        {key: draw(space.n_hist) for key in sorted(pairs)},
        {i: draw((n_ir, ag.n_types)) for i, ag in enumerate(env.agents)},
        draw(n_b),
    )


SPACES = {
    "tree": lambda env: HistoryTree(env, 3),
    "markov": lambda env: MarkovSpace(env),
    "tail": lambda env: TreeWithTail(env, 1),
}


@pytest.mark.parametrize("rows", [("bayesian", "interim", "interim"), ("local", "ex_ante", "ex_ante")])
@pytest.mark.parametrize("kind", sorted(SPACES))
@pytest.mark.parametrize("make_env", [lambda: lamba_usstp(0.9, 0.3), three_agents], ids=["usstp", "three"])
def test_adjoint_equals_the_forward_evaluation_exactly(make_env, kind, rows):
    env = make_env()
    space = SPACES[kind](env)
    cert = random_multipliers(space, *rows, seed=len(kind))
    nums = Numbers(env, exact=True)
    outside = outside_options(0.25, env)
    coef = certificate_coefficients(cert, exact=True)
    assert coef.shape == (env.n_agents, space.n_nodes)
    rng = np.random.default_rng(7)
    x = np.vectorize(lambda v: Fraction(int(v), 8), otypes=[object])(rng.integers(-9, 10, size=coef.shape))
    l0 = _certificate_value(cert, nums, nums.zeros(coef.shape), outside)
    lx = _certificate_value(cert, nums, x, outside)
    assert lx - l0 == (coef * x).sum()  # exactly
    assert _certificate_affine(cert, nums)[1] == l0  # the adjoint's constant is the forward L(0), exactly
    assert any(c != 0 for c in coef.reshape(-1))  # random multipliers are not a certificate
    # the float adjoint agrees with the exact one
    np.testing.assert_allclose(certificate_coefficients(cert), coef.astype(float), atol=1e-12)


@pytest.fixture(scope="module")
def genuine():
    res = questions.feasibility(lamba_usstp(0.9, 0.3), "interim")
    assert res.status == "infeasible"
    return res.certificate


def test_a_genuine_certificate_has_every_coefficient_exactly_zero(genuine):
    coef = certificate_coefficients(genuine, exact=True)
    assert all(c == 0 for c in coef.reshape(-1))
    out = check_impossibility(genuine, exact=True)
    assert out["ok"] and out["nonzero"] == 0 and out["probes"] == 0 and out["method"] == "adjoint"
    assert out["coordinates"] == 2 * genuine.space.n_nodes
    assert f"A^T y = 0 at all {out['coordinates']:,} transfer coordinates and L = -1 < 0 (a proof)" in out["message"]


def test_one_multiplier_moved_by_1e_12_is_rejected_naming_the_coordinate(genuine):
    budget = genuine.budget.copy()
    h = int(np.flatnonzero(budget != 0)[0])
    budget[h] = budget[h] + Fraction(1, 10**12)
    moved = ImpossibilityCertificate(genuine.space, genuine.options, genuine.gamma, genuine.ic, genuine.ir, budget)
    out = check_impossibility(moved, exact=True)
    assert not out["ok"] and out["nonzero"] > 0
    worst = out["worst"]
    # the budget row at h weighs the nodes of h by P(theta|h) on the sum of transfers: the coordinate is at h
    assert worst["history"] == h and worst["agent"] in ("buyer", "seller")
    assert 0 < abs(Fraction(worst["coefficient"])) < Fraction(1, 10**10)  # of the size of the change
    assert "A^T y != 0" in out["message"] and worst["profile"] in out["message"]
    # floats cannot see a 1e-12 change relative to terms of size 1; the exact check is the proof
    assert check_impossibility(moved, exact=False)["ok"]
