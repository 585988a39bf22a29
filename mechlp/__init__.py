r"""mechlp: dynamic mechanism design with linear programming.

The flat public API. Everything a user needs is importable from the top level::

    import mechlp as ml

    env = ml.lamba_usstp(alpha=0.7, delta=0.95)
    mm = ml.minmax(env)  # Pi*(h) at every history, the tight mechanism, its verification
    ml.feasibility(env, "interim").status  # 'optimal' (feasible)

The names below are stable; the modules they live in (the layer folders of docs/design.md section 2) may
move. Transfers are payments *from* the agent *to* the designer throughout (docs/design.md section 1).

Questions (each answer re-verified independently before it is returned)
    :func:`minmax`, :func:`feasibility` (Lamba 2022, Theorem 1, Lemma 6, Corollary 1); :func:`second_best`,
    :func:`optimal_mechanism` (allocation as LP variables); :func:`critical_delta` (critical discount factor);
    :func:`intermediate_minmax`, :func:`intermediate_feasibility`, :func:`lamba_double_star` (Lamba's
    intermediate mechanism, :math:`\Pi^{**}`); :func:`share_surplus`, :func:`ex_post_balance` (Lamba 2022,
    Corollaries 4-5 and Proposition 1); :func:`compare_sharing` (several sharing rules side by side).
Classic constructions
    :func:`dynamic_pivot` (Bergemann and Välimäki 2010), :func:`lump_sum_fees`, :func:`fee_condition`,
    :func:`critical_discount` (Yoon 2015, 2021), :func:`balanced_team` (Athey and Segal 2007),
    :func:`athey_segal_constants`, :func:`bonded_team` (their section 6: the constants :math:`A_i`,
    :math:`\delta^*`, and the balanced team mechanism made individually rational by a bond),
    :func:`minmax_closed_form` (Lamba 2022, eqs. 8-9 and section 6.1), :func:`groves` (the dynamic Groves family:
    team mechanism, pivot, any distribution term; Yoon 2021, Definition 1 and Theorem 3).
Characterisation
    :func:`transfer_ranges` (the smallest and largest payment at every node over the mechanisms satisfying a
    question's rows, a uniqueness verdict and two verified witnesses; Bergemann and Välimäki 2010, Theorem 2).
Certificates
    :func:`verify` (the independent checker; :func:`verify_realised` on histories that record realised actions),
    :func:`check_impossibility` (Farkas certificates), :func:`check_optimality` (exact optimality certificates of
    the second best and optimal mechanisms: an exactly verified mechanism and an exact dual bound),
    :func:`check_certificate` (certificate files).
Models
    :class:`Agent`, :class:`Environment`, :func:`bilateral_trade`; the spaces :class:`HistoryTree`,
    :class:`MarkovSpace`, :class:`TreeWithTail`, :class:`ActionTree` (histories with realised actions);
    :class:`Mechanism`, :class:`ActionMechanism`; :class:`Result`; :func:`load_model` (TOML
    files); the ready-made models :func:`lamba_usstp`, :func:`yoon_binary`, :func:`yoon_k_type`,
    :func:`bv_scheduling`, :func:`license_auction`, :func:`public_project`, :func:`bv_diverse` (diverse
    preferences), :func:`random_trade` (random kernels,
    generally not FOSD).
Workflows
    :func:`sweep`, :func:`load_sweep` (parameter grids), :func:`feasibility_boundary`, :func:`load_boundary`
    (feasibility regions with exact boundaries: every critical value along each grid line),
    :func:`split_minmax` (trees too large for memory, by
    subtrees), :func:`plot` (figures), :func:`report` (one self-contained HTML page
    per model: every answer with its proof status), :func:`to_latex`, :func:`to_markdown`,
    :func:`to_csv`, :func:`to_json` (exports: every answer's tables and every sweep, numbers as in the JSON).

``import mechlp`` loads neither cvxpy nor matplotlib: the cvxpy backend imports cvxpy when it is used, and
:func:`plot` (the only name that needs matplotlib at import) is loaded on first access. The verifier's
layer is the subpackage :mod:`mechlp.audit` (:mod:`mechlp.audit.verifier`, :mod:`mechlp.audit.certfile`), so the
function ``mechlp.verify`` shadows no module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mechlp.audit.certfile import check_certificate
from mechlp.audit.realised import verify_realised
from mechlp.audit.verifier import check_impossibility, check_optimality, verify
from mechlp.catalog.examples import (
    bv_diverse,
    bv_scheduling,
    lamba_usstp,
    license_auction,
    public_project,
    random_trade,
    yoon_binary,
    yoon_k_type,
)
from mechlp.catalog.io import load_model
from mechlp.constructions.fees import critical_discount, fee_condition, lump_sum_fees
from mechlp.constructions.groves import groves
from mechlp.constructions.lamba import minmax_closed_form
from mechlp.constructions.participation import athey_segal_constants, bonded_team
from mechlp.constructions.pivot import dynamic_pivot
from mechlp.constructions.team import balanced_team
from mechlp.model.environment import Agent, Environment, bilateral_trade
from mechlp.model.mechanism import ActionMechanism, Mechanism
from mechlp.model.spaces import ActionTree, HistoryTree, MarkovSpace, TreeWithTail
from mechlp.solve.critical import critical_delta
from mechlp.solve.intermediate import intermediate_feasibility, intermediate_minmax, lamba_double_star
from mechlp.solve.questions import feasibility, minmax
from mechlp.solve.ranges import transfer_ranges
from mechlp.solve.result import Result
from mechlp.solve.second_best import optimal_mechanism, second_best
from mechlp.workflows.boundary import feasibility_boundary, load_boundary
from mechlp.workflows.export import to_csv, to_json, to_latex, to_markdown
from mechlp.workflows.sharing import compare_sharing, ex_post_balance, share_surplus
from mechlp.workflows.split import split_minmax
from mechlp.workflows.sweep import load_sweep, sweep

if TYPE_CHECKING:  # seen by type checkers and import-linter; loaded lazily at run time (matplotlib)
    from mechlp.workflows.plots import plot
    from mechlp.workflows.report import report

__version__ = "0.1.0"

#: Names loaded on first access, with the module that defines them (they import matplotlib).
_LAZY: dict[str, str] = {"plot": "mechlp.workflows.plots", "report": "mechlp.workflows.report"}

__all__ = [
    # questions
    "minmax",
    "feasibility",
    "second_best",
    "optimal_mechanism",
    "critical_delta",
    "intermediate_minmax",
    "intermediate_feasibility",
    "lamba_double_star",
    "share_surplus",
    "compare_sharing",
    "ex_post_balance",
    # classic constructions
    "dynamic_pivot",
    "lump_sum_fees",
    "fee_condition",
    "critical_discount",
    "balanced_team",
    "athey_segal_constants",
    "bonded_team",
    "minmax_closed_form",
    "groves",
    # characterisation
    "transfer_ranges",
    # certificates
    "verify",
    "verify_realised",
    "check_impossibility",
    "check_optimality",
    "check_certificate",
    # models
    "Agent",
    "Environment",
    "bilateral_trade",
    "HistoryTree",
    "MarkovSpace",
    "TreeWithTail",
    "Mechanism",
    "ActionTree",
    "ActionMechanism",
    "Result",
    "load_model",
    "lamba_usstp",
    "yoon_binary",
    "yoon_k_type",
    "bv_scheduling",
    "license_auction",
    "public_project",
    "bv_diverse",
    "random_trade",
    # workflows
    "sweep",
    "load_sweep",
    "feasibility_boundary",
    "load_boundary",
    "split_minmax",
    "plot",
    "report",
    "to_latex",
    "to_markdown",
    "to_csv",
    "to_json",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """Load the names of ``_LAZY`` on first access (PEP 562), so ``import mechlp`` does not load matplotlib."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mechlp' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's names, including the lazily loaded ones."""
    return sorted(set(globals()) | set(_LAZY))
