"""The independent checker (:mod:`mechlp.verify.checker`) and certificate files (:mod:`mechlp.verify.certfile`).

Imports :mod:`mechlp.model` only: it never sees the LP rows it checks (an import-linter contract)."""
