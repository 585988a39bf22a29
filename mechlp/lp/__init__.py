"""The LP layer: variable layout, labelled sparse blocks and their assembly (:mod:`mechlp.lp.program`)."""
