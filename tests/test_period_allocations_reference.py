"""A brute-force reference for period-dependent allocations (issue #13 item 1), written from the definitions.

Everything below is computed with explicit Python loops over explicit history tuples (a history is a tuple of
report profiles, a profile a tuple of type indices), from the definitions of docs/design.md sections 4.1-4.5 and
6.4-6.6 (Lamba 2022, Definitions 1-3; one-shot deviations; interim IR at every history; Pi(h) the designer's
expected continuation surplus), not from mechlp's row builders, beliefs or verifier:

* the allocation of a node in period ``t`` is the table of period ``t`` at the node's report profile;
* the belief at a history of period ``t + 1`` is the product of the kernels under the action chosen at the previous
  node (the table of period ``t`` at the previous report profile);
* a one-shot deviation of agent ``i`` with true type ``t`` reporting ``r`` takes the reported profile's action and
  transfer in this period; its own next type is drawn from its TRUE type under that action; truthful afterwards.

mechlp's histories are mapped to tuples only through ``space.history_path(h)`` (labels, oldest first), and nodes
through the public ``node_hist`` / ``node_profile`` arrays with ``env.profile_types``.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
from scipy.optimize import linprog

import mechlp
from mechlp.audit.verifier import check_impossibility, surplus, verify
from mechlp.catalog.examples import license_auction
from mechlp.constructions import dynamic_pivot
from mechlp.model.beliefs import joint_beliefs
from mechlp.model.environment import Agent, Environment
from mechlp.model.mechanism import Mechanism
from mechlp.model.spaces import HistoryTree

TOL = 1e-12


# ----------------------------------------------------------------------------------------------------------------
# The reference
# ----------------------------------------------------------------------------------------------------------------


class Reference:
    """The model as plain Python: ``kernels[i][a][s][s2]``, ``vals[i][s][a]``, ``policy[t][profile] -> {a: p}``.

    ``policy`` has one entry per period ``t = 0..T-1`` (0-based here): a dict from profile tuples to a dict of
    action probabilities.
    """

    def __init__(self, priors, kernels, vals, policy, delta, horizon):
        self.n = len(priors)
        self.priors = priors
        self.kernels = kernels
        self.vals = vals
        self.policy = policy
        self.delta = delta
        self.T = horizon
        self.n_actions = len(vals[0][0])
        self.counts = [len(p) for p in priors]
        self.profiles = list(itertools.product(*[range(k) for k in self.counts]))
        self.histories = [()]
        level = [()]
        for _ in range(horizon - 1):
            level = [h + (s,) for h in level for s in self.profiles]
            self.histories += level

    # -- beliefs ----------------------------------------------------------------------------------------------
    def marginal(self, h, j):
        """``P_j(.|h)``: the prior at the root, else agent j's kernel from its last report under the last action."""
        if not h:
            return list(self.priors[j])
        s = h[-1]
        period_of_s = len(h) - 1  # 0-based period of the node whose report profile is s
        out = [0] * self.counts[j]
        for a, pa in self.policy[period_of_s][s].items():
            for tj in range(self.counts[j]):
                out[tj] += pa * self.kernels[j][a][s[j]][tj]
        return out

    def belief(self, h):
        marg = [self.marginal(h, j) for j in range(self.n)]
        bel = {}
        for theta in self.profiles:
            p = 1
            for j in range(self.n):
                p *= marg[j][theta[j]]
            bel[theta] = p
        return bel

    def others_belief(self, h, i):
        """``{m: P(m|h)}`` over the others' profiles ``m`` (tuples without agent i)."""
        marg = [self.marginal(h, j) for j in range(self.n)]
        others = [j for j in range(self.n) if j != i]
        out = {}
        for m in itertools.product(*[range(self.counts[j]) for j in others]):
            p = 1
            for j, mj in zip(others, m, strict=True):
                p *= marg[j][mj]
            out[m] = p
        return out

    @staticmethod
    def insert(i, r, m):
        return tuple(m[:i]) + (r,) + tuple(m[i:])

    def next_prob(self, theta_now, a, theta_next, true_i=None, i=None):
        """``P(theta_next | theta_now, a)``; agent ``i``'s next type drawn from ``true_i`` instead when given."""
        p = 1
        for j in range(self.n):
            src = true_i if (i is not None and j == i) else theta_now[j]
            p *= self.kernels[j][a][src][theta_next[j]]
        return p

    # -- utilities and designer values --------------------------------------------------------------------------
    def evaluate(self, x):
        """``x[i][(h, theta)]`` -> (``U[i][(h, theta)]``, ``B[(h, theta)]``) by backward recursion (Lamba eq. 3)."""
        U = [dict() for _ in range(self.n)]
        B = {}
        for h in sorted(self.histories, key=len, reverse=True):
            t = len(h)
            for theta in self.profiles:
                node = (h, theta)
                for i in range(self.n):
                    val = -x[i][node]
                    for a, pa in self.policy[t][theta].items():
                        flow = self.vals[i][theta[i]][a]
                        cont = 0
                        if t + 1 < self.T:
                            for nxt in self.profiles:
                                cont += self.next_prob(theta, a, nxt) * U[i][(h + (theta,), nxt)]
                        val += pa * (flow + self.delta * cont)
                    U[i][node] = val
                b = sum(x[i][node] for i in range(self.n))
                for a, pa in self.policy[t][theta].items():
                    if t + 1 < self.T:
                        for nxt in self.profiles:
                            b += pa * self.delta * self.next_prob(theta, a, nxt) * B[(h + (theta,), nxt)]
                B[node] = b
        return U, B

    def deviation(self, U, x, i, h, t_true, r, m):
        """Agent i of true type t_true reports r at h when the others are m: this period and truthful afterwards."""
        t = len(h)
        s = self.insert(i, r, m)
        val = -x[i][(h, s)]
        for a, pa in self.policy[t][s].items():
            cont = 0
            if t + 1 < self.T:
                for nxt in self.profiles:
                    cont += self.next_prob(s, a, nxt, true_i=t_true, i=i) * U[i][(h + (s,), nxt)]
            val += pa * (self.vals[i][t_true][a] + self.delta * cont)
        return val

    def rows(self, x):
        """Every slack: ``ic`` (Bayesian), ``ic_ex_post``, ``ir`` (interim), ``budget`` (interim) and U, B, Pi."""
        U, B = self.evaluate(x)
        ic, ic_ep, ir, budget, Pi = [], [], [], [], {}
        for h in self.histories:
            bel = self.belief(h)
            Pi[h] = sum(bel[theta] * B[(h, theta)] for theta in self.profiles)
            budget.append((Pi[h], h))
            for i in range(self.n):
                pm = self.others_belief(h, i)
                for t_true in range(self.counts[i]):
                    ubar = sum(p * U[i][(h, self.insert(i, t_true, m))] for m, p in pm.items())
                    ir.append((ubar, i, h, t_true))
                    for r in range(self.counts[i]):
                        if r == t_true:
                            continue
                        dev = 0
                        for m, p in pm.items():
                            d = self.deviation(U, x, i, h, t_true, r, m)
                            dev += p * d
                            ic_ep.append((U[i][(h, self.insert(i, t_true, m))] - d, i, h, t_true, r, m))
                        ic.append((ubar - dev, i, h, t_true, r))
        return {"ic": ic, "ic_ex_post": ic_ep, "ir": ir, "budget": budget, "U": U, "B": B, "Pi": Pi}

    def slack_vector(self, x):
        out = self.rows(x)
        return np.array([row[0] for fam in ("ic", "ir", "budget") for row in out[fam]])


