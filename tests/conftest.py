"""Test-suite settings: hypothesis runs derandomized (the same examples every run), so CI is reproducible;
``HYPOTHESIS_PROFILE=explore`` draws fresh examples."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
