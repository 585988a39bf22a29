"""mechlp: dynamic mechanism design with linear programming.

See README.md for the questions (:mod:`mechlp.solve.questions`), the model files (:mod:`mechlp.catalog.io`) and the
certificates (:mod:`mechlp.verify.checker`).
"""

from mechlp.model.environment import Agent, Environment, bilateral_trade
from mechlp.model.spaces import HistoryTree, MarkovSpace, TreeWithTail

__version__ = "0.1.0"

__all__ = ["Agent", "Environment", "bilateral_trade", "HistoryTree", "MarkovSpace", "TreeWithTail", "__version__"]
