r"""Lamba's min-max dynamic VCG mechanism for infinite-horizon bilateral trade, in closed form.

Everything here is linear algebra on the Markov chain of type profiles; no LP is solved. The results are the
reference values the LP answers of :mod:`mechlp.solve.questions` are checked against (docs/design.md section 10).

Notation (Lamba 2022, sections 5 and 6.1; project sign convention of docs/design.md section 1):

* buyer values :math:`v_1 < \dots < v_N` with kernel :math:`f(v'|v)` and prior :math:`f(v)`, seller costs
  :math:`c_1 < \dots < c_M` with kernel :math:`g(c'|c)` and prior :math:`g(c)`; the joint kernel over
  profiles is :math:`Q((v',c')|(v,c)) = f(v'|v)\,g(c'|c)`;
* :math:`x^{vcg}` are the gap-adjusted static VCG payments of :mod:`mechlp.constructions.vcg` (payments to
  the designer; the seller's is minus her receipt);
* the ex post utilities of the repeated VCG mechanism solve (Lamba 2022, eq. 3)

  .. math::
     U_i^{vcg}(\theta) = \text{flow}_i(\theta) - x_i^{vcg}(\theta)
        + \delta \sum_{\theta'} Q(\theta'|\theta)\, U_i^{vcg}(\theta'),
     \qquad\text{i.e. } U_i^{vcg} = (I - \delta Q)^{-1} (\text{flow}_i - x_i^{vcg});

* interim utilities condition on the *other* agent's previous type only:
  :math:`\bar U_B^{vcg}(v|c) = \sum_{c'} g(c'|c) U_B^{vcg}(v, c')` and
  :math:`\bar U_B^{vcg}(v) = \sum_{c'} g(c') U_B^{vcg}(v, c')` in the first period (seller symmetric).

The "lowest" types are the buyer's lowest value :math:`\underline v = v_1` and the seller's *highest* cost
:math:`\overline c = c_M`: under first-order stochastic dominance they minimise the interim utility.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mechlp.constructions.vcg import check_bilateral_trade, discrete_vcg_transfers
from mechlp.model import tolerances
from mechlp.model.beliefs import joint_beliefs, joint_transition
from mechlp.model.environment import Environment
from mechlp.model.mechanism import Mechanism
from mechlp.model.spaces import MarkovSpace

__all__ = [
    "LambaClosedForm",
    "vcg_interim_utilities",
    "minmax_closed_form",
    "minmax_mechanism",
    "ex_post_minmax_mechanism",
]


def _check_lamba_preconditions(env: Environment, what: str) -> None:
    """Raise ``ValueError`` naming the rule when Lamba's closed forms do not apply to ``env``."""
    for ag in env.agents:  # first: with learning "efficient" is the dynamic policy, not "trade iff v > c"
        if ag.action_dependent:
            raise ValueError(
                f"{what} needs action-independent kernels (Lamba 2022's types evolve exogenously); "
                f"agent {ag.name!r} has one kernel per action"
            )
    env.require_independent(what)
    check_bilateral_trade(env, what)
    if not env.infinite:
        raise ValueError(
            f"{what} needs an infinite horizon (Lamba 2022's closed forms are stationary); "
            f"the environment has horizon {int(env.horizon)}"
        )
    common = np.intersect1d(env.agents[0].values, env.agents[1].values)
    if common.size or env.meta.get("disjoint_supports") is False:
        raise ValueError(
            f"{what} needs disjoint supports (values and costs share no element, as Lamba 2022 eqs. (8)-(9) "
            f"assume); common point(s): {common.tolist()}"
        )
    for ag in env.agents:
        if not ag.is_fosd():
            raise ValueError(
                f"{what} needs kernels ordered by first-order stochastic dominance (Agent.is_fosd()), "
                f"so that the lowest types are v_1 and c_M; the kernel of agent {ag.name!r} is not FOSD"
            )