# ----------------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------------


def _stochastic(rng, k, decimals):
    if decimals:
        # a random composition of 10 into k positive parts: short decimals that sum to one exactly when read
        cuts = np.sort(rng.choice(np.arange(1, 10), size=k - 1, replace=False))
        parts = np.diff(np.concatenate([[0], cuts, [10]]))
        return parts / 10
    w = rng.random(k) + 0.1
    return w / w.sum()


def random_model(seed, counts=(2, 2), horizon=3, n_actions=2, decimals=False, rule=None, dependent=(0,)):
    """A random model whose agents in ``dependent`` have kernels that depend on the action.

    One random deterministic table per period, all different (or the environment's rule ``rule``, e.g.
    ``"efficient_dynamic"``). ``decimals``: every model number a short decimal.
    """
    rng = np.random.default_rng(seed)
    priors, kernels, vals, agents = [], [], [], []
    for i, k in enumerate(counts):
        prior = _stochastic(rng, k, decimals)
        if i in dependent:
            trans = np.array([[_stochastic(rng, k, decimals) for _ in range(k)] for _ in range(n_actions)])
        else:
            one = np.array([_stochastic(rng, k, decimals) for _ in range(k)])
            trans = np.array([one] * n_actions)
        val = rng.integers(-9, 10, size=(k, n_actions)) / 10 if decimals else rng.normal(size=(k, n_actions))
        priors.append(prior)
        kernels.append(trans)
        vals.append(val)
        agents.append(
            Agent(
                f"ag{i}",
                [f"t{z}" for z in range(k)],
                prior,
                trans if i in dependent else trans[0],
                val,
            )
        )
    profiles = list(itertools.product(*[range(k) for k in counts]))
    K = len(profiles)
    while True:
        choice = rng.integers(0, n_actions, size=(horizon, K))
        if len({tuple(c) for c in choice}) == horizon:  # every period's table differs from every other
            break
    tables = np.zeros((horizon, K, n_actions))
    for t in range(horizon):
        for k, theta in enumerate(profiles):
            tables[t, np.ravel_multi_index(theta, counts), choice[t, k]] = 1.0
    delta = 0.9 if decimals else 0.5 + 0.5 * rng.random()
    actions = [f"a{z}" for z in range(n_actions)]
    if rule is not None:
        env = Environment(agents, actions, delta, horizon, allocation=rule)
        return env, reference_of(env, [env.allocation_at(t) for t in range(1, horizon + 1)])
    env = Environment(agents, actions, delta, horizon, allocation=tables)
    ref = reference_of(
        env, [[tables[t, np.ravel_multi_index(theta, counts)] for theta in profiles] for t in range(horizon)]
    )
    return env, ref


