r"""The project's single tolerance policy: every numerical threshold of mechlp, named here and only here.

Every numerical comparison in mechlp goes through one of the constants below, so a user can tell exactly what
"feasible", "stochastic", "binding" or "converged" means in a report. ``tests/test_tolerances.py`` fails when a
float literal below ``1e-3`` appears anywhere else in the package (or ``np.isclose`` is called with its
defaults). Exact re-checks (``exact=True``) use no tolerance at all: they are done in rational arithmetic.

"Relative" below means: times a scale, usually ``max(1, largest magnitude of the quantities compared)``, so that
the threshold is absolute for numbers of order one and relative for large ones.

Inputs and verification
-----------------------
``PROBABILITY`` (1e-9)
    Input validation: a prior, a transition row or a node allocation row is accepted when its entries are
    ``>= -PROBABILITY`` and it sums to 1 within this absolute tolerance. Inputs are *not* renormalised silently.
``FEASIBILITY`` (1e-7)
    Float verification of a mechanism: a constraint ``lhs >= rhs`` counts as satisfied when
    ``lhs - rhs >= -FEASIBILITY`` (HiGHS's own primal feasibility tolerance). The verifier always reports the
    largest violation itself, so a user can apply a stricter threshold.
``BINDING`` (1e-7)
    A satisfied inequality whose slack is at most this is reported as binding.
``SURPLUS`` (1e-9)
    A surplus ``Pi*(h)`` is read as negative (efficiency fails) only when it is below ``-SURPLUS``; values in
    ``[-SURPLUS, 0)`` are reported as a tie and flagged in the result message. Also the sign threshold of the
    critical-discount scans.
``FARKAS_FLOAT_CHECK`` (1e-9, relative to the size of the terms)
    Float check of a Farkas certificate (:func:`mechlp.audit.verifier.check_impossibility`): ``L`` counts as
    constant when every transfer's coefficient in it (:math:`A^T y`, by the adjoint pass) is at most this
    relative to the size of the terms (``max(1, |L(0)|, sum of the multipliers)``), and as negative when ``L(0)``
    is below minus this; the adjoint must also match the forward evaluation at one random point to this
    relative accuracy. Rounding keeps these near ``1e-15`` relative, far below it. (The exact check needs zero.)
``SAVINGS_SWEEP`` (1e-15, relative to ``max |Pi|``)
    The float value iteration of the savings check (worst solvency ``W(h)``) has converged when a sweep moves
    no ``W(h)`` by more than this: a few ulps, since the iteration reaches its fixed point exactly on trees.
``MONOTONE`` (1e-9, relative)
    Monotonicity checks of a scanned criterion (:mod:`mechlp.model.bisection`: critical discount factors and
    lump-sum-fee scans): neighbouring evaluations ``v1`` at ``d1 < d2`` and ``v2`` count as a decrease only when
    ``v1 > v2 + MONOTONE * max(1, |v1|, |v2|)`` (the rounding of a surplus or a slack).

LP solvers and formulations
---------------------------
``HIGHS_SMALL_MATRIX_VALUE`` (1e-12)
    HiGHS's ``small_matrix_value`` (the smallest value HiGHS allows), set on every HiGHS run: HiGHS drops
    coefficients below it. Its default 1e-9 drops continuation terms ``delta * P(theta'|theta)`` of small
    discount factors, and the LP can then exploit the missing links with huge utilities (seen: a 0.04 IC
    violation at delta = 1e-7, caught by the verifier). :func:`mechlp.constraints.formulation.build_lp` warns
    when a coefficient is below it.
``DUAL`` (1e-7)
    Dual feasibility tolerance of :func:`mechlp.solve.second_best.dual_certificate` (residuals and sign
    violations above it fail): HiGHS's own dual feasibility tolerance.
``TAIL_DEPTH_GAIN`` (1e-9, relative: times ``1 + |value|``)
    ``tail="auto"`` of :func:`mechlp.solve.second_best.second_best` deepens the history-dependent part while a
    depth raises the objective by more than this (a stopping rule, reported with the sequence; not a proof that
    deeper histories add nothing).
``SEPARATION`` (1e-9, relative: times ``1 + |lower bound|``)
    Constraint generation of :func:`mechlp.solve.second_best.second_best` (``rows="generated"``) adds an IC row
    left out of the LP when the solution violates it by more than this; it stops when no left-out row does.
``BETA`` (1e-9)
    A user-given sharing rule :math:`\beta` (:func:`mechlp.workflows.sharing.share_surplus`) lies in the simplex
    when its entries are ``>= -BETA``, its sums are within ``BETA`` of the bound, and a Markov/stationary
    :math:`\beta` varies by at most ``BETA`` within a state.
``TIE_BREAK_SLACK`` (1e-9, relative to the optimum)
    The tie-breaking second LP of the beta rules keeps the first stage's optimum up to this slack, so that
    round-off in the first stage cannot make it infeasible.
``LEAST_SHARES`` (1e-10, relative)
    The least-shares solve of the ``"min-max-transfer"`` sharing rule (``mechlp.workflows.sharing``): a share
    system counts as feasible when every row holds within this tolerance; also the primal and dual feasibility
    tolerances of its small tail LPs.
``LEAST_SHARES_BISECTION`` (1e-13, relative)
    Width at which the bisection on the largest payment of that rule stops.
``EXACT_MARGIN`` (1e-6)
    Default margin of :func:`mechlp.proofs.margins.exact_feasible_mechanism`: every row is tightened by it so
    that the float solution survives an exact re-check (rounding of the interim utilities is ~1e-16, far below;
    the cost in surplus is at most the margin per row).
``OPTIMALITY_GAP`` (1e-5, relative to ``max(1, |value|)``)
    An exact optimality certificate of the second best or an optimal mechanism
    (:func:`mechlp.audit.verifier.check_optimality`) proves optimality when its exact gap, the dual bound minus
    the objective of the exactly verified mechanism, is at most this; the primal mechanism is built with
    ``EXACT_MARGIN`` room (then improved toward the float optimum), so the gap is of the order of the margin
    times the multipliers.
``CERTIFY_SOLVER`` (1e-10)
    HiGHS's primal and dual feasibility tolerances when the second best is to be certified exactly
    (:func:`mechlp.solve.second_best.second_best`, ``certify=True``): with HiGHS's defaults (1e-7) its "optimal"
    basis can leave the dual bound ~1e-7 above the value (USSTP, 5-period tree: 3e-7), too loose for
    ``OPTIMALITY_GAP``.
``FARKAS_ZERO`` (1e-13, relative to the largest multiplier)
    Float Farkas multipliers below this fraction of the largest are set to zero before the exact support
    solve (:mod:`mechlp.proofs.farkas`): they are solver noise, and keeping them enlarges the support.

Dynamic programming, recursion and fixed points
-----------------------------------------------
``TIE`` (1e-9, relative: times ``max |reward|``, and the horizon or ``1/(1-delta)``)
    Q values within this of the maximum are ties (:mod:`mechlp.model.policy`); ties go to the first action,
    as :class:`~mechlp.model.environment.Environment` does.
``BELLMAN_RESIDUAL`` (1e-9, relative: times ``max |reward| / (1 - delta)``)
    Policy iteration must end with a Bellman residual below ``1000 * tie tolerance + BELLMAN_RESIDUAL * scale``
    (an error otherwise).
``GMRES_RTOL`` (1e-14)
    Relative residual of the GMRES policy evaluation of large Markov problems (``atol = 0``): close to machine
    precision, so the values agree with a direct solve.
``RELAX`` (1e-13, relative: times ``1 + |U|``)
    A Bellman-Ford relaxation of the Lemma 6 recursion (:mod:`mechlp.solve.recursion`) counts only when it raises
    a utility by more than this: zero-weight cycles (pooled types) then never update, so the binding edges always
    form a tree; a history still improving after ``K_i`` rounds has a positive cycle and is reported.
``FIXED_POINT`` (1e-12, relative: times ``1 + max |U|``)
    The recursion's Markov fixed point is accepted when one more application of the backward map moves no
    interim utility by more than this.
``TIGHT`` (1e-11, relative: times ``1 + |U|``)
    A recursion edge is tight (binding) when its slack is at most this.
``POINTWISE_CHECK`` (1e-12)
    Coefficients of the recursion's pointwise-optimality check may be this negative (rounding of kernel
    differences); kernel gaps at most this in magnitude count as zero when a reported cycle is classified.
``SPECTRAL_MARGIN`` (1e-9)
    The power-iteration (Collatz-Wielandt) bound on a spectral radius certifies ``radius < 1`` only when it is
    below ``1 - SPECTRAL_MARGIN``, so rounding cannot certify a radius of exactly one.
``POWER_ITERATION_FLOOR`` (1e-12)
    Added to the normalised power-iteration vector so that it stays positive (the Collatz-Wielandt bound
    ``max(M v / v)`` needs ``v > 0``); negligible against its entries of order one.
``WELFARE_FIXED_POINT`` (1e-14, relative: times ``1 + max |W|``)
    Fixed-point iteration of the stationary welfare :math:`W_n = w + \delta Q W_n` (recursion) stops when the a
    posteriori error bound :math:`\frac{\delta}{1-\delta}\|W^{k+1} - W^k\|` is below this.

Constructions and scans
-----------------------
``DYNAMIC_EFFICIENCY`` (1e-7, relative to ``max |W|``)
    The dynamic pivot (:func:`mechlp.constructions.pivot.pivot_values`) accepts the allocation as dynamically
    efficient when it loses at most this against the efficient value (values come from policy evaluation,
    whose errors add up over profiles).
``FLOW_EFFICIENCY`` (1e-12, relative to the largest flow welfare)
    The team mechanism (:mod:`mechlp.constructions.team`) accepts the allocation as efficient when its expected
    flow welfare is at most this below the best action's at every profile (a direct comparison of sums).
``ZERO_RENT`` (1e-9, relative to ``max |W|``)
    A rent :math:`M_i - O_i` (marginal contribution minus outside value) at most this counts as zero in
    :func:`mechlp.constructions.fees.zero_rent_types` (Bergemann and Välimäki 2010, Assumption 1(i)).
``EXIT`` (1e-9, relative to ``max |W|``)
    Bergemann and Välimäki's (2010) efficient exit (:func:`mechlp.constructions.pivot.exit_nodes`): the
    environment's action counts as optimal for the others' program (agent ``i`` does not affect the decision) when
    the pivot's externality :math:`z_i` is at most this.
``RANGE_UNIQUE`` (1e-6, relative: times ``max(1, |lower|, |upper|)``)
    A payment range :math:`[\min x_i(g), \max x_i(g)]` of :func:`mechlp.solve.ranges.transfer_ranges` counts as
    one point ("unique") when its width is at most this: ten times the LP's feasibility tolerance, since each end
    is an LP optimum accurate to about ``FEASIBILITY`` times the size of the duals.
``DISCOUNT_GAP`` (1e-6)
    An infinite-horizon problem with :math:`1 - \delta` below this is ill-conditioned: continuation values
    scale like :math:`1/(1-\delta)`, so the solvers' absolute tolerances (``FEASIBILITY``) fall below the rounding
    of the values they compare; an answer no proof backs is then reported as ``"ill_conditioned"``.
``BISECTION_WIDTH`` (1e-9)
    Default width of the final brackets of :func:`mechlp.model.bisection.scan_and_bisect` and
    :func:`mechlp.solve.critical.critical_delta` (and of ``mechlp critical-delta``).
``FEE_BISECTION_WIDTH`` (1e-8)
    Default width of the final brackets of :func:`mechlp.constructions.fees.critical_discount` (and of its CLI).

Matching user-given numbers
---------------------------
``MATCH_RTOL``, ``MATCH_ATOL`` (1e-5, 1e-8: numpy's ``isclose`` defaults)
    A number given by a user matches a grid value (task values on the ``grid`` of
    :func:`mechlp.catalog.examples.bv_scheduling`) or a column value of a sweep table (``where=`` filters of
    :mod:`mechlp.workflows.plots`) when ``|a - b| <= MATCH_ATOL + MATCH_RTOL * |b|``: numbers typed with a few
    digits, read back from CSV.
"""

