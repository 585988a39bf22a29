r"""The question spec: which constraints a mechanism must satisfy, parsed once (docs/design.md section 6.1).

A *question* is the choice of an incentive notion (IC), a participation notion (IR) with the agents' outside
options, a budget notion, and optional transfer limits. Every layer reads the same :class:`Question`: the LP
builders (:mod:`mechlp.constraints`), the recursion, the proofs, the independent verifier
(:mod:`mechlp.audit.verifier`, which keeps its own row arithmetic but not its own option parsing), certificate
files, the command line and sweeps.

Notions (``NOTIONS``)
---------------------
``ic``
    ``"bayesian"`` (default): :math:`\bar U_i(t|h) \ge D_i(r; t|h)` for every history and every
    :math:`t \ne r` (Lamba 2022, Definition 1); ``"ex_post"``: the same pointwise in the others' current types
    (within-period ex post IC, Definition 7); ``"local"``: Bayesian rows for adjacent types only (valid with a
    monotone allocation and FOSD kernels, Lamba appendix 9.1; an answer must be re-verified globally).
``ir``
    ``"interim"`` (default): :math:`\bar U_i(t|h) \ge o_i(t)` at every history (Definition 2); ``"ex_post"``:
    :math:`U_i(h, \theta) \ge o_i(\theta_i)` at every node; ``"ex_ante"``: the interim rows at the root only.
``budget``
    ``"interim"`` (default): :math:`\Pi(h) \ge 0` at every history (Definition 3); ``"ex_ante"``:
    :math:`\Pi(\text{root}) \ge 0` (Definition 4); ``"ex_post"``: :math:`\sum_i x_i(h, \theta) = 0` at every
    node (Definition 5); ``"savings"``: a running designer account that may carry past surplus forward but
    never goes negative; ``"none"``: no budget rows.

Spellings
---------
Each notion has one *written* spelling, with underscores (``"ex_post"``), used in every output: Python
results, ``--json`` answers, certificate files and sweep CSVs. Reading accepts the written spelling and the
same word with hyphens (``"ex-post"``), everywhere.

Certifying relaxation
---------------------
An impossibility certificate (Farkas multipliers, :mod:`mechlp.proofs.farkas`) is computed on the rows of a
question that every mechanism of the asked question also satisfies, so a proof that the relaxed question is
infeasible proves the asked one infeasible: ex post budget balance implies :math:`\Pi(h) = 0 \ge 0`
(interim), a savings account that never goes negative implies :math:`\Pi(\text{root}) \ge 0` (ex ante).
``Notion.certified_by`` names that relaxation, or is ``None`` when no certificate is generated. Ex post IC and
IR rows and transfer limits are their own relaxation (certified in ex post utilities,
:func:`mechlp.constraints.interim.utility_rows`); with any of them an ex post budget is certified by its own
rows too (:meth:`Question.certifying`). Without budget rows (``"none"``) the certificate is over the IC, IR
and limit rows alone (IC infeasibility of a non-implementable allocation).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mechlp.model.environment import Environment

__all__ = [
    "Notion",
    "NOTIONS",
    "DEFAULTS",
    "FAMILIES",
    "Question",
    "parse_notion",
    "notion_names",
    "outside_options",
    "agent_limits",
    "check_choice",
]

FAMILIES: tuple[str, ...] = ("ic", "ir", "budget")


@dataclass(frozen=True)
class Notion:
    """One notion of one constraint family.

    Attributes
    ----------
    family : {"ic", "ir", "budget"}
    name : str
        The written spelling (underscores).
    meaning : str
        What the rows say, in one line (used in reports and ``--help``).
    certified_by : str or None
        The notion of the same family whose rows an impossibility certificate uses (the certifying
        relaxation, see the module docstring); ``None`` when mechlp generates no certificate for it.
    """

    family: str
    name: str
    meaning: str
    certified_by: str | None

    @property
    def spellings(self) -> tuple[str, ...]:
        """Every accepted spelling: the written one and, where it differs, the hyphenated one."""
        alt = self.name.replace("_", "-")
        return (self.name,) if alt == self.name else (self.name, alt)


def _family(family: str, *notions: tuple[str, str, str | None]) -> dict[str, Notion]:
    return {name: Notion(family, name, meaning, cert) for name, meaning, cert in notions}


NOTIONS: dict[str, dict[str, Notion]] = {
    "ic": _family(
        "ic",
        ("bayesian", "no profitable one-shot misreport given the belief about the others (interim)", "bayesian"),
        ("ex_post", "no profitable one-shot misreport whatever the others' current types", "ex_post"),
        ("local", "Bayesian IC against adjacent misreports only (re-verified against all misreports)", "local"),
    ),
    "ir": _family(
        "ir",
        ("interim", "expected continuation utility >= outside option at every history and type", "interim"),
        ("ex_post", "continuation utility >= outside option at every node", "ex_post"),
        ("ex_ante", "expected utility >= outside option at the start only", "ex_ante"),
    ),
    "budget": _family(
        "budget",
        ("ex_ante", "designer's expected surplus at the root >= 0", "ex_ante"),
        ("interim", "designer's expected continuation surplus Pi(h) >= 0 at every history", "interim"),
        ("ex_post", "payments sum to zero at every node", "interim"),
        ("none", "no budget constraint", "none"),
        ("savings", "a running designer account never negative (past surplus carried forward)", "ex_ante"),
    ),
}

#: The default notion of each family (every Python function and CLI command uses these).
DEFAULTS: dict[str, str] = {"ic": "bayesian", "ir": "interim", "budget": "interim"}


def notion_names(family: str) -> tuple[str, ...]:
    """The written spellings of a family's notions, in the order of ``NOTIONS``."""
    if family not in NOTIONS:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    return tuple(NOTIONS[family])