def reference_of(env, tables_by_period):
    """The reference of ``env`` with the given tables (``tables_by_period[t][k]``: distribution, profile k)."""
    counts = tuple(len(a.types) for a in env.agents)
    profiles = list(itertools.product(*[range(k) for k in counts]))
    A = len(env.actions)
    kernels = []
    for a in env.agents:
        tr = np.asarray(a.transition, dtype=float)
        kernels.append(tr.tolist() if tr.ndim == 3 else [tr.tolist()] * A)
    policy = []
    for t in range(len(tables_by_period)):
        policy.append(
            {
                theta: {a: float(p) for a, p in enumerate(tables_by_period[t][k]) if p > 0}
                for k, theta in enumerate(profiles)
            }
        )
    return Reference(
        [list(map(float, a.prior)) for a in env.agents],
        kernels,
        [np.asarray(a.valuation, dtype=float).tolist() for a in env.agents],
        policy,
        float(env.discount),
        int(env.horizon),
    )


class Index:
    """mechlp's indices <-> the reference's tuples, through ``history_path`` and the public node arrays."""

    def __init__(self, space, env):
        self.env = env
        self.hist = {}
        for h in range(space.n_hist):
            path = space.history_path(h)
            key = tuple(tuple(a.types.index(step[a.name]) for a in env.agents) for step in path)
            assert key not in self.hist
            self.hist[key] = h
        self.hist_of = {v: k for k, v in self.hist.items()}
        ptypes = np.asarray(env.profile_types())
        self.node = {}
        for g in range(space.n_nodes):
            key = (self.hist_of[int(space.node_hist[g])], tuple(int(z) for z in ptypes[int(space.node_profile[g])]))
            self.node[key] = g
        assert len(self.node) == space.n_nodes
        self.profile_index = {tuple(int(z) for z in ptypes[k]): k for k in range(len(ptypes))}

    def transfers(self, x):
        return [{key: float(x[i, g]) for key, g in self.node.items()} for i in range(x.shape[0])]


