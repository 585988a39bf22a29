"""mechlp: dynamic mechanism design with linear programming.

See README.md for the questions (:mod:`mechlp.design`), the model files (:mod:`mechlp.io`) and the
certificates (:mod:`mechlp.certificates`).
"""

from .environment import Agent, Environment, bilateral_trade
from .spaces import HistoryTree, MarkovSpace, TreeWithTail

__version__ = "0.1.0"

__all__ = ["Agent", "Environment", "bilateral_trade", "HistoryTree", "MarkovSpace", "TreeWithTail", "__version__"]
