"""Classic constructions the LP results are checked against (docs/design.md section 10)."""

from mechlp.constructions.lamba import (
    LambaClosedForm,
    ex_post_minmax_mechanism,
    minmax_closed_form,
    minmax_mechanism,
    vcg_interim_utilities,
)
from mechlp.constructions.vcg import discrete_vcg, discrete_vcg_transfers

__all__ = [
    "LambaClosedForm",
    "discrete_vcg",
    "discrete_vcg_transfers",
    "ex_post_minmax_mechanism",
    "minmax_closed_form",
    "minmax_mechanism",
    "vcg_interim_utilities",
]

# Athey-Segal (2007) balanced team mechanism (issue #4, part b).
from mechlp.constructions.team import TeamResult, balance_transfers, balanced_team, incentive_payments, team_transfers  # noqa: E402

__all__ += ["TeamResult", "balance_transfers", "balanced_team", "incentive_payments", "team_transfers"]

# Athey-Segal (2007) section 6: participation by bonding (issue #14, item 2).
from mechlp.constructions.participation import (  # noqa: E402
    BondedTeamResult,
    ParticipationConstants,
    athey_segal_constants,
    bonded_team,
    team_participation_slack,
)

__all__ += [
    "BondedTeamResult",
    "ParticipationConstants",
    "athey_segal_constants",
    "bonded_team",
    "team_participation_slack",
]

# Bergemann-Välimäki (2010) dynamic pivot and Yoon (2015) lump-sum fees (issue #4, part a).
from mechlp.constructions.fees import (  # noqa: E402
    CriticalDiscount,
    FeeCondition,
    FeeResult,
    critical_discount,
    fee_condition,
    lump_sum_fees,
)
from mechlp.constructions.pivot import PivotResult, PivotValues, dynamic_pivot, pivot_values  # noqa: E402
from mechlp.model.policy import DPSolution, efficient_environment, efficient_values, feasible_without  # noqa: E402

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