def _labels(env, i, m):
    others = [j for j in range(env.n_agents) if j != i]
    return "(" + ", ".join(env.agents[j].types[mj] for j, mj in zip(others, m, strict=True)) + ")"


def _compare(env, space, ref, idx, x):
    """Compare every quantity of the reference with mechlp on transfers ``x`` (mechlp's layout)."""
    xr = idx.transfers(x)
    out = ref.rows(xr)
    mech = Mechanism(space, x)
    # beliefs
    jb = joint_beliefs(space)
    for h, hi in idx.hist.items():
        bel = ref.belief(h)
        for theta, k in idx.profile_index.items():
            assert abs(jb[hi, k] - bel[theta]) <= TOL, (h, theta, jb[hi, k], bel[theta])
    # utilities and surplus
    U = mech.utilities()
    for key, g in idx.node.items():
        for i in range(env.n_agents):
            assert abs(U[i, g] - out["U"][i][key]) <= TOL, (i, key, U[i, g], out["U"][i][key])
    pi = surplus(mech)
    for h, hi in idx.hist.items():
        assert abs(pi[hi] - out["Pi"][h]) <= TOL, (h, pi[hi], out["Pi"][h])
    # rows
    names = [a.name for a in env.agents]
    for ic_mode, fam in (("bayesian", "ic"), ("ex_post", "ic_ex_post")):
        v = verify(mech, ic=ic_mode, ir="interim", budget="interim")
        rows = out[fam]
        worst = min(rows, key=lambda r: r[0])
        assert v.n_rows["ic"] == len(rows)
        assert abs(v.max_violation["ic"] - max(0.0, -worst[0])) <= TOL
        w = v.worst["ic"]
        assert abs(w.slack - worst[0]) <= TOL, (w, worst)
        assert (w.agent, w.history, w.type, w.misreport) == (
            names[worst[1]],
            idx.hist[worst[2]],
            env.agents[worst[1]].types[worst[3]],
            env.agents[worst[1]].types[worst[4]],
        ), (w, worst)
        if fam == "ic_ex_post":
            assert w.others == _labels(env, worst[1], worst[5]), (w, worst)
        worst_ir = min(out["ir"], key=lambda r: r[0])
        assert v.n_rows["ir"] == len(out["ir"])
        assert abs(v.max_violation["ir"] - max(0.0, -worst_ir[0])) <= TOL
        wi = v.worst["ir"]
        assert abs(wi.slack - worst_ir[0]) <= TOL
        assert (wi.agent, wi.history, wi.type) == (
            names[worst_ir[1]],
            idx.hist[worst_ir[2]],
            env.agents[worst_ir[1]].types[worst_ir[3]],
        )
        worst_b = min(out["budget"], key=lambda r: r[0])
        assert v.n_rows["budget"] == len(out["budget"])
        assert abs(v.max_violation["budget"] - max(0.0, -worst_b[0])) <= TOL
        assert v.worst["budget"].history == idx.hist[worst_b[1]]
        assert abs(v.worst["budget"].slack - worst_b[0]) <= TOL
    return out


