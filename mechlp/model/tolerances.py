"""The project's single tolerance policy.

Every numerical comparison in mechlp goes through one of the constants below, so a user can tell
exactly what "feasible", "stochastic" or "binding" means in a report.

``PROBABILITY``
    Input validation: a prior or a transition row is accepted when its entries are >= 0 and it sums to 1
    within this absolute tolerance (1e-9). Inputs are *not* renormalised silently.
``FEASIBILITY``
    Float verification of a mechanism: a constraint ``lhs >= rhs`` counts as satisfied when
    ``lhs - rhs >= -FEASIBILITY`` (1e-7, HiGHS's own primal feasibility tolerance). The verifier always
    reports the largest violation itself, so a user can apply a stricter threshold.
``BINDING``
    A satisfied inequality whose slack is at most this (1e-7) is reported as binding.
``SURPLUS``
    A surplus ``Pi*(h)`` is read as negative (efficiency fails) only when it is below ``-SURPLUS`` (1e-9);
    values in ``[-SURPLUS, 0)`` are reported as a tie and flagged in the result message.
``HIGHS_SMALL_MATRIX_VALUE``
    HiGHS's ``small_matrix_value`` (1e-12, the smallest value HiGHS allows), set on every HiGHS run: HiGHS drops
    coefficients below it. Its default 1e-9 drops continuation terms ``delta * P(theta'|theta)`` of small
    discount factors, and the LP can then exploit the missing links with huge utilities (seen: a 0.04 IC
    violation at delta = 1e-7, caught by the verifier).

Exact re-checks (``exact=True``) use no tolerance at all: they are done in rational arithmetic.
"""

from __future__ import annotations

PROBABILITY: float = 1e-9
FEASIBILITY: float = 1e-7
BINDING: float = 1e-7
SURPLUS: float = 1e-9
HIGHS_SMALL_MATRIX_VALUE: float = 1e-12

__all__ = ["PROBABILITY", "FEASIBILITY", "BINDING", "SURPLUS", "HIGHS_SMALL_MATRIX_VALUE"]
