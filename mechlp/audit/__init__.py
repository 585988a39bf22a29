"""The independent checker (:mod:`mechlp.audit.verifier`) and certificate files (:mod:`mechlp.audit.certfile`).

Imports :mod:`mechlp.model` only: it never sees the LP rows it checks (an import-linter contract)."""
