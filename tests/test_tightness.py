"""Min-max tightness is certified or honestly refused (issue #11, item 3): without FOSD kernels one mechanism
need not maximise every Pi(h), and then Pi* does not decide budget balance."""

from __future__ import annotations

import numpy as np
import pytest

from mechlp.audit.verifier import verify
from mechlp.backends import solve_lp
from mechlp.catalog.examples import lamba_usstp, public_project
from mechlp.constraints.formulation import build_lp
from mechlp.model.environment import bilateral_trade
from mechlp.model.mechanism import Mechanism
from mechlp.solve import questions as design

#: 3 x 3 bilateral trade at discount 0.3 with kernels that are not FOSD (rows are integer weights / row sums)
WEIGHTS_B = np.array([[6, 9, 5], [6, 9, 7], [6, 5, 6]], dtype=float)
WEIGHTS_S = np.array([[9, 3, 8], [7, 1, 4], [8, 5, 1]], dtype=float)


@pytest.fixture(scope="module")
def non_fosd():
    kb = WEIGHTS_B / WEIGHTS_B.sum(axis=1, keepdims=True)
    ks = WEIGHTS_S / WEIGHTS_S.sum(axis=1, keepdims=True)
    env = bilateral_trade([1.0, 1.2, 1.5], [0.0, 0.1, 1.8], [1 / 3] * 3, [1 / 3] * 3, kb, ks, 0.3)
    assert not all(ag.is_fosd() for ag in env.agents)
    return env


def test_fosd_bilateral_trade_is_tight_by_lamba_lemma_6():
    res = design.minmax(lamba_usstp(0.9, 0.8))
    assert res.diagnosis["tightness"] == {
        "tight": True,
        "by": "Lamba (2022), Lemma 6: bilateral trade with FOSD kernels",
    }
    assert "impossible" in res.message and "tight at every history" in res.message


def test_a_model_without_theorem_is_checked_history_by_history():
    res = design.minmax(public_project(), method="lp")  # three agents: no theorem; Markov space, 9 histories
    t = res.diagnosis["tightness"]
    assert t["tight"] is True and t["by"] == "each Pi(h) maximised by its own LP (9 LPs)"


def test_non_fosd_minmax_is_not_tight_and_says_so(non_fosd):
    res = design.minmax(non_fosd)
    assert res.status == "optimal" and res.certificate.ok
    t = res.diagnosis["tightness"]
    assert t["tight"] is False and t["gap"] > 1e-3
    assert "NOT tight at every history" in res.message and "possible" not in res.message
    # the claim is backed: a verified IC + IR mechanism reaches the higher surplus at that history
    sp, h = res.space, t["history"]
    weights = np.zeros(sp.n_hist)
    weights[h] = 1.0
    lp = build_lp(sp, res.question_spec, weights=weights)
    out = solve_lp(lp)
    other = Mechanism(sp, lp.variables.split(out.x)["x"])
    assert verify(other, budget="none").ok
    assert other.surplus()[h] == pytest.approx(t["best"], abs=1e-9)
    assert other.surplus()[h] > res.surplus[h] + 1e-3


def test_feasibility_does_not_read_an_untight_pi_star(non_fosd):
    res = design.feasibility(non_fosd, "interim")
    assert res.status in ("optimal", "infeasible")
    assert "WARNING" not in res.message  # no contradiction between Pi* and the LP is reported as one
    assert res.certificate.ok  # a verified mechanism, or a verified Farkas certificate