def parse_notion(family: str, value: Any, *, allowed: Sequence[str] | None = None, argument: str | None = None) -> str:
    """The written spelling of ``value`` as a notion of ``family``; both ``"ex_post"`` and ``"ex-post"`` are read.

    Parameters
    ----------
    family : {"ic", "ir", "budget"}
    value : str
    allowed : sequence of str, optional
        The notions a function supports (written spellings); default every notion of the family.
    argument : str, optional
        The argument's name in error messages (default ``family``).

    Raises
    ------
    ValueError
        When ``value`` is not a string or names no allowed notion.
    """
    names = notion_names(family)
    choices = tuple(names if allowed is None else allowed)
    unknown = [c for c in choices if c not in names]
    if unknown:  # a programming error in a caller's subset
        raise ValueError(f"{unknown[0]!r} is not a {family} notion; notions are {names}")
    what = argument or family
    listed = ", ".join(repr(c) for c in choices)
    if not isinstance(value, str):
        raise ValueError(f"{what} must be one of {listed}; got {value!r}")
    key = value.replace("-", "_")
    if key not in choices:
        if key in names:
            raise ValueError(f"{what} must be one of {listed} here; {value!r} is not one of the notions it supports")
        raise ValueError(f"{what} must be one of {listed}; got {value!r} (hyphens are read as underscores)")
    return key


