r"""Independent verification of a mechanism: every IC, IR and budget constraint, re-evaluated from transfers.

This module is the *mechanism certificate* of docs/design.md section 8.1. It re-checks a
:class:`~mechlp.model.mechanism.Mechanism` with code that shares nothing with the LP builders
(``mechlp.constraints``, ``mechlp.lp.program``): every constraint is evaluated directly from the utilities :math:`U`
and the designer values :math:`B` given by the recursion of Lamba (2022), eq. (3), with the beliefs, mixed kernels
and continuation values of the model layer (:mod:`mechlp.model.beliefs`), never from LP rows.

Conventions (docs/design.md section 1): transfers :math:`x_i(h, \theta)` are payments *from* agent :math:`i` *to*
the designer; types are independent across agents; the allocation :math:`p(a|\theta)` depends on the current
report profile. With ``K`` profiles, history ``h`` owns the nodes ``h*K .. h*K + K - 1`` and node ``g`` has
profile ``g % K`` (see :mod:`mechlp.model.spaces`).

Beliefs (:mod:`mechlp.model.beliefs`)
    :math:`P(\theta|h) = \prod_j P_j(\theta_j|h)` with :math:`P_j(\cdot|\text{root}) = f_j^0` and, after the
    previous report profile :math:`s`, :math:`P_j(\theta_j|h) = \sum_a p(a|s) F_j(\theta_j|s_j, a)`. The
    mixture over actions is exact in both cases the environment allows (kernels that ignore the action, or a
    deterministic allocation).

Interim utility
    :math:`\bar U_i(t|h) = \sum_{\theta_{-i}} P(\theta_{-i}|h)\, U_i(h, (t, \theta_{-i}))`.

One-shot deviation (true type :math:`t` reports :math:`r` at :math:`h`; others truthful; truthful afterwards)
    .. math::
       D_i(r; t|h) = \sum_{\theta_{-i}} P(\theta_{-i}|h) \Big[ U_i(h, (r, \theta_{-i}))
         + \sum_a p(a|r, \theta_{-i}) \big( v_i(t, a) - v_i(r, a) \big)
         + \delta \sum_{\theta'} \big( F_i(\theta_i'|t, a) - F_i(\theta_i'|r, a) \big)
           \prod_{j \ne i} F_j(\theta_j'|\theta_j, a)\, U_i(\text{child}(h, (r, \theta_{-i})), \theta') \Big]

    The child node records the *report* :math:`r`; the agent's own type moves on from the *true* type
    :math:`t`. There is no continuation term at the last period of a finite horizon.

Correlated types (``env.correlated``: a ``joint_transition`` :math:`P(\theta'|\theta, a)` over profiles)
    :math:`P(\theta_{-i}|h)` becomes :math:`P(\theta_{-i}|t, h) = P((t, \theta_{-i})|h) / P_i(t|h)`, conditioned on
    the true type (:func:`mechlp.model.beliefs.conditional_beliefs`), in the interim utility and the deviation,
    and the deviation's continuation is :math:`\sum_{\theta'} [\sum_a p(a|r, \theta_{-i})
    (P(\theta'|(t, \theta_{-i}), a) - P(\theta'|(r, \theta_{-i}), a))] U_i(\text{child}, \theta')`
    (:func:`_correlated_ic_blocks`).

Constraint families (Lamba 2022, Definitions 1-5 and 7; every row is written ``slack = lhs - rhs >= 0``)
    * ``ic="bayesian"`` (Definition 1): :math:`\bar U_i(t|h) - D_i(r; t|h)` for all ``h`` and ``t != r``.
    * ``ic="ex_post"`` (within-period, Definition 7): the bracket above pointwise in :math:`\theta_{-i}`.
    * ``ic="local"``: the Bayesian rows for adjacent types ``|t - r| = 1`` only (Lamba appendix 9.1). Local IC
      implies global IC only under extra conditions (monotone allocation, FOSD kernels), so a mechanism built
      from local constraints must be re-verified with ``ic="bayesian"``.
    * ``ir="interim"`` (Definition 2): :math:`\bar U_i(t|h) - o_i(t)` at every history; ``"ex_post"``:
      :math:`U_i(h, \theta) - o_i(\theta_i)` at every node; ``"ex_ante"``: the interim rows at the root only
      (participation decided once, in the first period, after learning the first type).
    * ``budget="interim"`` (Definition 3): :math:`\Pi(h) = \sum_\theta P(\theta|h) B(h, \theta) \ge 0` at
      every history; ``"ex_ante"`` (Definition 4): :math:`\Pi(\text{root}) \ge 0`; ``"ex_post"``
      (Definition 5): :math:`\sum_i x_i(h, \theta) = 0` at every node, reported as ``slack = -|sum_i x_i|``;
      ``"none"``: skipped.
    * ``budget="savings"`` (a saving intermediary, Lamba 2022 section 8): the designer's account
      :math:`A(\text{root}) = 0`, :math:`A(h') = (A(h) + \sum_i x_i(g)) / \delta` after node ``g`` of ``h``, and
      solvency :math:`R(h) = A(h) + \Pi(h) \ge 0` on every path. On a history tree every history has one path:
      one row :math:`R(h)` per history (current-value units; with :math:`\delta = 0`, root units). On a Markov
      space (or a tree with a Markov tail) the account depends on the whole path, so one row is reported: the
      worst solvency over all paths, :math:`W(\text{root})`, where :math:`W(h) = \min\{\Pi(h),
      \min_\theta [\sum_i x_i(h,\theta) + \delta W(\text{child}(h,\theta))]\}` is computed here by value
      iteration (exactly: by policy iteration with exact solves), with the minimising path in its description.
    * ``limits`` (only when the question has transfer limits, :func:`mechlp.model.question.agent_limits`):
      :math:`x_i(h, \theta) - lo_i` and :math:`hi_i - x_i(h, \theta)` at every node, for each finite bound.

The notions, outside options and limits come from one parsed :class:`mechlp.model.question.Question` (the
``question`` argument of :func:`verify`, or parsed here from its keywords); the row arithmetic is this module's own.

Everything is vectorized over histories and nodes (Python loops run over agents, type pairs and actions only),
and memory is linear in the number of nodes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from typing import Any

import numpy as np

from mechlp.model import tolerances
from mechlp.model.beliefs import (
    conditional_beliefs,
    continuation_adjoint,
    continuation_values,
    independent_product,
    interim_expectation,
    joint_beliefs,
    joint_transition,
    marginal_beliefs,
    mixed_kernels,
    next_marginals,
    others_beliefs,
    reach_probabilities,
)
from mechlp.model.environment import Environment
from mechlp.model.exact import EXACT_MARKOV_PROFILES, Numbers, Rational, solve_exact, to_fractions
from mechlp.model.files import exact_number
from mechlp.model.mechanism import Mechanism
from mechlp.model.question import Question, agent_limits, outside_options, parse_notion
from mechlp.model.spaces import (
    HistoryTree,
    MergedTree,
    StateSpace,
    distinct_continuations,
    merge_identical_subtrees,
)

__all__ = [
    "Violation",
    "Verification",
    "verify",
    "verify_intermediate",
    "interim_utilities",
    "surplus",
    "certificate_coefficients",
    "check_dual_bound",
    "check_optimality",
    "OptimalityCertificate",
    "objective_value",
    "exact_node_allocation",
    "BOUND_OBJECTIVES",
]

BINDING_LIST_CAP = 50  # at most this many binding rows are listed per family (all are counted)
#: Exact verification on a tree evaluates each distinct subtree once (:func:`_merge_for_exact`) when merging
#: identical subtrees leaves at most this share of the histories.
MERGE_SHARE = 0.5


# ---------------------------------------------------------------------------------------------- records
@dataclass
class Violation:
    """One checked constraint, violated or binding (``slack = lhs - rhs``; negative means violated).

    Attributes
    ----------
    family : str
        ``"ic"``, ``"ir"`` or ``"budget"``.
    agent : str or None
        Agent name (``None`` for budget rows).
    history : int
        History index ``h`` in the space.
    where : str
        ``space.describe_history(h)``, followed by the current report profile for pointwise (ex post) rows.
    type : str or None
        True type label.
    misreport : str or None
        Reported type label (IC rows only).
    others : str or None
        Labels of the other agents' types :math:`\\theta_{-i}` for pointwise (ex post) rows, else ``None``.
    slack : float
        ``lhs - rhs``.
    """

    family: str
    agent: str | None
    history: int
    where: str
    type: str | None
    misreport: str | None
    others: str | None
    slack: float

    def describe(self) -> str:
        """The row in words, e.g. ``"buyer of type v_L reporting v_H, history root (period 1): slack -0.1"``.

        Returns
        -------
        str
        """
        parts = []
        if self.family == "budget":
            parts.append("designer budget")
        elif self.family == "allocation":
            parts.append("allocation")
        elif self.agent is not None:
            who = f"{self.agent}"
            if self.type is not None:
                who += f" of type {self.type}"
            if self.misreport is not None:
                who += f" reporting {self.misreport}"
            if self.others is not None:
                who += f" (others {self.others})"
            parts.append(who)
        return ", ".join(parts) + f", history {self.where}: slack {self.slack:.6g}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["slack"] = float(self.slack)
        d["history"] = int(self.history)
        return d


@dataclass
class Verification:
    """Result of :func:`verify`.

    Attributes
    ----------
    ok : bool
        True when no family has a maximum violation above ``tol``.
    tol : float
    max_violation : dict
        Family -> ``max(0, -min slack)`` over its rows. Families: ``"ic"``, ``"ir"`` and, unless
        ``budget="none"``, ``"budget"``.
    worst : dict
        Family -> the most violated row (or, when none is violated, the tightest), ``None`` if no rows.
    binding : dict
        Family -> rows with ``|slack| <= tolerances.BINDING``, lowest histories first, at most 50 listed.
    n_binding : dict
        Family -> number of binding rows (all of them, not only the listed ones).
    n_rows : dict
        Family -> number of constraints checked.
    options : dict
        ``ic``, ``ir``, ``budget`` and ``outside_option`` (per agent, per type) used; ``distinct_histories``
        (only when an exact check merged identical subtrees, see :func:`verify`): the number of histories whose
        rows were evaluated.
    """

    ok: bool
    tol: float
    max_violation: dict[str, float]
    worst: dict[str, Violation | None]
    binding: dict[str, list[Violation]]
    n_binding: dict[str, int]
    n_rows: dict[str, int]
    options: dict = field(default_factory=dict)
    exact_violation: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """A few human-readable lines: per family the largest violation, rows, binding rows and worst row."""
        opts = self.options
        head = "verified: OK" if self.ok else "verification FAILED"
        arith = "exact rational arithmetic" if opts.get("exact") else f"tolerance {self.tol:g}"
        lines = [f"{head} ({arith}; IC {opts.get('ic')}, IR {opts.get('ir')}, budget {opts.get('budget')})"]
        outside = opts.get("outside_option") or []
        if any(float(v) != 0.0 for o in outside for v in np.asarray(o, dtype=float).ravel()):
            names = opts.get("agents") or [f"agent {i}" for i in range(len(outside))]
            parts = ", ".join(f"{nm} {[float(v) for v in o]}" for nm, o in zip(names, outside, strict=True))
            lines.append(f"  outside options (IR is checked against them): {parts}")
        if opts.get("outside_values"):
            lines.append("  IR is checked against outside values per node, O_i(h, theta)")
        if opts.get("limits"):
            parts = ", ".join(f"{nm} [{lo}, {hi}]" for nm, (lo, hi) in opts["limits"].items())
            lines.append(f"  transfer limits: {parts}")
        for fam in self.max_violation:
            mv = self.max_violation[fam]
            status = "ok" if mv <= self.tol and self.exact_violation.get(fam, "0") == "0" else "VIOLATED"
            line = (
                f"  {fam}: {status}, max violation {mv:.3g} over {self.n_rows[fam]:,} rows, "
                f"{self.n_binding[fam]:,} binding"
            )
            w = self.worst[fam]
            if w is not None:
                line += ("; worst: " if w.slack < 0 else "; tightest: ") + w.describe()
            lines.append(line)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (floats, strings, lists, dicts)."""
        return {
            "ok": bool(self.ok),
            "tol": float(self.tol),
            "max_violation": {k: float(v) for k, v in self.max_violation.items()},
            "worst": {k: (None if v is None else v.to_dict()) for k, v in self.worst.items()},
            "binding": {k: [v.to_dict() for v in rows] for k, rows in self.binding.items()},
            "n_binding": {k: int(v) for k, v in self.n_binding.items()},
            "n_rows": {k: int(v) for k, v in self.n_rows.items()},
            "exact_violation": dict(self.exact_violation),
            "options": {
                "ic": self.options.get("ic"),
                "ir": self.options.get("ir"),
                "budget": self.options.get("budget"),
                "exact": bool(self.options.get("exact", False)),
                "max_denominator": self.options.get("max_denominator"),
                **(
                    {"distinct_histories": int(self.options["distinct_histories"])}
                    if "distinct_histories" in self.options
                    else {}
                ),
                **({"outside_values": self.options["outside_values"]} if "outside_values" in self.options else {}),
                "outside_option": [
                    [float(v) for v in np.asarray(o).ravel()] for o in self.options.get("outside_option", [])
                ],
                **({"limits": self.options["limits"]} if self.options.get("limits") else {}),
            },
        }

    def __str__(self) -> str:
        return self.summary()


# ---------------------------------------------------------------------------------------------- beliefs
def _profile_types(env: Environment) -> np.ndarray:
    """``(K, n_agents)`` type index of each agent in each profile (C order over agents)."""
    return np.stack(np.unravel_index(np.arange(env.n_profiles), env.type_counts), axis=1)


def _own_axis_first(arr: np.ndarray, counts: tuple[int, ...], agent: int) -> np.ndarray:
    """Reshape ``(n, K, *rest)`` to ``(n, K_i, K_-i, *rest)``: profile axis split, own axis first."""
    n = arr.shape[0]
    rest = arr.shape[2:]
    full = arr.reshape(n, *counts, *rest)
    moved = np.moveaxis(full, 1 + agent, 1)
    return moved.reshape(n, counts[agent], -1, *rest)


def interim_utilities(mechanism: Mechanism, utilities: np.ndarray | None = None) -> list[np.ndarray]:
    r"""Per agent ``i``, ``(n_hist, K_i)`` array of :math:`\bar U_i(t|h) = \sum_{\theta_{-i}} P(\theta_{-i}|h)
    U_i(h, (t, \theta_{-i}))`, defined for every type (also types of probability zero at ``h``)."""
    space = mechanism.space
    u = mechanism.utilities() if utilities is None else utilities
    return [interim_expectation(space, i, u[i]) for i in range(space.env.n_agents)]


def surplus(mechanism: Mechanism) -> np.ndarray:
    r"""``(n_hist,)``: the designer's expected surplus :math:`\Pi(h) = \sum_\theta P(\theta|h) B(h, \theta)`,
    with the beliefs of :func:`joint_beliefs` (Lamba 2022, eq. (4))."""
    space = mechanism.space
    b = mechanism.designer_values().reshape(space.n_hist, space.env.n_profiles)
    return np.einsum("hk,hk->h", joint_beliefs(space), b)


# ---------------------------------------------------------------------------------------------- options
# ---------------------------------------------------------------------------------------------- blocks
@dataclass
class _Block:
    """A family's rows of one kind: ``slack`` (any shape) and a function naming the row at a flat index."""

    family: str
    slack: np.ndarray
    describe: Callable[[int, float], Violation]
    hist_of: Callable[[np.ndarray], np.ndarray]  # flat indices -> history index (to sort binding rows)
    key: tuple = ()  # (agent, type, misreport) for IC, (agent,) for IR, () for budget: names the rows' labels


def _profile_text(env: Environment, k: int) -> str:
    return "(" + ", ".join(env.profile_labels(int(k)).values()) + ")"


def _others_text(env: Environment, agent: int, m: int) -> str:
    counts = env.type_counts
    other = [j for j in range(env.n_agents) if j != agent]
    if not other:
        return "()"
    idx = np.unravel_index(int(m), tuple(counts[j] for j in other))
    return "(" + ", ".join(env.agents[j].types[int(t)] for j, t in zip(other, idx, strict=True)) + ")"