# ----------------------------------------------------------------------------------------------------------------
# 1. and 2.: every quantity against mechlp; the period matters
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("counts", [(2, 2), (3, 2), (2, 3)])
@pytest.mark.parametrize("seed", [0, 1])
def test_reference_matches_mechlp_on_period_dependent_tree(counts, seed):
    env, ref = random_model(seed, counts=counts, horizon=3)
    assert env.period_dependent
    assert env.action_dependent
    space = HistoryTree(env)
    idx = Index(space, env)
    # the environment's tables are the ones the reference was written from (period by period)
    for t in range(1, 4):
        for theta, k in idx.profile_index.items():
            got = {a: float(p) for a, p in enumerate(env.allocation_at(t)[k]) if p > 0}
            assert got == ref.policy[t - 1][theta]
    rng = np.random.default_rng(100 + seed)
    for _ in range(2):
        x = rng.normal(size=(env.n_agents, space.n_nodes))
        out = _compare(env, space, ref, idx, x)

    # 2. the period matters: with table 1 in every period the reference's slacks change (so 1. would fail if
    # mechlp ignored the period), and mechlp follows the reference there too
    flat = reference_of(env, [env.allocation_at(1)] * 3)
    out_flat = flat.rows(idx.transfers(x))
    diff = max(abs(a[0] - b[0]) for fam in ("ic", "ir", "budget") for a, b in zip(out[fam], out_flat[fam], strict=True))
    assert diff > 1e-3
    env_flat = Environment(env.agents, env.actions, env.discount, env.horizon, allocation=env.allocation_at(1)[None])
    assert not env_flat.period_dependent  # a (1, K, A) array: P == 1
    space_flat = HistoryTree(env_flat)
    idx_flat = Index(space_flat, env_flat)
    assert idx_flat.node == idx.node
    _compare(env_flat, space_flat, flat, idx_flat, x)


def test_reference_matches_mechlp_three_actions_both_kernels_action_dependent():
    env, ref = random_model(7, counts=(2, 3), horizon=3, n_actions=3, dependent=(0, 1))
    assert env.period_dependent and env.action_dependent
    space = HistoryTree(env)
    idx = Index(space, env)
    x = np.random.default_rng(7).normal(size=(env.n_agents, space.n_nodes))
    _compare(env, space, ref, idx, x)


# ----------------------------------------------------------------------------------------------------------------
# 3. certificates and feasibility, against linprog on the reference's own rows
# ----------------------------------------------------------------------------------------------------------------


def _reference_lp(ref, idx, n_agents):
    """The reference's IC, IR and budget slacks as ``A z + b`` in the transfers ``z = x[i, g]`` (probed: affine)."""
    keys = sorted(idx.node, key=lambda k: idx.node[k])
    n_nodes = len(keys)

    def slacks(z):
        x = z.reshape(n_agents, n_nodes)
        xr = [{key: float(x[i, idx.node[key]]) for key in keys} for i in range(n_agents)]
        return ref.slack_vector(xr)

    b = slacks(np.zeros(n_agents * n_nodes))
    A = np.empty((b.size, n_agents * n_nodes))
    for c in range(n_agents * n_nodes):
        e = np.zeros(n_agents * n_nodes)
        e[c] = 1.0
        A[:, c] = slacks(e) - b
    return A, b


def _linprog_status(A, b):
    res = linprog(np.zeros(A.shape[1]), A_ub=-A, b_ub=b, bounds=[(None, None)] * A.shape[1], method="highs")
    return res.status


INFEASIBLE_SEED = 4  # efficient_dynamic, 3 periods: Pi* < 0 somewhere (interim budget balance fails)
FEASIBLE_SEED = 9
IC_INFEASIBLE_SEED = 3  # random tables: not even IC + IR can be met


def _certificate_model(seed, rule="efficient_dynamic"):
    return random_model(seed, counts=(2, 2), horizon=3, decimals=True, rule=rule)


def _n_ic_ir_rows(ref):
    return sum(ref.counts[i] * (ref.counts[i] - 1) + ref.counts[i] for i in range(ref.n)) * len(ref.histories)


