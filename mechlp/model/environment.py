r"""Environments: agents with Markov types, actions, valuations, discounting and a horizon.

Notation follows docs/design.md section 4.1 (the project's conventions: docs/design.md section 1):

* agents :math:`i = 1..n`, each with a finite ordered type set :math:`\Theta_i`, a prior :math:`f_i^0`
  and a Markov kernel :math:`F_i(\theta'|\theta, a)` (one row-stochastic matrix, or one per action);
* types are independent across agents, so the joint kernel of the type *profile* is the product
  :math:`P(\theta'|\theta, a) = \prod_i F_i(\theta_i'|\theta_i, a)` (this kernel under the allocation, and the
  beliefs it implies, are computed in :mod:`mechlp.model.beliefs`) -- unless the environment is given a
  ``joint_transition`` :math:`P(\theta'|\theta, a)` over type profiles (correlated types, Yoon 2015's general
  model; ``env.correlated``, docs/design.md section 4.6);
* a finite action set :math:`A`, valuations :math:`v_i(\theta_i, a)` and an allocation rule
  :math:`p(a|\theta)` (here a function of the current report profile);
* a common discount factor :math:`\delta` and a horizon :math:`T` (an integer, or ``"infinite"``).

Transfers are payments *from* the agent *to* the designer. Type profiles are indexed in C order over
agents: profile ``k`` is ``np.unravel_index(k, type_counts)``.

Everything is validated at construction; errors name the argument, the rule and the offending index.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mechlp.model import tolerances
from mechlp.model.policy import dynamic_policy_tables

__all__ = ["renewal_matrix", "Agent", "Environment", "bilateral_trade", "INFINITE", "ALLOCATION_RULES"]

INFINITE = math.inf

#: Allocation rules by name (:class:`Environment`): ``"efficient"`` is the dynamic efficient policy when some
#: kernel depends on the action and the myopic one otherwise (they coincide then).
ALLOCATION_RULES = {
    "efficient": "the efficient policy: efficient_dynamic when a kernel depends on the action, else efficient_myopic",
    "efficient_dynamic": "maximises expected discounted welfare (backward induction or policy iteration)",
    "efficient_myopic": "maximises this period's welfare only (ignores how the action moves the types)",
}


def _as_float_array(value: Any, argument: str) -> np.ndarray:
    if isinstance(value, str | bytes):
        raise TypeError(f"{argument} must be numeric, got the string {value!r}")
    try:
        arr = np.array(value, dtype=float, copy=True)  # never alias (and freeze) the caller's array
    except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: an integer beyond the float range
        raise TypeError(f"{argument} must be numeric: {exc}") from None
    return arr


def _check_distribution(vec: np.ndarray, what: str) -> None:
    """Validate one probability vector; ``what`` names it in messages."""
    bad = np.flatnonzero(np.isnan(vec))
    if bad.size:
        raise ValueError(f"{what} has NaN at index {int(bad[0])}")
    bad = np.flatnonzero(~np.isfinite(vec))
    if bad.size:
        raise ValueError(f"{what} has a non-finite entry at index {int(bad[0])}")
    bad = np.flatnonzero(vec < 0)
    if bad.size:
        j = int(bad[0])
        raise ValueError(f"{what} has a negative probability {vec[j]:g} at index {j}")
    total = float(vec.sum())
    if abs(total - 1.0) > tolerances.PROBABILITY:
        raise ValueError(f"{what} sums to {total:.12g}, not 1 (tolerance {tolerances.PROBABILITY:g})")


def _label_tuple(value: Any, what: str, empty: str) -> tuple[str, ...]:
    """Labels (type or action names) as a tuple of strings; ``what`` names them in messages, ``empty`` says why
    there must be at least one."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(f"{what} must be a sequence of labels, got {type(value).__name__}")
    labels = tuple(str(t) for t in value)
    if not labels:
        raise ValueError(f"{what} is empty; {empty}")
    return labels


def _check_rows(mat: np.ndarray, row_name: Callable[[int], str]) -> None:
    """Every row of ``mat`` is a probability vector (:func:`_check_distribution`; ``row_name(r)`` names row ``r``)."""
    for r in range(mat.shape[0]):
        _check_distribution(mat[r], row_name(r))


def _check_stochastic(
    mat: np.ndarray, shape: tuple[int, int], what: str, layout: str, row_name: Callable[[int], str]
) -> None:
    """``mat`` is a row-stochastic matrix of ``shape``; the shape error names ``what`` and its ``layout``."""
    if mat.shape != shape:
        raise ValueError(f"{what} has shape {mat.shape}; expected {shape} ({layout})")
    _check_rows(mat, row_name)