@dataclass
class _DeviationTerms:
    r"""What agent ``i``'s one-shot deviation rows are made of (module docstring, :math:`D_i(r; t|h)`).

    ``po`` ``(H, M)``: :math:`P(\theta_{-i}|h)`; ``pidx`` ``(K_i, M)``: the profile of (own type, others ``m``);
    ``q_oth`` ``(K, M)``: the others' joint next-type law after each profile, :math:`\prod_{j \ne i}
    G_j(\theta'_j|\theta_j; \theta)`; ``g_i`` ``(K, K_i, K_i)``: agent ``i``'s mixed kernel at each profile.
    """

    po: np.ndarray
    pidx: np.ndarray
    q_oth: np.ndarray
    g_i: np.ndarray


def _deviation_terms(
    space: StateSpace,
    nums: Numbers,
    i: int,
    kernels: list[np.ndarray],
    nxt: list[np.ndarray],
    marginals: list[np.ndarray] | None = None,
    hists: np.ndarray | None = None,
) -> _DeviationTerms:
    """The beliefs and kernels of agent ``i``'s deviation rows (at ``hists``, default every history)."""
    env = space.env
    others = [j for j in range(env.n_agents) if j != i]
    margs = None if marginals is None else (marginals if hists is None else [m[hists] for m in marginals])
    po = others_beliefs(space, i, nums, hists=hists, marginals=margs)
    pidx = _own_axis_first(np.arange(env.n_profiles)[None, :], env.type_counts, i)[0]
    # one agent: no others, the product is a column of ones -- in this arithmetic (a float 1 would turn exact
    # rationals into floating point)
    k = env.n_profiles
    q_oth = independent_product([nxt[j] for j in others], k) if others else nums.full((k, 1), 1)
    return _DeviationTerms(po, pidx, q_oth, kernels[i])


def _distinct_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct entries of an ``(H, M)`` index array and each entry's position among them (same shape)."""
    uniq, at = np.unique(rows, return_inverse=True)
    return uniq, at.reshape(rows.shape)


def _type_pairs(i: int, ki: int, mode: str, keys: set | None) -> list[tuple[int, int]]:
    """Agent ``i``'s IC pairs ``(t, r)``, ``t != r`` (adjacent only for ``mode == "local"``), restricted to
    ``keys`` ``(agent, type, misreport)`` when given (the verifier's own list: it does not read the builders')."""
    pairs = [(t, r) for t in range(ki) for r in range(ki) if t != r and (mode != "local" or abs(t - r) == 1)]
    return pairs if keys is None else [(t, r) for t, r in pairs if (i, t, r) in keys]


