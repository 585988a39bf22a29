"""The verifier of mechanisms on an ActionTree (histories that record realised actions), mechlp.audit.realised:
against a brute-force reference written here from the definitions, against the ordinary verifier on a history
tree when the allocation is deterministic, and on planted violations (also where the reach is zero)."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest

from mechlp.audit import surplus_realised, verify_realised
from mechlp.audit.verifier import verify
from mechlp.model.beliefs import action_reach
from mechlp.model.environment import Agent, Environment
from mechlp.model.mechanism import ActionMechanism, Mechanism
from mechlp.model.spaces import ActionTree, HistoryTree


# ---------------------------------------------------------------------------------------------- models
def _rows(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    w = rng.integers(1, 10, size=(n, k)).astype(float)
    return w / w.sum(axis=1, keepdims=True)


def _learning_env(seed: int, horizon: int, zero_values: bool = False) -> Environment:
    """Two agents with two types, two actions, one kernel per action (learning), a deterministic env allocation."""
    rng = np.random.default_rng(seed)
    agents = []
    for j in range(2):
        kern = np.stack([_rows(rng, 2, 2) for _ in range(2)])  # (A, K_j, K_j): depends on the action
        val = np.zeros((2, 2)) if zero_values else rng.integers(-5, 6, size=(2, 2)) / 10
        agents.append(Agent(f"a{j}", ["lo", "hi"], _rows(rng, 1, 2)[0], kern, val))
    alloc = np.zeros((4, 2))
    alloc[np.arange(4), rng.integers(0, 2, size=4)] = 1.0
    return Environment(agents, ["x", "y"], 0.8, horizon, alloc, name=f"learning{seed}")


def _random_mechanism(seed: int, horizon: int, zero_share: float = 0.3) -> ActionMechanism:
    env = _learning_env(seed, horizon)
    space = ActionTree(env)
    rng = np.random.default_rng(100 + seed)
    p = _rows(rng, space.n_nodes, 2)
    zero = rng.random(space.n_nodes) < zero_share
    p[zero] = np.eye(2)[rng.integers(0, 2, size=int(zero.sum()))]  # some actions never taken
    x = rng.normal(scale=0.3, size=(2, space.n_nodes))
    return ActionMechanism(space, p, x)


# ---------------------------------------------------------------------------------------------- brute force
class _Brute:
    """The definitions, with loops over history tuples ((profile, action), ...) read from space.history_path."""

    def __init__(self, mech: ActionMechanism):
        self.m = mech
        self.space = space = mech.space
        self.env = env = mech.env
        self.k, self.na, self.d = env.n_profiles, env.n_actions, env.discount
        self.types = [tuple(int(v) for v in np.unravel_index(s, env.type_counts)) for s in range(self.k)]
        labels = {tuple(env.profile_labels(s).values()): s for s in range(self.k)}
        self.paths = []
        for h in range(space.n_hist):
            path = space.history_path(h)
            self.paths.append(tuple((labels[tuple(p.values())], env.actions.index(a)) for p, a in path))
        self.index = {path: h for h, path in enumerate(self.paths)}
        self.cache: dict = {}

    def kern(self, j: int, a: int) -> np.ndarray:
        return self.env.agents[j].kernel(self.na)[a]

    def belief(self, j: int, path: tuple) -> np.ndarray:
        if not path:
            return self.env.agents[j].prior
        s, a = path[-1]
        return self.kern(j, a)[self.types[s][j]]

    def node(self, path: tuple, s: int) -> int:
        return self.index[path] * self.k + s

    def _value(self, i, path, s, t, others_from, designer=False):
        """sum_a p(a|g) [v_i(t, a) + delta sum_theta' F_i(theta'_i|t, a) prod_j F_j(theta'_j|others_from_j, a)
        U_i(child, theta')] - x_i(g) at g = (path, s); designer=True: B (no flows, all transfers)."""
        g = self.node(path, s)
        val = 0.0
        for a in range(self.na):
            p = self.m.allocation[g, a]
            flow = 0.0 if designer else self.env.agents[i].valuation[t, a]
            cont = 0.0
            if len(path) + 1 < self.space.horizon:
                child = (*path, (s, a))
                for s2 in range(self.k):
                    w = 1.0
                    for j in range(self.env.n_agents):
                        src = t if (j == i and not designer) else self.types[others_from][j]
                        w *= self.kern(j, a)[src, self.types[s2][j]]
                    cont += w * self.util(i, child, s2, designer)
            val += p * (flow + self.d * cont)
        if designer:  # B(g) = sum_i x_i(g) + delta E[B(child)]
            return val + self.m.transfers[:, g].sum()
        return val - self.m.transfers[i, g]

    def util(self, i, path, s, designer=False):
        key = (i, path, s, designer)
        if key not in self.cache:
            self.cache[key] = self._value(i, path, s, self.types[s][i], s, designer)
        return self.cache[key]

    def reached(self):
        out = []
        for path in self.paths:
            pi, h = 1.0, 0
            for s, a in path:
                pi *= self.m.allocation[h * self.k + s, a]
                h = 1 + (h * self.k + s) * self.na + a
            if pi > 0:
                out.append(path)
        return out

    def profile(self, i, own, others):
        full = list(others)
        full.insert(i, own)
        return int(np.ravel_multi_index(tuple(full), self.env.type_counts))

    def rows(self, ic, ir, budget, outside=0.0):
        """Every row as (slack, history, agent, type, misreport, others) per family."""
        env = self.env
        fam = {"ic": [], "ir": [], "budget": []}
        for path in self.reached():
            h = self.index[path]
            for i, ag in enumerate(env.agents):
                oth_counts = [env.type_counts[j] for j in range(env.n_agents) if j != i]
                oth_ids = [j for j in range(env.n_agents) if j != i]
                for t in range(ag.n_types):
                    for r in range(ag.n_types):
                        if r == t:
                            continue
                        total = 0.0
                        for m in itertools.product(*[range(c) for c in oth_counts]):
                            pm = np.prod([self.belief(j, path)[mj] for j, mj in zip(oth_ids, m, strict=True)])
                            st, sr = self.profile(i, t, m), self.profile(i, r, m)
                            point = self.util(i, path, st) - self._value(i, path, sr, t, sr)
                            if ic == "ex_post":
                                others = (
                                    "("
                                    + ", ".join(env.agents[j].types[mj] for j, mj in zip(oth_ids, m, strict=True))
                                    + ")"
                                )
                                fam["ic"].append((point, h, ag.name, ag.types[t], ag.types[r], others))
                            total += pm * point
                        if ic == "bayesian":
                            fam["ic"].append((total, h, ag.name, ag.types[t], ag.types[r], None))
                    if ir == "interim" or (ir == "ex_ante" and h == 0):
                        ubar = 0.0
                        for m in itertools.product(*[range(c) for c in oth_counts]):
                            pm = np.prod([self.belief(j, path)[mj] for j, mj in zip(oth_ids, m, strict=True)])
                            ubar += pm * self.util(i, path, self.profile(i, t, m))
                        fam["ir"].append((ubar - outside, h, ag.name, ag.types[t], None, None))
            if budget == "interim" or (budget == "ex_ante" and h == 0):
                pi = 0.0
                for s in range(self.k):
                    ps = np.prod([self.belief(j, path)[self.types[s][j]] for j in range(env.n_agents)])
                    pi += ps * self.util(0, path, s, designer=True)
                fam["budget"].append((pi, h, None, None, None, None))
        for path in self.reached():  # pointwise rows: every node of a reached history (the others never happen)
            h = self.index[path]
            for s in range(self.k):
                if ir == "ex_post":
                    for i, ag in enumerate(env.agents):
                        fam["ir"].append((self.util(i, path, s) - outside, h, ag.name, None, None, None))
                if budget == "ex_post":
                    fam["budget"].append(
                        (-abs(self.m.transfers[:, self.node(path, s)].sum()), h, None, None, None, None)
                    )
        if budget == "none":
            del fam["budget"]
        return fam


@pytest.mark.parametrize("seed,horizon", [(0, 2), (1, 3), (2, 3), (3, 2)])
@pytest.mark.parametrize(
    "ic,ir,budget",
    [("bayesian", "interim", "interim"), ("ex_post", "ex_post", "ex_post"), ("bayesian", "ex_ante", "ex_ante")],
)
def test_brute_force_reference(seed, horizon, ic, ir, budget):
    mech = _random_mechanism(seed, horizon)
    brute = _Brute(mech)
    ref = brute.rows(ic, ir, budget, outside=0.1)
    ver = verify_realised(mech, ic=ic, ir=ir, budget=budget, outside_option=0.1)
    assert ver.options["reachable_histories"] == len(brute.reached()) < mech.space.n_hist
    assert set(ver.max_violation) == set(ref)
    for fam, rows in ref.items():
        assert ver.n_rows[fam] == len(rows), fam
        best = min(rows, key=lambda row: row[0])
        assert ver.max_violation[fam] == pytest.approx(max(0.0, -best[0]), abs=1e-12), fam
        w = ver.worst[fam]
        assert w.slack == pytest.approx(best[0], abs=1e-12)
        assert (w.history, w.agent) == best[1:3], fam
        if fam == "ic":
            assert (w.type, w.misreport, w.others) == best[3:], fam
        assert w.where.startswith(mech.space.describe_history(w.history))


def test_surplus_and_utilities_against_brute_force():
    mech = _random_mechanism(4, 3)
    brute = _Brute(mech)
    k = mech.env.n_profiles
    pi = surplus_realised(mech)
    for h, path in enumerate(brute.paths):
        ref = sum(
            np.prod([brute.belief(j, path)[brute.types[s][j]] for j in range(2)]) * brute.util(0, path, s, True)
            for s in range(k)
        )
        assert pi[h] == pytest.approx(ref, abs=1e-12)
    # the mechanism's own recursion agrees with the definitions too (a check of the fixture, not of the verifier)
    u = mech.utilities()
    assert u[1, 5] == pytest.approx(brute.util(1, brute.paths[1], 1), abs=1e-12)


# ---------------------------------------------------------------------------------------------- vs HistoryTree
def _on_action_tree(mech: Mechanism, rng: np.random.Generator) -> tuple[ActionMechanism, dict[int, int]]:
    """The history-tree mechanism on the action tree, with the environment's deterministic allocation; the map
    tree history -> action-tree history; junk transfers at the unreached histories."""
    env = mech.env
    tree = mech.space
    space = ActionTree(env)
    k, na = env.n_profiles, env.n_actions
    alloc = np.asarray(env.allocation)
    p = np.tile(alloc, (space.n_hist, 1))
    x = rng.normal(scale=50.0, size=(env.n_agents, space.n_nodes))  # wild where never reached
    hmap = {0: 0}
    for ht in range(tree.n_hist):  # test code: explicit loop over tree histories (parents come first)
        ha = hmap[ht]
        for s in range(k):
            x[:, ha * k + s] = mech.transfers[:, ht * k + s]
            child = int(tree.child_hist[ht * k + s])
            if child >= 0:
                hmap[child] = 1 + (ha * k + s) * na + int(np.argmax(alloc[s]))
    return ActionMechanism(space, p, x), hmap


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "ic,ir,budget",
    [
        ("bayesian", "interim", "interim"),
        ("ex_post", "ex_ante", "ex_ante"),
        ("bayesian", "ex_post", "none"),
    ],
)
def test_deterministic_allocation_matches_history_tree(seed, ic, ir, budget):
    env = _learning_env(seed, 3)
    tree = HistoryTree(env)
    rng = np.random.default_rng(seed)
    mech = Mechanism(tree, rng.normal(scale=0.2, size=(2, tree.n_nodes)))
    amech, hmap = _on_action_tree(mech, rng)
    ref = verify(mech, ic=ic, ir=ir, budget=budget, outside_option=0.05)
    ver = verify_realised(amech, ic=ic, ir=ir, budget=budget, outside_option=0.05)
    assert ver.options["reachable_histories"] == tree.n_hist
    assert set(ver.max_violation) == set(ref.max_violation)
    for fam in ref.max_violation:
        assert ver.n_rows[fam] == ref.n_rows[fam]
        assert ver.max_violation[fam] == pytest.approx(ref.max_violation[fam], abs=1e-12), fam
        w, rw = ver.worst[fam], ref.worst[fam]
        assert w.slack == pytest.approx(rw.slack, abs=1e-12)
        assert (w.history, w.agent, w.type, w.misreport, w.others) == (
            hmap[rw.history],
            rw.agent,
            rw.type,
            rw.misreport,
            rw.others,
        )
    assert ver.ok == ref.ok or ir == "ex_post"


def test_deterministic_allocation_slacks_history_by_history():
    """Every reached history on its own: the tightest IC, IR and budget rows there agree with the history tree's."""
    env = _learning_env(5, 3)
    tree = HistoryTree(env)
    rng = np.random.default_rng(5)
    mech = Mechanism(tree, rng.normal(scale=0.2, size=(2, tree.n_nodes)))
    amech, hmap = _on_action_tree(mech, rng)
    for ic in ("bayesian", "ex_post"):
        for ht in range(tree.n_hist):  # test code: one call per history
            ref = verify(mech, ic=ic, histories=[ht])
            ver = verify_realised(amech, ic=ic, histories=[hmap[ht]])
            for fam in ref.max_violation:
                assert ver.n_rows[fam] == ref.n_rows[fam], (fam, ht)
                w, rw = ver.worst[fam], ref.worst[fam]
                assert w.slack == pytest.approx(rw.slack, abs=1e-12), (fam, ht)
                assert (w.history, w.agent, w.type, w.misreport, w.others) == (
                    hmap[ht],
                    rw.agent,
                    rw.type,
                    rw.misreport,
                    rw.others,
                )


# ---------------------------------------------------------------------------------------------- planted rows
def _truthful_zero(seed: int = 7, horizon: int = 3) -> ActionMechanism:
    """Zero valuations, zero transfers: every IC, IR and budget row has slack exactly 0 (random allocation)."""
    env = _learning_env(seed, horizon, zero_values=True)
    space = ActionTree(env)
    rng = np.random.default_rng(seed)
    p = _rows(rng, space.n_nodes, 2)
    p[::3] = [1.0, 0.0]
    return ActionMechanism(space, p, np.zeros((2, space.n_nodes)))


@pytest.mark.parametrize("exact", [False, True])
def test_planted_ic_violation_is_found_and_named(exact):
    base = _truthful_zero()
    space = base.space
    k = space.env.n_profiles
    ok = verify_realised(base, exact=exact)
    assert ok.ok and ok.max_violation == {"ic": 0.0, "ir": 0.0, "budget": 0.0}
    reach = action_reach(space, base.allocation)
    lo, hi = space.level_start[1], space.level_start[2]
    h = int(lo + np.flatnonzero(reach[lo:hi] > 0)[0])  # a reached history of period 2
    prof = int(np.ravel_multi_index((1, 0), (2, 2)))  # a0 hi, a1 lo
    x = np.zeros((2, space.n_nodes))
    x[0, h * k + prof] = 0.5  # a0 of type hi pays when it reports hi: reporting lo avoids it
    bad = ActionMechanism(space, base.allocation, x)
    ver = verify_realised(bad, exact=exact)
    assert not ver.ok
    w = ver.worst["ic"]
    assert (w.history, w.agent, w.type, w.misreport) == (h, "a0", "hi", "lo")
    assert w.where == space.describe_history(h)
    p_lo = space.env.agents[1].kernel(2)[
        space.hist_prev_action[h], space.env.profile_types()[space.hist_prev_profile[h], 1], 0
    ]
    assert w.slack == pytest.approx(-0.5 * p_lo, abs=1e-12)
    if exact:
        assert ver.exact_violation["ic"] != "0"
        assert float(Fraction(ver.exact_violation["ic"])) == pytest.approx(0.5 * p_lo, abs=1e-12)
    floats = verify_realised(bad, exact=not exact)
    assert floats.max_violation["ic"] == pytest.approx(ver.max_violation["ic"], abs=1e-12)


@pytest.mark.parametrize("exact", [False, True])
def test_unreached_histories_are_skipped(exact):
    base = _truthful_zero()
    space = base.space
    k = space.env.n_profiles
    reach = action_reach(space, base.allocation)
    never = np.flatnonzero(reach == 0)
    assert never.size
    x = np.zeros((2, space.n_nodes))
    x[0, never[0] * k] = 1e6  # wild, where nobody ever is
    x[1, never[-1] * k + 3] = -1e6
    ver = verify_realised(ActionMechanism(space, base.allocation, x), exact=exact)
    assert ver.ok, ver.summary()
    assert ver.options["reachable_histories"] == space.n_hist - never.size
    # the same transfer at a reached history fails (the check can fail)
    x = np.zeros((2, space.n_nodes))
    x[0, int(np.flatnonzero(reach > 0)[-1]) * k] = 1e6
    assert not verify_realised(ActionMechanism(space, base.allocation, x), exact=exact).ok


def test_arguments_are_validated():
    mech = _truthful_zero(horizon=2)
    with pytest.raises(TypeError, match="mech must be an ActionMechanism"):
        verify_realised(object())
    with pytest.raises(ValueError, match="ic must be one of 'bayesian', 'ex_post'"):
        verify_realised(mech, ic="local")
    with pytest.raises(ValueError, match="budget must be one of"):
        verify_realised(mech, budget="savings")
    with pytest.raises(ValueError, match="tol must be a finite number"):
        verify_realised(mech, tol=-1.0)
    with pytest.raises(TypeError, match="tol must be a number"):
        verify_realised(mech, tol="0.1")
    with pytest.raises(ValueError, match="histories must be in 0..8"):
        verify_realised(mech, histories=[9])
    with pytest.raises(TypeError, match="histories must be integer history indices"):
        verify_realised(mech, histories=[0.5])
    with pytest.raises(TypeError, match="mech must be an ActionMechanism"):
        surplus_realised(object())


@pytest.mark.parametrize("seed", [0, 1])
def test_exact_agrees_with_floats_on_random_mechanisms(seed):
    mech = _random_mechanism(seed, 3)
    for ic, ir, budget in (("bayesian", "interim", "interim"), ("ex_post", "ex_post", "ex_post")):
        fl = verify_realised(mech, ic=ic, ir=ir, budget=budget)
        ex = verify_realised(mech, ic=ic, ir=ir, budget=budget, exact=True)
        assert ex.options["reachable_histories"] == fl.options["reachable_histories"]
        for fam in fl.max_violation:
            assert float(Fraction(ex.exact_violation[fam])) == pytest.approx(fl.max_violation[fam], abs=1e-12)
            assert ex.n_rows[fam] == fl.n_rows[fam]
            assert (ex.worst[fam].history, ex.worst[fam].agent, ex.worst[fam].type) == (
                fl.worst[fam].history,
                fl.worst[fam].agent,
                fl.worst[fam].type,
            )


def test_one_agent_brute_force_and_exact():
    """One agent (no others: P(m|h) is a column of ones, in the exact arithmetic too)."""
    rng = np.random.default_rng(11)
    ag = Agent(
        "solo", ["lo", "hi"], [0.3, 0.7], np.stack([_rows(rng, 2, 2) for _ in range(2)]), [[0.0, 0.4], [0.1, 0.9]]
    )
    env = Environment([ag], ["x", "y"], 0.9, 3, [[1.0, 0.0], [0.0, 1.0]], name="solo")
    space = ActionTree(env)
    p = _rows(rng, space.n_nodes, 2)
    p[::4] = [0.0, 1.0]
    mech = ActionMechanism(space, p, rng.normal(scale=0.3, size=(1, space.n_nodes)))
    brute = _Brute(mech)
    for ic, ir in (("bayesian", "interim"), ("ex_post", "ex_post")):
        ref = brute.rows(ic, ir, "interim")
        ver = verify_realised(mech, ic=ic, ir=ir)
        ex = verify_realised(mech, ic=ic, ir=ir, exact=True)
        for fam, rows in ref.items():
            best = min(rows, key=lambda row: row[0])
            assert ver.worst[fam].slack == pytest.approx(best[0], abs=1e-12)
            assert ver.worst[fam].history == best[1]
            assert float(Fraction(ex.exact_violation[fam])) == pytest.approx(max(0.0, -best[0]), abs=1e-12)
