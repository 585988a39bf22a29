"""Model files (TOML, :mod:`mechlp.catalog.io`) and ready-made models from the papers
(:mod:`mechlp.catalog.examples`)."""