def _check_efficient_tables(env, ref):
    """The tables mechlp derived for ``efficient_dynamic`` are the reference's backward induction, and differ."""
    policy = efficient_policy(ref)
    for t in range(ref.T):
        for theta in ref.profiles:
            assert ref.policy[t][theta] == {policy[t][theta]: 1.0}
    assert any(policy[0][theta] != policy[-1][theta] for theta in ref.profiles)


def test_infeasible_period_dependent_model_has_a_certificate_the_reference_confirms():
    env, ref = _certificate_model(INFEASIBLE_SEED)
    assert env.period_dependent and env.action_dependent
    _check_efficient_tables(env, ref)
    res = mechlp.feasibility(env, "interim")
    assert res.status == "infeasible"
    cert = res.certificate
    assert cert is not None
    assert check_impossibility(cert)["ok"]
    assert check_impossibility(cert, exact=True)["ok"]
    space = HistoryTree(env)
    idx = Index(space, env)
    A, b = _reference_lp(ref, idx, env.n_agents)
    assert _linprog_status(A, b) == 2  # infeasible
    # IC + IR alone are feasible (the budget rows make the difference)
    n = _n_ic_ir_rows(ref)
    assert _linprog_status(A[:n], b[:n]) == 0


def test_feasible_period_dependent_model_agrees_with_the_reference():
    env, ref = _certificate_model(FEASIBLE_SEED)
    assert env.period_dependent and env.action_dependent
    _check_efficient_tables(env, ref)
    res = mechlp.feasibility(env, "interim")
    assert res.status == "optimal"
    space = res.mechanism.space
    idx = Index(space, env)
    A, b = _reference_lp(ref, idx, env.n_agents)
    assert _linprog_status(A, b) == 0  # feasible
    slack = ref.slack_vector(idx.transfers(np.asarray(res.mechanism.transfers)))
    assert slack.min() >= -1e-7


EXACT_SEED = 17  # efficient_dynamic, 3 periods, feasible with a margin: an exactly feasible mechanism exists


def _exact(ref):
    """The reference in rationals: every model number of the short-decimal models read as the fraction written."""

    def q(v):
        return Fraction(v).limit_denominator(1000)

    return Reference(
        [[q(p) for p in prior] for prior in ref.priors],
        [[[[q(p) for p in row] for row in kern] for kern in kernels] for kernels in ref.kernels],
        [[[q(v) for v in row] for row in val] for val in ref.vals],
        [{theta: {a: q(p) for a, p in dist.items()} for theta, dist in pol.items()} for pol in ref.policy],
        q(ref.delta),
        ref.T,
    )


def test_exact_feasible_mechanism_passes_the_reference_in_rationals():
    env, ref = _certificate_model(EXACT_SEED)
    assert env.period_dependent and env.action_dependent
    _check_efficient_tables(env, ref)
    res = mechlp.feasibility(env, "interim", exact=True)
    assert res.status == "optimal"
    mech = res.exact_mechanism
    assert mech is not None and res.exact_check.ok
    idx = Index(mech.space, env)
    xq = [{key: Fraction(mech.exact_transfers[i, g]) for key, g in idx.node.items()} for i in range(env.n_agents)]
    out = _exact(ref).rows(xq)
    for fam in ("ic", "ir", "budget"):
        assert all(isinstance(row[0], Fraction) for row in out[fam])
        assert min(row[0] for row in out[fam]) >= 0, fam


def test_ic_ir_infeasible_random_tables_certificate_and_reference():
    """Random period tables need not be implementable at all: the reference's IC + IR rows are infeasible and
    mechlp's min-max certificate over its IC and IR rows passes the checker in floats and exactly."""
    env, ref = _certificate_model(IC_INFEASIBLE_SEED, rule=None)
    assert env.period_dependent and env.action_dependent
    space = HistoryTree(env)
    idx = Index(space, env)
    A, b = _reference_lp(ref, idx, env.n_agents)
    assert _linprog_status(A[: _n_ic_ir_rows(ref)], b[: _n_ic_ir_rows(ref)]) == 2
    mm = mechlp.minmax(env, space=space)
    assert mm.status == "infeasible"
    assert check_impossibility(mm.certificate)["ok"]
    assert check_impossibility(mm.certificate, exact=True)["ok"]