def _check_joint_transition(env: Environment, joint: Any) -> np.ndarray | None:
    r"""Validate ``joint_transition`` of ``env`` (allocation and agents set): shape ``(K, K)`` or ``(A, K, K)``,
    every row a probability vector, and every agent's own ``transition`` (when given) its marginal,
    :math:`\sum_{\theta'_{-i}} P(\theta'|\theta, a) = F_i(\theta'_i|\theta_i, a)`. Returns the read-only array,
    or ``None`` (product kernels: every agent must then have its own ``transition``)."""
    if joint is None:
        for j, ag in enumerate(env.agents):
            if ag.transition is None:
                raise ValueError(
                    f"transition of agent {ag.name!r} (agents[{j}]) is None; give it, or the environment's "
                    "joint_transition over type profiles"
                )
        return None
    k, n_act = env.n_profiles, env.n_actions
    arr = _as_float_array(joint, "joint_transition")
    if arr.ndim == 2:
        _check_stochastic(
            arr,
            (k, k),
            "joint_transition",
            "one row and one column per type profile, C order over agents",
            lambda r: f"joint_transition row {r} (profile {env.profile_labels(r)})",
        )
    elif arr.ndim == 3:
        if arr.shape != (n_act, k, k):
            raise ValueError(
                f"joint_transition has shape {arr.shape}; expected ({n_act}, {k}, {k}) (one matrix per action, "
                "one row and one column per type profile, C order over agents)"
            )
        for a in range(n_act):
            _check_rows(
                arr[a], lambda r, a=a: f"joint_transition row {r} (profile {env.profile_labels(r)}) for action {a}"
            )
    else:
        raise ValueError(
            f"joint_transition has {arr.ndim} dimensions; expected a ({k}, {k}) matrix or an ({n_act}, {k}, {k}) "
            "stack over type profiles"
        )
    stack = arr if arr.ndim == 3 else arr[None]
    counts = env.type_counts
    for i, ag in enumerate(env.agents):
        if ag.transition is None:
            continue
        # marginal of agent i's next type: (A, K, K_i)
        marg = np.moveaxis(stack.reshape(stack.shape[0], k, *counts), 2 + i, -1)
        marg = marg.reshape(stack.shape[0], k, -1, counts[i]).sum(axis=2)
        own = env.profile_types()[:, i]
        kern = ag.kernel(stack.shape[0] if not ag.action_dependent else n_act)
        if kern.shape[0] != marg.shape[0]:  # an action-dependent agent kernel against one joint matrix
            marg = np.broadcast_to(marg, (kern.shape[0], *marg.shape[1:]))
        gap = np.abs(marg - kern[:, own, :])
        bad = np.argwhere(gap > tolerances.PROBABILITY)
        if bad.size:
            a, r, j = (int(v) for v in bad[0])
            raise ValueError(
                f"transition of agent {ag.name!r} is not the marginal of joint_transition: at profile {r} "
                f"({env.profile_labels(r)}), action {a}, next type {ag.types[j]!r} the joint kernel gives "
                f"{marg[a, r, j]:.12g} and the agent's kernel {kern[a, own[r], j]:.12g}; give transition=None "
                "for an agent whose own type does not follow a Markov chain of its own"
            )
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Agent:
    r"""One agent: an ordered type set with a Markov type process and a valuation table.

    Parameters
    ----------
    name : str
        Used in every message and report.
    types : sequence of str
        Type labels, in the order of ``values`` (ascending).
    prior : array_like, shape (K,)
        First-period distribution :math:`f_i^0`.
    transition : array_like, shape (K, K) or (A, K, K), or None
        Row-stochastic kernel :math:`F_i(\theta'|\theta)`, or one kernel per action when types respond
        to the allocation (learning). Row ``theta``, column ``theta'``. ``None`` only for an agent of an
        :class:`Environment` with a ``joint_transition`` (correlated types), whose own type then need not follow a
        Markov chain of its own.
    valuation : array_like, shape (K, A)
        :math:`v_i(\theta_i, a)`. Checked against the actions by
        :class:`Environment`; ``A`` is the number of its actions.
    values : array_like, shape (K,), optional
        Numeric type values (a buyer's valuations, a seller's costs), strictly increasing. When omitted,
        the types are ordered by their position.
    role : str, optional
        Free text such as ``"buyer"`` or ``"seller"``; used by constructions that need it.
    """

    name: str
    types: tuple[str, ...]
    prior: np.ndarray
    transition: np.ndarray
    valuation: np.ndarray
    values: np.ndarray | None = None
    role: str | None = None

    def __init__(
        self,
        name: str,
        types: Sequence[str],
        prior: Any,
        transition: Any,
        valuation: Any,
        values: Any = None,
        role: str | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"agent name must be a non-empty string, got {name!r}")
        labels = _label_tuple(types, f"types of agent {name!r}", "an agent needs at least one type")
        seen: dict[str, int] = {}
        for j, lab in enumerate(labels):
            if lab in seen:
                raise ValueError(f"types of agent {name!r}: label {lab!r} at index {j} duplicates index {seen[lab]}")
            seen[lab] = j
        k = len(labels)

        prior_arr = _as_float_array(prior, f"prior of agent {name!r}")
        if prior_arr.shape != (k,):
            raise ValueError(
                f"prior of agent {name!r} has shape {prior_arr.shape}; expected ({k},), one entry per type"
            )
        _check_distribution(prior_arr, f"prior of agent {name!r}")

        trans = None if transition is None else _as_float_array(transition, f"transition of agent {name!r}")
        if trans is None:
            pass  # only with the environment's joint_transition (checked by Environment)
        elif trans.ndim == 2:
            _check_stochastic(
                trans,
                (k, k),
                f"transition of agent {name!r}",
                "square, one row and one column per type",
                lambda r: f"transition row {r} of agent {name!r}",
            )
        elif trans.ndim == 3:
            if trans.shape[1:] != (k, k):
                raise ValueError(
                    f"transition of agent {name!r} has shape {trans.shape}; expected (n_actions, {k}, {k})"
                )
            for a in range(trans.shape[0]):
                _check_rows(trans[a], lambda r, a=a: f"transition row {r} for action {a} of agent {name!r}")
        else:
            raise ValueError(
                f"transition of agent {name!r} has {trans.ndim} dimensions; expected a ({k}, {k}) matrix "
                f"or an (n_actions, {k}, {k}) stack"
            )

        val = _as_float_array(valuation, f"valuation of agent {name!r}")
        if val.ndim != 2 or val.shape[0] != k:
            raise ValueError(
                f"valuation of agent {name!r} has shape {val.shape}; expected ({k}, n_actions), one row per type"
            )
        bad = np.argwhere(~np.isfinite(val))
        if bad.size:
            raise ValueError(
                f"valuation of agent {name!r} is not finite at (type, action) {tuple(int(j) for j in bad[0])}"
            )

        vals = None
        if values is not None:
            vals = _as_float_array(values, f"values of agent {name!r}")
            if vals.shape != (k,):
                raise ValueError(f"values of agent {name!r} has shape {vals.shape}; expected ({k},), one per type")
            bad = np.flatnonzero(~np.isfinite(vals))
            if bad.size:
                raise ValueError(f"values of agent {name!r} is not finite at index {int(bad[0])}")
            for j in range(1, k):
                if vals[j] == vals[j - 1]:
                    raise ValueError(
                        f"values of agent {name!r} must be strictly increasing: values[{j}] = {vals[j]:g} "
                        f"duplicates values[{j - 1}]"
                    )
                if vals[j] < vals[j - 1]:
                    raise ValueError(
                        f"values of agent {name!r} must be strictly increasing: values[{j}] = {vals[j]:g} "
                        f"< values[{j - 1}] = {vals[j - 1]:g}"
                    )

        for attr, v in (
            ("name", name),
            ("types", labels),
            ("prior", prior_arr),
            ("transition", trans),
            ("valuation", val),
            ("values", vals),
            ("role", role),
        ):
            if isinstance(v, np.ndarray):
                v.setflags(write=False)
            object.__setattr__(self, attr, v)

    @property
    def n_types(self) -> int:
        return len(self.types)

    @property
    def action_dependent(self) -> bool:
        """True when the kernel depends on the action (one matrix per action)."""
        return self.transition is not None and self.transition.ndim == 3

    def kernel(self, n_actions: int) -> np.ndarray:
        """The kernel as an ``(n_actions, K, K)`` stack (a single matrix is repeated).

        Raises
        ------
        ValueError
            When the agent has no kernel of its own (``transition=None``: its types move with the environment's
            ``joint_transition``).
        """
        if self.transition is None:
            raise ValueError(
                f"agent {self.name!r} has no transition of its own: its types move with the environment's "
                "joint_transition (correlated types)"
            )
        if self.transition.ndim == 3:
            return self.transition
        return np.broadcast_to(self.transition, (n_actions, *self.transition.shape))

    def is_fosd(self) -> bool:
        r"""First-order stochastic dominance of every kernel: :math:`\sum_{k\ge j} F(k|\theta)`
        is non-decreasing in :math:`\theta` for every threshold ``j`` (types in ascending order). ``False`` for an
        agent without a kernel of its own (``transition=None``)."""
        if self.transition is None:
            return False
        kern = self.transition if self.transition.ndim == 3 else self.transition[None]
        upper = np.cumsum(kern[:, :, ::-1], axis=2)[:, :, ::-1]  # P(theta' >= j | theta)
        return bool(np.all(np.diff(upper, axis=1) >= -tolerances.PROBABILITY))


