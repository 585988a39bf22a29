"""Constraint builders: sparse labelled blocks for every family of docs/design.md section 6.

This package is the only place where the constraint mathematics lives; the verifier
(:mod:`mechlp.audit.verifier`) re-derives every check independently and never imports it. The options
(notions, outside options, limits) come parsed from :class:`mechlp.model.question.Question`.
"""

from mechlp.constraints._common import AgentView
from mechlp.constraints.accounting import recursion_blocks
from mechlp.constraints.budget import budget_blocks, surplus_coefficients
from mechlp.constraints.ic import ic_blocks
from mechlp.constraints.ir import ir_blocks
from mechlp.constraints.limits import transfer_bounds

__all__ = [
    "AgentView",
    "budget_blocks",
    "surplus_coefficients",
    "ic_blocks",
    "ir_blocks",
    "recursion_blocks",
    "transfer_bounds",
]
