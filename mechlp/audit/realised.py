r"""Independent verification of a mechanism on an :class:`~mechlp.model.spaces.ActionTree` (realised actions).

On an action tree a history records the report profiles *and the actions realised* (Yoon 2021, section 2:
kernels :math:`F_j(\theta'_j|\theta_j, a)` that depend on the action, with a randomised allocation). A
:class:`~mechlp.model.mechanism.ActionMechanism` carries a node allocation :math:`p(a|g)` and node transfers
:math:`x_i(g)` (paid at the node, before the action is drawn). Everything here is re-derived from those tables and
the environment's primitives, with this module's own arithmetic (it never calls the mechanism's recursions).

Beliefs (:func:`mechlp.model.beliefs.action_tree_beliefs`)
    :math:`P_j(\theta_j|h) = f_j^0` at the root and :math:`F_j(\theta_j|s_j, a)` after the report profile
    :math:`s` and the realised action :math:`a`; :math:`P(\theta|h) = \prod_j P_j(\theta_j|h)`.

Utilities (truthful play; backward over depth levels)
    .. math::
       U_i(g) = \sum_a p(a|g)\Big[v_i(\theta_{g,i}, a) + \delta \sum_{\theta'} P(\theta'|\text{child}(g, a))\,
                U_i(\text{child}(g, a), \theta')\Big] - x_i(g),

    and :math:`B(g)` the same recursion on :math:`\sum_i x_i(g)` without the flow values.

One-shot deviation (true type :math:`t` reports :math:`r` at :math:`h`, others report :math:`m` truthfully)
    .. math::
       D_i(r, m; t|h) = \sum_a p(a|h, (r, m)) \Big( v_i(t, a) + \delta \sum_{\theta'} F_i(\theta'_i|t, a)
         \prod_{j \ne i} F_j(\theta'_j|m_j, a)\, U_i(\text{child}((h, (r, m)), a), \theta') \Big) - x_i(h, (r, m))

    (the child history records the report :math:`r` and the action drawn; the agent's own type moves on from
    the true type :math:`t`).

Rows (``slack = lhs - rhs >= 0``; Lamba 2022, Definitions 1-5 and 7)
    * ``ic="bayesian"``: :math:`\sum_m P(m|h) [U_i(h, (t, m)) - D_i(r, m; t|h)]` at every reached history,
      agent and ``t != r``; ``"ex_post"``: the bracket per :math:`m`.
    * ``ir="interim"``: :math:`\sum_m P(m|h) U_i(h, (t, m)) - o_i(t)` at every reached history and type;
      ``"ex_post"``: :math:`U_i(g) - o_i(\theta_{g,i})` at every node of a reached history; ``"ex_ante"``: the
      interim rows at the root.
    * ``budget="interim"``: :math:`\Pi(h) = \sum_\theta P(\theta|h) B(h, \theta)` at every reached history;
      ``"ex_ante"``: :math:`\Pi(\text{root})`; ``"ex_post"``: :math:`-|\sum_i x_i(g)|` at every node of a reached
      history;
      ``"none"``: skipped.

Reach
    :math:`\pi(h) = \prod_t p(a_t|g_t)` along ``h`` (:func:`mechlp.model.beliefs.action_reach`). A history with
    :math:`\pi(h) = 0` records an action that the allocation never takes at that node *whatever is reported
    there* (the report moves the node, and the recorded node is the one reached), so no play of the mechanism
    reaches it: its rows constrain nothing and are skipped, the pointwise ones (ex post IR, ex post budget)
    included. Its values enter nothing above either, since every continuation into it is weighted by
    :math:`p(a|g) = 0`.

Vectorised over nodes and histories; Python loops run over agents, type pairs, actions and depth levels only.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

from mechlp.audit.verifier import (
    Verification,
    Violation,
    _Block,
    _others_text,
    _own_axis_first,
    _profile_text,
    _restrict,
    _summarise,
)
from mechlp.model import tolerances
from mechlp.model.beliefs import action_reach, action_tree_beliefs, independent_product
from mechlp.model.exact import MODEL_DENOMINATOR, Numbers, to_fractions
from mechlp.model.mechanism import ActionMechanism
from mechlp.model.question import Question
from mechlp.model.spaces import ActionTree

__all__ = ["verify_realised", "surplus_realised"]

ALLOWED = {"ic": ("bayesian", "ex_post"), "budget": ("interim", "ex_ante", "ex_post", "none")}


# ---------------------------------------------------------------------------------------------- arithmetic
def _allocation(mech: ActionMechanism, nums: Numbers) -> np.ndarray:
    """``p(a|g)`` in ``nums``'s arithmetic: exactly, each float read as its simplest fraction (as model numbers are)
    and every row's largest entry adjusted so that the row sums to exactly 1 (a change below the float rounding)."""
    p = np.asarray(mech.allocation, dtype=float)
    if not nums.exact:
        return p
    q = to_fractions(p, MODEL_DENOMINATOR)
    tiny = (p > 0) & (q == 0)  # a positive entry stays positive (exactly as its float): the same reached histories
    q[tiny] = to_fractions(p[tiny])
    rows = np.arange(q.shape[0])
    big = np.argmax(p, axis=1)
    q[rows, big] = q[rows, big] + (1 - q.sum(axis=1))
    return q


