"""Constraint builders: sparse labelled blocks for every family of docs/design.md section 6.

This package is the only place where the constraint mathematics lives; the verifier
(:mod:`mechlp.verify.checker`) re-derives every check independently and never imports it.
"""

from mechlp.constraints._common import AgentView, outside_options
from mechlp.constraints.accounting import recursion_blocks
from mechlp.constraints.budget import BUDGET_MODES, budget_blocks, surplus_coefficients
from mechlp.constraints.ic import IC_MODES, ic_blocks
from mechlp.constraints.ir import IR_MODES, ir_blocks
from mechlp.constraints.limits import transfer_bounds

__all__ = [
    "AgentView",
    "outside_options",
    "BUDGET_MODES",
    "IC_MODES",
    "IR_MODES",
    "budget_blocks",
    "surplus_coefficients",
    "ic_blocks",
    "ir_blocks",
    "recursion_blocks",
    "transfer_bounds",
]