from __future__ import annotations

# inputs and verification
PROBABILITY: float = 1e-9
FEASIBILITY: float = 1e-7
BINDING: float = 1e-7
SURPLUS: float = 1e-9
FARKAS_FLOAT_CHECK: float = 1e-9
SAVINGS_SWEEP: float = 1e-15
# LP solvers and formulations
HIGHS_SMALL_MATRIX_VALUE: float = 1e-12
DUAL: float = 1e-7
SEPARATION: float = 1e-9
TAIL_DEPTH_GAIN: float = 1e-9
BETA: float = 1e-9
TIE_BREAK_SLACK: float = 1e-9
LEAST_SHARES: float = 1e-10
LEAST_SHARES_BISECTION: float = 1e-13
EXACT_MARGIN: float = 1e-6
OPTIMALITY_GAP: float = 1e-5
CERTIFY_SOLVER: float = 1e-10
FARKAS_ZERO: float = 1e-13
# dynamic programming, recursion and fixed points
TIE: float = 1e-9
BELLMAN_RESIDUAL: float = 1e-9
GMRES_RTOL: float = 1e-14
RELAX: float = 1e-13
FIXED_POINT: float = 1e-12
TIGHT: float = 1e-11
POINTWISE_CHECK: float = 1e-12
SPECTRAL_MARGIN: float = 1e-9
POWER_ITERATION_FLOOR: float = 1e-12
WELFARE_FIXED_POINT: float = 1e-14
# constructions and scans
DYNAMIC_EFFICIENCY: float = 1e-7
FLOW_EFFICIENCY: float = 1e-12
ZERO_RENT: float = 1e-9
EXIT: float = 1e-9
RANGE_UNIQUE: float = 1e-6
DISCOUNT_GAP: float = 1e-6
BISECTION_WIDTH: float = 1e-9
MONOTONE: float = 1e-9
FEE_BISECTION_WIDTH: float = 1e-8
# matching user-given numbers
MATCH_RTOL: float = 1e-5
MATCH_ATOL: float = 1e-8