def _ex_post_ic_block(space: StateSpace, slack: np.ndarray, i: int, t: int, r: int, pidx: np.ndarray) -> _Block:
    """The ex post IC rows ``(H, M)`` of agent ``i``, true type ``t``, report ``r``, named by history and the
    others' profile ``m`` (``pidx[t, m]`` the true profile)."""
    env = space.env
    m_count = slack.shape[1]

    def describe(f: int, s: float) -> Violation:
        h, m = divmod(int(f), m_count)
        return Violation(
            "ic",
            env.agents[i].name,
            h,
            f"{space.describe_history(h)}, profile {_profile_text(env, pidx[t, m])}",
            env.agents[i].types[t],
            env.agents[i].types[r],
            _others_text(env, i, m),
            float(s),
        )

    return _Block("ic", slack, describe, lambda f: f // m_count, (i, t, r))


def _interim_ic_block(space: StateSpace, slack: np.ndarray, i: int, t: int, r: int) -> _Block:
    """The Bayesian IC rows ``(H,)`` of agent ``i``, true type ``t``, report ``r``, named by history."""
    env = space.env

    def describe(f: int, s: float) -> Violation:
        h = int(f)
        ag = env.agents[i]
        return Violation("ic", ag.name, h, space.describe_history(h), ag.types[t], ag.types[r], None, float(s))

    return _Block("ic", slack, describe, lambda f: f, (i, t, r))


def _ic_blocks(
    space: StateSpace,
    nums: Numbers,
    u: np.ndarray,
    mode: str,
    node_alloc: np.ndarray | None = None,
    marginals: list[np.ndarray] | None = None,
    keys: set | None = None,
) -> list[_Block]:
    """IC rows for every agent and ordered type pair (adjacent pairs for ``mode == "local"``).

    ``node_alloc`` (``(n_nodes, n_actions)``, optional) replaces the per-profile allocation in the flow gain;
    ``marginals``: :func:`marginal_beliefs` of ``space`` in ``nums``, when the caller has them; ``keys``: only the
    pairs ``(agent, type, misreport)`` in this set. With one allocation table per period the rows of each table's
    histories are computed with that table (:func:`_ic_blocks_at`) and put together.
    """
    n_tables = space.env.n_allocation_periods
    if n_tables == 1:
        return _ic_blocks_at(space, nums, u, mode, node_alloc, marginals, keys)
    table = np.asarray(space.hist_table)
    parts = []
    for p in range(n_tables):  # loop over the allocation's period tables
        hs = np.flatnonzero(table == p)
        if hs.size:
            parts.append((hs, _ic_blocks_at(space, nums, u, mode, node_alloc, marginals, keys, hs, p)))
    blocks = []
    for j, first in enumerate(parts[0][1]):  # the same blocks, in the same order, for every table
        slack = np.empty((space.n_hist, *first.slack.shape[1:]), dtype=first.slack.dtype)
        for hs, bl in parts:
            slack[hs] = bl[j].slack
        blocks.append(_Block(first.family, slack, first.describe, first.hist_of, first.key))
    return blocks


def _ic_blocks_at(
    space: StateSpace,
    nums: Numbers,
    u: np.ndarray,
    mode: str,
    node_alloc: np.ndarray | None = None,
    marginals: list[np.ndarray] | None = None,
    keys: set | None = None,
    hists: np.ndarray | None = None,
    table: int = 0,
) -> list[_Block]:
    """:func:`_ic_blocks` at the histories ``hists`` (default all) whose period uses allocation table ``table``;
    the blocks' slacks have one row per history of ``hists`` (describers take indices into the full space)."""
    env = space.env
    if env.correlated:
        return _correlated_ic_blocks(space, nums, u, mode, node_alloc, keys)
    counts = env.type_counts
    k = env.n_profiles
    n_hist = space.n_hist
    delta = nums.delta
    band = slice(table * k, (table + 1) * k)  # this table's rows of the stacked period tables
    kernels = [g[band] for g in mixed_kernels(env, nums)]
    nxt = [m[band] for m in next_marginals(env, nums)]
    alloc = nums.alloc[band]
    child = np.asarray(space.child_hist)
    if hists is None:
        nonterm = np.flatnonzero(child >= 0)
        n_sel = n_hist
    else:
        sel_nodes = (hists[:, None] * k + np.arange(k)).reshape(-1)
        live_sel = child[sel_nodes] >= 0
        nonterm = sel_nodes[live_sel]
        n_sel = hists.size
    blocks: list[_Block] = []
    for i, ag in enumerate(env.agents):
        ki = ag.n_types
        pairs = _type_pairs(i, ki, mode, keys)
        if not pairs:
            continue
        terms = _deviation_terms(space, nums, i, kernels, nxt, marginals, hists=hists)
        po, pidx, q_oth, g_i = terms.po, terms.pidx, terms.q_oth, terms.g_i  # (H, M), (K_i, M), (K, M), kernels
        u_i = u[i].reshape(n_hist, k)
        uh = _own_axis_first(u_i if hists is None else u_i[hists], counts, i)  # (H, K_i, M)
        # cexp[g, tau'] = sum_{m'} q_oth[prof(g), m'] U_i(child(g), (tau', m')), zero where the game ends. It
        # depends on a node only through (child history, profile): one row per distinct pair (on a tree one per
        # node, on a Markov space one per profile), and row n_u (zero) for the nodes where the game ends.
        uniq, inv = distinct_continuations(space, nonterm)
        n_u = uniq.size
        cexp_u = nums.zeros((n_u + 1, ki))
        if n_u and delta != 0:
            kids = _own_axis_first(u[i].reshape(n_hist, k)[uniq // k], counts, i)  # (n_u, K_i, M)
            cexp_u[:n_u] = np.einsum("ntm,nm->nt", kids, q_oth[uniq % k])
            del kids
        if hists is None:
            node_u = np.full(space.n_nodes, n_u, dtype=np.int64)
            node_u[nonterm] = inv.reshape(-1)
        else:
            node_u = np.full(n_sel * k, n_u, dtype=np.int64)
            node_u[live_sel] = inv.reshape(-1)
        node_u = _own_axis_first(node_u.reshape(n_sel, k), counts, i)  # (H, K_i reported, M)
        m_of_prof = np.empty(k, dtype=np.int64)
        m_of_prof[pidx.reshape(-1)] = np.tile(np.arange(pidx.shape[1]), ki)
        m_of_row = np.append(m_of_prof[uniq % k], 0)  # others' part of each row's profile (0: the zero row)
        distinct = n_u == nonterm.size  # a tree: gather per node; else per distinct row of each report
        by_report: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # r -> _distinct_rows(node_u[:, r, :])
        val = nums.valuation[i]  # (K_i, A)
        interim_terms = mode != "ex_post" and node_alloc is None
        if interim_terms:
            # Bayesian rows in interim terms, for every true type t at once per report r (others' beliefs do not
            # depend on i's type): slack(h) = Ubar(t|h) - Ubar(r|h) - [E_r(flow of t) - E_r(flow of r)](h)
            #   - delta sum_m P(m|h) sum_k cexp(h, (r, m), k) [G(k|(r,m), t) - G(k|(r,m), r)]
            ubar_i = np.einsum("htm,hm->ht", uh, po)  # (H, K_i)
            e_flow = np.einsum("hra,ta->hrt", np.einsum("hm,rma->hra", po, alloc[pidx]), val)  # (H, r, t)
            cont_terms: dict[int, np.ndarray] = {}
            for r in sorted({r for _, r in pairs}):  # loop over reported types
                prof_r = pidx[r]
                dk_all = g_i[prof_r, :, :] - g_i[prof_r, r, :][:, None, :]  # (M, K_i true, K_i next)
                if distinct:
                    cont_terms[r] = np.einsum("hm,hmk,mtk->ht", po, cexp_u[node_u[:, r, :]], dk_all)
                elif bool((node_u[:, r, :] == node_u[:1, r, :]).all()):  # the same rows at every history (Markov)
                    c_m = np.einsum("mk,mtk->mt", cexp_u[node_u[0, r, :]], dk_all)  # (M, K_i)
                    cont_terms[r] = po @ c_m
                else:
                    if r not in by_report:
                        by_report[r] = _distinct_rows(node_u[:, r, :])
                    rows_r, at = by_report[r]
                    c_u = np.einsum("uk,utk->ut", cexp_u[rows_r], dk_all[m_of_row[rows_r]])  # (rows, K_i)
                    cont_terms[r] = np.einsum("hm,hmt->ht", po, c_u[at])
        for t, r in pairs:
            if interim_terms:
                slack = ubar_i[:, t] - ubar_i[:, r] - (e_flow[:, r, t] - e_flow[:, r, r]) - delta * cont_terms[r][:, t]
                blocks.append(_interim_ic_block(space, slack, i, t, r))
                continue
            prof_r = pidx[r]  # (M,) profiles (r, m)
            if node_alloc is None:
                flow_dev = (alloc[prof_r] @ (val[t] - val[r]))[None, :]  # (1, M)
            else:  # p(a | h, (r, m)) at the node of the reported profile
                na_h = node_alloc.reshape(n_hist, k, -1)
                flow_dev = (na_h if hists is None else na_h[hists])[:, prof_r, :] @ (val[t] - val[r])  # (H, M)
            dk = g_i[prof_r, t, :] - g_i[prof_r, r, :]  # (M, K_i)
            if distinct:
                cont = np.einsum("hmk,mk->hm", cexp_u[node_u[:, r, :]], dk)
            else:
                if r not in by_report:
                    by_report[r] = _distinct_rows(node_u[:, r, :])
                rows_r, at = by_report[r]
                cont = np.einsum("uk,uk->u", cexp_u[rows_r], dk[m_of_row[rows_r]])[at]  # (H, M)
            pointwise = uh[:, t, :] - uh[:, r, :] - flow_dev - delta * cont  # (H, M)
            if mode != "ex_post":
                blocks.append(_interim_ic_block(space, np.einsum("hm,hm->h", po, pointwise), i, t, r))
                continue
            blocks.append(_ex_post_ic_block(space, pointwise, i, t, r, pidx))
    return blocks


def _ir_floors(
    space: StateSpace,
    nums: Numbers,
    outside: list[np.ndarray],
    mode: str,
    outside_values: np.ndarray | None = None,
    marginals: list[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """What each agent's IR rows must reach: per node (``ir="ex_post"``, ``(n_nodes,)``) or per history and type
    (``(H, K_i)``; the root row only for ``"ex_ante"``), from the per-type outside options or, when given, the
    per-node outside values :math:`O_i(h, \theta)` (their interim expectation for the interim rows)."""
    env = space.env
    types = _profile_types(env)
    floors = []
    for i in range(env.n_agents):
        if outside_values is None:
            per_type = nums.array(outside[i])
            if mode == "ex_post":
                floors.append(per_type[np.tile(types[:, i], space.n_hist)])
            else:
                floors.append(
                    np.broadcast_to(per_type[None, :], (1 if mode == "ex_ante" else space.n_hist, per_type.size))
                )
            continue
        o_i = to_fractions(outside_values[i]) if nums.exact else np.asarray(outside_values[i], dtype=float)
        if mode == "ex_post":
            floors.append(o_i)
        else:
            obar = interim_expectation(space, i, o_i, nums, marginals=marginals)
            floors.append(obar[:1] if mode == "ex_ante" else obar)
    return floors


def _ir_blocks(
    space: StateSpace, u: np.ndarray, ubar: list[np.ndarray], floors: list[np.ndarray], mode: str
) -> list[_Block]:
    env = space.env
    k = env.n_profiles
    types = _profile_types(env)
    blocks: list[_Block] = []
    for i, ag in enumerate(env.agents):
        ki = ag.n_types
        if mode == "ex_post":
            slack = u[i] - floors[i]

            def describe(f: int, s: float, i=i) -> Violation:
                h, prof = divmod(int(f), k)
                return Violation(
                    "ir",
                    env.agents[i].name,
                    h,
                    f"{space.describe_history(h)}, profile {_profile_text(env, prof)}",
                    env.agents[i].types[int(types[prof, i])],
                    None,
                    _others_text(env, i, _others_index(env, i, prof)),
                    float(s),
                )

            blocks.append(_Block("ir", slack, describe, lambda f: f // k, (i,)))
        else:
            rows = ubar[i] if mode == "interim" else ubar[i][:1]
            slack = rows - floors[i]

            def describe(f: int, s: float, i=i, ki=ki) -> Violation:
                h, t = divmod(int(f), ki)
                return Violation(
                    "ir",
                    env.agents[i].name,
                    h,
                    space.describe_history(h),
                    env.agents[i].types[t],
                    None,
                    None,
                    float(s),
                )

            blocks.append(_Block("ir", slack, describe, lambda f, ki=ki: f // ki, (i,)))
    return blocks


def _others_index(env: Environment, agent: int, prof: int) -> int:
    counts = env.type_counts
    idx = np.unravel_index(int(prof), counts)
    other = [j for j in range(env.n_agents) if j != agent]
    if not other:
        return 0
    return int(np.ravel_multi_index(tuple(idx[j] for j in other), tuple(counts[j] for j in other)))


def _budget_blocks(
    space: StateSpace, nums: Numbers, transfers: np.ndarray, bel: np.ndarray, mode: str, signed: bool = False
) -> list[_Block]:
    """Budget rows; ``signed=True`` reports ex post rows as ``sum_i x_i`` (an equality) instead of ``-|sum|``."""
    env = space.env
    k = env.n_profiles
    if mode == "none":
        return []
    if mode == "ex_post":
        total = transfers.sum(axis=0)
        slack = total if signed else -np.abs(total)

        def describe(f: int, s: float) -> Violation:
            h, prof = divmod(int(f), k)
            where = f"{space.describe_history(h)}, profile {_profile_text(env, prof)}"
            return Violation("budget", None, h, where, None, None, None, float(s))

        return [_Block("budget", slack, describe, lambda f: f // k)]
    b = continuation_values(space, transfers.sum(axis=0)[None, :], nums)[0].reshape(space.n_hist, k)
    pi = np.einsum("hk,hk->h", bel, b)
    if mode == "savings":
        return _savings_blocks(space, nums, transfers.sum(axis=0), pi)
    if mode == "ex_ante":
        pi = pi[:1]

    def describe_h(f: int, s: float) -> Violation:
        h = int(f)
        return Violation("budget", None, h, space.describe_history(h), None, None, None, float(s))

    return [_Block("budget", pi, describe_h, lambda f: f)]


#: Most Bellman sweeps / policy improvements the savings check makes before it gives up (it says so).
SAVINGS_MAX_SWEEPS = 200_000
SAVINGS_MAX_POLICY_STEPS = 50


def _worst_solvency(space: StateSpace, nums: Numbers, collected: np.ndarray, pi: np.ndarray):
    r"""``W(h) = min{Pi(h), min_theta [X(h,theta) + delta W(child)]}`` and its minimising choice per history.

    ``choice[h]`` is ``-1`` (stop: the continuation surplus) or the profile index followed. Floats: value iteration
    from ``W = Pi`` until nothing moves (exact after ``depth + 1`` sweeps on a tree; geometric on cycles). Exact:
    the same sweeps on a tree; otherwise policy iteration, each policy evaluated by an exact solve of
    ``W = c + delta P W`` (``P`` a 0/1 pointer matrix), until the Bellman equation holds exactly.
    """
    k = space.env.n_profiles
    n_hist = space.n_hist
    child = np.asarray(space.child_hist)
    has = child >= 0
    delta = nums.delta
    pi_nodes = np.repeat(pi, k)

    def sweep(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cand = pi_nodes.copy()  # nodes without a continuation offer only "stop"
        cand[has] = collected[has] + delta * w[child[has]]
        cand = cand.reshape(n_hist, k)
        best = np.argmin(cand, axis=1)
        move = cand[np.arange(n_hist), best]
        take = np.array([bool(m < p) for m, p in zip(move, pi, strict=True)]) if nums.exact else move < pi
        return np.where(take, move, pi), np.where(take, best, -1)

    acyclic = space.kind == "tree"
    if not nums.exact or acyclic:
        w = pi.copy()
        choice = np.full(n_hist, -1)
        scale = 1.0 if nums.exact else max(1.0, float(np.max(np.abs(np.asarray(pi, dtype=float)))))
        for _ in range(SAVINGS_MAX_SWEEPS):
            new, choice = sweep(w)
            if nums.exact:
                done = all(a == b for a, b in zip(new, w, strict=True))
            else:
                done = bool(np.max(np.abs(new - w)) <= tolerances.SAVINGS_SWEEP * scale)
            w = new
            if done:
                return w, choice, True
        return w, choice, False
    # exact, with cycles: policy iteration from the float policy on the closed block of Markov states (all
    # histories of a Markov space, the tail states of a tree with a tail), then exact sweeps over the acyclic rest
    w_float, choice, _ = _worst_solvency(
        space, Numbers(space.env, exact=False), collected.astype(float), pi.astype(float)
    )
    block = np.arange(n_hist) if space.kind == "markov" else np.asarray(space.tail_hists)
    if block.size > EXACT_MARKOV_PROFILES + 1:
        raise ValueError(
            f"the exact savings check solves Markov blocks of at most {EXACT_MARKOV_PROFILES + 1} states; "
            f"this one has {block.size}"
        )
    pos = np.full(n_hist, -1)
    pos[block] = np.arange(block.size)
    w = np.array(pi, dtype=object, copy=True)
    for _ in range(SAVINGS_MAX_POLICY_STEPS):
        sub = choice[block]
        nodes = block * k + np.maximum(sub, 0)
        moving = sub >= 0
        mat = nums.zeros((block.size, block.size))
        mat[np.arange(block.size), np.arange(block.size)] = Rational(1)
        np.subtract.at(mat, (np.flatnonzero(moving), pos[child[nodes[moving]]]), delta)
        rhs = np.where(moving, collected[nodes], pi[block])
        w[block] = solve_exact(mat, rhs[None, :])[0]
        new, new_choice = sweep(w)
        if all(a == b for a, b in zip(new[block], w[block], strict=True)):
            break
        choice = new_choice
    else:
        return w, choice, False
    for _ in range(n_hist + 1):  # the block is a fixed point; the acyclic rest settles level by level
        new, choice = sweep(w)
        if all(a == b for a, b in zip(new, w, strict=True)):
            return w, choice, True
        w = new
    return w, choice, False


def _savings_blocks(space: StateSpace, nums: Numbers, collected: np.ndarray, pi: np.ndarray) -> list[_Block]:
    """Savings rows (module docstring): per-history solvency on a tree, the worst path elsewhere."""
    env = space.env
    k = env.n_profiles
    delta = nums.delta
    if space.kind == "tree":
        # forward along the unique paths: D(h') = D(h) + delta^(t-1) X(g), slack delta^(t-1) Pi(h) + D(h) in root
        # units, divided by delta^(t-1) (current value: account plus continuation) when delta > 0
        acc = nums.zeros((space.n_hist,))
        disc = nums.ones((space.n_hist,))
        for a, b in space.levels()[1:]:  # loop over depth levels only
            g = np.arange(a, b) - 1  # node g precedes history g + 1
            acc[a:b] = acc[g // k] + disc[g // k] * collected[g]
            disc[a:b] = disc[g // k] * delta
        root_units = acc + disc * pi
        slack = root_units / disc if delta != 0 else root_units

        def describe(f: int, s: float) -> Violation:
            h = int(f)
            return Violation(
                "budget", None, h, f"{space.describe_history(h)} (account + continuation)", None, None, None, float(s)
            )

        return [_Block("budget", slack, describe, lambda f: f)]
    w, choice, converged = _worst_solvency(space, nums, collected, pi)
    if not converged:
        raise ArithmeticError("the savings check did not converge (worst-case solvency over paths); report this model")
    slack = w[:1]

    def describe_path(f: int, s: float) -> Violation:
        h, steps = 0, []
        while choice[h] >= 0 and len(steps) < 8:  # follows one path: at most 8 steps are named
            steps.append("(" + ", ".join(env.profile_labels(int(choice[h])).values()) + ")")
            h = int(space.child_hist[h * k + choice[h]])
        tail = " -> ..." if choice[h] >= 0 else f", then the expected continuation at {space.describe_history(h)}"
        where = f"{space.describe_history(0)}; worst path: " + (" -> ".join(steps) if steps else "stop at once") + tail
        return Violation("budget", None, 0, where, None, None, None, float(s))

    return [_Block("budget", slack, describe_path, lambda f: np.zeros_like(f))]


def _summarise(blocks: list[_Block], bind_tol: float) -> tuple[Any, Violation | None, list[Violation], int, int]:
    """Max violation, worst row, listed binding rows, binding count and row count of one family."""
    n_rows = int(sum(b.slack.size for b in blocks))
    best: tuple[float, int, int] | None = None  # (slack, block, flat index)
    candidates: list[tuple[int, int, int]] = []  # (history, block, flat index)
    n_binding = 0
    flats = [b.slack.reshape(-1) for b in blocks]  # once: a non-contiguous slack is copied by each reshape
    for bi, b in enumerate(blocks):
        flat = flats[bi]
        if flat.size == 0:
            continue
        f = int(np.argmin(flat))
        if best is None or flat[f] < best[0]:
            best = (flat[f], bi, f)
        hits = np.flatnonzero(np.abs(flat) <= bind_tol)
        n_binding += int(hits.size)
        first = hits[:BINDING_LIST_CAP]
        candidates.extend(zip(b.hist_of(first).tolist(), [bi] * first.size, first.tolist(), strict=True))
    if best is None:
        return 0.0, None, [], 0, n_rows
    worst = blocks[best[1]].describe(best[2], best[0])
    candidates.sort()
    binding = [blocks[bi].describe(f, float(flats[bi][f])) for _, bi, f in candidates[:BINDING_LIST_CAP]]
    return max(0.0, -best[0]), worst, binding, n_binding, n_rows


def _limit_blocks(
    space: StateSpace, nums: Numbers, transfers: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> list[_Block]:
    r"""Transfer limits :math:`lo_i \le x_i(h, \theta) \le hi_i` at every node (slacks ``x - lo`` and ``hi - x``)."""
    env = space.env
    k = env.n_profiles
    blocks = []
    for i in range(env.n_agents):
        for j, (side, bound, sign) in enumerate((("lower", lo[i], 1), ("upper", hi[i], -1))):
            if not np.isfinite(bound):
                continue
            b = nums.array([float(bound)])[0]
            slack = (transfers[i] - b) * sign

            def describe(f: int, s: float, i=i, side=side, bound=float(bound)) -> Violation:
                h, prof = divmod(int(f), k)
                where = f"{space.describe_history(h)}, profile {_profile_text(env, prof)} ({side} limit {bound:g})"
                return Violation("limits", env.agents[i].name, h, where, None, None, None, float(s))

            blocks.append(_Block("limits", slack, describe, lambda f: f // k, (i, j)))  # side j: 0 lower, 1 upper
    return blocks


# ---------------------------------------------------------------------------------------------- node allocations
def exact_node_allocation(mechanism: Mechanism) -> np.ndarray:
    r"""A mechanism's node allocation :math:`p(a|h,\theta)` ``(n_nodes, n_actions)`` as exact rationals, as given:
    ``mechanism.exact_allocation`` when it carries one, else the floats of ``mechanism.allocation`` exactly as the
    dyadic rationals they are (:func:`mechlp.model.exact.to_fractions`). Nothing is renormalised here:
    :func:`_allocation_blocks` checks that every row is a distribution."""
    given = getattr(mechanism, "exact_allocation", None)
    if given is not None:
        return np.asarray(to_fractions(np.asarray(given, dtype=object)), dtype=object)
    return to_fractions(np.asarray(mechanism.allocation, dtype=float))


def _allocation_blocks(space: StateSpace, alloc: np.ndarray) -> list[_Block]:
    r"""The family ``"allocation"`` of an exact check of a node allocation: :math:`p(a|g) \ge 0` at every node and
    action, and :math:`-|\sum_a p(a|g) - 1|` at every node (zero exactly for a distribution)."""
    env = space.env
    k, n_act = env.n_profiles, env.n_actions

    def describe_entry(f: int, s: float) -> Violation:
        g, a = divmod(int(f), n_act)
        h, prof = divmod(g, k)
        where = f"{space.describe_history(h)}, profile {_profile_text(env, prof)}, p({env.actions[a]})"
        return Violation("allocation", None, h, where, None, None, None, float(s))

    def describe_row(f: int, s: float) -> Violation:
        h, prof = divmod(int(f), k)
        where = f"{space.describe_history(h)}, profile {_profile_text(env, prof)}, sum of p - 1"
        return Violation("allocation", None, h, where, None, None, None, float(s))

    total = alloc.sum(axis=1) - 1
    gap = np.where(total < 0, total, -total)  # -|sum - 1|, in the array's arithmetic
    return [
        _Block("allocation", alloc.reshape(-1), describe_entry, lambda f: f // (k * n_act)),
        _Block("allocation", gap, describe_row, lambda f: f // k),
    ]


# ---------------------------------------------------------------------------------------------- merged trees
def _merge_for_exact(mechanism: Mechanism, budget: str, max_denominator: int | None) -> MergedTree | None:
    """The tree of ``mechanism`` with identical subtrees merged, when that saves exact work, else ``None``.

    Histories merge when they agree in period, last profile and the bit patterns of every transfer in their
    subtrees (:func:`mechlp.model.spaces.merge_identical_subtrees`): equal floats are equal rationals, so every
    row has the same exact slack at all of them. Only for float transfers on a :class:`HistoryTree` with the
    environment's allocation, and not for the savings budget (its rows follow paths from the root).
    """
    space = mechanism.space
    if not isinstance(space, HistoryTree) or getattr(mechanism, "allocation", None) is not None:
        return None
    if budget == "savings" or (mechanism.exact_transfers is not None and max_denominator is None):
        return None
    bits = np.ascontiguousarray(np.asarray(mechanism.transfers, dtype=np.float64).T).view(np.int64)
    merged = merge_identical_subtrees(space, bits)
    return merged if merged.n_hist <= MERGE_SHARE * space.n_hist else None


def _expand(block: _Block, merged: MergedTree) -> _Block:
    """``block`` (rows of the merged histories) as rows of the tree: each tree history takes its class's slacks.

    Rows are indexed by history first (``(H, ...)``) or by node (``(H K,)``); rows at the root alone
    (``(1, ...)``, e.g. ex ante IR) are the tree's already (the root is never merged).
    """
    k = merged.env.n_profiles
    n_q, n_t = merged.n_hist, merged.tree.n_hist
    slack = block.slack
    if slack.ndim == 1 and slack.shape[0] == n_q * k:
        inner, shape = k, (n_t * k,)
    elif slack.shape[0] == n_q:
        inner, shape = int(np.prod(slack.shape[1:], dtype=np.int64)), (n_t, *slack.shape[1:])
    else:
        return block
    classes = merged.classes
    expanded = slack.reshape(n_q, inner)[classes].reshape(shape)

    def describe(f: int, s: float) -> Violation:
        h, rest = divmod(int(f), inner)
        hq = int(classes[h])
        v = block.describe(hq * inner + rest, s)
        where = v.where.replace(merged.describe_history(hq), merged.tree.describe_history(h), 1)
        return replace(v, history=h, where=where)

    return _Block(block.family, expanded, describe, lambda f: np.asarray(f) // inner, block.key)


def _restrict(block: _Block, keep: np.ndarray) -> _Block:
    """The rows of ``block`` at the histories where ``keep`` (``(n_hist,)`` bool) is true."""
    flat = block.slack.reshape(-1)
    rows = np.flatnonzero(keep[block.hist_of(np.arange(flat.size))])
    return _Block(
        block.family,
        flat[rows],
        lambda f, s: block.describe(int(rows[int(f)]), s),
        lambda f: block.hist_of(rows[np.asarray(f, dtype=np.int64)]),
        block.key,
    )


# ---------------------------------------------------------------------------------------------- verify
def verify(
    mechanism: Mechanism,
    *,
    ic: str = "bayesian",
    ir: str = "interim",
    budget: str = "interim",
    outside_option: Any = 0.0,
    tol: float = tolerances.FEASIBILITY,
    exact: bool = False,
    max_denominator: int | None = None,
    question: Question | None = None,
    histories: Sequence[int] | np.ndarray | None = None,
    outside_values: np.ndarray | None = None,
) -> Verification:
    r"""Re-evaluate every IC, IR and budget constraint of ``mechanism`` from its transfers.

    Parameters
    ----------
    mechanism : Mechanism
        Transfers on a :class:`~mechlp.model.spaces.HistoryTree` or :class:`~mechlp.model.spaces.MarkovSpace`, with the
        environment's allocation, or with ``mechanism.allocation`` (node-dependent: randomised or history
        dependent) when set. In exact mode the node allocation is read as given (``mechanism.exact_allocation``,
        else the floats exactly, :func:`exact_node_allocation`) and the family ``"allocation"`` checks that every
        row is a distribution exactly.
    ic : {"bayesian", "ex_post", "local"}
        ``"bayesian"``: :math:`\bar U_i(t|h) \ge D_i(r; t|h)` for every history and every ``t != r``
        (Lamba 2022, Definition 1). ``"ex_post"``: the same pointwise in the others' current types
        (Definition 7).
        ``"local"``: Bayesian rows for adjacent types only; passing it does **not** certify global IC, so a
        mechanism designed with local constraints must be re-verified with ``ic="bayesian"``.
    ir : {"interim", "ex_post", "ex_ante"}
        ``"interim"``: :math:`\bar U_i(t|h) \ge o_i(t)` at every history (Definition 2); ``"ex_post"``:
        :math:`U_i(h, \theta) \ge o_i(\theta_i)` at every node; ``"ex_ante"``: the interim rows at the root
        only.
    budget : {"ex_ante", "interim", "ex_post", "savings", "none"}
        ``"interim"``: :math:`\Pi(h) \ge 0` for all ``h`` (Definition 3); ``"ex_ante"``:
        :math:`\Pi(\text{root}) \ge 0` (Definition 4); ``"ex_post"``: :math:`\sum_i x_i(h, \theta) = 0` at
        every node (Definition 5), slack :math:`-|\sum_i x_i|`; ``"savings"``: the designer's solvency on every
        path (module docstring); ``"none"``: not checked (no ``"budget"`` entry in the result).
    outside_option : float, sequence, or mapping
        Reservation utility :math:`o_i(t)`: one number for everyone, one per agent (a sequence of length
        ``n_agents`` or a ``{name: value}`` mapping), or per agent per type (entries of length ``K_i``).
    tol : float
        A family passes when its largest violation is at most ``tol`` (default ``tolerances.FEASIBILITY``).
        Ignored with ``exact=True``.
    exact : bool
        Re-check in exact rational arithmetic. Model numbers are read as the simplest fractions within their
        floats' rounding (see :mod:`mechlp.model.exact`: 0.95 is 19/20). Transfers are taken exactly as the floats
        are (dyadic rationals), or from ``mechanism.exact_transfers`` (fractions) when the mechanism carries
        them (constructions whose transfers are model numbers, e.g. the discrete VCG, and exact
        constructions do), or as the simplest fractions with denominator at most ``max_denominator`` when that
        is given (e.g. decimals typed by hand). A family passes only when *no* row is violated (every slack
        ``>= 0`` exactly, ex post budget sums exactly zero), and binding means exactly zero slack. Cost: one
        GMP rational operation (about 0.1-0.3 microseconds) per term, about 1.5 microseconds per node on a
        2x2 tree; Markov spaces need one exact K x K solve (``mechlp.model.exact.EXACT_MARKOV_PROFILES``).
        On a tree, histories whose subtrees carry bit-identical transfers (same period and last profile) are
        merged first (:func:`mechlp.model.spaces.merge_identical_subtrees`) and each distinct subtree is
        evaluated once; every row of a merged history has the same exact slack (equal floats are equal
        rationals, and beliefs depend on the last profile only), so the verdict, counts and named rows are
        those of the full evaluation. A min-max mechanism of a Markov-kernel tree has one distinct subtree
        per (period, last profile). ``options["distinct_histories"]`` says how many were evaluated (absent
        when nothing was merged).
    max_denominator : int, optional
        See ``exact``.
    question : Question, optional
        The parsed question (:class:`mechlp.model.question.Question`) instead of ``ic``, ``ir``, ``budget``
        and ``outside_option``: the solvers pass the object their builders used, so both read one parse. When it
        has transfer limits they are checked too, as the family ``"limits"`` (:math:`lo_i \le x_i(h, \theta)
        \le hi_i` at every node).
    outside_values : ndarray, shape (n_agents, n_nodes), optional
        Outside options that depend on the node, :math:`O_i(h, \theta)` (e.g. Bergemann and Valimaki's 2010
        value of opting out while the planner runs the efficient policy without ``i``): IR rows then read
        :math:`U_i(h, \theta) \ge O_i(h, \theta)` (``ir="ex_post"``) or :math:`\bar U_i(t|h) \ge E[O_i(h,
        (t, \theta_{-i}))|h]` (``"interim"``; the root for ``"ex_ante"``), instead of ``outside_option`` (which
        must then be zero).
    histories : array_like of int, optional
        Check (and count) only the rows at these histories (default: every history). The rows are computed as
        usual, from the whole space; e.g. :mod:`mechlp.workflows.split` checks the levels above a cut this way.

    Returns
    -------
    Verification

    Notes
    -----
    Utilities come from the recursion of Lamba (2022), eq. (3) (:meth:`Mechanism.utilities`), and the
    designer values from the same recursion on :math:`\sum_i x_i`; the beliefs, interim utilities, deviation
    payoffs and surpluses are computed here, independently of the LP constraint builders. See the module
    docstring for the formulas. Rows are checked at every history of the space, reachable or not, and for
    every type, whatever its probability.
    """
    if not isinstance(mechanism, Mechanism):
        raise TypeError(f"mechanism must be a Mechanism, got {type(mechanism).__name__}")
    if question is None:
        question = Question.parse(mechanism.space.env, ic=ic, ir=ir, budget=budget, outside_option=outside_option)
    elif question.env is not mechanism.space.env:
        raise ValueError("question was parsed for a different environment than the mechanism's")
    ic, ir, budget = question.ic, question.ir, question.budget
    if isinstance(tol, bool) or not isinstance(tol, int | float | np.integer | np.floating):
        raise TypeError(f"tol must be a number, got {type(tol).__name__}")
    if not math.isfinite(float(tol)) or tol < 0:
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    tol = 0.0 if exact else float(tol)
    space = mechanism.space
    env = space.env
    nums = Numbers(env, exact=bool(exact))
    outside = list(question.outside)
    if outside_values is not None:
        outside_values = np.asarray(outside_values, dtype=float)
        if outside_values.shape != (env.n_agents, space.n_nodes):
            raise ValueError(
                f"outside_values has shape {outside_values.shape}; expected ({env.n_agents}, {space.n_nodes}) "
                "(agents x nodes)"
            )
        if not np.isfinite(outside_values).all():
            raise ValueError("outside_values must be finite")
        if any(np.any(np.asarray(o, dtype=float) != 0) for o in question.outside):
            raise ValueError("give outside_option or outside_values, not both")
    node_alloc = getattr(mechanism, "allocation", None)
    if node_alloc is not None and exact:
        node_alloc = exact_node_allocation(mechanism)
    # merging reads only the transfers: not with per-node outside values
    merged = _merge_for_exact(mechanism, budget, max_denominator) if exact and outside_values is None else None
    checked = space if merged is None else merged  # the space whose rows are evaluated
    if exact:
        x = mechanism.exact_transfers if max_denominator is None else None
        if x is None:
            floats = mechanism.transfers if merged is None else mechanism.transfers[:, merged.representative_nodes]
            x = to_fractions(floats, max_denominator)
    else:
        x = mechanism.transfers
    families = _evaluate(
        checked, nums, x, ic, ir, budget, outside, node_alloc=node_alloc, outside_values=outside_values
    )
    if question.has_limits:
        families["limits"] = _limit_blocks(checked, nums, x, question.limits_lo, question.limits_hi)
    if node_alloc is not None and exact:  # the allocation as given: every row a distribution, exactly
        families["allocation"] = _allocation_blocks(space, node_alloc)
    if merged is not None:
        families = {fam: [_expand(b, merged) for b in blocks] for fam, blocks in families.items()}
    ok, max_violation, worst, binding, n_binding, n_rows, exact_violation = _verdict(
        families, space.n_hist, histories, exact, tol
    )
    options = {
        "ic": ic,
        "ir": ir,
        "budget": budget,
        "outside_option": [o.tolist() for o in outside],
        "limits": question.limits,
        "agents": [ag.name for ag in env.agents],
        "exact": bool(exact),
        "max_denominator": max_denominator,
        **({"distinct_histories": checked.n_hist} if merged is not None else {}),
        **({"outside_values": "per node"} if outside_values is not None else {}),
    }
    return Verification(ok, tol, max_violation, worst, binding, n_binding, n_rows, options, exact_violation)


def _verdict(
    families: dict[str, list[_Block]], n_hist: int, histories: Any, exact: bool, tol: float
) -> tuple[bool, dict, dict, dict, dict, dict, dict]:
    """Every family's rows summarised (at ``histories`` only, when given): ``(ok, max_violation, worst, binding,
    n_binding, n_rows, exact_violation)`` of a :class:`Verification`; ``ok`` needs exact zeros in exact mode."""
    if histories is not None:
        keep = np.zeros(n_hist, dtype=bool)
        idx = np.asarray(histories).reshape(-1)
        if idx.size and idx.dtype.kind not in "iu":
            raise TypeError(f"histories must be integer history indices, got dtype {idx.dtype}")
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= n_hist):
            raise ValueError(f"histories must be in 0..{n_hist - 1}")
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
        mv, w, bind, nb, nr = _summarise(blocks, bind_tol)
        max_violation[fam], worst[fam], binding[fam], n_binding[fam], n_rows[fam] = float(mv), w, bind, nb, nr
        if exact:
            exact_violation[fam] = str(Fraction(mv))
    if exact:
        ok = all(Fraction(v) == 0 for v in exact_violation.values())
    else:
        ok = all(v <= tol for v in max_violation.values())
    return ok, max_violation, worst, binding, n_binding, n_rows, exact_violation


def _evaluate(
    space: StateSpace,
    nums: Numbers,
    transfers: np.ndarray,
    ic: str,
    ir: str,
    budget: str,
    outside: list[np.ndarray],
    signed_budget: bool = False,
    node_alloc: np.ndarray | None = None,
    ic_keys: set | None = None,
    outside_values: np.ndarray | None = None,
) -> dict[str, list[_Block]]:
    """Every row's slack, by family, for ``transfers`` in ``nums``'s arithmetic (the verifier's core).

    ``node_alloc`` (``(n_nodes, n_actions)`` floats, optional): a node-dependent allocation used instead of the
    environment's per-profile rule (action-free kernels only; checked by :class:`~mechlp.model.mechanism.Mechanism`).
    ``ic_keys`` (optional): only the IC blocks ``(agent, type, misreport)`` in this set (a certificate's support).
    ``outside_values`` (``(n_agents, n_nodes)``, optional): per-node outside values for the IR rows
    (:func:`_ir_floors`) instead of ``outside``.
    """
    env = space.env
    k = env.n_profiles
    prof = np.tile(np.arange(k), space.n_hist)
    types = _profile_types(env)
    if node_alloc is None:  # the environment's allocation: the table of each node's period (row space.node_key)
        flow = nums.flows()[:, np.asarray(space.node_key)]
    else:
        flow = np.stack(
            [np.einsum("ga,ga->g", node_alloc, nums.valuation[i][types[prof, i]]) for i in range(env.n_agents)]
        )
    u = continuation_values(space, flow - transfers, nums)
    margs = marginal_beliefs(space, nums)  # once: every interim expectation below reads them
    ubar = (
        [interim_expectation(space, i, u[i], nums, marginals=margs) for i in range(env.n_agents)]
        if ir != "ex_post"
        else []
    )
    floors = _ir_floors(space, nums, outside, ir, outside_values, margs)
    families: dict[str, list[_Block]] = {
        "ic": _ic_blocks(space, nums, u, ic, node_alloc, margs, ic_keys),
        "ir": _ir_blocks(space, u, ubar, floors, ir),
    }
    if budget != "none":
        bel = joint_beliefs(space, nums, marginals=margs)
        families["budget"] = _budget_blocks(space, nums, transfers, bel, budget, signed_budget)
    return families


# ---------------------------------------------------------------------------------------------- impossibility
def _object_zeros(shape) -> np.ndarray:
    """An object array of int zeros (dense multiplier arrays are mostly zeros, cheap to compare and convert)."""
    arr = np.empty(shape, dtype=object)
    arr.fill(0)
    return arr


#: The sides of a transfer limit, as certificate files write them (index 0: ``x - lo >= 0``, 1: ``hi - x >= 0``).
LIMIT_SIDES = ("lower", "upper")


@dataclass
class ImpossibilityCertificate:
    r"""Farkas multipliers proving that no mechanism on ``space`` satisfies IC, IR, the budget rows and limits.

    Sign convention (see :mod:`mechlp.proofs.farkas`): with every constraint written ``slack_r >= 0``,
    :math:`\sum_r y_r\,\text{slack}_r(\text{mechanism}) = -\gamma` for *every* mechanism, with ``y >= 0`` and
    ``gamma > 0``; a mechanism satisfying all rows would make the left side ``>= 0``. Ex post budget rows are
    equalities :math:`\sum_i x_i(g) = 0`: their multipliers have either sign.

    Attributes
    ----------
    space : StateSpace
    options : dict
        ``ic``, ``ir``, ``budget`` (the rows used), ``question_budget`` (the notion asked about),
        ``outside_option`` and, for rows with transfer limits, ``limits`` (``{agent: [lo, hi]}``, ``None`` open).
    gamma : Fraction
        :math:`\gamma = b^T y`.
    ic : dict
        ``(agent, type, misreport) -> (n_hist,)`` multipliers (fractions) on the IC rows; ``(n_hist, M)``, one per
        others' profile ``m``, for ex post IC rows.
    ir : dict
        ``agent -> (n_ir_hist, K_i)`` multipliers on the IR rows (``n_ir_hist`` is 1 for ex ante IR);
        ``(n_nodes,)``, one per node, for ex post IR rows.
    budget : ndarray
        Multipliers on the budget rows :math:`\Pi(h) \ge 0` (one per history, or the root only); for ex post
        rows one per node, of either sign, on :math:`\sum_i x_i(g) = 0`.
    exact_repaired : bool
        Whether the float multipliers were repaired to satisfy :math:`A^T y = 0` exactly.
    checks : dict
        ``"float"`` and ``"exact"`` results of :func:`check_impossibility` (filled by the generator).
    minmax_surplus : ndarray or None
        :math:`\Pi^*` per history, for the summary.
    limits : dict
        ``(agent, side) -> (n_nodes,)`` multipliers on the transfer limits (``side`` 0: :math:`x_i(g) - lo_i \ge
        0`, 1: :math:`hi_i - x_i(g) \ge 0`; :data:`LIMIT_SIDES`).
    """

    space: StateSpace
    options: dict
    gamma: Fraction
    ic: dict
    ir: dict
    budget: np.ndarray
    exact_repaired: bool = False
    checks: dict = field(default_factory=dict)
    minmax_surplus: np.ndarray | None = None
    limits: dict = field(default_factory=dict)

    @staticmethod
    def _empty(space: StateSpace, options: Mapping) -> tuple[dict, np.ndarray]:
        """Zero IR and budget multiplier arrays in the shapes of ``options``' rows."""
        env = space.env
        ir_opt, b_opt = options["ir"], options["budget"]
        ir = {
            i: _object_zeros(
                (space.n_nodes,) if ir_opt == "ex_post" else (space.n_hist if ir_opt == "interim" else 1, ag.n_types)
            )
            for i, ag in enumerate(env.agents)
        }
        n_b = space.n_nodes if b_opt == "ex_post" else space.n_hist if b_opt == "interim" else 1
        return ir, _object_zeros(n_b)

    def _ic_array(self, key: tuple[int, int, int]) -> np.ndarray:
        if key not in self.ic:
            m = self.space.env.others_count(key[0])
            self.ic[key] = _object_zeros(
                (self.space.n_hist, m) if self.options["ic"] == "ex_post" else self.space.n_hist
            )
        return self.ic[key]

    def _limit_array(self, key: tuple[int, int]) -> np.ndarray:
        if key not in self.limits:
            self.limits[key] = _object_zeros(self.space.n_nodes)
        return self.limits[key]

    @classmethod
    def from_rows(cls, space, rows, y, gamma, options, exact_repaired=False, minmax_surplus=None, check_exact=True):
        """Sort multipliers of labelled rows (:class:`mechlp.constraints.interim.InterimRows`) by row."""
        ir, budget = cls._empty(space, options)
        cert = cls(space, dict(options), Fraction(gamma), {}, ir, budget, exact_repaired, {}, minmax_surplus)
        y = np.asarray(y, dtype=object)
        fam = rows.family
        sel = np.flatnonzero(fam == "ic")
        for key in sorted(
            {
                (int(a), int(t), int(r))
                for a, t, r in zip(*(rows.agent[sel], rows.type[sel], rows.misreport[sel]), strict=True)
            }
        ):
            mine = sel[(rows.agent[sel] == key[0]) & (rows.type[sel] == key[1]) & (rows.misreport[sel] == key[2])]
            arr = cert._ic_array(key)
            if arr.ndim == 2:
                arr[rows.hist[mine], rows.others[mine]] = y[mine]
            else:
                arr[rows.hist[mine]] = y[mine]
        for i in range(space.env.n_agents):  # loop over agents
            mine = np.flatnonzero((fam == "ir") & (rows.agent == i))
            if ir[i].ndim == 1:
                ir[i][rows.node[mine]] = y[mine]
            else:
                ir[i][rows.hist[mine] if ir[i].shape[0] > 1 else 0, rows.type[mine]] = y[mine]
            for side in (0, 1):
                mine = np.flatnonzero((fam == "limits") & (rows.agent == i) & (rows.side == side))
                if mine.size:
                    cert._limit_array((i, side))[rows.node[mine]] = y[mine]
        mine = np.flatnonzero(fam == "budget")
        if options["budget"] == "ex_post":
            budget[rows.node[mine]] = y[mine]
        elif mine.size:
            budget[rows.hist[mine] if budget.size > 1 else np.zeros(mine.size, dtype=np.int64)] = y[mine]
        cert.checks["float"] = check_impossibility(cert, exact=False)
        if check_exact:
            cert.checks["exact"] = check_impossibility(cert, exact=True)
        return cert

    @property
    def ok(self) -> bool:
        """True when every check that was run holds (the float check always runs; the exact one when asked)."""
        return bool(self.checks) and all(bool(c.get("ok")) for c in self.checks.values())

    def _per_history(self, arr: np.ndarray, by_node: bool) -> np.ndarray:
        """``|multipliers|`` summed per history (``(n_hist,)`` floats) of an array indexed by history first, or
        by node when ``by_node``."""
        k = self.space.env.n_profiles
        a = np.abs(np.asarray(arr, dtype=float))
        if by_node:
            return a.reshape(-1, k).sum(axis=1)
        return a.reshape(a.shape[0], -1).sum(axis=1)

    def weight_by_history(self) -> dict[int, float]:
        """Total multiplier weight (budget, IC, IR and limit rows; absolute values) per history, for the summary."""
        n = self.space.n_hist
        w = np.zeros(n)
        for arr in self.ic.values():
            w += self._per_history(arr, False)
        for arr in self.ir.values():
            per = self._per_history(arr, arr.ndim == 1)
            w[: per.size] += per
        for arr in self.limits.values():
            w += self._per_history(arr, True)
        per = self._per_history(self.budget, self.options["budget"] == "ex_post")
        w[: per.size] += per
        return {int(h): float(w[h]) for h in np.flatnonzero(w != 0)}

    def _budget_by_history(self) -> np.ndarray:
        """Budget weight per history (``|z|`` summed over a history's nodes for ex post rows)."""
        by_node = self.options["budget"] == "ex_post"
        if not by_node:
            return np.asarray(self.budget, dtype=float)
        return self._per_history(self.budget, True)

    def summary(self) -> str:
        sp = self.space
        opts = self.options
        n_ic = sum(int(np.count_nonzero(a != 0)) for a in self.ic.values())
        n_ir = sum(int(np.count_nonzero(a != 0)) for a in self.ir.values())
        n_lim = sum(int(np.count_nonzero(a != 0)) for a in self.limits.values())
        b_w = self._budget_by_history()
        hb = [int(h) for h in np.flatnonzero(b_w != 0)]
        n_b = int(np.count_nonzero(self.budget != 0))
        certified_by = {"interim": "interim rows: ex post balance implies them", "ex_ante": "the ex ante row"}
        note = ""
        if opts["question_budget"] != opts["budget"] and opts["question_budget"] in ("ex_post", "savings"):
            which = certified_by.get(opts["budget"], opts["budget"] + " rows")
            note = (
                f" (certified with {which}"
                + ("" if opts["budget"] == "interim" else ": savings balance implies it")
                + ")"
            )
        limits = "" if not opts.get("limits") else f" and transfer limits {opts['limits']}"
        lines = [
            f"impossible: no mechanism satisfies IC ({opts['ic']}), IR ({opts['ir']}), "
            f"{opts['question_budget']} budget balance{note}{limits}",
        ]
        if opts.get("focus"):
            lines.append(f"  found on the subtree of {opts['focus']} (its rows involve no other history)")
        parts = f"{n_b} budget rows, {n_ic} IC rows, {n_ir} IR rows" + (f", {n_lim} limit rows" if self.limits else "")
        lines += [f"  Farkas multipliers: {parts}; gamma = {float(self.gamma):.6g}"]
        order = sorted(hb, key=lambda h: -float(b_w[h]))
        for h in order[:5]:
            where = sp.describe_history(h)
            text = f"  budget rows at {where}: weight {float(b_w[h]):.6g}"
            if self.minmax_surplus is not None:
                text += f"; the most surplus any IC+IR mechanism can raise there is Pi* = {self.minmax_surplus[h]:.6g}"
            lines.append(text)
        for kind in ("float", "exact"):
            c = self.checks.get(kind)
            if c:
                lines.append(f"  {kind} check: {'OK' if c['ok'] else 'FAILED'} ({c['message']})")
        if "exact" not in self.checks:
            lines.append("  exact check: not run (model numbers are long floats or the problem is large)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready: options, gamma and every nonzero multiplier as an exact fraction string with its labels.

        Rows at a node (ex post IR and budget, limits) carry ``profile`` (``{agent: type label}``), ex post IC
        rows ``others`` (the other agents' labels), limit rows ``side`` (``"lower"`` / ``"upper"``)."""
        env = self.space.env
        sp = self.space
        k = env.n_profiles
        mult = []

        def entry(family: str, h: int, value: Any, **labels: Any) -> dict:
            return {
                "family": family,
                **labels,
                "history": int(h),
                "where": sp.describe_history(int(h)),
                "value": str(value),
                "value_float": float(value),
            }

        for (i, t, r), arr in sorted(self.ic.items()):
            ag = env.agents[i]
            labels = {"agent": ag.name, "type": ag.types[t], "misreport": ag.types[r]}
            if arr.ndim == 2:
                for h, m in zip(*np.nonzero(arr != 0), strict=True):
                    prof = env.profile_labels(int(env.profile_index(i, t, np.asarray(m))))
                    others = {name: lab for name, lab in prof.items() if name != ag.name}
                    mult.append(entry("ic", h, arr[h, m], **labels, others=others))
            else:
                mult += [entry("ic", h, arr[h], **labels) for h in np.flatnonzero(arr != 0)]
        for i, arr in sorted(self.ir.items()):
            ag = env.agents[i]
            if arr.ndim == 1:
                for g in np.flatnonzero(arr != 0):
                    prof = env.profile_labels(int(g % k))
                    mult.append(entry("ir", g // k, arr[g], agent=ag.name, type=prof[ag.name], profile=prof))
            else:
                for h, t in zip(*np.nonzero(arr != 0), strict=True):
                    mult.append(entry("ir", h, arr[h, t], agent=ag.name, type=ag.types[int(t)]))
        for (i, side), arr in sorted(self.limits.items()):
            for g in np.flatnonzero(arr != 0):
                labels = {
                    "agent": env.agents[i].name,
                    "side": LIMIT_SIDES[side],
                    "profile": env.profile_labels(int(g % k)),
                }
                mult.append(entry("limits", g // k, arr[g], **labels))
        if self.options["budget"] == "ex_post":
            for g in np.flatnonzero(self.budget != 0):
                mult.append(entry("budget", g // k, self.budget[g], profile=env.profile_labels(int(g % k))))
        else:
            mult += [entry("budget", h, self.budget[h]) for h in np.flatnonzero(self.budget != 0)]
        opts = dict(self.options)
        opts["outside_option"] = [[float(v) for v in np.asarray(o).ravel()] for o in opts.get("outside_option", [])]
        return {
            "kind": "impossibility",
            "space": sp.kind,
            "horizon": getattr(sp, "horizon", "infinite"),
            "options": opts,
            "gamma": str(self.gamma),
            "multipliers": mult,
            "exact_repaired": bool(self.exact_repaired),
            "checks": self.checks,
            "summary": self.summary(),
        }

    @classmethod
    def from_dict(cls, d: Mapping, space: StateSpace) -> ImpossibilityCertificate:
        """Rebuild a certificate on ``space`` from :meth:`to_dict` output (labels are matched by name)."""
        env = space.env
        opts = dict(d["options"])
        k = env.n_profiles
        names = {ag.name: i for i, ag in enumerate(env.agents)}
        ir, budget = cls._empty(space, opts)
        cert = cls(space, opts, Fraction(0), {}, ir, budget, bool(d.get("exact_repaired", False)))
        if not isinstance(d.get("multipliers"), list) or "gamma" not in d:
            raise ValueError("certificate: an impossibility certificate needs a list 'multipliers' and 'gamma'")

        def node_of(m: Mapping, h: int) -> int:
            """The node of a row at a node: its history and ``profile`` ``{agent: label}`` (every agent)."""
            prof = m["profile"]
            if not isinstance(prof, Mapping) or sorted(prof) != sorted(names):
                raise ValueError(f"'profile' must name the type of every agent {sorted(names)}, got {prof!r}")
            idx = [env.agents[i].types.index(prof[ag.name]) for i, ag in enumerate(env.agents)]
            return h * k + int(np.ravel_multi_index(tuple(idx), env.type_counts))

        for j, m in enumerate(d["multipliers"]):
            try:
                value = exact_number(m["value"], "value")
                fam = m["family"]
                h = int(m["history"])
                if not 0 <= h < space.n_hist:
                    raise ValueError(f"history {h} outside 0..{space.n_hist - 1}")
                if fam == "budget":
                    if opts["budget"] == "ex_post":
                        budget[node_of(m, h)] = value
                        continue
                    if budget.size == 1 and h != 0:
                        raise ValueError(
                            f"budget row at history {h}, but the rows of this question ({opts['budget']} budget) "
                            "have one budget row, at the root"
                        )
                    budget[h if budget.size > 1 else 0] = value
                    continue
                i = names[m["agent"]]
                if fam == "limits":
                    side = LIMIT_SIDES.index(m["side"])
                    lo, hi = agent_limits(opts.get("limits"), env)
                    if not np.isfinite((lo if side == 0 else hi)[i]):
                        raise ValueError(f"a row on the {m['side']} limit of {m['agent']!r}, which is open")
                    cert._limit_array((i, side))[node_of(m, h)] = value
                    continue
                t = env.agents[i].types.index(m["type"])
                if fam == "ir":
                    if opts["ir"] == "ex_post":
                        g = node_of(m, h)
                        if int(env.profile_types()[g % k, i]) != t:
                            raise ValueError(f"type {m['type']!r} is not the type of {m['agent']!r} in 'profile'")
                        ir[i][g] = value
                        continue
                    if ir[i].shape[0] == 1 and h != 0:
                        raise ValueError(
                            f"IR row at history {h}, but the rows of this question ({opts['ir']} IR) are at the root"
                        )
                    ir[i][h if ir[i].shape[0] > 1 else 0, t] = value
                elif fam == "ic":
                    r = env.agents[i].types.index(m["misreport"])
                    arr = cert._ic_array((i, t, r))
                    if arr.ndim == 2:
                        oth = m["others"]
                        other = [a for a in env.agents if a.name != m["agent"]]
                        if not isinstance(oth, Mapping) or sorted(oth) != sorted(a.name for a in other):
                            raise ValueError(f"'others' must name the type of every other agent, got {oth!r}")
                        idx = tuple(a.types.index(oth[a.name]) for a in other)
                        arr[h, int(np.ravel_multi_index(idx, tuple(a.n_types for a in other))) if other else 0] = value
                    else:
                        arr[h] = value
                else:
                    raise ValueError(f"unknown family {fam!r}")
            except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
                raise ValueError(f"certificate multiplier #{j} ({m!r}) is not valid for this model: {exc}") from None
        cert.gamma = exact_number(d["gamma"], "certificate: gamma")
        return cert


def _certificate_value(cert: ImpossibilityCertificate, nums: Numbers, transfers: np.ndarray, outside) -> Any:
    """``L(x) = sum_r y_r slack_r(x)`` with the verifier's own slack evaluation."""
    opts = cert.options
    keys = {key for key, y in cert.ic.items() if np.any(np.asarray(y, dtype=object) != 0)}
    fams = _evaluate(
        cert.space, nums, transfers, opts["ic"], opts["ir"], opts["budget"], outside, signed_budget=True, ic_keys=keys
    )
    conv = (lambda a: a) if nums.exact else (lambda a: np.asarray(a, dtype=float))
    total = Rational(0) if nums.exact else 0.0
    for blk in fams["ic"]:
        y = cert.ic.get(blk.key)
        if y is not None:
            total = total + (conv(y) * blk.slack).sum()
    for blk in fams["ir"]:
        total = total + (conv(cert.ir[blk.key[0]]) * blk.slack).sum()
    if "budget" in fams:
        total = total + (conv(cert.budget) * fams["budget"][0].slack).sum()
    if cert.limits:
        lo, hi = agent_limits(opts.get("limits"), cert.space.env)
        for blk in _limit_blocks(cert.space, nums, transfers, lo, hi):
            y = cert.limits.get(blk.key)
            if y is not None:
                total = total + (conv(y) * blk.slack).sum()
    return total


def certificate_coefficients(cert: ImpossibilityCertificate, exact: bool = False) -> np.ndarray:
    r"""The coefficient of every transfer in ``L(x) = sum_r y_r slack_r(x)``: :math:`A^{\top} y` in LP terms.

    ``L`` is affine in the transfers; its gradient is computed in one adjoint pass over this module's rows (the
    transposes of :func:`_ic_blocks`, :func:`_ir_blocks` and :func:`_budget_blocks`), never from LP rows:

    * the rows weight the utilities, :math:`L = \sum_i \sum_g w_i(g)\, U_i(g) + \sum_g w_B(g)\, B(g) + c` with

      - IR row :math:`(h, t)`: :math:`w_i(h, (t, m)) \mathrel{+}= y\, P(m|h)`;
      - IC row :math:`(h, t, r)`: :math:`w_i(h, (t, m)) \mathrel{+}= y P(m|h)`,
        :math:`w_i(h, (r, m)) \mathrel{-}= y P(m|h)` and, at the child :math:`c` of the node :math:`(h, (r, m))`,
        :math:`w_i(c, (\tau', m')) \mathrel{-}= \delta\, y P(m|h)\, [G_i(\tau'|t) - G_i(\tau'|r)]\,
        \prod_{j \ne i} G_j(m'_j|m_j)` (kernels at the reported profile);
      - budget row :math:`h`: :math:`w_B(h, \theta) \mathrel{+}= y\, P(\theta|h)`;

    * :math:`U_i` is the continuation value of :math:`\text{flow}_i - x_i` and :math:`B` that of
      :math:`\sum_i x_i`, so the coefficient of :math:`x_i(g)` is :math:`-c_i(g) + c_B(g)` with
      :math:`c = ` :func:`mechlp.model.beliefs.continuation_adjoint` of the weights.

    Only histories with a nonzero multiplier contribute, and the adjoint propagates only nonzero weights, so exact
    arithmetic costs in proportion to the certificate's support and the subtrees below it.

    Parameters
    ----------
    cert : ImpossibilityCertificate
    exact : bool
        Rational arithmetic (model numbers read as written, multipliers as the certificate's fractions).

    Returns
    -------
    ndarray, shape (n_agents, n_nodes)
        Fractions in exact mode, floats otherwise; every entry is zero exactly when ``A^T y = 0``.
    """
    return _certificate_affine(cert, Numbers(cert.space.env, exact=exact))[0]


def _add_ex_post_ir(y_all, outside_i, types_i, k, w_u_i, constant):
    """Add the ex post IR rows ``U_i(g) - o_i(theta_{g,i}) >= 0`` (multiplier ``y_all[g]`` per node) to agent
    ``i``'s utility weights ``w_u_i`` (in place) and return the constant with theirs."""
    g = np.flatnonzero(y_all != 0)
    w_u_i[g] = w_u_i[g] + y_all[g]
    return constant - (y_all[g] * outside_i[types_i[g % k]]).sum()


def _add_limit_terms(cert, env, nums, conv, direct, constant):
    """Add the limit rows' multipliers to ``direct`` (the coefficients on the transfers themselves, in place) and
    return the constant with theirs: ``x_i(g) - lo_i >= 0`` (side 0) and ``hi_i - x_i(g) >= 0`` (side 1)."""
    lo, hi = agent_limits(cert.options.get("limits"), env)
    for (i, side), y_l in cert.limits.items():
        y_l = conv(y_l)
        g = np.flatnonzero(y_l != 0)
        bound = nums.array([float(lo[i] if side == 0 else hi[i])])[0]
        sign = 1 if side == 0 else -1
        direct[i, g] = direct[i, g] + sign * y_l[g]
        constant = constant - sign * bound * y_l[g].sum()
    return constant


def _certificate_affine(cert: ImpossibilityCertificate, nums: Numbers) -> tuple[np.ndarray, Any]:
    """``(A^T y, L(0))`` of ``L(x) = coef . x + L(0)`` by one adjoint pass (see :func:`certificate_coefficients`):
    ``L(0)`` is the constant part of every row (the deviation's flow gain, the outside option) plus the flows'
    coefficients times the flows, by the adjoint identity ``sum_g w(g) V(g) = sum_g c(g) f(g)``."""
    space = cert.space
    env = space.env
    exact = nums.exact
    conv = (lambda a: np.asarray(a, dtype=object)) if exact else (lambda a: np.asarray(a, dtype=float))
    outside = [nums.array(o) for o in outside_options(cert.options.get("outside_option", 0.0), env)]
    constant = nums.zeros((1,))[0]
    k = env.n_profiles
    kernels = None if env.correlated else mixed_kernels(env, nums)
    nxt = next_marginals(env, nums)
    zeros = (lambda shape: np.zeros(shape, dtype=object)) if exact else nums.zeros  # int zeros: cheap to skip
    w_u = zeros((env.n_agents, space.n_nodes))
    if env.correlated:  # the same weights with beliefs conditioned on the own type (_correlated_weights)
        constant = _correlated_weights(cert, nums, outside, w_u, conv)
    hist_table = np.asarray(space.hist_table)
    bands = [slice(p * k, (p + 1) * k) for p in range(env.n_allocation_periods)]  # rows of each period table
    kernels_p = [[] if kernels is None else [g[band] for g in kernels] for band in bands]
    nxt_p = [[m[band] for m in nxt] for band in bands]
    for (i, t, r), y_all in ({} if env.correlated else cert.ic).items():
        y_all = conv(y_all)  # (n_hist,), or (n_hist, M) for ex post IC rows (one per others' profile)
        support = np.flatnonzero(y_all != 0 if y_all.ndim == 1 else (y_all != 0).any(axis=1))
        for p in np.unique(hist_table[support]):  # loop over the allocation's period tables
            hs = support[hist_table[support] == p]
            args = (y_all, hs, kernels_p[p], nxt_p[p], nums.alloc[bands[p]], zeros)
            constant = constant + _ic_adjoint(space, nums, w_u, (i, t, r), *args)
    types = _profile_types(env)
    for i, y_all in ({} if env.correlated else cert.ir).items():
        y_all = conv(y_all)  # (n_ir, K_i): every history, or the root only; (n_nodes,) for ex post IR
        if y_all.ndim == 1:  # ex post IR: U_i(g) - o_i(theta_{g,i}) >= 0 at every node g
            g = np.flatnonzero(y_all != 0)
            own = types[g % k, i]
            constant = constant - (y_all[g] * outside[i][own]).sum()
            w_u[i, g] = w_u[i, g] + y_all[g]
            continue
        hs = np.flatnonzero((y_all != 0).any(axis=1))
        if hs.size == 0:
            continue
        terms = _deviation_terms(space, nums, i, kernels_p[0], nxt_p[0], hists=hs)  # beliefs only
        a = y_all[hs][:, :, None] * terms.po[:, None, :]  # (n, K_i, M)
        constant = constant - (y_all[hs] * outside[i][None, :]).sum()  # IR: minus the outside option
        np.add.at(w_u[i], (hs[:, None, None] * k + terms.pidx[None, :, :]).reshape(-1), a.reshape(-1))
    c_u = continuation_adjoint(space, w_u, nums)  # coefficients of the flows flow_i - x_i in sum w_u U
    c_b = zeros((1, space.n_nodes))
    y_b = conv(cert.budget)
    hs = np.flatnonzero(y_b != 0)
    direct = zeros((env.n_agents, space.n_nodes))  # rows on the transfers themselves: ex post budget, limits
    if cert.options["budget"] == "ex_post":  # sum_i x_i(g) = 0, multiplier z(g) of either sign
        direct[:, hs] = direct[:, hs] + y_b[hs][None, :]
        hs = hs[:0]
    constant = _add_limit_terms(cert, env, nums, conv, direct, constant)
    if hs.size and cert.options["budget"] != "none":
        w_b = zeros((1, space.n_nodes))
        bel = joint_beliefs(space, nums, hists=hs)  # (n, K)
        w_b[0, (hs[:, None] * k + np.arange(k)[None, :]).reshape(-1)] = (y_b[hs][:, None] * bel).reshape(-1)
        c_b = continuation_adjoint(space, w_b, nums)  # coefficients of sum_i x_i in sum w_B B
    # only nonzero entries are touched: exact work follows the support
    live = np.flatnonzero((c_u != 0).any(axis=0) | (c_b[0] != 0))
    grad = direct
    grad[:, live] = grad[:, live] + c_b[:, live] - c_u[:, live]
    key = np.asarray(space.node_key)[live]  # each node's row in the period tables
    flows = nums.flows()
    for i in range(env.n_agents):  # at x = 0: sum_g c_u(g) flow_i(g), flow_i(g) = sum_a p(a|theta_g) v_i(theta_i, a)
        constant = constant + (c_u[i, live] * flows[i][key]).sum()
    return grad, constant


def _ic_adjoint(
    space: StateSpace,
    nums: Numbers,
    w_u: np.ndarray,
    key: tuple[int, int, int],
    y_all: np.ndarray,
    hs: np.ndarray,
    kernels: list[np.ndarray],
    nxt: list[np.ndarray],
    alloc: np.ndarray,
    zeros: Callable,
) -> Any:
    """Add the IC rows ``key = (i, t, r)`` at ``hs`` (histories of one allocation table, whose kernels, next
    marginals and allocation rows are given) to the utility weights ``w_u`` of :func:`_certificate_affine`;
    return their part of ``L(0)`` (minus the deviation's flow gain)."""
    i, t, r = key
    k = space.env.n_profiles
    delta = nums.delta
    child = np.asarray(space.child_hist)
    terms = _deviation_terms(space, nums, i, kernels, nxt, hists=hs)
    # (n, M): y P(m|h) for a Bayesian row; an ex post row (one per others' profile m) has its own y and weight 1
    a = y_all[hs][:, None] * terms.po if y_all.ndim == 1 else y_all[hs]
    flow_dev = alloc[terms.pidx[r]] @ (nums.valuation[i][t] - nums.valuation[i][r])  # (M,)
    constant = -(a * flow_dev[None, :]).sum()  # the flow gain of the deviation, at x = 0
    np.add.at(w_u[i], (hs[:, None] * k + terms.pidx[t][None, :]).reshape(-1), a.reshape(-1))
    dev_nodes = hs[:, None] * k + terms.pidx[r][None, :]  # (n, M): the nodes of the reported profile
    np.add.at(w_u[i], dev_nodes.reshape(-1), (-a).reshape(-1))
    kids = child[dev_nodes]
    live = kids >= 0
    if delta == 0 or not live.any():
        return constant
    prof_r = terms.pidx[r]  # (M,)
    dk = terms.g_i[prof_r, t, :] - terms.g_i[prof_r, r, :]  # (M, K_i): own kernel gap
    # coefficient on U_i(child, (tau', m')): -delta a(h, m) dk(m, tau') q_oth(prof_r[m], m'); it depends on
    # (h, m) only through (child, m), so the weights a are summed per distinct pair first (on a Markov space
    # the child is the state of the profile (r, m): M pairs instead of n M)
    m_count = a.shape[1]
    pair = (kids * m_count + np.arange(m_count)[None, :])[live]
    uniq, inv = np.unique(pair, return_inverse=True)
    a_u = zeros((uniq.size,))
    np.add.at(a_u, inv.reshape(-1), a[live])
    kid_u, m_u = np.divmod(uniq, m_count)
    coef = -delta * a_u[:, None, None] * dk[m_u][:, :, None] * terms.q_oth[prof_r[m_u]][:, None, :]
    target = kid_u[:, None, None] * k + terms.pidx[None, :, :]  # (pairs, K_i, M)
    np.add.at(w_u[i], target.reshape(-1), coef.reshape(-1))
    return constant


def check_impossibility(cert: ImpossibilityCertificate, exact: bool = False, seed: int = 0) -> dict:
    r"""Verify a Farkas certificate independently of the LP: signs, :math:`A^{\top} y = 0` and ``L < 0``.

    ``L(x) = sum_r y_r slack_r(x)`` is affine in the transfers ``x``. The check computes

    * the coefficient of *every* transfer coordinate in ``L`` (:func:`certificate_coefficients`, one adjoint pass
      over this module's rows), which must all be zero: then ``L`` is the same for every mechanism;
    * ``L(0)``, which must be negative, from the same pass (each row's constant, and the flows' coefficients
      times the flows), in rationals or floats;
    * always, in floats, the forward evaluation of every row (:func:`verify`'s code) at one random transfer
      vector (seeded) against ``coef . x + L(0)``: a cross-check of the two codes (a disagreement fails the
      check; the affine identity fails at a random point unless both the coefficients and the constant agree).

    Exact work therefore follows the certificate's support and the subtrees below it, not the space.

    In exact mode (rationals) the coefficients must be exactly zero and ``L(0)`` exactly negative: a proof, for
    every size of space, with no random probes. In floats the coefficients must be at most
    ``tolerances.FARKAS_FLOAT_CHECK`` relative to the size of the terms.

    Parameters
    ----------
    cert : ImpossibilityCertificate
        The multipliers over labelled IC, IR and budget rows, with the space and options they refer to.
    exact : bool
        Rational arithmetic (model numbers read as written). Default False (floats).
    seed : int
        Seed of the float cross-check's transfer vector.

    Returns
    -------
    dict
        ``ok``, ``message``, ``L0`` (float; ``-gamma`` when the certificate is right), ``max_deviation`` (the
        largest ``|coefficient|`` of a transfer in ``L``), ``coordinates`` (how many were computed),
        ``nonzero`` (how many are not zero), ``worst`` (agent, history, profile of the largest one, or ``None``),
        ``probes`` (0: kept for files of schema 2), ``method`` (``"adjoint"``) and ``exact``.
    """
    space = cert.space
    env = space.env
    nums = Numbers(env, exact=exact)
    outside = outside_options(cert.options.get("outside_option", 0.0), env)
    signs = [a for a in cert.ic.values()] + list(cert.ir.values()) + list(cert.limits.values())
    if cert.options["budget"] != "ex_post":  # ex post budget rows are equalities: either sign
        signs.append(cert.budget)
    base = {"probes": 0, "method": "adjoint", "exact": exact}
    if any(bool(np.any(np.asarray(arr, dtype=object) < 0)) for arr in signs):
        return {"ok": False, "message": "a multiplier is negative", "L0": None, "max_deviation": None} | base
    signs.append(cert.budget)  # every multiplier counts in the size of the terms
    coef, l_adjoint = _certificate_affine(cert, nums)
    nonzero = np.flatnonzero(coef.reshape(-1) != 0)
    coef_float = np.zeros(coef.shape)
    coef_float.reshape(-1)[nonzero] = coef.reshape(-1)[nonzero].astype(float)
    mags = np.abs(coef_float.reshape(-1)[nonzero])
    worst = None
    dev = 0.0
    if nonzero.size:
        j = int(nonzero[int(np.argmax(mags))])
        agent, g = divmod(j, space.n_nodes)
        h, prof = divmod(g, env.n_profiles)
        dev = float(mags.max())
        worst = {
            "agent": env.agents[agent].name,
            "history": int(h),
            "where": space.describe_history(int(h)),
            "profile": _profile_text(env, prof),
            "coefficient": str(coef.reshape(-1)[j]) if exact else float(coef.reshape(-1)[j]),
        }
    shape = (env.n_agents, space.n_nodes)
    # the forward evaluation (verify's row code) in floats at one random point cross-checks the adjoint: the
    # affine identity L(x) = coef . x + L(0) fails there unless both the coefficients and the constant agree
    floats = Numbers(env, exact=False)
    x = np.random.default_rng(seed).standard_normal(shape)
    lx = float(_certificate_value(cert, floats, x, outside))
    total = sum(float(np.abs(np.asarray(a, dtype=float)).sum()) for a in signs)
    scale = max(1.0, abs(float(l_adjoint)), total)
    drift = abs(lx - float(l_adjoint) - float((coef_float * x).sum()))
    consistent = drift <= tolerances.FARKAS_FLOAT_CHECK * max(scale, abs(lx))
    l0 = l_adjoint
    n_coord = int(coef.size)
    where = (
        ""
        if worst is None
        else f"; largest at {worst['agent']}'s transfer at {worst['where']}, profile {worst['profile']}: "
        f"{float(Fraction(worst['coefficient'])):.3g}"
    )
    if exact:
        ok = nonzero.size == 0 and l0 < 0 and consistent
        if nonzero.size == 0 and l0 < 0:
            msg = f"exact: A^T y = 0 at all {n_coord:,} transfer coordinates and L = {l0} < 0 (a proof)"
        elif nonzero.size:
            msg = (
                f"exact: A^T y != 0 at {nonzero.size:,} of {n_coord:,} transfer coordinates (must be 0){where}; "
                f"L(0) = {float(l0):.6g}"
            )
        else:
            msg = f"exact: A^T y = 0 at all {n_coord:,} transfer coordinates, but L = {l0} (must be < 0)"
    else:
        ok = consistent and dev <= tolerances.FARKAS_FLOAT_CHECK * scale and l0 < -tolerances.FARKAS_FLOAT_CHECK
        msg = f"float: L(0) = {l0:.6g}, largest |A^T y| over {n_coord:,} transfer coordinates {dev:.2g}"
        if not ok:
            msg += where
    if not consistent:
        msg += f"; the adjoint and the forward evaluation disagree by {drift:.2g} (a defect: please report it)"
    return {
        "ok": bool(ok),
        "message": msg,
        "L0": float(l0),
        "max_deviation": dev,
        "coordinates": n_coord,
        "nonzero": int(nonzero.size),
        "worst": worst,
    } | base


# ---------------------------------------------------------------------------------------------- correlated types
def _correlated_ic_blocks(
    space: StateSpace,
    nums: Numbers,
    u: np.ndarray,
    mode: str,
    node_alloc: np.ndarray | None = None,
    keys: set | None = None,
) -> list[_Block]:
    r"""IC rows with correlated types (module docstring): for true ``t`` and report ``r`` at history ``h``,

    .. math::
       \text{pointwise}(h, m) = U_i(h, (t, m)) - U_i(h, (r, m)) - \sum_a p(a|r, m)[v_i(t, a) - v_i(r, a)]
         - \delta \sum_{\theta'} [Q_t(\theta'|r, m) - Q(\theta'|r, m)]\, U_i(\text{child}(h, (r, m)), \theta'),

    :math:`Q_t(\cdot|r, m) = \sum_a p(a|r, m) P(\cdot|(t, m), a)`; the Bayesian row is
    :math:`\sum_m P(m|t, h)\, \text{pointwise}(h, m)`, the ex post rows are the pointwise ones."""
    env = space.env
    counts = env.type_counts
    k = env.n_profiles
    n_hist = space.n_hist
    delta = nums.delta
    alloc = nums.alloc
    child = np.asarray(space.child_hist)
    q = joint_transition(env, nums)  # (K, K): truthful law of the next profile
    blocks: list[_Block] = []
    for i, ag in enumerate(env.agents):
        ki = ag.n_types
        pairs = _type_pairs(i, ki, mode, keys)
        if not pairs:
            continue
        pidx = _own_axis_first(np.arange(k)[None, :], counts, i)[0]  # (K_i, M)
        cond = conditional_beliefs(space, i, nums)  # (H, K_i, M): P(m|t, h)
        uh = _own_axis_first(u[i].reshape(n_hist, k), counts, i)  # (H, K_i, M)
        val = nums.valuation[i]
        q_dev: dict[int, np.ndarray] = {}
        for t, r in pairs:
            if t not in q_dev:
                q_dev[t] = joint_transition(env, nums, deviator=i, true_type=t)
            prof_r = pidx[r]  # (M,) profiles (r, m)
            if node_alloc is None:
                flow_dev = (alloc[prof_r] @ (val[t] - val[r]))[None, :]  # (1, M)
            else:
                flow_dev = node_alloc.reshape(n_hist, k, -1)[:, prof_r, :] @ (val[t] - val[r])  # (H, M)
            nodes = np.arange(n_hist)[:, None] * k + prof_r[None, :]  # (H, M)
            kids = child[nodes]
            cont = nums.zeros(kids.shape)
            hh, mm = np.nonzero(kids >= 0)
            if hh.size and delta != 0:
                gap = q_dev[t][prof_r] - q[prof_r]  # (M, K)
                nxt_u = u[i][kids[hh, mm][:, None] * k + np.arange(k)[None, :]]  # (E, K)
                cont[hh, mm] = np.einsum("ek,ek->e", nxt_u, gap[mm])
            pointwise = uh[:, t, :] - uh[:, r, :] - flow_dev - delta * cont  # (H, M)
            if mode != "ex_post":
                blocks.append(_interim_ic_block(space, np.einsum("hm,hm->h", cond[:, t, :], pointwise), i, t, r))
                continue
            blocks.append(_ex_post_ic_block(space, pointwise, i, t, r, pidx))
    return blocks


def _correlated_weights(
    cert: ImpossibilityCertificate, nums: Numbers, outside: list[np.ndarray], w_u: np.ndarray, conv
) -> Any:
    r"""Add the IC and IR rows' weights on the utilities to ``w_u`` (in place) with correlated types, and return
    their constant part at ``x = 0`` (see :func:`certificate_coefficients`; :math:`P(m|h)` becomes
    :math:`P(m|t, h)` and the continuation weight at the child node ``(c, \theta')`` is
    :math:`-\delta\, y P(m|t, h) [Q_t(\theta'|r, m) - Q(\theta'|r, m)]`, :func:`_correlated_ic_blocks`)."""
    space = cert.space
    env = space.env
    k = env.n_profiles
    delta = nums.delta
    child = np.asarray(space.child_hist)
    q = joint_transition(env, nums)
    constant = nums.zeros((1,))[0]
    for (i, t, r), y_all in cert.ic.items():
        y_all = conv(y_all)  # (n_hist,), or (n_hist, M) for ex post rows (one per others' profile)
        hs = np.flatnonzero(y_all != 0 if y_all.ndim == 1 else (y_all != 0).any(axis=1))
        if hs.size == 0:
            continue
        pidx = _own_axis_first(np.arange(k)[None, :], env.type_counts, i)[0]  # (K_i, M)
        if y_all.ndim == 2:  # an ex post row weighs its own node with y(h, m)
            a = y_all[hs]
        else:
            a = y_all[hs][:, None] * conditional_beliefs(space, i, nums, hists=hs)[:, t, :]  # (n, M): y P(m|t, h)
        flow_dev = nums.alloc[pidx[r]] @ (nums.valuation[i][t] - nums.valuation[i][r])  # (M,)
        constant = constant - (a * flow_dev[None, :]).sum()
        np.add.at(w_u[i], (hs[:, None] * k + pidx[t][None, :]).reshape(-1), a.reshape(-1))
        dev_nodes = hs[:, None] * k + pidx[r][None, :]  # (n, M)
        np.add.at(w_u[i], dev_nodes.reshape(-1), (-a).reshape(-1))
        kids = child[dev_nodes]
        hh, mm = np.nonzero(kids >= 0)
        if delta == 0 or hh.size == 0:
            continue
        gap = joint_transition(env, nums, deviator=i, true_type=t)[pidx[r]] - q[pidx[r]]  # (M, K)
        coef = -delta * a[hh, mm][:, None] * gap[mm]  # (E, K)
        target = kids[hh, mm][:, None] * k + np.arange(k)[None, :]
        np.add.at(w_u[i], target.reshape(-1), coef.reshape(-1))
    types = _profile_types(env)
    for i, y_all in cert.ir.items():
        y_all = conv(y_all)  # (n_ir, K_i); (n_nodes,) for ex post IR
        if y_all.ndim == 1:  # ex post IR, one row per node
            constant = _add_ex_post_ir(y_all, outside[i], types[:, i], k, w_u[i], constant)
            continue
        hs = np.flatnonzero((y_all != 0).any(axis=1))
        if hs.size == 0:
            continue
        pidx = _own_axis_first(np.arange(k)[None, :], env.type_counts, i)[0]
        a = y_all[hs][:, :, None] * conditional_beliefs(space, i, nums, hists=hs)  # (n, K_i, M)
        constant = constant - (y_all[hs] * outside[i][None, :]).sum()
        np.add.at(w_u[i], (hs[:, None, None] * k + pidx[None, :, :]).reshape(-1), a.reshape(-1))
    return constant


# ---------------------------------------------------------------------------------------------- intermediate
def verify_intermediate(
    space: Any,
    transfers: Sequence[np.ndarray],
    *,
    ir: str = "interim",
    budget: str = "interim",
    outside_option: Any = 0.0,
    tol: float = tolerances.FEASIBILITY,
) -> Verification:
    r"""Verify an intermediate mechanism (Lamba 2022, section 7.2) on a :class:`~mechlp.model.signals.SignalSpace`.

    ``transfers[i]`` has shape ``(n_info_i, S_i)``: agent ``i``'s payment :math:`x_i(I, r, a)` at his information
    history ``I`` after report ``r`` and signal ``a`` (column ``r * |A| + a``), so payments are measurable with
    respect to his information by construction. Recomputed here, independently of the LP rows: reach
    probabilities and beliefs from the priors and kernels (:mod:`mechlp.model.beliefs`), each agent's posterior about
    the others' current types at his information histories (reach-weighted; uniform over the members of an
    information history reached with probability zero), his chance :math:`P_i(a|I,r)` of each signal, his interim
    utilities by backward recursion over his information histories,

    .. math::
       \bar U_i(I,t) = \sum_a P_i(a|I,t)\big[v_i(t,a) - x_i(I,t,a) + \delta \sum_{t'} F_i(t'|t,a)
       \bar U_i(I(t,a), t')\big],

    the one-shot deviation payoff (the same with report ``r``: payment and next information history of ``r``, own
    type moving on from ``t``), and the designer's :math:`\Pi(h)` from the transfers expanded to her nodes.

    Families: ``"ic"`` (every information history, ``t != r``), ``"ir"`` (``"interim"``: every information
    history; ``"ex_ante"``: the first period), ``"budget"`` (``"interim"``, ``"ex_ante"``, ``"ex_post"`` as in
    :func:`verify`, on designer histories; ``"none"``). Floats only.
    """
    ir = parse_notion("ir", ir, allowed=("interim", "ex_ante"))
    budget = parse_notion("budget", budget, allowed=("interim", "ex_ante", "ex_post", "none"))
    env = space.env
    tree = space.tree
    k, n_act = env.n_profiles, env.n_actions
    nums = Numbers(env, exact=False)
    delta = nums.delta
    outside = outside_options(outside_option, env)
    joint = joint_beliefs(tree, nums)
    reach = reach_probabilities(tree, nums)
    x_nodes = np.zeros((env.n_agents, tree.n_nodes))
    families: dict[str, list[_Block]] = {"ic": [], "ir": []}
    for i, ag in enumerate(env.agents):  # loops over agents, levels, types and actions
        ki, n_sig, n_info = ag.n_types, space.n_signals[i], space.n_info[i]
        x = np.asarray(transfers[i], dtype=float)
        if x.shape != (n_info, n_sig):
            raise ValueError(f"transfers[{i}] (agent {ag.name!r}) has shape {x.shape}; expected {(n_info, n_sig)}")
        x_nodes[i] = x.reshape(-1)[space.info_node[i]]
        po = others_beliefs(tree, i, nums)  # (H, M)
        ids = space.info_hist[i]
        mass = np.bincount(ids, weights=reach, minlength=n_info)
        w = np.where(mass[ids] > 0, reach, 1.0)
        post = np.zeros((n_info, po.shape[1]))
        np.add.at(post, ids, w[:, None] * po)
        post /= post.sum(axis=1, keepdims=True)
        pidx = _own_axis_first(np.arange(k)[None, :], env.type_counts, i)[0]  # (K_i, M) profile of (own, others)
        prob = np.einsum("Im,rma->Ira", post, nums.alloc[pidx])  # (n_info, K_i, A)
        kern = nums.kernels[i]  # (A, K_i, K_i)
        child = space.info_child[i].reshape(n_info, ki, n_act)
        ubar = np.zeros((n_info, ki))
        dev = np.zeros((n_info, ki, ki))  # [I, true t, report r]
        starts = space.info_level_start[i]
        for lo, hi in reversed(list(zip(starts[:-1], starts[1:], strict=True))):  # deepest level first
            info = np.arange(lo, hi)
            for t in range(ki):
                for r in range(ki):
                    val = np.zeros(info.size)
                    for a in range(n_act):
                        p = prob[info, r, a]
                        kid = child[info, r, a]
                        cont = np.zeros(info.size)
                        ok = kid >= 0
                        cont[ok] = ubar[kid[ok]] @ kern[a, t]
                        val += p * (nums.valuation[i][t, a] - x[info, r * n_act + a] + delta * cont)
                    dev[info, t, r] = val
            ubar[info] = dev[info][:, np.arange(ki), np.arange(ki)]
        for t in range(ki):
            for r in range(ki):
                if t == r:
                    continue

                def describe(f: int, s: float, i=i, t=t, r=r) -> Violation:
                    return Violation(
                        "ic",
                        env.agents[i].name,
                        int(f),
                        space.describe_info(i, int(f)),
                        env.agents[i].types[t],
                        env.agents[i].types[r],
                        None,
                        float(s),
                    )

                families["ic"].append(_Block("ic", ubar[:, t] - dev[:, t, r], describe, lambda f: f, (i, t, r)))
        rows = ubar if ir == "interim" else ubar[:1]

        def describe_ir(f: int, s: float, i=i, ki=ki) -> Violation:
            inf, t = divmod(int(f), ki)
            return Violation(
                "ir", env.agents[i].name, inf, space.describe_info(i, inf), env.agents[i].types[t], None, None, float(s)
            )

        families["ir"].append(_Block("ir", rows - outside[i][None, :], describe_ir, lambda f, ki=ki: f // ki, (i,)))
    if budget != "none":
        families["budget"] = _budget_blocks(tree, nums, x_nodes, joint, budget)
    max_violation, worst, binding, n_binding, n_rows = {}, {}, {}, {}, {}
    for fam, blocks in families.items():
        mv, wr, bind, nb, nr = _summarise(blocks, tolerances.BINDING)
        max_violation[fam], worst[fam], binding[fam], n_binding[fam], n_rows[fam] = float(mv), wr, bind, nb, nr
    ok = all(v <= tol for v in max_violation.values())
    options = {
        "ic": "intermediate",
        "ir": ir,
        "budget": budget,
        "outside_option": [o.tolist() for o in outside],
        "exact": False,
        "max_denominator": None,
    }
    return Verification(ok, float(tol), max_violation, worst, binding, n_binding, n_rows, options)


# ---------------------------------------------------------------------------------------------- dual bounds
#: Objectives a dual bound can bound (those of :mod:`mechlp.solve.second_best`).
BOUND_OBJECTIVES = ("welfare", "gains_from_trade", "revenue")


def _check_objective(objective: str) -> None:
    if objective not in BOUND_OBJECTIVES:
        raise ValueError(f"objective must be one of {BOUND_OBJECTIVES}, got {objective!r}")


def _root_weights(space: StateSpace, nums: Numbers) -> np.ndarray:
    r"""``(n_nodes,)`` weights :math:`P(\theta|\text{root})` on the root nodes, zero elsewhere (object zeros exact)."""
    k = space.env.n_profiles
    w = np.zeros(space.n_nodes, dtype=object) if nums.exact else np.zeros(space.n_nodes)
    w[:k] = joint_beliefs(space, nums, hists=np.array([0]))[0]
    return w


def _status_quo_welfare(space: StateSpace, nums: Numbers) -> Any:
    r""":math:`W_0`: the welfare of always taking the first action, with no transfers (``"gains_from_trade"``)."""
    env = space.env
    types = _profile_types(env)[np.tile(np.arange(env.n_profiles), space.n_hist)]
    flow = sum(nums.valuation[i][types[:, i], 0] for i in range(env.n_agents))
    vals = continuation_values(space, np.asarray(flow)[None, :], nums)[0]
    return (_root_weights(space, nums) * vals).sum()


def objective_value(mechanism: Mechanism, objective: str = "welfare", exact: bool = False) -> Any:
    r"""The objective of :mod:`mechlp.solve.second_best` at a mechanism, in this module's arithmetic.

    .. math::
       W = \sum_\theta P(\theta|\text{root}) \Big[\sum_i U_i(\text{root}, \theta) + B(\text{root}, \theta)\Big],
       \qquad \Pi(\text{root}) = \sum_\theta P(\theta|\text{root})\, B(\text{root}, \theta),

    ``"welfare"``: :math:`W`; ``"gains_from_trade"``: :math:`W - W_0` (:math:`W_0` the welfare of always taking the
    first action); ``"revenue"``: :math:`\Pi(\text{root})`. :math:`U` and :math:`B` come from the recursion of
    Lamba (2022), eq. (3), with the mechanism's node allocation when it has one (read as given in exact mode,
    :func:`exact_node_allocation`). Returns a rational (``exact``) or a float.
    """
    _check_objective(objective)
    space = mechanism.space
    env = space.env
    nums = Numbers(env, exact=bool(exact))
    if exact:
        x = mechanism.exact_transfers if mechanism.exact_transfers is not None else to_fractions(mechanism.transfers)
    else:
        x = np.asarray(mechanism.transfers, dtype=float)
    alloc = getattr(mechanism, "allocation", None)
    if alloc is None:
        flow = nums.flows()[:, np.asarray(space.node_key)]
    else:
        alloc = exact_node_allocation(mechanism) if exact else alloc
        types = _profile_types(env)[np.tile(np.arange(env.n_profiles), space.n_hist)]
        flow = np.stack([(alloc * nums.valuation[i][types[:, i]]).sum(axis=1) for i in range(env.n_agents)])
    w = _root_weights(space, nums)
    b = continuation_values(space, x.sum(axis=0)[None, :], nums)[0]
    value = (w * b).sum()
    if objective != "revenue":
        u = continuation_values(space, flow - x, nums)
        value = value + (w[None, :] * u).sum()
    if objective == "gains_from_trade":
        value = value - _status_quo_welfare(space, nums)
    return value


def _lagrangian_affine(cert: ImpossibilityCertificate, objective: str, nums: Numbers):
    r"""``(grad_x, coef_p, constant)`` of :math:`L(x, p) = \text{objective}(x, p) + \sum_r y_r\,
    \text{slack}_r(x, p)` (see :func:`check_dual_bound`): ``grad_x`` ``(n_agents, n_nodes)`` the coefficient of
    every transfer, ``coef_p`` ``(n_nodes, n_actions)`` that of every allocation entry :math:`p(a|g)`, ``constant``
    the rest, so that :math:`L = \text{grad}_x \cdot x + \text{coef}_p \cdot p + \text{constant}`.

    The rows weight the utilities and designer values as in :func:`certificate_coefficients` (the IC weights by
    the same :func:`_ic_adjoint`, whose flow gain is taken at a zero allocation here, and moved onto the allocation
    of the reported node: :math:`-y P(m|h) [v_i(t, a) - v_i(r, a)]` on :math:`p(a|h,(r,m))`); the objective adds
    :math:`P(\theta|\text{root})` to the weight of every :math:`U_i` (not for revenue) and of :math:`B` at the root
    nodes. With :math:`c_U`, :math:`c_B` the :func:`mechlp.model.beliefs.continuation_adjoint` of the weights,
    the coefficient of :math:`x_i(g)` is :math:`c_B(g) - c_{U,i}(g)` (plus rows on the transfers themselves) and
    that of :math:`p(a|g)` gains :math:`\sum_i c_{U,i}(g)\, v_i(\theta_{g,i}, a)` (the flows of the recursion)."""
    space = cert.space
    env = space.env
    if env.correlated:
        raise ValueError("dual bounds are for independent types (the second best's interim program)")
    exact = nums.exact
    conv = (lambda a: np.asarray(a, dtype=object)) if exact else (lambda a: np.asarray(a, dtype=float))
    zeros = (lambda shape: np.zeros(shape, dtype=object)) if exact else nums.zeros
    outside = [nums.array(o) for o in outside_options(cert.options.get("outside_option", 0.0), env)]
    k, n_act = env.n_profiles, env.n_actions
    kernels = mixed_kernels(env, nums)
    nxt = next_marginals(env, nums)
    hist_table = np.asarray(space.hist_table)
    bands = [slice(p * k, (p + 1) * k) for p in range(env.n_allocation_periods)]
    kernels_p = [[g[band] for g in kernels] for band in bands]
    nxt_p = [[m[band] for m in nxt] for band in bands]
    no_alloc = zeros((k, n_act))  # the deviation's flow gain is put on the allocation columns instead
    w_u = zeros((env.n_agents, space.n_nodes))
    coef_p = zeros((space.n_nodes, n_act))
    constant = nums.zeros((1,))[0]
    for (i, t, r), y_all in cert.ic.items():
        y_all = conv(y_all)
        support = np.flatnonzero(y_all != 0 if y_all.ndim == 1 else (y_all != 0).any(axis=1))
        gain = nums.valuation[i][t] - nums.valuation[i][r]  # (A,)
        for p in np.unique(hist_table[support]):  # loop over the allocation's period tables
            hs = support[hist_table[support] == p]
            _ic_adjoint(space, nums, w_u, (i, t, r), y_all, hs, kernels_p[p], nxt_p[p], no_alloc, zeros)
            terms = _deviation_terms(space, nums, i, kernels_p[p], nxt_p[p], hists=hs)
            a = y_all[hs][:, None] * terms.po if y_all.ndim == 1 else y_all[hs]  # (n, M)
            nodes = (hs[:, None] * k + terms.pidx[r][None, :]).reshape(-1)
            np.add.at(coef_p, nodes, -(a.reshape(-1)[:, None] * gain[None, :]))
    types = _profile_types(env)
    for i, y_all in cert.ir.items():
        y_all = conv(y_all)
        if y_all.ndim == 1:  # ex post IR, one row per node
            constant = _add_ex_post_ir(y_all, outside[i], types[:, i], k, w_u[i], constant)
            continue
        hs = np.flatnonzero((y_all != 0).any(axis=1))
        if hs.size == 0:
            continue
        terms = _deviation_terms(space, nums, i, kernels_p[0], nxt_p[0], hists=hs)  # beliefs only
        a = y_all[hs][:, :, None] * terms.po[:, None, :]  # (n, K_i, M)
        constant = constant - (y_all[hs] * outside[i][None, :]).sum()
        np.add.at(w_u[i], (hs[:, None, None] * k + terms.pidx[None, :, :]).reshape(-1), a.reshape(-1))
    w_b = zeros((1, space.n_nodes))
    direct = zeros((env.n_agents, space.n_nodes))  # rows on the transfers themselves: ex post budget, limits
    y_b = conv(cert.budget)
    hs = np.flatnonzero(y_b != 0)
    if cert.options["budget"] == "ex_post":  # sum_i x_i(g) = 0, multiplier of either sign
        direct[:, hs] = direct[:, hs] + y_b[hs][None, :]
    elif hs.size and cert.options["budget"] != "none":
        bel = joint_beliefs(space, nums, hists=hs)  # (n, K)
        w_b[0, (hs[:, None] * k + np.arange(k)[None, :]).reshape(-1)] = (y_b[hs][:, None] * bel).reshape(-1)
    constant = _add_limit_terms(cert, env, nums, conv, direct, constant)
    root = _root_weights(space, nums)[:k]  # the objective: P(theta|root) on B and (welfare) every U_i at the root
    w_b[0, :k] = w_b[0, :k] + root
    if objective != "revenue":
        w_u[:, :k] = w_u[:, :k] + root[None, :]
    if objective == "gains_from_trade":
        constant = constant - _status_quo_welfare(space, nums)
    c_u = continuation_adjoint(space, w_u, nums)
    c_b = continuation_adjoint(space, w_b, nums)
    grad = direct + c_b - c_u
    prof = np.tile(np.arange(k), space.n_hist)
    for i in range(env.n_agents):  # the flows sum_a p(a|g) v_i(theta_{g,i}, a) of U_i
        coef_p = coef_p + c_u[i][:, None] * nums.valuation[i][types[prof, i]]
    return grad, coef_p, constant


def check_dual_bound(cert: ImpossibilityCertificate, objective: str = "welfare", exact: bool = False) -> dict:
    r"""An upper bound on ``objective`` over *every* mechanism (transfers and node allocation) satisfying the rows,
    by weak duality, from multipliers ``y >= 0`` over labelled IC, IR and budget rows (held in an
    :class:`ImpossibilityCertificate`, whose ``gamma`` is not used), checked independently of the LP.

    Every row is written :math:`\text{slack}_r(x, p) \ge 0` and, with kernels that ignore the action, is affine in
    the transfers :math:`x` and the allocation :math:`p(a|g)` jointly, as is the objective (welfare :math:`W`, gains
    from trade :math:`W - W_0`, or revenue :math:`\Pi(\text{root})`; :func:`objective_value`). So is the Lagrangian

    .. math::
       L(x, p) = \text{objective}(x, p) + \sum_r y_r\, \text{slack}_r(x, p)
              = g \cdot x + \sum_g \sum_a c(g, a)\, p(a|g) + c_0 .

    For every mechanism that satisfies the rows, :math:`\text{objective} \le L`. When every transfer coefficient
    :math:`g` is zero (the transfers are free), :math:`L` depends on the allocation only, and its maximum over the
    simplex at every node gives

    .. math::
       \text{objective}(x, p) \le c_0 + \sum_g \max_a c(g, a) =: \text{bound}

    (weak duality, with the equality rows of the LP's recursion eliminated). The coefficients come from one adjoint
    pass over this module's rows (:func:`_lagrangian_affine`), in rationals with ``exact=True``: there every
    transfer coefficient must be exactly zero and every multiplier exactly nonnegative (ex post budget rows are
    equalities, of either sign), and the bound is an exact rational. In floats the coefficients must be at most
    ``tolerances.FARKAS_FLOAT_CHECK`` relative to the size of the terms.

    Returns
    -------
    dict
        ``ok``, ``message``, ``bound`` (the exact fraction as a string in exact mode, else a float),
        ``bound_float``, ``max_deviation`` (largest ``|g|``), ``coordinates``, ``nonzero``, ``worst`` (agent,
        history, profile of the largest), ``objective`` and ``exact``.
    """
    _check_objective(objective)
    space = cert.space
    env = space.env
    nums = Numbers(env, exact=exact)
    base = {"objective": objective, "exact": bool(exact)}
    signs = list(cert.ic.values()) + list(cert.ir.values()) + list(cert.limits.values())
    if cert.options["budget"] != "ex_post":
        signs.append(cert.budget)
    if any(bool(np.any(np.asarray(arr, dtype=object) < 0)) for arr in signs):
        return {"ok": False, "message": "a multiplier is negative", "bound": None, "bound_float": None} | base
    grad, coef_p, constant = _lagrangian_affine(cert, objective, nums)
    best = coef_p.max(axis=1)  # max of a linear function over the simplex at each node
    bound = constant + best.sum()
    flat = grad.reshape(-1)
    nonzero = np.flatnonzero(flat != 0)
    mags = np.abs(flat[nonzero].astype(float)) if nonzero.size else np.zeros(0)
    worst = None
    dev = float(mags.max()) if mags.size else 0.0
    if nonzero.size:
        j = int(nonzero[int(np.argmax(mags))])
        agent, g = divmod(j, space.n_nodes)
        h, prof = divmod(g, env.n_profiles)
        worst = {
            "agent": env.agents[agent].name,
            "history": int(h),
            "where": space.describe_history(int(h)),
            "profile": _profile_text(env, prof),
            "coefficient": str(flat[j]) if exact else float(flat[j]),
        }
    n_coord = int(flat.size)
    if exact:
        ok = nonzero.size == 0
        msg = (
            f"exact: every multiplier >= 0, the coefficient of all {n_coord:,} transfer coordinates is 0, bound = "
            f"max over allocations of L = {float(bound):.12g}"
            if ok
            else f"exact: {nonzero.size:,} of {n_coord:,} transfer coordinates have a nonzero coefficient (must be "
            f"0; largest {dev:.3g} at {worst['agent']}'s transfer at {worst['where']}, profile {worst['profile']})"
        )
    else:
        total = sum(float(np.abs(np.asarray(a, dtype=float)).sum()) for a in [*signs, cert.budget])
        scale = max(1.0, total, abs(float(bound)))
        ok = dev <= tolerances.FARKAS_FLOAT_CHECK * scale
        msg = f"float: bound {float(bound):.12g}, largest transfer coefficient {dev:.2g} over {n_coord:,} coordinates"
    return {
        "ok": bool(ok),
        "message": msg,
        "bound": str(Fraction(bound)) if exact else float(bound),
        "bound_float": float(bound),
        "max_deviation": dev,
        "coordinates": n_coord,
        "nonzero": int(nonzero.size),
        "worst": worst,
    } | base


@dataclass
class OptimalityCertificate:
    r"""An exact proof that a mechanism's objective is within ``gap`` of the best over all mechanisms.

    ``lower`` is the objective (:func:`objective_value`) of ``mechanism``, an exactly verified mechanism (transfers
    and node allocation, :func:`verify` with ``exact=True``): every IC, IR and budget row holds, so the optimum is
    at least ``lower``. ``upper`` is the weak-duality bound of :func:`check_dual_bound` from the multipliers
    ``multipliers`` (exactly nonnegative, every transfer coefficient of the Lagrangian exactly zero): no mechanism
    satisfying the rows does better. Both are exact rationals; ``gap = upper - lower >= 0``.

    Attributes
    ----------
    mechanism : Mechanism
        The primal mechanism, with ``exact_transfers`` and ``exact_allocation``.
    multipliers : ImpossibilityCertificate
        The dual multipliers over labelled rows (its ``gamma`` unused; ``options`` name the rows).
    objective : str
    lower, upper, gap : Fraction
    tol : float
        The gap allowed, relative to ``max(1, |lower|)`` (``tolerances.OPTIMALITY_GAP`` by default).
    verification : Verification
        The exact verification of ``mechanism``.
    bound : dict
        :func:`check_dual_bound` (exact).
    ok : bool
        Both sides verified and ``gap <= tol * max(1, |lower|)``.
    """

    mechanism: Mechanism
    multipliers: ImpossibilityCertificate
    objective: str
    lower: Fraction
    upper: Fraction | None
    gap: Fraction | None
    tol: float
    verification: Verification
    bound: dict
    ok: bool

    @property
    def primal_ok(self) -> bool:
        return bool(self.verification.ok)

    @property
    def dual_ok(self) -> bool:
        return bool(self.bound.get("ok"))

    def summary(self) -> str:
        up = "none" if self.upper is None else f"{float(self.upper):.12g}"
        gap = "n/a" if self.gap is None else f"{float(self.gap):.3g}"
        head = (
            f"exact optimality certificate ({self.objective}): lower bound {float(self.lower):.12g} (exactly verified "
            f"mechanism: {'yes' if self.primal_ok else 'NO'}), upper bound {up} (exact dual: "
            f"{'yes' if self.dual_ok else 'NO'}), gap {gap} (allowed {self.tol:g} x max(1, |lower|)): "
            + ("PROVED" if self.ok else "NOT proved")
        )
        lines = [head, "  dual: " + str(self.bound.get("message"))]
        if not self.primal_ok:
            lines += ["  " + s for s in self.verification.summary().splitlines()]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """The numbers (fractions as strings, with floats beside them) and the checks; multipliers and the
        mechanism are written by :mod:`mechlp.audit.certfile`."""
        return {
            "objective": self.objective,
            "lower": str(self.lower),
            "upper": None if self.upper is None else str(self.upper),
            "gap": None if self.gap is None else str(self.gap),
            "lower_float": float(self.lower),
            "upper_float": None if self.upper is None else float(self.upper),
            "gap_float": None if self.gap is None else float(self.gap),
            "tol": self.tol,
            "ok": bool(self.ok),
            "primal_verified": self.primal_ok,
            "dual_verified": self.dual_ok,
            "dual_check": self.bound,
            "summary": self.summary(),
        }


#: Rows a question implies (multipliers over them bound it: a relaxation): ex post IC implies Bayesian IC, ex post
#: IR interim IR implies ex ante IR, ex post balance interim balance implies ex ante balance, savings ex ante.
_IMPLIED = {
    "ic": {"ex_post": ("ex_post", "bayesian")},
    "ir": {"ex_post": ("ex_post", "interim", "ex_ante"), "interim": ("interim", "ex_ante")},
    "budget": {
        "ex_post": ("ex_post", "interim", "ex_ante", "none"),
        "interim": ("interim", "ex_ante", "none"),
        "ex_ante": ("ex_ante", "none"),
        "savings": ("savings", "ex_ante", "none"),
    },
}


def check_optimality(
    mechanism: Mechanism,
    multipliers: ImpossibilityCertificate,
    objective: str,
    question: Question,
    tol: float = tolerances.OPTIMALITY_GAP,
) -> OptimalityCertificate:
    r"""Check both sides of an optimality claim exactly (:class:`OptimalityCertificate`): ``mechanism`` by
    :func:`verify` (``exact=True``, the allocation as given) against ``question``, its objective by
    :func:`objective_value`, the multipliers by :func:`check_dual_bound` (``exact=True``), and the gap against
    ``tol``.

    Parameters
    ----------
    mechanism : Mechanism
        The primal: transfers and node allocation (exact fractions when it carries them, else its floats exactly).
    multipliers : ImpossibilityCertificate
        Dual multipliers over rows that ``question`` implies (``multipliers.options``: ``ic``, ``ir``,
        ``budget``; e.g. interim budget rows for an ex post balanced question: a relaxation, whose bound holds
        for the question too), with the question's outside options; else ``ValueError``.
    objective : {"welfare", "gains_from_trade", "revenue"}
    question : Question
        What the mechanism must satisfy (and what the bound is about).
    tol : float
        The gap allowed, relative to ``max(1, |lower|)``.

    Returns
    -------
    OptimalityCertificate
        ``ok`` when the mechanism passes the exact check, the multipliers give an exact bound and the gap is
        within ``tol``.
    """
    _check_objective(objective)
    if multipliers.space is not mechanism.space:
        raise ValueError("multipliers and mechanism must be on the same space")
    for key in ("ic", "ir", "budget"):
        rows, asked = multipliers.options.get(key), getattr(question, key)
        if rows not in _IMPLIED[key].get(asked, (asked,)):
            raise ValueError(
                f"the multipliers are over {key}={rows!r} rows, which the question's {key}={asked!r} does not imply"
            )
    stated = [
        np.asarray(o, dtype=float)
        for o in outside_options(multipliers.options.get("outside_option", 0.0), question.env)
    ]
    if any(not np.array_equal(a, np.asarray(b, dtype=float)) for a, b in zip(stated, question.outside, strict=True)):
        raise ValueError("the multipliers' IR rows are for other outside options than the question's")
    ver = verify(mechanism, question=question, exact=True)
    lower = Fraction(objective_value(mechanism, objective, exact=True))
    bound = check_dual_bound(multipliers, objective, exact=True)
    upper = Fraction(bound["bound"]) if bound["ok"] else None
    gap = None if upper is None else upper - lower
    ok = bool(ver.ok and bound["ok"] and gap is not None and gap <= Fraction(tol) * max(1, abs(lower)))
    return OptimalityCertificate(mechanism, multipliers, objective, lower, upper, gap, float(tol), ver, bound, ok)