def check_choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    """``value`` when it is one of ``allowed``: the one check of an option that is not a notion (``backend``,
    ``method``, ``rule``, ``objective``, ...); the error names the option, the choices and the value."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    return value


# ---------------------------------------------------------------------------------------------- outside options
def _as_numbers(v: Any, what: str) -> np.ndarray:
    if isinstance(v, str | bytes) or v is None or isinstance(v, bool) or isinstance(v, np.bool_):
        raise TypeError(f"{what} must be numeric, got {v!r}")
    try:
        arr = np.asarray(v, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be numeric: {exc}") from None
    if arr.dtype == object or (np.asarray(v).dtype == bool):
        raise TypeError(f"{what} must be numeric, got {v!r}")
    bad = np.flatnonzero(~np.isfinite(arr.ravel()))
    if bad.size:
        raise ValueError(f"{what} is not finite at index {int(bad[0])}")
    return arr


def outside_options(value: Any, env: Environment) -> list[np.ndarray]:
    r"""Reservation utilities :math:`o_i(t)` as one float array of shape ``(K_i,)`` per agent.

    ``value`` is one number for everyone, one entry per agent (a sequence of length ``n_agents`` or a
    ``{agent name: entry}`` mapping; agents left out of a mapping get 0), where an entry is a number or one
    number per type. Booleans, strings and non-finite numbers are refused.
    """
    n = env.n_agents
    counts = env.type_counts
    names = [ag.name for ag in env.agents]
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in names]
        if unknown:
            raise ValueError(f"outside_option names unknown agent {unknown[0]!r}; agents are {names}")
        value = [value.get(nm, 0.0) for nm in names]
    if isinstance(value, bool | np.bool_):
        raise TypeError("outside_option must be numeric, got a bool")
    if isinstance(value, int | float | np.integer | np.floating) or (isinstance(value, np.ndarray) and value.ndim == 0):
        return [np.full(k, float(_as_numbers(value, "outside_option"))) for k in counts]
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        raise TypeError(
            f"outside_option must be numeric: a number, one per agent, or one per agent and type; got {value!r}"
        )
    if len(value) != n:
        raise ValueError(f"outside_option has {len(value)} entries; expected {n}, one per agent {names}")
    out = []
    for i, (v, k) in enumerate(zip(value, counts, strict=True)):
        arr = _as_numbers(v, f"outside_option[{i}] (agent {names[i]!r})")
        if arr.ndim == 0:
            out.append(np.full(k, float(arr)))
        elif arr.shape == (k,):
            out.append(arr.copy())
        else:
            raise ValueError(
                f"outside_option[{i}] (agent {names[i]!r}) has shape {arr.shape}; expected a number or ({k},), "
                "one per type"
            )
    return out


# ---------------------------------------------------------------------------------------------- limits
def agent_limits(limits: Any, env: Environment) -> tuple[np.ndarray, np.ndarray]:
    r"""Per-agent payment bounds ``(lo, hi)`` (arrays of length ``n_agents``): :math:`lo_i \le x_i \le hi_i`.

    ``limits`` is ``None`` or a mapping ``{agent name or index: (lo, hi)}``; ``None`` or ``inf`` leaves a side
    open; ``lo > hi`` or NaN is an error. Payments are from the agent to the designer, so ``lo = 0`` forbids
    paying the agent (limited liability).
    """
    lo = np.full(env.n_agents, -np.inf)
    hi = np.full(env.n_agents, np.inf)
    if limits is None or (isinstance(limits, Mapping) and not limits):
        return lo, hi
    if not isinstance(limits, Mapping):
        raise TypeError(f"limits must be a dict {{agent: (lo, hi)}}, got {type(limits).__name__}")
    for key, pair in limits.items():
        i = env.agent_index(key)
        try:
            a, b = pair
        except (TypeError, ValueError):
            raise ValueError(f"limits[{key!r}] must be a pair (lo, hi), got {pair!r}") from None
        for side in (a, b):
            if isinstance(side, bool | str | bytes):
                raise TypeError(f"limits[{key!r}] must hold numbers or None, got {pair!r}")
        a = -math.inf if a is None else float(a)
        b = math.inf if b is None else float(b)
        if math.isnan(a) or math.isnan(b) or a > b:
            raise ValueError(f"limits[{key!r}] = ({a}, {b}) is not an interval lo <= hi")
        lo[i], hi[i] = a, b
    return lo, hi


# ---------------------------------------------------------------------------------------------- the question
_KEYS = ("ic", "ir", "budget", "outside_option", "limits")


@dataclass(frozen=True, eq=False)
class Question:
    r"""One validated question about one environment: IC, IR (with outside options), budget, transfer limits.

    Build it with :meth:`parse` (Python arguments) or :meth:`from_dict` (a certificate file's ``question``);
    every notion is stored in its written spelling.

    Attributes
    ----------
    env : Environment
    ic, ir, budget : str
        Notions (see ``NOTIONS``).
    outside : tuple of ndarray
        :math:`o_i(t)`, one ``(K_i,)`` array per agent.
    limits_lo, limits_hi : ndarray
        Per-agent payment bounds (``-inf`` / ``inf`` where open).
    """

    env: Environment
    ic: str
    ir: str
    budget: str
    outside: tuple[np.ndarray, ...]
    limits_lo: np.ndarray
    limits_hi: np.ndarray

    @classmethod
    def parse(
        cls,
        env: Environment,
        *,
        ic: Any = DEFAULTS["ic"],
        ir: Any = DEFAULTS["ir"],
        budget: Any = DEFAULTS["budget"],
        outside_option: Any = 0.0,
        limits: Any = None,
        allowed: Mapping[str, Sequence[str]] | None = None,
    ) -> Question:
        """Validate the arguments of a question; ``allowed`` restricts a family to the notions a caller supports."""
        if not isinstance(env, Environment):
            raise TypeError(f"env must be an Environment, got {type(env).__name__}")
        allowed = allowed or {}
        unknown = [k for k in allowed if k not in FAMILIES]
        if unknown:
            raise ValueError(f"allowed names unknown family {unknown[0]!r}; families are {FAMILIES}")
        lo, hi = agent_limits(limits, env)
        return cls(
            env,
            parse_notion("ic", ic, allowed=allowed.get("ic")),
            parse_notion("ir", ir, allowed=allowed.get("ir")),
            parse_notion("budget", budget, allowed=allowed.get("budget")),
            tuple(outside_options(outside_option, env)),
            lo,
            hi,
        )

    @classmethod
    def from_dict(cls, env: Environment, doc: Any, where: str = "question") -> Question:
        """Read a question written by :meth:`to_dict` (or by hand): unknown keys and values are errors; a
        missing key takes its default (``ic="bayesian"``, ``ir="interim"``, ``budget="interim"``, outside
        option 0, no limits)."""
        if not isinstance(doc, Mapping):
            raise ValueError(f"{where} must be an object with keys {list(_KEYS)}, got {doc!r}")
        extra = [k for k in doc if k not in _KEYS]
        if extra:
            raise ValueError(f"{where}: unknown key {extra[0]!r}; valid keys are {list(_KEYS)}")
        try:
            return cls.parse(
                env,
                ic=doc.get("ic", DEFAULTS["ic"]),
                ir=doc.get("ir", DEFAULTS["ir"]),
                budget=doc.get("budget", DEFAULTS["budget"]),
                outside_option=doc.get("outside_option", 0.0),
                limits=_limits_from_json(doc.get("limits")),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from None

    def replace(self, **changes: Any) -> Question:
        """A copy with some arguments changed (same keywords as :meth:`parse`)."""
        args = {
            "ic": self.ic,
            "ir": self.ir,
            "budget": self.budget,
            "outside_option": list(self.outside),
            "limits": self.limits,
        }
        args.update(changes)
        return Question.parse(self.env, **args)

    # ------------------------------------------------------------------ views
    @property
    def limits(self) -> dict[str, tuple[float | None, float | None]] | None:
        """The transfer limits as ``{agent name: (lo, hi)}`` (``None`` for an open side), or ``None``."""
        out = {}
        for i, ag in enumerate(self.env.agents):
            lo, hi = float(self.limits_lo[i]), float(self.limits_hi[i])
            if math.isfinite(lo) or math.isfinite(hi):
                out[ag.name] = (lo if math.isfinite(lo) else None, hi if math.isfinite(hi) else None)
        return out or None

    @property
    def has_limits(self) -> bool:
        return bool(np.isfinite(self.limits_lo).any() or np.isfinite(self.limits_hi).any())

    @property
    def outside_option(self) -> float | dict[str, list[float]]:
        """The written form of the outside options: one number when every agent and type has the same one,
        else ``{agent name: [one number per type]}``."""
        flat = np.concatenate(self.outside) if self.outside else np.zeros(0)
        if flat.size and np.all(flat == flat[0]):
            return float(flat[0])
        return {ag.name: [float(v) for v in o] for ag, o in zip(self.env.agents, self.outside, strict=True)}

    def differences(self, other: Question, *, ignore: Sequence[str] = ()) -> list[str]:
        """What differs between two questions about the same environment, one line per item (empty when they
        ask for the same rows); ``ignore`` skips items (``"ic"``, ``"ir"``, ``"budget"``, ``"outside_option"``,
        ``"limits"``)."""
        if other.env is not self.env and other.env.name != self.env.name:
            return [f"environment: {self.env.name!r} vs {other.env.name!r}"]
        out = [
            f"{f}: {getattr(self, f)} vs {getattr(other, f)}"
            for f in FAMILIES
            if f not in ignore and getattr(self, f) != getattr(other, f)
        ]
        same_outside = all(np.array_equal(a, b) for a, b in zip(self.outside, other.outside, strict=True))
        if "outside_option" not in ignore and not same_outside:
            out.append(f"outside_option: {self.outside_option} vs {other.outside_option}")
        same_limits = np.array_equal(self.limits_lo, other.limits_lo) and np.array_equal(
            self.limits_hi, other.limits_hi
        )
        if "limits" not in ignore and not same_limits:
            out.append(f"limits: {self.limits} vs {other.limits}")
        return out

    def notion(self, family: str) -> Notion:
        return NOTIONS[family][getattr(self, family)]

    @property
    def pointwise(self) -> bool:
        """Whether the question has rows that hold node by node (ex post IC or IR, transfer limits): rows that
        interim utilities do not determine."""
        return self.ic == "ex_post" or self.ir == "ex_post" or self.has_limits

    @property
    def ex_post_rows(self) -> bool:
        """Whether the rows of this question need ex post utilities (:func:`mechlp.constraints.interim.utility_rows`):
        pointwise rows (:attr:`pointwise`) or ex post budget rows."""
        return self.pointwise or self.budget == "ex_post"

    def certifying(self) -> Question | None:
        """The certifying relaxation (module docstring), or ``None`` when no certificate is generated.

        Each notion is replaced by its ``certified_by`` (``NOTIONS``), with one exception: ex post budget
        balance is certified by the interim rows only when every other row is interim (Bayesian or local IC,
        interim or ex ante IR, no limits) and types are independent, where the two are equivalent (rebalancing
        node by node keeps interim utilities: Lamba 2022, Proposition 1); with a pointwise row
        (:attr:`pointwise`) or correlated types the ex post budget rows themselves are used, since the question
        may be infeasible only with them. With no budget rows the
        certificate is over the IC, IR and limit rows alone. ``None`` when a notion has no ``certified_by``
        (none has today)."""
        ic, ir, budget = (self.notion(f).certified_by for f in FAMILIES)
        if ic is None or ir is None or budget is None:
            return None
        if self.budget == "ex_post" and (self.pointwise or self.env.correlated):
            budget = "ex_post"
        return Question(self.env, ic, ir, budget, self.outside, self.limits_lo, self.limits_hi)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data in the written spellings: ``{"ic", "ir", "budget", "outside_option", "limits"}``."""
        lim = self.limits
        return {
            "ic": self.ic,
            "ir": self.ir,
            "budget": self.budget,
            "outside_option": self.outside_option,
            "limits": None if lim is None else {k: list(v) for k, v in lim.items()},
        }

    def describe(self) -> str:
        """One line for reports, e.g. ``IC bayesian, IR interim (outside option 0), budget ex_ante``."""
        oo = self.outside_option
        oo_text = f"{oo:g}" if isinstance(oo, float) else ", ".join(f"{k}: {v}" for k, v in oo.items())
        text = f"IC {self.ic}, IR {self.ir} (outside option {oo_text}), budget {self.budget}"
        if self.has_limits:
            parts = ", ".join(f"{k} in [{lo}, {hi}]" for k, (lo, hi) in (self.limits or {}).items())
            text += f", transfer limits {parts}"
        return text

    def __repr__(self) -> str:
        return f"Question({self.describe()})"


def _limits_from_json(value: Any) -> Any:
    if value is None or not isinstance(value, Mapping):
        return value
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in value.items()}
