"""Proofs: impossibility certificates (:mod:`mechlp.proofs.farkas`) and exactly feasible mechanisms with
margins (:mod:`mechlp.proofs.margins`)."""