def _backward(space: ActionTree, nums: Numbers, p: np.ndarray, flows: np.ndarray, joint: np.ndarray) -> np.ndarray:
    r"""``(m, n_nodes)``: :math:`V(g) = f(g) + \delta \sum_a p(a|g) \sum_{\theta'} P(\theta'|h') V(h', \theta')`,
    :math:`h' = \text{child}(g, a)`, one depth level at a time (deepest first)."""
    k = space.env.n_profiles
    out = np.array(flows, copy=True)
    if nums.delta == 0:
        return out
    child = np.asarray(space.child_hist)
    for a, b in reversed(space.levels()[:-1]):  # depth levels
        nodes = np.arange(a * k, b * k)
        kids = child[nodes]  # (N, A)
        nxt = out[:, (kids[:, :, None] * k + np.arange(k)).reshape(-1)]
        nxt = nxt.reshape(out.shape[0], nodes.size, kids.shape[1], k)
        ev = (nxt * joint[kids][None]).sum(axis=3)  # (m, N, A)
        out[:, nodes] = out[:, nodes] + nums.delta * (ev * p[nodes][None]).sum(axis=2)
    return out


class _Parts:
    """Beliefs, utilities and designer values of one mechanism in one arithmetic."""

    def __init__(self, mech: ActionMechanism, nums: Numbers, transfers: np.ndarray):
        space, env = mech.space, mech.env
        k = env.n_profiles
        self.space, self.env, self.nums, self.x = space, env, nums, transfers
        self.p = _allocation(mech, nums)
        self.types = env.profile_types()
        self.prof = np.tile(np.arange(k), space.n_hist)  # profile of every node
        self.margs = action_tree_beliefs(space, nums)  # per agent (H, K_j)
        self.joint = independent_product(self.margs, space.n_hist)  # (H, K), profiles in C order over agents
        flows = np.stack(
            [(self.p * nums.valuation[i][self.types[self.prof, i]]).sum(axis=1) for i in range(env.n_agents)]
        )
        self.u = _backward(space, nums, self.p, flows - transfers, self.joint)  # (n, n_nodes)
        self.b = _backward(space, nums, self.p, transfers.sum(axis=0)[None, :], self.joint)[0]
        self.reach = action_reach(space, self.p)
        self.reached = np.flatnonzero(self.reach > 0)

    def surplus(self) -> np.ndarray:
        """``(H,)``: :math:`\\Pi(h) = \\sum_\\theta P(\\theta|h) B(h, \\theta)`."""
        k = self.env.n_profiles
        return (self.joint * self.b.reshape(self.space.n_hist, k)).sum(axis=1)

    def others_law(self, i: int) -> np.ndarray:
        r"""``(K, A, M)``: :math:`\prod_{j \ne i} F_j(m'_j|\theta_j, a)` after profile :math:`\theta`, action ``a``."""
        env, nums = self.env, self.nums
        k, na = env.n_profiles, env.n_actions
        facs = []
        for j in range(env.n_agents):  # loop over agents
            if j == i:
                continue
            kern = nums.kernels[j]  # (A, K_j, K_j)
            facs.append(np.swapaxes(kern[:, self.types[:, j], :], 0, 1).reshape(k * na, -1))  # (K A, K_j)
        return self.product(facs, k * na).reshape(k, na, -1)

    def product(self, factors: list[np.ndarray], n_rows: int) -> np.ndarray:
        """:func:`independent_product` in this arithmetic (no factors: a column of ones, exact when exact)."""
        return independent_product(factors, n_rows) if factors else self.nums.ones((n_rows, 1))

    def deviation(self, i: int) -> np.ndarray:
        r"""``(n_nodes, K_i)``: :math:`D_i` at node ``g`` (the reported profile) for every true type ``t``."""
        space, env, nums = self.space, self.env, self.nums
        k, na = env.n_profiles, env.n_actions
        ki = env.agents[i].n_types
        val = nums.valuation[i]  # (K_i, A)
        kern = nums.kernels[i]  # (A, K_i, K_i)
        dev = (self.p[:, None, :] * val[None, :, :]).sum(axis=2) - self.x[i][:, None]  # (G, K_i)
        child = np.asarray(space.child_hist)
        live = np.flatnonzero(child[:, 0] >= 0)
        if live.size == 0 or nums.delta == 0:
            return dev
        q = self.others_law(i)[self.prof[live]]  # (N, A, M)
        kids = child[live]  # (N, A)
        ukid = self.u[i][(kids[:, :, None] * k + np.arange(k)).reshape(-1)].reshape(live.size * na, k)
        ukid = _own_axis_first(ukid[:, :, None], env.type_counts, i)[..., 0].reshape(live.size, na, ki, -1)
        cexp = (ukid * q[:, :, None, :]).sum(axis=3)  # (N, A, K_i next own type)
        cont = nums.zeros((live.size, na, ki))
        for a in range(na):  # loop over actions: sum_tau F_i(tau|t, a) cexp[., a, tau]
            cont[:, a, :] = (cexp[:, a, None, :] * kern[a][None, :, :]).sum(axis=2)
        dev[live] = dev[live] + nums.delta * (self.p[live][:, :, None] * cont).sum(axis=1)
        return dev


