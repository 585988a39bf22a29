"""feasibility(route="auto") answers from the min-max structure and agrees with the LP everywhere.

The structure route returns the tight min-max mechanism as its witness or a subtree Farkas certificate as its
proof; the LP route solves the feasibility LP. On random bilateral models (FOSD and not, Markov spaces and
trees) both must give the same status, each with its own verified proof.
"""

from __future__ import annotations

import numpy as np
import pytest
import random_models

from mechlp.catalog.examples import lamba_usstp
from mechlp.solve.questions import feasibility, minmax


def random_bilateral(seed: int):
    return random_models.random_bilateral(seed, "infinite" if seed % 4 < 2 else 3)


def test_the_random_models_exercise_both_routes():
    routes = {feasibility(random_bilateral(s), "interim").diagnosis["route"].split(":")[0] for s in range(16)}
    assert routes == {"structure", "lp"}


@pytest.mark.parametrize("seed", range(16))
@pytest.mark.parametrize("budget", ["interim", "ex_ante", "ex_post"])
def test_structure_and_lp_routes_agree_with_their_own_proofs(seed, budget):
    env = random_bilateral(seed)
    auto = feasibility(env, budget)
    lp = feasibility(env, budget, route="lp")
    assert lp.diagnosis["route"] == "lp"
    assert auto.status == lp.status, (auto.message, lp.message)
    for res in (auto, lp):
        if res.status == "optimal":
            assert res.verification.ok
        else:
            assert res.status == "infeasible" and res.certificate.ok
    if auto.diagnosis["route"].startswith("structure: the min-max mechanism"):
        # the witness maximises every Pi(h), so it raises at least the LP mechanism's surplus everywhere
        assert np.all(auto.surplus >= lp.surplus - 1e-7)


def test_the_routes_are_named_in_the_result():
    feasible = feasibility(lamba_usstp(0.9, 0.95), "interim")
    assert feasible.diagnosis["route"] == "structure: the min-max mechanism (Pi* tight and >= 0) is the witness"
    assert "the min-max mechanism is the witness" in feasible.message
    tree = feasibility(lamba_usstp(0.9, 0.3, horizon=4), "ex_post")
    assert tree.status == "infeasible" and tree.diagnosis["route"].startswith("structure: a Farkas certificate")
    assert tree.certificate.options["focus"] in tree.diagnosis["route"]
    # ex ante impossibility needs the root's rows: the LP answers
    ante = feasibility(lamba_usstp(0.9, 0.3, horizon=4), "ex_ante")
    assert ante.status == "infeasible" and ante.diagnosis["route"] == "lp"
    # transfer limits are outside the structure
    capped = feasibility(lamba_usstp(0.7, 0.95), "interim", limits={"buyer": (None, 0.5)})
    assert capped.diagnosis["route"] == "lp"
    with pytest.raises(ValueError, match="route"):
        feasibility(lamba_usstp(), "interim", route="fast")


def test_minmax_auto_takes_the_recursion_only_when_it_is_certified_tight():
    env = lamba_usstp(0.9, 0.8, horizon=4)  # FOSD bilateral trade: Lemma 6
    auto, lp = minmax(env), minmax(env, method="lp")
    assert auto.diagnosis["method"].startswith("recursion (auto") and lp.diagnosis["method"] == "lp"
    np.testing.assert_allclose(auto.surplus, lp.surplus, atol=1e-9)  # the recursion's Pi* is the LP's optimum
    assert auto.options["backend"] == "highs"
    # LP solver options ask for the LP; a time limit does not (it bounds LP solves; the recursion is linear)
    assert minmax(env, presolve="on").diagnosis["method"] == "lp"
    assert minmax(env, time_limit=60.0).diagnosis["method"].startswith("recursion (auto")
    # a model where the recursion is not certified tight: the LP answers
    for seed in range(16):
        env = random_bilateral(seed)
        rec = minmax(env, method="recursion")
        if rec.diagnosis["tightness"]["tight"] is not True:
            assert minmax(env).diagnosis["method"] == "lp"
            break
    else:
        pytest.fail("no random model without certified tightness")


def test_time_limit_gives_a_clean_status_and_phases_are_reported():
    env = lamba_usstp(0.9, 0.3)
    phases = []
    res = feasibility(env, "interim", horizon=5, route="lp", time_limit=1e-6, progress=phases.append)
    assert res.status == "time_limit" and res.certificate is None
    assert phases[0] == "feasibility: LP"
    phases.clear()
    ok = feasibility(env, "interim", horizon=5, time_limit=60, progress=phases.append)
    assert ok.status == "infeasible" and ok.certificate.ok
    assert phases == ["min-max: recursion", "certificate: from the recursion's binding rows, else a Farkas LP"]
    with pytest.raises(ValueError, match="time_limit must be > 0 seconds"):
        feasibility(env, "interim", time_limit=0)
    with pytest.raises(TypeError, match="time_limit must be a number of seconds"):
        minmax(env, time_limit="1")
    with pytest.raises(TypeError, match="progress must be a bool or callable"):
        minmax(env, progress="yes")
