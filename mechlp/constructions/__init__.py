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