@dataclass(frozen=True, eq=False)
class Environment:
    r"""A finite dynamic environment with independent Markov types.

    Parameters
    ----------
    agents : sequence of Agent
    actions : sequence of str
        Action labels; every agent's valuation has one column per action.
    discount : float
        :math:`\delta`. In ``[0, 1)`` for an infinite horizon, in ``[0, 1]`` for a finite one.
    horizon : int or "infinite"
        Number of periods :math:`T \ge 1`, or ``"infinite"`` (also ``math.inf``).
    allocation : str or array_like, shape (K, A) or (P, K, A)
        The allocation rule :math:`p_t(a|\theta)` as a function of the current report profile (and the period).
        A rule name of :data:`ALLOCATION_RULES`: ``"efficient_myopic"`` picks, at every profile, the action
        maximising :math:`\sum_i v_i(\theta_i, a)` (ties to the action listed first: for bilateral trade, no trade
        when value equals cost); ``"efficient_dynamic"`` maximises expected discounted welfare
        (:func:`mechlp.model.policy.dynamic_policy_tables`: backward induction on a finite horizon, so it may
        depend on the period; policy iteration on an infinite one); ``"efficient"`` (default) is the dynamic rule
        when some kernel depends on the action and the myopic one otherwise (the two coincide then). Or a table
        with one row per profile, or ``P`` such tables: one per period of a finite horizon (``P = T``), or, on an
        infinite horizon, periods ``1..P`` with the last applying from period ``P`` on. Trailing repeated tables
        are dropped (``P = 1`` means stationary).

    joint_transition : array_like, shape (n_profiles, n_profiles) or (n_actions, n_profiles, n_profiles), optional
        A kernel :math:`P(\theta'|\theta)` over type *profiles* (rows and columns in C order over agents, as
        :meth:`profile_types`), or one per action. Given, types may be correlated across agents (Yoon 2015's
        general model; ``env.correlated`` is True) and every belief comes from it (:mod:`mechlp.model.beliefs`:
        agent ``i``'s belief about the others is conditioned on its own type). Every row must be a probability
        vector. An agent's own ``transition`` may then be ``None``; when given, it must be the marginal of this
        kernel, :math:`\sum_{\theta'_{-i}} P(\theta'|\theta, a) = F_i(\theta'_i|\theta_i, a)` at every profile
        and action (it is then used only by code that asks for it, never for beliefs). The first-period prior
        stays the product of the agents' priors. ``None`` (default): the product of the agents' kernels, as before.

    Attributes
    ----------
    allocations : ndarray, shape (P, K, A)
        The validated tables (read-only); :attr:`allocation` is the single table of a stationary allocation.

    Notes
    -----
    When some kernel depends on the action, the allocation must be deterministic: histories then do not
    need to record realised actions (they are a function of the reports). Randomised allocations with
    action-dependent kernels are refused.
    """

    agents: tuple[Agent, ...]
    actions: tuple[str, ...]
    discount: float
    horizon: float
    allocations: np.ndarray
    name: str = "model"
    meta: dict = field(default_factory=dict)
    joint_transition: np.ndarray | None = None

    def __init__(
        self,
        agents: Sequence[Agent],
        actions: Sequence[str],
        discount: float,
        horizon: int | float | str,
        allocation: Any = "efficient",
        name: str = "model",
        meta: dict | None = None,
        joint_transition: Any = None,
    ) -> None:
        agents = tuple(agents)
        if not agents:
            raise ValueError("agents is empty; an environment needs at least one agent")
        for j, ag in enumerate(agents):
            if not isinstance(ag, Agent):
                raise TypeError(f"agents[{j}] must be an Agent, got {type(ag).__name__}")
        names = [ag.name for ag in agents]
        for j, nm in enumerate(names):
            if nm in names[:j]:
                raise ValueError(f"agents[{j}] has the name {nm!r} of agents[{names.index(nm)}]; names must differ")
        actions = _label_tuple(actions, "actions", "an environment needs at least one action")
        for j, a in enumerate(actions):
            if a in actions[:j]:
                raise ValueError(f"actions[{j}] = {a!r} duplicates an earlier action")
        n_act = len(actions)
        for ag in agents:
            if ag.valuation.shape[1] != n_act:
                raise ValueError(
                    f"valuation of agent {ag.name!r} has {ag.valuation.shape[1]} columns; "
                    f"expected {n_act}, one per action {list(actions)}"
                )
            if ag.action_dependent and ag.transition.shape[0] != n_act:
                raise ValueError(
                    f"transition of agent {ag.name!r} has {ag.transition.shape[0]} action layers; "
                    f"expected {n_act}, one per action"
                )

        # horizon
        if isinstance(horizon, str):
            if horizon.strip().lower() not in ("infinite", "inf"):
                raise ValueError(f"horizon must be a positive integer or 'infinite', got {horizon!r}")
            hor: float = INFINITE
        elif isinstance(horizon, bool):
            raise TypeError("horizon must be a positive integer or 'infinite', got a bool")
        elif isinstance(horizon, int | np.integer):
            if horizon < 1:
                raise ValueError(f"horizon must be >= 1, got {horizon}")
            hor = int(horizon)
        elif isinstance(horizon, float):
            if horizon == INFINITE:
                hor = INFINITE
            elif horizon.is_integer() and horizon >= 1:
                hor = int(horizon)
            else:
                raise ValueError(f"horizon must be a positive integer or 'infinite', got {horizon!r}")
        else:
            raise TypeError(f"horizon must be a positive integer or 'infinite', got {type(horizon).__name__}")

        # discount
        if isinstance(discount, bool) or not isinstance(discount, int | float | np.floating | np.integer):
            raise TypeError(f"discount must be a number, got {type(discount).__name__}")
        disc = float(discount)
        if not math.isfinite(disc):
            raise ValueError(f"discount must be finite, got {disc}")
        if hor == INFINITE and not (0.0 <= disc < 1.0):
            raise ValueError(f"discount must lie in [0, 1) for an infinite horizon, got {disc:g}")
        if hor != INFINITE and not (0.0 <= disc <= 1.0):
            raise ValueError(f"discount must lie in [0, 1] for a finite horizon, got {disc:g}")

        counts = tuple(ag.n_types for ag in agents)
        object.__setattr__(self, "agents", agents)
        object.__setattr__(self, "actions", actions)
        object.__setattr__(self, "discount", disc)
        object.__setattr__(self, "horizon", hor)
        object.__setattr__(self, "name", str(name))
        object.__setattr__(self, "meta", dict(meta or {}))

        object.__setattr__(self, "joint_transition", _check_joint_transition(self, joint_transition))
        # allocation: one (K, A) table per period, the last applying to every later period
        tables, rule = self._allocation_tables(allocation, agents, counts, n_act, hor)
        tables.setflags(write=False)
        object.__setattr__(self, "allocations", tables)
        if rule is not None:
            self.meta["allocation_rule"] = rule
        if self.correlated and tables.shape[0] > 1:
            raise ValueError(
                "an allocation that depends on the period with a joint_transition (correlated types) is not "
                "supported yet; give one allocation table"
            )
        if self.action_dependent:
            random_rows = np.argwhere(np.max(tables, axis=2) < 1.0 - tolerances.PROBABILITY)
            if random_rows.size:
                t, r = (int(j) for j in random_rows[0])
                raise ValueError(
                    f"allocation row {r} (profile {self.profile_labels(r)}){self._period_words(t)} randomises while "
                    "a kernel depends on the action; histories would have to record realised actions, "
                    "which is not supported yet"
                )

    def _period_words(self, t: int) -> str:
        return f" of period {t + 1}" if self.allocations.shape[0] > 1 else ""

    def _allocation_tables(
        self, allocation: Any, agents: tuple[Agent, ...], counts: tuple[int, ...], n_act: int, hor: float
    ) -> tuple[np.ndarray, str | None]:
        """``(P, K, A)`` tables of the allocation argument (validated) and the rule's description."""
        n_prof = int(np.prod(counts))
        if isinstance(allocation, str):
            if allocation not in ALLOCATION_RULES:
                raise ValueError(
                    f"allocation must be 'efficient' (or {', '.join(repr(r) for r in list(ALLOCATION_RULES)[1:])}) "
                    f"or a probability table, got {allocation!r}"
                )
            dynamic = allocation == "efficient_dynamic" or (allocation == "efficient" and self.action_dependent)
            if dynamic and self.action_dependent:
                # the dynamic program reads the primitives set so far (agents, actions, discount, horizon)
                return dynamic_policy_tables(self)
            total = self._total_valuation(agents, counts, n_act)
            best = np.argmax(total, axis=1)  # argmax returns the first maximiser: ties go to the first action
            alloc = np.zeros((1, n_prof, n_act))
            alloc[0, np.arange(n_prof), best] = 1.0
            if allocation == "efficient_myopic":
                return alloc, "efficient myopic (this period's welfare only)"
            # kernels ignore the action: the continuation does not depend on it, so the myopic rule is dynamic
            return alloc, None if allocation == "efficient" else "dynamic efficient (kernels ignore the action)"
        alloc = _as_float_array(allocation, "allocation")
        if alloc.ndim != 3 and alloc.shape != (n_prof, n_act):
            raise ValueError(
                f"allocation has shape {alloc.shape}; expected ({n_prof}, {n_act}) (one row per type profile, one "
                "column per action)" + ("" if alloc.ndim == 2 else f" or (n_periods, {n_prof}, {n_act}) per period")
            )
        if alloc.ndim == 2:
            alloc = alloc[None]
        if alloc.shape[1:] != (n_prof, n_act):
            raise ValueError(
                f"allocation has shape {alloc.shape}; expected (n_periods, {n_prof}, {n_act}) (one table per period, "
                "one row per type profile, one column per action)"
            )
        p_len = alloc.shape[0]
        if p_len < 1:
            raise ValueError("allocation has no period table")
        if hor != INFINITE and p_len not in (1, int(hor)):
            raise ValueError(
                f"allocation has {p_len} period tables; expected 1 (the same in every period) or {int(hor)} "
                "(one per period of the horizon)"
            )
        for t in range(p_len):
            _check_rows(
                alloc[t],
                lambda r, t=t: (
                    f"allocation row {r} (profile {self.profile_labels(r)})"
                    + (f" of period {t + 1}" if p_len > 1 else "")
                ),
            )
        last = p_len
        while last > 1 and np.array_equal(alloc[last - 1], alloc[last - 2]):
            last -= 1  # trailing repeats: the last table applies to every later period anyway
        return np.array(alloc[:last], copy=True), None

    @property
    def allocation(self) -> np.ndarray:
        r"""``(K, A)``: the allocation :math:`p(a|\theta)` when it does not depend on the period.

        Raises
        ------
        ValueError
            When it depends on the period (``allocations`` holds one table per period; computations that need
            one table refuse such models through this).
        """
        if self.allocations.shape[0] > 1:
            raise ValueError(
                f"model {self.name!r}: the allocation depends on the period ({self.allocations.shape[0]} tables); "
                "this computation needs one allocation per profile (a stationary allocation)"
            )
        return self.allocations[0]

    @property
    def n_allocation_periods(self) -> int:
        """Number of period tables ``P`` in :attr:`allocations` (1: stationary)."""
        return int(self.allocations.shape[0])

    @property
    def period_dependent(self) -> bool:
        """True when the allocation changes with the period (more than one table)."""
        return self.allocations.shape[0] > 1

    def allocation_at(self, period: int) -> np.ndarray:
        """``(K, A)``: the allocation in ``period`` (1-based; periods after the last table use the last)."""
        if isinstance(period, bool) or not isinstance(period, int | np.integer) or period < 1:
            raise ValueError(f"period must be a positive integer (1 is the first period), got {period!r}")
        return self.allocations[min(int(period), self.allocations.shape[0]) - 1]

    def require_stationary(self, what: str) -> None:
        """Raise ``ValueError`` naming ``what`` when the allocation depends on the period."""
        if self.period_dependent:
            raise ValueError(
                f"{what} needs an allocation that does not depend on the period; model {self.name!r} has "
                f"{self.n_allocation_periods} period tables"
            )

    def with_allocation(self, allocation: Any, name: str | None = None, meta: dict | None = None) -> Environment:
        """A copy with another allocation (a table, ``(P, K, A)`` tables or a rule name)."""
        return Environment(
            self.agents,
            self.actions,
            self.discount,
            "infinite" if self.infinite else int(self.horizon),
            allocation,
            name=self.name if name is None else name,
            meta={k: v for k, v in self.meta.items() if k != "allocation_rule"} if meta is None else meta,
            joint_transition=self.joint_transition,
        )

    # ------------------------------------------------------------------ sizes and indexing
    @staticmethod
    def _total_valuation(agents: tuple[Agent, ...], counts: tuple[int, ...], n_act: int) -> np.ndarray:
        total = np.zeros((*counts, n_act))
        for i, ag in enumerate(agents):
            shape = [1] * len(counts) + [n_act]
            shape[i] = counts[i]
            total = total + ag.valuation.reshape(shape)
        return total.reshape(-1, n_act)

    @property
    def n_agents(self) -> int:
        return len(self.agents)

    @property
    def n_actions(self) -> int:
        return len(self.actions)

    @property
    def type_counts(self) -> tuple[int, ...]:
        return tuple(ag.n_types for ag in self.agents)

    @property
    def n_profiles(self) -> int:
        return int(np.prod(self.type_counts))

    @property
    def infinite(self) -> bool:
        return self.horizon == INFINITE

    @property
    def action_dependent(self) -> bool:
        joint = self.joint_transition is not None and self.joint_transition.ndim == 3
        return joint or any(ag.action_dependent for ag in self.agents)

    @property
    def correlated(self) -> bool:
        """True when the environment has a ``joint_transition`` over type profiles (types may be correlated;
        beliefs then come from the joint kernel, :mod:`mechlp.model.beliefs`)."""
        return self.joint_transition is not None

    def require_independent(self, what: str) -> None:
        """Refuse ``what`` (a computation that assumes types independent across agents) on a correlated
        environment: ``ValueError`` naming it; nothing when ``not self.correlated``."""
        if self.correlated:
            raise ValueError(
                f"{what} assumes types independent across agents, but environment {self.name!r} has a "
                "joint_transition (correlated types); the generic LP (minmax, feasibility, verify) handles it"
            )

    def profile_kernel(self) -> np.ndarray:
        r"""``(n_actions, K, K)``: the kernel over type profiles :math:`P(\theta'|\theta, a)` per action -- the
        ``joint_transition`` (a single matrix repeated), or the product :math:`\prod_i F_i(\theta'_i|\theta_i, a)`
        of the agents' kernels (C order over agents) when there is none."""
        if self.joint_transition is not None:
            jt = self.joint_transition
            return jt if jt.ndim == 3 else np.broadcast_to(jt, (self.n_actions, *jt.shape))
        out = np.ones((self.n_actions, 1, 1))
        for ag in self.agents:
            kern = ag.kernel(self.n_actions)
            out = np.einsum("axy,auv->axuyv", out, kern).reshape(self.n_actions, out.shape[1] * kern.shape[1], -1)
        return out

    def agent_index(self, agent: int | str) -> int:
        """Index of an agent given by position or name."""
        if isinstance(agent, str):
            for i, ag in enumerate(self.agents):
                if ag.name == agent:
                    return i
            raise ValueError(f"no agent named {agent!r}; agents are {[a.name for a in self.agents]}")
        if not 0 <= int(agent) < self.n_agents:
            raise ValueError(f"agent index {agent} out of range 0..{self.n_agents - 1}")
        return int(agent)

    def profile_types(self) -> np.ndarray:
        """``(n_profiles, n_agents)`` array: the type index of each agent in each profile."""
        return np.stack(np.unravel_index(np.arange(self.n_profiles), self.type_counts), axis=1)

    def profile_labels(self, k: int) -> dict[str, str]:
        """``{agent name: type label}`` of profile ``k``."""
        idx = np.unravel_index(int(k), self.type_counts)
        return {ag.name: ag.types[int(j)] for ag, j in zip(self.agents, idx, strict=True)}

    def profile_index(self, agent: int, own: int | np.ndarray, others: np.ndarray) -> np.ndarray:
        """Profile index of (own type of ``agent``, index ``others`` into the profiles of the others).

        ``others`` indexes the C-ordered product of the other agents' type sets.
        """
        counts = self.type_counts
        other_counts = counts[:agent] + counts[agent + 1 :]
        oth = np.unravel_index(np.asarray(others), other_counts) if other_counts else ()
        full = list(oth[:agent]) + [np.asarray(own)] + list(oth[agent:])
        full = np.broadcast_arrays(*full)
        return np.ravel_multi_index(tuple(full), counts)

    def others_count(self, agent: int) -> int:
        counts = self.type_counts
        return int(np.prod(counts[:agent] + counts[agent + 1 :]))

    # ------------------------------------------------------------------ primitives on profiles
    def prior_profile(self) -> np.ndarray:
        """Joint prior over profiles, shape ``(n_profiles,)`` (product of the agents' priors)."""
        out = np.ones(1)
        for ag in self.agents:
            out = np.multiply.outer(out, ag.prior).reshape(-1)
        return out

    def actions_by_profile(self) -> np.ndarray:
        """Index of the (most likely) action at each profile; exact when the allocation is deterministic
        (stationary allocations only: :attr:`allocation`)."""
        return np.argmax(self.allocation, axis=1)

    def period_flow_values(self) -> np.ndarray:
        r"""``(P, n_agents, n_profiles)``: :math:`\sum_a p_t(a|\theta) v_i(\theta_i, a)` for each period table."""
        types = self.profile_types()
        return np.stack(
            [np.einsum("pka,ka->pk", self.allocations, ag.valuation[types[:, i]]) for i, ag in enumerate(self.agents)],
            axis=1,
        )

    def flow_values(self) -> np.ndarray:
        r"""``(n_agents, n_profiles)``: :math:`\sum_a p(a|\theta) v_i(\theta_i, a)` under truth-telling
        (stationary allocations; :meth:`period_flow_values` for one table per period)."""
        types = self.profile_types()
        return np.stack(
            [np.einsum("ka,ka->k", self.allocation, ag.valuation[types[:, i]]) for i, ag in enumerate(self.agents)]
        )

    def welfare(self) -> np.ndarray:
        """Expected flow welfare at each profile, shape ``(n_profiles,)``."""
        return self.flow_values().sum(axis=0)

    def __repr__(self) -> str:
        hor = "infinite" if self.infinite else str(int(self.horizon))
        ags = ", ".join(f"{a.name}[{a.n_types}]" for a in self.agents)
        rule = self.meta.get("allocation_rule")
        if rule is None and self.period_dependent:
            rule = f"{self.n_allocation_periods} period tables"
        extra = "" if rule is None else f", allocation: {rule}"
        return (
            f"Environment({self.name!r}: agents {ags}, actions {list(self.actions)}, delta={self.discount!r}, "
            f"T={hor}{extra})"
        )


