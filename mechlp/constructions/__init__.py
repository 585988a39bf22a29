"""Classic constructions the LP results are checked against (design.md section 5)."""

from .lamba import LambaClosedForm, minmax_closed_form, minmax_mechanism, vcg_interim_utilities
from .vcg import discrete_vcg, discrete_vcg_transfers

__all__ = [
    "LambaClosedForm",
    "discrete_vcg",
    "discrete_vcg_transfers",
    "minmax_closed_form",
    "minmax_mechanism",
    "vcg_interim_utilities",
]

# Athey-Segal (2007) balanced team mechanism (issue #4, part b).
from .team import TeamResult, balance_transfers, balanced_team, incentive_payments, team_transfers  # noqa: E402

__all__ += ["TeamResult", "balance_transfers", "balanced_team", "incentive_payments", "team_transfers"]

# Bergemann-Välimäki (2010) dynamic pivot and Yoon (2015) lump-sum fees (issue #4, part a).
from .dp import DPSolution, efficient_environment, efficient_values, feasible_without  # noqa: E402
from .fees import (  # noqa: E402
    CriticalDiscount,
    FeeCondition,
    FeeResult,
    critical_discount,
    fee_condition,
    lump_sum_fees,
)
from .pivot import PivotResult, PivotValues, dynamic_pivot, pivot_values  # noqa: E402

__all__ += [
    "DPSolution",
    "efficient_environment",
    "efficient_values",
    "feasible_without",
    "CriticalDiscount",
    "FeeCondition",
    "FeeResult",
    "critical_discount",
    "fee_condition",
    "lump_sum_fees",
    "PivotResult",
    "PivotValues",
    "dynamic_pivot",
    "pivot_values",
]

# Sharing the min-max surplus (Lamba 2022, Cor. 4-5) and ex post budget balance (Prop. 1) (issue #3).
from .sharing import (  # noqa: E402
    NegativeSurplusError,
    SharingResult,
    ex_post_balance,
    interim_payments,
    lamba_ex_post_transfers,
    mechanism_from_interim,
    share_surplus,
    shift_mechanism,
    static_surplus,
)

__all__ += [
    "NegativeSurplusError",
    "SharingResult",
    "ex_post_balance",
    "interim_payments",
    "lamba_ex_post_transfers",
    "mechanism_from_interim",
    "share_surplus",
    "shift_mechanism",
    "static_surplus",
]
