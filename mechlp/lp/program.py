"""LP assembly: the variable registry, labelled constraint blocks and their stacking into one CSC matrix.

The LP is ``min cost @ z`` subject to ``row_lower <= A @ z <= row_upper`` and
``col_lower <= z <= col_upper`` (HiGHS's form). Every row carries a label: its family and the indices
``agent``, ``hist``, ``node``, ``type``, ``misreport``, ``others`` (``-1`` where not applicable), stored as
integer arrays so labelling costs no Python objects per row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from mechlp.model.spaces import StateSpace

__all__ = ["Variables", "Block", "RowLabels", "MatrixSizes", "LinearProgram", "assemble"]

LABEL_FIELDS = ("agent", "hist", "node", "type", "misreport", "others")


class Variables:
    """Column layout on a space with ``N`` nodes and ``n`` agents.

    ``U[i, g]`` (ex post utility), ``x[i, g]`` (payment to the designer) and ``B[g]`` (designer's continuation
    surplus), stored as three contiguous blocks: ``U`` at ``[0, nN)``, ``x`` at ``[nN, 2nN)``, ``B`` at
    ``[2nN, (2n+1)N)``. Optional named extra blocks (e.g. ``{"Q": n_hist}`` for the savings rows of
    :mod:`mechlp.constraints.budget`) follow, in the order given.
    """

    def __init__(self, space: StateSpace, extras: dict[str, int] | None = None):
        self.space = space
        self.n_agents = space.env.n_agents
        self.n_nodes = space.n_nodes
        base = (2 * self.n_agents + 1) * self.n_nodes
        self.extra_offsets: dict[str, tuple[int, int]] = {}
        for name, size in (extras or {}).items():
            self.extra_offsets[name] = (base, int(size))
            base += int(size)
        self.n_cols = base

    def U(self, agent: int, nodes: np.ndarray | int) -> np.ndarray:
        return agent * self.n_nodes + np.asarray(nodes, dtype=np.int64)

    def x(self, agent: int, nodes: np.ndarray | int) -> np.ndarray:
        return (self.n_agents + agent) * self.n_nodes + np.asarray(nodes, dtype=np.int64)

    def B(self, nodes: np.ndarray | int) -> np.ndarray:
        return 2 * self.n_agents * self.n_nodes + np.asarray(nodes, dtype=np.int64)

    def extra(self, name: str, index: np.ndarray | int) -> np.ndarray:
        """Columns of the extra block ``name`` (``KeyError`` naming the blocks when it was not registered)."""
        if name not in self.extra_offsets:
            raise KeyError(f"no extra variable block {name!r}; registered: {list(self.extra_offsets)}")
        return self.extra_offsets[name][0] + np.asarray(index, dtype=np.int64)

    def split(self, z: np.ndarray) -> dict[str, np.ndarray]:
        """Solution vector -> ``{"U": (n, N), "x": (n, N), "B": (N,)}`` plus one entry per extra block."""
        n, nn = self.n_agents, self.n_nodes
        out = {
            "U": z[: n * nn].reshape(n, nn),
            "x": z[n * nn : 2 * n * nn].reshape(n, nn),
            "B": z[2 * n * nn : (2 * n + 1) * nn],
        }
        for name, (start, size) in self.extra_offsets.items():
            out[name] = z[start : start + size]
        return out


@dataclass
class Block:
    """A family of rows in triplet form: ``rows`` are local row indices (0..n_rows-1)."""

    family: str
    n_rows: int
    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    labels: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in LABEL_FIELDS:
            lab = self.labels.get(name, -1)
            self.labels[name] = np.broadcast_to(np.asarray(lab, dtype=np.int64), (self.n_rows,))


@dataclass
class RowLabels:
    """Labels of all rows of an assembled LP (one integer array per field)."""

    families: tuple[str, ...]
    family: np.ndarray  # index into families
    agent: np.ndarray
    hist: np.ndarray
    node: np.ndarray
    type: np.ndarray
    misreport: np.ndarray
    others: np.ndarray

    def family_rows(self, name: str) -> np.ndarray:
        if name not in self.families:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(self.family == self.families.index(name))

    def row(self, j: int) -> dict[str, object]:
        out: dict[str, object] = {"family": self.families[int(self.family[j])]}
        for name in LABEL_FIELDS:
            v = int(getattr(self, name)[j])
            if v >= 0:
                out[name] = v
        return out


class MatrixSizes:
    """Rows, columns and nonzeros of a program whose sparse constraint matrix is its attribute ``A``."""

    A: sp.spmatrix

    @property
    def n_rows(self) -> int:
        return self.A.shape[0]

    @property
    def n_cols(self) -> int:
        return self.A.shape[1]

    @property
    def nnz(self) -> int:
        return int(self.A.nnz)


@dataclass
class LinearProgram(MatrixSizes):
    """An assembled LP in HiGHS's form (minimisation) with labelled rows."""

    variables: Variables
    A: sp.csc_matrix
    row_lower: np.ndarray
    row_upper: np.ndarray
    col_lower: np.ndarray
    col_upper: np.ndarray
    cost: np.ndarray
    labels: RowLabels
    build_seconds: float = 0.0


def assemble(
    variables: Variables,
    blocks: list[Block],
    cost: np.ndarray,
    col_lower: np.ndarray | None = None,
    col_upper: np.ndarray | None = None,
    started: float | None = None,
) -> LinearProgram:
    """Stack blocks into one CSC matrix with row bounds and labels."""
    offsets = np.cumsum([0] + [b.n_rows for b in blocks])
    n_rows = int(offsets[-1])
    rows = np.concatenate([b.rows + off for b, off in zip(blocks, offsets[:-1], strict=True)] or [np.zeros(0, int)])
    cols = np.concatenate([b.cols for b in blocks] or [np.zeros(0, int)])
    vals = np.concatenate([b.vals for b in blocks] or [np.zeros(0)])
    a = sp.csc_matrix((vals, (rows, cols)), shape=(n_rows, variables.n_cols))
    a.sum_duplicates()
    families = tuple(dict.fromkeys(b.family for b in blocks))
    fam = np.concatenate(
        [np.full(b.n_rows, families.index(b.family), dtype=np.int16) for b in blocks] or [np.zeros(0, np.int16)]
    )
    labels = RowLabels(
        families,
        fam,
        **{name: np.concatenate([b.labels[name] for b in blocks] or [np.zeros(0, np.int64)]) for name in LABEL_FIELDS},
    )
    lo = np.full(variables.n_cols, -np.inf) if col_lower is None else col_lower
    hi = np.full(variables.n_cols, np.inf) if col_upper is None else col_upper
    return LinearProgram(
        variables,
        a,
        np.concatenate([b.lower for b in blocks] or [np.zeros(0)]),
        np.concatenate([b.upper for b in blocks] or [np.zeros(0)]),
        lo,
        hi,
        np.asarray(cost, dtype=float),
        labels,
        build_seconds=0.0 if started is None else time.perf_counter() - started,
    )
