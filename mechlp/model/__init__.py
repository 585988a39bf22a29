"""Layer 0, the model: environments, state spaces, mechanisms, the question spec, beliefs, exact numbers,
tolerances. Imports nothing else from mechlp (docs/design.md section 2)."""