def test_feasibility_certifies_ic_ir_infeasible_models():
    """When IC + IR alone fail, feasibility answers with its own verified certificate (it returned 'unverified')."""
    env, _ = _certificate_model(IC_INFEASIBLE_SEED, rule=None)
    res = mechlp.feasibility(env, "interim")
    assert res.status == "infeasible"
    assert res.certificate is not None and res.certificate.ok
    assert check_impossibility(res.certificate, exact=True)["ok"]


# ----------------------------------------------------------------------------------------------------------------
# 4. Bergemann-Valimaki licence auction
# ----------------------------------------------------------------------------------------------------------------


def efficient_policy(ref):
    """Backward induction over type profiles: ``policy[t][theta]`` maximises flow welfare plus the discounted
    expected value of period ``t + 1``; ties to the first action."""
    value_next = {theta: 0.0 for theta in ref.profiles}
    policy = [None] * ref.T
    for t in reversed(range(ref.T)):
        value, pol = {}, {}
        for theta in ref.profiles:
            best, best_a = None, None
            for a in range(ref.n_actions):
                q = sum(ref.vals[i][theta[i]][a] for i in range(ref.n))
                for nxt in ref.profiles:
                    q += ref.delta * ref.next_prob(theta, a, nxt) * value_next[nxt]
                if best is None or q > best + TOL:
                    best, best_a = q, a
            value[theta], pol[theta] = best, best_a
        policy[t], value_next = pol, value
    return policy


@pytest.mark.parametrize(("horizon", "depth"), [(2, 2), (3, 2), (5, 1)])
def test_license_auction_allocations_are_the_backward_induction_policy(horizon, depth):
    env = license_auction(horizon=horizon, depth=depth)
    ref = reference_of(env, [env.allocation_at(t) for t in range(1, horizon + 1)])
    policy = efficient_policy(ref)
    profile_index = {tuple(int(z) for z in p): k for k, p in enumerate(np.asarray(env.profile_types()))}
    for t in range(horizon):
        table = env.allocation_at(t + 1)
        for theta, k in profile_index.items():
            expected = np.zeros(len(env.actions))
            expected[policy[t][theta]] = 1.0
            assert np.array_equal(table[k], expected), (t + 1, theta, table[k], policy[t][theta])


def test_license_auction_policy_depends_on_the_period():
    changed = []
    for horizon, depth in [(2, 2), (3, 2), (5, 1)]:
        env = license_auction(horizon=horizon, depth=depth)
        ref = reference_of(env, [env.allocation_at(t) for t in range(1, horizon + 1)])
        policy = efficient_policy(ref)
        changed.append(any(policy[0][theta] != policy[-1][theta] for theta in ref.profiles))
        assert env.period_dependent == changed[-1]
    assert changed[:2] == [True, True]


def _pivot_check(horizon, depth):
    env = license_auction(horizon=horizon, depth=depth)
    res = dynamic_pivot(env)
    assert res.ok
    space = res.mechanism.space
    idx = Index(space, env)
    ref = reference_of(env, [env.allocation_at(t) for t in range(1, horizon + 1)])
    out = ref.rows(idx.transfers(np.asarray(res.mechanism.transfers)))
    assert min(r[0] for r in out["ic_ex_post"]) >= -TOL
    assert min(r[0] for r in out["ic"]) >= -TOL


@pytest.mark.parametrize(("horizon", "depth"), [(2, 2), (3, 2)])
def test_license_auction_pivot_is_ex_post_ic_by_the_reference(horizon, depth):
    _pivot_check(horizon, depth)


@pytest.mark.slow
def test_license_auction_pivot_is_ex_post_ic_by_the_reference_five_periods():
    _pivot_check(5, 1)
