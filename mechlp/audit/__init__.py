"""The independent checker (:mod:`mechlp.audit.verifier`), its counterpart for histories that record realised actions
(:mod:`mechlp.audit.realised`) and certificate files (:mod:`mechlp.audit.certfile`).

Imports :mod:`mechlp.model` only: it never sees the LP rows it checks (an import-linter contract)."""

from mechlp.audit.realised import surplus_realised, verify_realised

__all__ = ["verify_realised", "surplus_realised"]