__all__ = [
    "PROBABILITY",
    "FEASIBILITY",
    "BINDING",
    "SURPLUS",
    "FARKAS_FLOAT_CHECK",
    "SAVINGS_SWEEP",
    "HIGHS_SMALL_MATRIX_VALUE",
    "DUAL",
    "SEPARATION",
    "TAIL_DEPTH_GAIN",
    "BETA",
    "TIE_BREAK_SLACK",
    "LEAST_SHARES",
    "LEAST_SHARES_BISECTION",
    "EXACT_MARGIN",
    "OPTIMALITY_GAP",
    "CERTIFY_SOLVER",
    "FARKAS_ZERO",
    "TIE",
    "BELLMAN_RESIDUAL",
    "GMRES_RTOL",
    "RELAX",
    "FIXED_POINT",
    "TIGHT",
    "POINTWISE_CHECK",
    "SPECTRAL_MARGIN",
    "POWER_ITERATION_FLOOR",
    "WELFARE_FIXED_POINT",
    "DYNAMIC_EFFICIENCY",
    "FLOW_EFFICIENCY",
    "ZERO_RENT",
    "EXIT",
    "RANGE_UNIQUE",
    "DISCOUNT_GAP",
    "BISECTION_WIDTH",
    "MONOTONE",
    "FEE_BISECTION_WIDTH",
    "MATCH_RTOL",
    "MATCH_ATOL",
]