def bilateral_trade(
    buyer_values: Sequence[float],
    seller_costs: Sequence[float],
    buyer_prior: Sequence[float],
    seller_prior: Sequence[float],
    buyer_transition: Any,
    seller_transition: Any,
    discount: float,
    horizon: int | str = "infinite",
    buyer_types: Sequence[str] | None = None,
    seller_types: Sequence[str] | None = None,
    buyer_name: str = "buyer",
    seller_name: str = "seller",
    name: str = "bilateral_trade",
    joint_transition: Any = None,
) -> Environment:
    r"""Repeated bilateral trade (Lamba 2022, section 2) with the efficient rule.

    Actions are ``("no_trade", "trade")``. The buyer's valuation is :math:`v\,\mathbb{1}[\text{trade}]`,
    the seller's is :math:`-c\,\mathbb{1}[\text{trade}]`, and the efficient rule trades iff
    :math:`v > c` (no trade at a tie ``v == c``, which is allowed).

    Lamba's closed forms (eqs. 8-9, the discrete VCG of section 5) assume disjoint supports
    :math:`\mathcal V \cap \mathcal C = \emptyset`; ``env.meta["disjoint_supports"]`` records whether that holds.

    Parameters
    ----------
    buyer_values, seller_costs : sequence of float
        The buyer's valuations :math:`\mathcal V` and the seller's costs :math:`\mathcal C`, strictly increasing.
    buyer_prior, seller_prior : sequence of float
        First-period type distributions (non-negative, summing to 1).
    buyer_transition, seller_transition : array_like or None
        Row-stochastic Markov kernels ``F(theta'|theta)`` (rows and columns in the order of the values); ``None``
        with a ``joint_transition``.
    discount : float
        The common discount factor :math:`\delta`.
    horizon : int or "infinite"
        Number of periods. Default ``"infinite"``.
    buyer_types, seller_types : sequence of str, optional
        Type labels; default ``v1, v2, ...`` and ``c1, c2, ...``.
    buyer_name, seller_name, name : str
        Agent and environment names.
    joint_transition : array_like, optional
        A kernel over (buyer, seller) type profiles, buyer first (:class:`Environment`): correlated types.

    Returns
    -------
    Environment
        Two agents (buyer first), actions ``("no_trade", "trade")`` and the rule "trade iff v > c" (``"efficient"``;
        named ``"efficient_myopic"`` when a kernel depends on the action, where the dynamic policy may differ:
        ``env.with_allocation("efficient_dynamic")``).
    """
    bv = _as_float_array(buyer_values, "buyer_values")
    sc = _as_float_array(seller_costs, "seller_costs")
    if bv.ndim != 1:
        raise ValueError(f"buyer_values must be one-dimensional, got shape {bv.shape}")
    if sc.ndim != 1:
        raise ValueError(f"seller_costs must be one-dimensional, got shape {sc.shape}")
    if buyer_types is None:
        buyer_types = [f"v{j + 1}" for j in range(bv.size)]
    if seller_types is None:
        seller_types = [f"c{j + 1}" for j in range(sc.size)]
    buyer = Agent(
        buyer_name,
        buyer_types,
        buyer_prior,
        buyer_transition,
        np.stack([np.zeros_like(bv), bv], axis=1),
        values=bv,
        role="buyer",
    )
    seller = Agent(
        seller_name,
        seller_types,
        seller_prior,
        seller_transition,
        np.stack([np.zeros_like(sc), -sc], axis=1),
        values=sc,
        role="seller",
    )
    disjoint = not bool(np.intersect1d(bv, sc).size)
    learning = buyer.action_dependent or seller.action_dependent or np.ndim(joint_transition) == 3
    return Environment(
        [buyer, seller],
        ("no_trade", "trade"),
        discount,
        horizon,
        # trade iff v > c: also when kernels depend on the action (then it is the myopic rule, by name)
        "efficient_myopic" if learning else "efficient",
        name=name,
        meta={"kind": "bilateral_trade", "disjoint_supports": disjoint},
        joint_transition=joint_transition,
    )


def renewal_matrix(n_types: int, persistence: float) -> np.ndarray:
    r"""Renewal kernel (Lamba 2022, footnote 25 (i)): stay with probability ``persistence``, otherwise move to
    each other type with probability ``(1 - persistence) / (n_types - 1)``."""
    if isinstance(n_types, bool) or not isinstance(n_types, int | np.integer) or n_types < 1:
        raise ValueError(f"n_types must be a positive integer, got {n_types!r}")
    if not 0.0 <= float(persistence) <= 1.0:
        raise ValueError(f"persistence must lie in [0, 1], got {persistence!r}")
    if n_types == 1:
        return np.ones((1, 1))
    off = (1.0 - persistence) / (n_types - 1)
    return np.full((n_types, n_types), off) + (persistence - off) * np.eye(n_types)
