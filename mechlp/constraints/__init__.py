"""Constraint builders: sparse labelled blocks for every family of design.md section 2.

This package is the only place where the constraint mathematics lives; the verifier
(:mod:`mechlp.certificates`) re-derives every check independently and never imports it.
"""

from ._common import AgentView, outside_options
from .budget import BUDGET_MODES, budget_blocks, surplus_coefficients
from .ic import IC_MODES, ic_blocks
from .ir import IR_MODES, ir_blocks
from .limits import transfer_bounds
from .recursion import recursion_blocks

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