def _profile_utilities(env: Environment) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ex post VCG utilities ``(2, K)``, discounted welfare ``(K,)`` on profiles, and the VCG payments."""
    x = discrete_vcg_transfers(env)
    q = joint_transition(env)
    system = np.eye(env.n_profiles) - env.discount * q
    flow = env.flow_values()
    rhs = np.vstack([flow - x, flow.sum(axis=0, keepdims=True)])
    sol = np.linalg.solve(system, rhs.T).T
    return sol[: env.n_agents], sol[env.n_agents], x


def vcg_interim_utilities(env: Environment) -> list[np.ndarray]:
    r"""Interim utilities of the repeated gap-adjusted VCG mechanism (Lamba 2022, eq. 3 with x = x^vcg).

    The VCG mechanism is stationary, so its ex post utilities :math:`U_i^{vcg}(v, c)` solve the linear system
    :math:`(I - \delta Q) U_i^{vcg} = \text{flow}_i - x_i^{vcg}` on the Markov chain of profiles. Interim
    utilities then average over the other agent's current type:

    .. math::
       \bar U_B^{vcg}(v) = \sum_{c} g(c) U_B^{vcg}(v, c), \qquad
       \bar U_B^{vcg}(v \mid \tilde v, \tilde c) = \sum_{c} g(c|\tilde c)\, U_B^{vcg}(v, c),

    and symmetrically
    :math:`\bar U_S^{vcg}(c \mid \tilde v, \tilde c) = \sum_v f(v|\tilde v) U_S^{vcg}(v, c)`.

    Parameters
    ----------
    env : Environment
        Infinite-horizon bilateral trade (see :func:`minmax_closed_form` for the preconditions).

    Returns
    -------
    list of ndarray
        ``[Ubar_B, Ubar_S]``, each of shape ``(1 + n_profiles, K_i)``, rows in the history order of
        :class:`~mechlp.model.spaces.MarkovSpace`: row 0 is the first period, row ``1 + s`` follows report profile
        ``s``; column = own type index. The same layout as ``Mechanism.interim_utilities()`` on
        ``MarkovSpace(env)``.

    Raises
    ------
    ValueError
        When the preconditions of :func:`minmax_closed_form` fail.
    """
    _check_lamba_preconditions(env, "vcg_interim_utilities")
    u, _, _ = _profile_utilities(env)
    return _interim(env, u)


def _interim(env: Environment, u: np.ndarray) -> list[np.ndarray]:
    buyer, seller = env.agents
    n, m = buyer.n_types, seller.n_types
    ub = u[0].reshape(n, m)  # [v, c]
    us = u[1].reshape(n, m)
    f, g = buyer.transition, seller.transition
    prev = env.profile_types()  # (K, 2): previous (v~, c~) of history 1 + s
    out_b = np.empty((1 + n * m, n))
    out_b[0] = ub @ seller.prior
    out_b[1:] = (g @ ub.T)[prev[:, 1]]  # [c~, v] -> rows by previous profile
    out_s = np.empty((1 + n * m, m))
    out_s[0] = buyer.prior @ us
    out_s[1:] = (f @ us)[prev[:, 0]]  # [v~, c]
    return [out_b, out_s]


@dataclass(frozen=True, eq=False)
class LambaClosedForm:
    r"""Lamba's min-max dynamic VCG mechanism in closed form (Lamba 2022, eqs. (8)-(9), section 6.1).

    Attributes
    ----------
    env : Environment
    pi_root : float
        :math:`\Pi^* = \Pi^{vcg} + \bar U_B^{vcg}(\underline v) + \bar U_S^{vcg}(\overline c)` (eq. 8): the
        most ex ante budget surplus any IC and IR mechanism implementing the efficient rule can raise.
    pi_by_state : ndarray, shape (N, M)
        :math:`\Pi^*(v, c) = \Pi^{vcg}(v, c) + \bar U_B^{vcg}(\underline v|c) + \bar U_S^{vcg}(\overline c|v)`
        (eq. 9), indexed ``[v, c]`` by last period's reports.
    pi_vcg_root : float
        :math:`\Pi^{vcg}`: expected discounted welfare minus the agents' expected VCG utilities, i.e. the
        expected discounted budget surplus :math:`E[\sum_t \delta^{t-1} (x_B^{vcg} + x_S^{vcg})]`.
    pi_vcg_by_state : ndarray, shape (N, M)
        :math:`\Pi^{vcg}(v, c)`, the same after last period's reports ``(v, c)``.
    fee_first : ndarray, shape (2,)
        First-period fixed fees ``[z_{B,1}, z_{S,1}]`` (payments to the designer).
    fee_by_state : tuple of ndarray
        ``(z_B, z_S)``: ``z_B[c]`` is the buyer's fee after the seller reported cost index ``c`` last period
        (shape ``(M,)``), ``z_S[v]`` the seller's fee after the buyer reported value index ``v``
        (shape ``(N,)``). Payments to the designer.
    vcg_interim : list of ndarray
        Output of :func:`vcg_interim_utilities`.
    vcg_transfers : ndarray, shape (2, n_profiles)
        Output of :func:`~mechlp.constructions.vcg.discrete_vcg_transfers`.
    lowest_types : tuple of int
        ``(0, M - 1)``: the buyer's lowest value and the seller's highest cost.

    Notes
    -----
    The fees follow Lamba (2022), section 6.1, Step 3, solved for :math:`z`:

    .. math::
       z_B(c) = \bar U_B^{vcg}(\underline v|c) - \delta \sum_{c'} g(c'|c)\, \bar U_B^{vcg}(\underline v|c'),
       \qquad
       z_{B,1} = \bar U_B^{vcg}(\underline v) - \delta \sum_{c'} g(c')\, \bar U_B^{vcg}(\underline v|c'),

    .. math::
       z_S(v) = \bar U_S^{vcg}(\overline c|v) - \delta \sum_{v'} f(v'|v)\, \bar U_S^{vcg}(\overline c|v'),
       \qquad
       z_{S,1} = \bar U_S^{vcg}(\overline c) - \delta \sum_{v'} f(v')\, \bar U_S^{vcg}(\overline c|v').

    Lamba writes the seller's fee as a reduction of her receipt; in the project convention both fees are
    payments, added to :math:`x^{vcg}`: :math:`x_i^*(\theta | h) = x_i^{vcg}(\theta) + z_i(h)`. The value of
    the fee stream from a history equals the lowest type's VCG interim utility there, so under
    :math:`x^*` the lowest types get exactly zero and the designer's surplus is :math:`\Pi^*`.
    """

    env: Environment
    pi_root: float
    pi_by_state: np.ndarray
    pi_vcg_root: float
    pi_vcg_by_state: np.ndarray
    fee_first: np.ndarray
    fee_by_state: tuple[np.ndarray, np.ndarray]
    vcg_interim: list[np.ndarray]
    vcg_transfers: np.ndarray
    lowest_types: tuple[int, int]

    @property
    def pi_markov(self) -> np.ndarray:
        """``Pi*`` in :class:`~mechlp.model.spaces.MarkovSpace` history order: ``[Pi*, Pi*(profile 0), ...]``."""
        return np.concatenate([[self.pi_root], self.pi_by_state.reshape(-1)])

    @property
    def pi_vcg_markov(self) -> np.ndarray:
        """``Pi^vcg`` in :class:`~mechlp.model.spaces.MarkovSpace` history order."""
        return np.concatenate([[self.pi_vcg_root], self.pi_vcg_by_state.reshape(-1)])

    def fees_markov(self) -> np.ndarray:
        """Fixed fees, shape ``(2, 1 + n_profiles)``: per agent, at each ``MarkovSpace`` history."""
        prev = self.env.profile_types()
        z_b, z_s = self.fee_by_state
        out = np.empty((2, 1 + self.env.n_profiles))
        out[:, 0] = self.fee_first
        out[0, 1:] = z_b[prev[:, 1]]
        out[1, 1:] = z_s[prev[:, 0]]
        return out

    @property
    def interim_budget_feasible(self) -> bool:
        """Efficiency is implementable under interim (or ex post) budget balance: every ``Pi* >= 0``
        (Lamba 2022, Theorem 1), reading values within ``tolerances.SURPLUS`` of zero as ties."""
        return bool(np.all(self.pi_markov >= -tolerances.SURPLUS))

    @property
    def ex_ante_budget_feasible(self) -> bool:
        """Efficiency is implementable under ex ante budget balance: ``Pi* >= 0`` (Lamba 2022, Cor. 1)."""
        return bool(self.pi_root >= -tolerances.SURPLUS)

    def mechanism(self, space: MarkovSpace | None = None) -> Mechanism:
        """The min-max dynamic VCG mechanism ``x^vcg + fee`` on the Markov space (Lamba 2022, section 6.1)."""
        if space is None:
            space = MarkovSpace(self.env)
        if not isinstance(space, MarkovSpace) or space.env is not self.env:
            raise ValueError("mechanism() needs a MarkovSpace of the same environment as the closed form")
        fees = self.fees_markov()
        x = self.vcg_transfers[:, space.node_profile] + fees[:, space.node_hist]
        return Mechanism(space, x)


def minmax_closed_form(env: Environment) -> LambaClosedForm:
    r"""Lamba's min-max dynamic VCG mechanism for infinite-horizon bilateral trade, by linear algebra.

    Computes (Lamba 2022, eqs. (8)-(9), section 6.1)

    .. math::
       \Pi^* = \Pi^{vcg} + \bar U_B^{vcg}(\underline v) + \bar U_S^{vcg}(\overline c), \qquad
       \Pi^*(v, c) = \Pi^{vcg}(v, c) + \bar U_B^{vcg}(\underline v|c) + \bar U_S^{vcg}(\overline c|v),

    where :math:`\Pi^{vcg}(h) = E[\sum_t \delta^t \text{welfare} | h] - E[\bar U_B^{vcg} | h]
    - E[\bar U_S^{vcg} | h]` is the expected budget surplus of the repeated VCG mechanism, and the fixed fees
    that implement the min-max mechanism (see :class:`LambaClosedForm`).

    Parameters
    ----------
    env : Environment
        Bilateral trade (``env.meta["kind"] == "bilateral_trade"``) with an infinite horizon, disjoint
        supports, action-independent kernels ordered by first-order stochastic dominance.

    Returns
    -------
    LambaClosedForm

    Raises
    ------
    ValueError
        Naming the failed rule: not bilateral trade, finite horizon, overlapping supports
        (``env.meta["disjoint_supports"]`` false), action-dependent kernels, or a kernel that is not FOSD.
    """
    _check_lamba_preconditions(env, "minmax_closed_form")
    buyer, seller = env.agents
    n, m = buyer.n_types, seller.n_types
    delta = env.discount
    u, welfare, x = _profile_utilities(env)
    interim = _interim(env, u)
    f, g = buyer.transition, seller.transition
    lo_b, lo_s = 0, m - 1

    # Pi^vcg(h) = E[discounted welfare | h] - E[U_B^vcg + U_S^vcg | h] (Lamba 2022, eq. 4 with x = x^vcg)
    bel = joint_beliefs(MarkovSpace(env))  # (1 + K, K)
    pi_vcg = bel @ (welfare - u.sum(axis=0))  # (1 + K,)

    # lowest types' VCG interim utilities: the buyer's by the seller's previous cost, the seller's by the
    # buyer's previous value
    ub = u[0].reshape(n, m)
    us = u[1].reshape(n, m)
    low_b = g @ ub[lo_b]  # Ubar_B(v_1 | c~), shape (M,)
    low_s = f @ us[:, lo_s]  # Ubar_S(c_M | v~), shape (N,)
    low_b_root = float(seller.prior @ ub[lo_b])
    low_s_root = float(buyer.prior @ us[:, lo_s])

    z_b = low_b - delta * (g @ low_b)
    z_s = low_s - delta * (f @ low_s)
    z_first = np.array([low_b_root - delta * (seller.prior @ low_b), low_s_root - delta * (buyer.prior @ low_s)])

    pi_vcg_by_state = pi_vcg[1:].reshape(n, m)
    pi_by_state = pi_vcg_by_state + low_b[None, :] + low_s[:, None]
    pi_root = float(pi_vcg[0] + low_b_root + low_s_root)

    for arr in (pi_by_state, pi_vcg_by_state, z_first, z_b, z_s, x, *interim):
        arr.setflags(write=False)
    return LambaClosedForm(
        env=env,
        pi_root=pi_root,
        pi_by_state=pi_by_state,
        pi_vcg_root=float(pi_vcg[0]),
        pi_vcg_by_state=pi_vcg_by_state,
        fee_first=z_first,
        fee_by_state=(z_b, z_s),
        vcg_interim=interim,
        vcg_transfers=x,
        lowest_types=(lo_b, lo_s),
    )


def minmax_mechanism(env: Environment) -> Mechanism:
    """The min-max dynamic VCG mechanism on ``MarkovSpace(env)``: VCG payments plus Lamba's fixed fees.

    Shorthand for ``minmax_closed_form(env).mechanism()`` (Lamba 2022, section 6.1).
    """
    return minmax_closed_form(env).mechanism()


def ex_post_minmax_mechanism(env: Environment, space: MarkovSpace | None = None) -> Mechanism:
    r"""Lamba's min-max dynamic VCG mechanism as the paper writes it: eqs. (5)-(6), ex post utilities.

    Lamba (2022, section 5, Step 2) subtracts from the repeated VCG mechanism's *ex post* utility vector the
    lowest type's, profile by profile:

    .. math::
       U_B^*(v, c) = U_B^{vcg}(v, c) - U_B^{vcg}(\underline v, c), \qquad
       U_S^*(v, c) = U_S^{vcg}(v, c) - U_S^{vcg}(v, \overline c),

    (the infimum over the own type is the lowest type's by first-order stochastic dominance). These are stationary
    continuation utilities, so the payments that produce them (eq. 3 solved for ``x``) are the VCG payments plus a
    fee that depends on the *other* agent's current report only,

    .. math::
       z_B(c) = U_B^{vcg}(\underline v, c) - \delta \sum_{c'} g(c'|c)\, U_B^{vcg}(\underline v, c'), \qquad
       z_S(v) = U_S^{vcg}(v, \overline c) - \delta \sum_{v'} f(v'|v)\, U_S^{vcg}(v', \overline c),

    the same at every history (first period included). Its *interim* utilities (and so :math:`\Pi^*(h)`) are
    those of :func:`minmax_mechanism` (VCG plus fees on the previous profile, section 6.1): the lowest type's
    interim utility is zero in both; the *ex post* utilities differ, which is what Lamba's intermediate
    :math:`\Pi^{**}` averages (:func:`mechlp.solve.intermediate.lamba_double_star`).

    Parameters
    ----------
    env : Environment
        As for :func:`minmax_closed_form`.
    space : MarkovSpace, optional
        Of ``env``; default ``MarkovSpace(env)``.

    Returns
    -------
    Mechanism
        On the Markov space: ``x_i(h, theta) = x_i^vcg(theta) + z_i(theta_{-i})``.
    """
    _check_lamba_preconditions(env, "ex_post_minmax_mechanism")
    if space is None:
        space = MarkovSpace(env)
    if not isinstance(space, MarkovSpace) or space.env is not env:
        raise ValueError("ex_post_minmax_mechanism needs a MarkovSpace of env (space.env is not env)")
    buyer, seller = env.agents
    n, m = buyer.n_types, seller.n_types
    u, _, x = _profile_utilities(env)
    low_b = u[0].reshape(n, m)[0]  # U_B^vcg(v_1, c), (M,)
    low_s = u[1].reshape(n, m)[:, m - 1]  # U_S^vcg(v, c_M), (N,)
    z_b = low_b - env.discount * (seller.transition @ low_b)
    z_s = low_s - env.discount * (buyer.transition @ low_s)
    prof = env.profile_types()  # (K, 2)
    fee = np.vstack([z_b[prof[:, 1]], z_s[prof[:, 0]]])  # (2, K) on the current profile
    return Mechanism(space, x[:, space.node_profile] + fee[:, space.node_profile])