# ---------------------------------------------------------------------------------------------- rows
def _ic_blocks(parts: _Parts, mode: str) -> list[_Block]:
    space, env = parts.space, parts.env
    k = env.n_profiles
    hs = parts.reached
    nr = hs.size
    nodes = (hs[:, None] * k + np.arange(k)).reshape(-1)
    blocks: list[_Block] = []
    for i, ag in enumerate(env.agents):  # loop over agents
        ki = ag.n_types
        if ki < 2:
            continue
        pidx = _own_axis_first(np.arange(k)[None, :], env.type_counts, i)[0]  # (K_i, M) profile of (own, m)
        others = [parts.margs[j][hs] for j in range(env.n_agents) if j != i]
        po = parts.product(others, nr)  # (R, M): P(m|h)
        uh = _own_axis_first(parts.u[i][nodes].reshape(nr, k), env.type_counts, i)  # (R, K_i, M)
        dev = parts.deviation(i)[nodes].reshape(nr, k, ki)[:, pidx, :]  # (R, K_i reported, M, K_i true)
        for t in range(ki):  # loops over type pairs
            for r in range(ki):
                if t == r:
                    continue
                point = uh[:, t, :] - dev[:, r, :, t]  # (R, M)
                if mode == "bayesian":

                    def describe(f: int, s: float, i=i, t=t, r=r) -> Violation:
                        h = int(hs[int(f)])
                        a = env.agents[i]
                        return Violation(
                            "ic", a.name, h, space.describe_history(h), a.types[t], a.types[r], None, float(s)
                        )

                    blocks.append(_Block("ic", (po * point).sum(axis=1), describe, lambda f: hs[f], (i, t, r)))
                    continue
                mc = point.shape[1]

                def describe(f: int, s: float, i=i, t=t, r=r, mc=mc, pidx=pidx) -> Violation:
                    row, m = divmod(int(f), mc)
                    h = int(hs[row])
                    a = env.agents[i]
                    where = f"{space.describe_history(h)}, profile {_profile_text(env, pidx[t, m])}"
                    return Violation("ic", a.name, h, where, a.types[t], a.types[r], _others_text(env, i, m), float(s))

                blocks.append(_Block("ic", point, describe, lambda f, mc=mc: hs[np.asarray(f) // mc], (i, t, r)))
    return blocks


def _ir_blocks(parts: _Parts, mode: str, outside: list[np.ndarray]) -> list[_Block]:
    space, env, nums = parts.space, parts.env, parts.nums
    k = env.n_profiles
    hs = parts.reached if mode == "interim" else np.zeros(1, dtype=np.int64)
    nr = hs.size
    blocks: list[_Block] = []
    for i, ag in enumerate(env.agents):  # loop over agents
        o = nums.array(outside[i])
        if mode == "ex_post":  # every node of a reached history (the others are never played)
            nodes = (parts.reached[:, None] * k + np.arange(k)).reshape(-1)
            slack = parts.u[i][nodes] - o[parts.types[parts.prof[nodes], i]]

            def describe(f: int, s: float, i=i, nodes=nodes) -> Violation:
                h, prof = divmod(int(nodes[int(f)]), k)
                rest = tuple(int(v) for v in np.delete(parts.types[prof], i))
                other = int(np.ravel_multi_index(rest, _others_counts(env, i))) if rest else 0
                return Violation(
                    "ir",
                    env.agents[i].name,
                    h,
                    f"{space.describe_history(h)}, profile {_profile_text(env, prof)}",
                    env.agents[i].types[int(parts.types[prof, i])],
                    None,
                    _others_text(env, i, other),
                    float(s),
                )

            blocks.append(_Block("ir", slack, describe, lambda f, nodes=nodes: nodes[np.asarray(f)] // k, (i,)))
            continue
        nodes = (hs[:, None] * k + np.arange(k)).reshape(-1)
        others = [parts.margs[j][hs] for j in range(env.n_agents) if j != i]
        po = parts.product(others, nr)  # (R, M)
        uh = _own_axis_first(parts.u[i][nodes].reshape(nr, k), env.type_counts, i)  # (R, K_i, M)
        slack = (uh * po[:, None, :]).sum(axis=2) - o[None, :]  # (R, K_i)
        ki = ag.n_types

        def describe(f: int, s: float, i=i, ki=ki) -> Violation:
            row, t = divmod(int(f), ki)
            h = int(hs[row])
            return Violation(
                "ir", env.agents[i].name, h, space.describe_history(h), env.agents[i].types[t], None, None, float(s)
            )

        blocks.append(_Block("ir", slack, describe, lambda f, ki=ki: hs[np.asarray(f) // ki], (i,)))
    return blocks


def _others_counts(env, i: int) -> tuple[int, ...]:
    return tuple(c for j, c in enumerate(env.type_counts) if j != i)


def _budget_blocks(parts: _Parts, mode: str) -> list[_Block]:
    space, env = parts.space, parts.env
    k = env.n_profiles
    if mode == "none":
        return []
    if mode == "ex_post":  # every node of a reached history (the others are never played)
        nodes = (parts.reached[:, None] * k + np.arange(k)).reshape(-1)
        slack = -np.abs(parts.x.sum(axis=0)[nodes])

        def describe(f: int, s: float) -> Violation:
            h, prof = divmod(int(nodes[int(f)]), k)
            where = f"{space.describe_history(h)}, profile {_profile_text(env, prof)}"
            return Violation("budget", None, h, where, None, None, None, float(s))

        return [_Block("budget", slack, describe, lambda f: nodes[np.asarray(f)] // k)]
    hs = parts.reached if mode == "interim" else np.zeros(1, dtype=np.int64)
    pi = parts.surplus()[hs]

    def describe_h(f: int, s: float) -> Violation:
        h = int(hs[int(f)])
        return Violation("budget", None, h, space.describe_history(h), None, None, None, float(s))

    return [_Block("budget", pi, describe_h, lambda f: hs[f])]


# ---------------------------------------------------------------------------------------------- API
def surplus_realised(mech: ActionMechanism) -> np.ndarray:
    r"""``(n_hist,)``: the designer's expected surplus :math:`\Pi(h) = \sum_\theta P(\theta|h) B(h, \theta)` at
    every history of the action tree (floats; beliefs after the realised action, module docstring). Defined also
    where :math:`\pi(h) = 0`."""
    if not isinstance(mech, ActionMechanism):
        raise TypeError(f"mech must be an ActionMechanism, got {type(mech).__name__}")
    nums = Numbers(mech.env, exact=False)
    return _Parts(mech, nums, np.asarray(mech.transfers, dtype=float)).surplus()


def verify_realised(
    mech: ActionMechanism,
    *,
    ic: str = "bayesian",
    ir: str = "interim",
    budget: str = "interim",
    outside_option: Any = 0.0,
    tol: float = tolerances.FEASIBILITY,
    exact: bool = False,
    histories: Any = None,
) -> Verification:
    r"""Re-evaluate every IC, IR and budget row of a mechanism whose histories record the realised actions.

    Parameters
    ----------
    mech : ActionMechanism
        Node allocation :math:`p(a|g)` and node transfers on an :class:`~mechlp.model.spaces.ActionTree`.
    ic : {"bayesian", "ex_post"}
        One-shot deviations (module docstring), in expectation over the others' current types or per profile.
    ir : {"interim", "ex_post", "ex_ante"}
    budget : {"interim", "ex_ante", "ex_post", "none"}
    outside_option : float, sequence, or mapping
        :math:`o_i(t)` (read by :func:`mechlp.model.question.outside_options`).
    tol : float
        A family passes when its largest violation is at most ``tol`` (ignored with ``exact=True``).
    exact : bool
        Rational arithmetic (:class:`mechlp.model.exact.Numbers`): transfers exactly as their floats
        (:func:`mechlp.model.exact.to_fractions`), allocation entries as model numbers (simplest fractions, each row
        made to sum to exactly 1). A family passes only when every slack is ``>= 0`` exactly (ex post budget sums
        exactly 0).
    histories : array_like of int, optional
        Check (and count) only the rows at these action-tree histories (default every history); rows are
        computed from the whole tree as usual.

    Returns
    -------
    Verification
        As :func:`mechlp.audit.verifier.verify`; ``options["reachable_histories"]`` counts the histories with
        :math:`\pi(h) > 0`, the only ones whose interim rows (IC, interim IR, interim budget) are checked: a
        history of reach zero records an action the allocation never takes there, whatever is reported, so it
        is never played and its rows are vacuous (module docstring). Histories in ``Violation`` objects are
        action-tree indices, described by ``space.describe_history``.

    Notes
    -----
    Lamba (2022), Definitions 1-5 and 7, on histories that record actions (Yoon 2021, section 2). The rows are
    computed here from the primitives (beliefs :func:`mechlp.model.beliefs.action_tree_beliefs`, reach
    :func:`mechlp.model.beliefs.action_reach`), not from :meth:`ActionMechanism.utilities`.
    """
    if not isinstance(mech, ActionMechanism):
        raise TypeError(f"mech must be an ActionMechanism, got {type(mech).__name__}")
    env = mech.env
    question = Question.parse(env, ic=ic, ir=ir, budget=budget, outside_option=outside_option, allowed=ALLOWED)
    ic, ir, budget = question.ic, question.ir, question.budget
    if isinstance(tol, bool) or not isinstance(tol, int | float | np.integer | np.floating):
        raise TypeError(f"tol must be a number, got {type(tol).__name__}")
    if not math.isfinite(float(tol)) or tol < 0:
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    tol = 0.0 if exact else float(tol)
    nums = Numbers(env, exact=bool(exact))
    x = to_fractions(mech.transfers) if exact else np.asarray(mech.transfers, dtype=float)
    parts = _Parts(mech, nums, x)
    outside = list(question.outside)
    families = {"ic": _ic_blocks(parts, ic), "ir": _ir_blocks(parts, ir, outside)}
    if budget != "none":
        families["budget"] = _budget_blocks(parts, budget)
    if histories is not None:
        idx = np.asarray(histories).reshape(-1)
        if idx.size and idx.dtype.kind not in "iu":
            raise TypeError(f"histories must be integer history indices, got dtype {idx.dtype}")
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= mech.space.n_hist):
            raise ValueError(f"histories must be in 0..{mech.space.n_hist - 1}")
        keep = np.zeros(mech.space.n_hist, dtype=bool)
        keep[idx] = True
        families = {fam: [_restrict(b, keep) for b in blocks] for fam, blocks in families.items()}
    max_violation: dict[str, float] = {}
    exact_violation: dict[str, str] = {}
    worst: dict[str, Violation | None] = {}
    binding: dict[str, list[Violation]] = {}
    n_binding: dict[str, int] = {}
    n_rows: dict[str, int] = {}
    bind_tol = 0.0 if exact else tolerances.BINDING
    for fam, blocks in families.items():
        mv, w, bind, nb, nrow = _summarise(blocks, bind_tol)
        max_violation[fam], worst[fam], binding[fam], n_binding[fam], n_rows[fam] = float(mv), w, bind, nb, nrow
        if exact:
            exact_violation[fam] = str(Fraction(mv))
    if exact:
        ok = all(Fraction(v) == 0 for v in exact_violation.values())
    else:
        ok = all(v <= tol for v in max_violation.values())
    options = {
        "ic": ic,
        "ir": ir,
        "budget": budget,
        "outside_option": [o.tolist() for o in outside],
        "agents": [ag.name for ag in env.agents],
        "exact": bool(exact),
        "max_denominator": None,
        "reachable_histories": int(parts.reached.size),
        "histories": int(mech.space.n_hist),
    }
    return Verification(ok, tol, max_violation, worst, binding, n_binding, n_rows, options, exact_violation)
