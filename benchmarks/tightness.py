"""Min-max tightness on random models (issue #11, item 3): every claim the library makes is checked against an
independent ground truth.

    python benchmarks/tightness.py                 # 300 models (a few minutes on 2 cores)
    python benchmarks/tightness.py --n 30 --seed 7 # fewer models, another seed
    python benchmarks/tightness.py --find-contradiction  # search 3x3, discount 0.3, non-FOSD models with
                                                   # min Pi* < 0 that are interim feasible

For each random model (bilateral trade 2x2, 2x3, 3x2, 3x3 and three agents with two types each; FOSD,
non-FOSD, persistent and anti-persistent kernels; discounts 0.1..0.95; history trees T = 2..4 and the Markov
space) the script runs

* ``minmax(env)`` (the LP) and ``minmax(env, method="recursion")`` and classifies their tightness claim as
  *certified tight* (with the proof named in ``diagnosis["tightness"]["by"]``), *not tight, said so* or
  *unknown, said so*;
* ``feasibility(env, b, space=mm.space, minmax_result=mm)`` for ``b`` in interim, ex ante, ex post: the path of
  ``mechlp solve --budget b``.

The ground truth is computed here, by code that shares nothing with the library but the environment's
primitives (priors, kernels, valuations, allocation, discount): an LP in the interim utilities
:math:`U_i(h,t)` (Lamba 2022, eq. 4 and the one-shot deviation principle),

.. math::
   U_i(h,t) - U_i(h,r) - \\delta \\sum_{\\theta_{-i}} b_{-i}(\\theta_{-i}|h) \\sum_{t'}
   \\big(G_i(t'|t) - G_i(t'|r)\\big)\\, U_i(h(r,\\theta_{-i}), t') \\ge
   \\sum_{\\theta_{-i}} b_{-i}(\\theta_{-i}|h) \\sum_a p(a|r,\\theta_{-i}) \\big(v_i(t,a) - v_i(r,a)\\big),
   \\qquad U_i(h,t) \\ge 0,

with :math:`\\Pi(h) = S(h) - \\sum_i \\sum_t b_i(t|h) U_i(h,t)` (:math:`S` the expected discounted welfare),
solved with ``scipy.optimize.linprog``: one LP per history maximising :math:`\\Pi(h)` alone (the pointwise
maximum), and the interim / ex ante budget questions as their own LPs (largest margin
:math:`\\min_h \\Pi(h)`, largest :math:`\\Pi(\\text{root})`).

Invariants (a violation is printed with its seed, and the exit code is 1):

1. every *certified tight* answer is tight: the per-history maximum equals :math:`\\Pi^*(h)` within 1e-7 at
   every history;
2. every *not tight* answer is right: the history it names has a larger maximum, as large as the one reported;
3. no min-max message claims (im)possibility of budget balance unconditionally unless tightness is certified,
   and a certified claim agrees with the ground truth;
4. ``feasibility`` says ``optimal`` only with a verified mechanism and ``infeasible`` only with a verified
   Farkas certificate, agrees with the ground truth (interim and ex ante; margins within 1e-7 are ties and not
   counted), prints no ``WARNING`` and never contradicts the min-max message; the histories it names as failing
   (``diagnosis["negative"]``, the ``failing_histories`` of ``mechlp solve --json``) are ones where no IC + IR
   mechanism reaches :math:`\\Pi(h) \\ge 0`.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sps
from scipy.optimize import linprog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mechlp.model.environment import Agent, Environment, bilateral_trade  # noqa: E402
from mechlp.solve import questions as design  # noqa: E402

#: Agreement of a per-history maximum with Pi*(h) (relative to 1 + |Pi*|).
TIGHT_TOL = 1e-7
#: Budget margins within this of zero are ties: the ground truth does not decide them.
TIE_TOL = 1e-7


# ---------------------------------------------------------------------------------------------- random models
def _fosd_kernel(rng: np.random.Generator, k: int) -> np.ndarray:
    """Rows ordered by first-order stochastic dominance: K random CDFs sorted pointwise (the j-th largest of
    non-decreasing functions is non-decreasing), so row t+1 has the pointwise smaller CDF."""
    cdf = np.sort(rng.uniform(size=(k, k - 1)), axis=1)
    cdf = -np.sort(-cdf, axis=0)  # pointwise descending across rows
    cdf = np.concatenate([np.zeros((k, 1)), cdf, np.ones((k, 1))], axis=1)
    g = np.diff(cdf, axis=1)
    g = 0.95 * g + 0.05 / k  # full support keeps FOSD (a mixture with the same uniform row)
    return g / g.sum(axis=1, keepdims=True)


def _kernel(rng: np.random.Generator, k: int, kind: str) -> np.ndarray:
    if kind == "fosd":
        return _fosd_kernel(rng, k)
    if kind == "persistent":  # renewal: stay with probability p, else move uniformly
        p = rng.uniform(0.5, 0.95)
        return p * np.eye(k) + (1 - p) * (np.ones((k, k)) - np.eye(k)) / (k - 1)
    if kind == "anti":  # anti-persistent: mostly the reversed type (not FOSD)
        p = rng.uniform(0.5, 0.9)
        rev = np.eye(k)[::-1]
        return p * rev + (1 - p) * np.full((k, k), 1.0 / k)
    w = rng.integers(1, 10, size=(k, k)).astype(float)  # "random": integer weights, usually not FOSD
    return w / w.sum(axis=1, keepdims=True)


SHAPES = ((2, 2), (2, 3), (3, 2), (3, 3), (2, 2, 2))
KERNELS = ("fosd", "random", "persistent", "anti")


@dataclass
class Spec:
    seed: int
    shape: tuple[int, ...]
    kinds: tuple[str, ...]
    discount: float
    horizon: int | str

    def describe(self) -> str:
        hor = "Markov" if self.horizon == "infinite" else f"T={self.horizon}"
        return f"seed {self.seed}: {'x'.join(map(str, self.shape))} {'/'.join(self.kinds)} d={self.discount:.3g} {hor}"


def random_spec(seed: int) -> Spec:
    rng = np.random.default_rng(seed)
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    kinds = tuple(KERNELS[int(rng.integers(len(KERNELS)))] for _ in shape)
    discount = float(np.round(rng.uniform(0.1, 0.95), 3))
    n_prof = int(np.prod(shape))
    horizons: list[int | str] = ["infinite", "infinite", 2]
    if 1 + n_prof + n_prof**2 <= 100:
        horizons.append(3)
    if 1 + n_prof + n_prof**2 + n_prof**3 <= 100:
        horizons.append(4)
    horizon = horizons[int(rng.integers(len(horizons)))]
    return Spec(seed, shape, kinds, discount, horizon)


def make_env(spec: Spec) -> Environment:
    """The environment of ``spec`` (its random numbers drawn from ``spec.seed`` after the spec itself)."""
    rng = np.random.default_rng([spec.seed, 1])
    kernels = [_kernel(rng, k, kind) for k, kind in zip(spec.shape, spec.kinds, strict=True)]
    priors = [rng.dirichlet(np.full(k, 2.0)) * 0.9 + 0.1 / k for k in spec.shape]
    if len(spec.shape) == 2:
        kb, ks = spec.shape
        while True:  # redraw models without gains from trade (every budget margin is then exactly 0)
            values = np.round(np.sort(rng.choice(np.arange(1, 21), size=kb, replace=False)) / 10, 2)
            costs = np.round(np.sort(rng.choice(np.arange(0, 20), size=ks, replace=False)) / 10, 2)
            if values[-1] > costs[0]:
                break
        return bilateral_trade(values, costs, priors[0], priors[1], kernels[0], kernels[1], spec.discount, spec.horizon)
    cost = float(rng.uniform(1.0, 2.0))
    agents = []
    for i, k in enumerate(spec.shape):
        vals = np.sort(rng.uniform(0.0, 1.2, size=k))
        agents.append(
            Agent(
                f"a{i + 1}",
                [f"t{j + 1}" for j in range(k)],
                priors[i],
                kernels[i],
                np.stack([np.zeros(k), vals - cost / len(spec.shape)], axis=1),
            )
        )
    return Environment(agents, ("reject", "build"), spec.discount, spec.horizon, "efficient", name="project")


# ---------------------------------------------------------------------------------------------- ground truth
@dataclass
class Truth:
    """The independent LP in interim utilities on the same histories as the library's space."""

    n_hist: int
    welfare: np.ndarray  # S(h)
    belief_rows: sps.csr_matrix  # (n_hist, n_vars): sum_i sum_t b_i(t|h) U_i(h,t)
    a_ub: sps.csr_matrix  # IC rows as  -lhs <= -gain
    b_ub: np.ndarray
    n_vars: int

    def _lp(self, c, a_extra=None, b_extra=None, n_extra=0):
        a = self.a_ub
        b = self.b_ub
        if n_extra:
            a = sps.hstack([a, sps.csr_matrix((a.shape[0], n_extra))])
        if a_extra is not None:
            a = sps.vstack([a, a_extra])
            b = np.concatenate([b, b_extra])
        bounds = [(0, None)] * self.n_vars + [(None, None)] * n_extra
        return linprog(c, A_ub=a.tocsr(), b_ub=b, bounds=bounds, method="highs")

    def pointwise_max(self) -> np.ndarray | None:
        """max Pi(h) over IC + IR mechanisms, one LP per history (None if IC + IR is infeasible)."""
        best = np.empty(self.n_hist)
        rows = self.belief_rows.toarray()
        for h in range(self.n_hist):
            out = self._lp(rows[h])
            if out.status == 2:
                return None
            if out.status != 0:
                raise RuntimeError(f"ground-truth LP at history {h}: {out.message}")
            best[h] = self.welfare[h] - out.fun
        return best

    def interim_margin(self) -> float | None:
        """max over IC + IR mechanisms of min_h Pi(h) (>= 0: interim balance feasible)."""
        # variables (U, m): maximise m subject to  sum b U(h) + m <= S(h)
        a = sps.hstack([self.belief_rows, sps.csr_matrix(np.ones((self.n_hist, 1)))])
        c = np.zeros(self.n_vars + 1)
        c[-1] = -1.0
        out = self._lp(c, a, self.welfare, n_extra=1)
        if out.status == 2:
            return None
        if out.status != 0:
            raise RuntimeError(f"ground-truth margin LP: {out.message}")
        return -float(out.fun)


def ground_truth(env: Environment) -> Truth:
    """Build the LP of the module docstring from the environment's primitives (no library computation)."""
    n = env.n_agents
    counts = tuple(ag.n_types for ag in env.agents)
    n_prof = int(np.prod(counts))
    prof = np.stack(np.unravel_index(np.arange(n_prof), counts), axis=1)  # (n_prof, n)
    kern = [np.asarray(ag.transition, dtype=float) for ag in env.agents]
    alloc = np.asarray(env.allocation, dtype=float)  # (n_prof, n_actions)
    delta = float(env.discount)
    if env.infinite:
        n_hist = 1 + n_prof
        prev = np.arange(-1, n_prof)
        child = np.tile(1 + np.arange(n_prof), (n_hist, 1))  # (n_hist, n_prof)
        depth = np.minimum(np.arange(n_hist), 1)
    else:
        t_max = int(env.horizon)
        sizes = [n_prof**t for t in range(t_max)]
        n_hist = int(sum(sizes))
        h = np.arange(n_hist)
        prev = np.where(h == 0, -1, (h - 1) % n_prof)
        depth = np.repeat(np.arange(t_max), sizes)
        child = h[:, None] * n_prof + np.arange(n_prof)[None, :] + 1
        child[depth == t_max - 1] = -1  # the last period has no continuation
    belief = []
    for i, ag in enumerate(env.agents):
        b = np.empty((n_hist, counts[i]))
        b[prev < 0] = ag.prior
        b[prev >= 0] = kern[i][prof[prev[prev >= 0], i]]
        belief.append(b)
    joint = np.ones((n_hist, 1))
    for i in range(n):
        joint = (joint[:, :, None] * belief[i][:, None, :]).reshape(n_hist, -1)
    flow = np.zeros((n, n_prof))
    for i, ag in enumerate(env.agents):
        flow[i] = np.einsum("ka,ka->k", alloc, np.asarray(ag.valuation)[prof[:, i]])
    w = flow.sum(axis=0)
    # S(h) = sum_k joint(h,k) (w_k + delta S(child(h,k)))
    has = child >= 0
    hh, kk = np.nonzero(has)
    m = sps.csr_matrix((joint[hh, kk], (hh, child[hh, kk])), shape=(n_hist, n_hist))
    welfare = sps.linalg.spsolve((sps.identity(n_hist) - delta * m).tocsc(), joint @ w)

    offsets = np.concatenate([[0], np.cumsum([n_hist * k for k in counts])])
    n_vars = int(offsets[-1])

    def var(i, hist, t):
        return offsets[i] + hist * counts[i] + t

    brow, bcol, bval = [], [], []
    for i in range(n):
        hist, t = np.meshgrid(np.arange(n_hist), np.arange(counts[i]), indexing="ij")
        brow.append(hist.ravel())
        bcol.append(var(i, hist, t).ravel())
        bval.append(belief[i].ravel())
    belief_rows = sps.csr_matrix(
        (np.concatenate(bval), (np.concatenate(brow), np.concatenate(bcol))), shape=(n_hist, n_vars)
    )

    rows, cols, vals, rhs = [], [], [], []
    n_rows = 0
    for i in range(n):
        k = counts[i]
        others = [j for j in range(n) if j != i]
        o_counts = tuple(counts[j] for j in others)
        n_o = int(np.prod(o_counts)) if others else 1
        o_types = np.stack(np.unravel_index(np.arange(n_o), o_counts), axis=1) if others else np.zeros((1, 0), int)
        b_o = np.ones((n_hist, n_o))  # b_{-i}(o|h)
        for col, j in enumerate(others):
            b_o = b_o * belief[j][:, o_types[:, col]]
        # profile index of (r, o): (k, n_o)
        full = np.zeros((k, n_o, n), dtype=int)
        full[:, :, i] = np.arange(k)[:, None]
        for col, j in enumerate(others):
            full[:, :, j] = o_types[None, :, col]
        prof_ro = np.ravel_multi_index(tuple(full[..., j] for j in range(n)), counts)  # (k, n_o)
        val = np.asarray(env.agents[i].valuation, dtype=float)  # (k, n_actions)
        # gain(h, t, r) = sum_o b(o|h) sum_a p(a|r,o) (v(t,a) - v(r,a))
        pa = alloc[prof_ro]  # (k_r, n_o, A)
        dv = val[:, None, :] - val[None, :, :]  # (t, r, A)
        g_ro = np.einsum("roa,tra->tro", pa, dv)  # (t, r, o)
        gain = np.einsum("ho,tro->htr", b_o, g_ro)
        t_idx, r_idx = np.nonzero(~np.eye(k, dtype=bool))
        n_pairs = t_idx.size
        hist = np.repeat(np.arange(n_hist), n_pairs)
        tt = np.tile(t_idx, n_hist)
        rr = np.tile(r_idx, n_hist)
        row = n_rows + np.arange(n_hist * n_pairs)
        # +U(h,t) - U(h,r)
        rows += [row, row]
        cols += [var(i, hist, tt), var(i, hist, rr)]
        vals += [np.ones(row.size), -np.ones(row.size)]
        # - delta sum_o b(o|h) sum_t' (G(t'|t) - G(t'|r)) U(child(h, (r,o)), t')
        ch = child[hist[:, None], prof_ro[rr]]  # (rows, n_o)
        dg = kern[i][tt] - kern[i][rr]  # (rows, k)
        coef = -delta * b_o[hist][:, :, None] * dg[:, None, :]  # (rows, n_o, k)
        ok = np.broadcast_to((ch >= 0)[:, :, None], coef.shape)
        r3 = np.broadcast_to(row[:, None, None], coef.shape)
        c3 = var(i, np.maximum(ch, 0)[:, :, None], np.arange(k)[None, None, :])
        rows.append(r3[ok])
        cols.append(np.broadcast_to(c3, coef.shape)[ok])
        vals.append(coef[ok])
        rhs.append(gain[hist, tt, rr])
        n_rows += row.size
    lhs = sps.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_rows, n_vars))
    return Truth(n_hist, welfare, belief_rows, (-lhs).tocsr(), -np.concatenate(rhs), n_vars)


# ---------------------------------------------------------------------------------------------- auditing
VERDICT = re.compile(r"ex ante balance (possible|impossible), interim/ex post balance (possible|impossible)")


@dataclass
class Record:
    spec: Spec
    fosd: bool
    truth_tight: bool | None = None  # None: IC + IR infeasible
    truth_gap: float = 0.0
    min_pi: float = np.nan  # smallest Pi* of minmax (LP)
    claims: dict = field(default_factory=dict)  # method -> "certified tight (by)" / "not tight" / "unknown"
    feas: dict = field(default_factory=dict)  # budget -> status
    truth_feasible: dict = field(default_factory=dict)  # budget -> True / False / None (tie)
    violations: list = field(default_factory=list)
    seconds: float = 0.0


def _claim(tight: dict | None) -> str:
    if not tight:
        return "no claim"
    if tight["tight"] is True:
        return "certified tight"
    if tight["tight"] is False:
        return "not tight, said so"
    return "unknown, said so"


def _verdict(message: str) -> tuple[bool, bool] | None:
    """(ex ante possible, interim possible) when the message states them unconditionally, else None."""
    m = VERDICT.search(message)
    if not m or "if Pi* is tight" in message[m.end() : m.end() + 20]:
        return None
    return m.group(1) == "possible", m.group(2) == "possible"


def _check_minmax(rec: Record, method: str, mm, best: np.ndarray | None, truth: dict) -> None:
    bad = rec.violations.append
    tight = (mm.diagnosis or {}).get("tightness")
    rec.claims[method] = _claim(tight)
    if tight and tight["tight"] is True:
        rec.claims[method] += f" ({tight['by']})"
    if mm.status != "optimal":
        if best is not None:
            bad(f"{method}: status {mm.status} but IC + IR is feasible (ground truth)")
        if mm.status == "infeasible" and not (mm.certificate is not None and mm.certificate.ok):
            bad(f"{method}: infeasible without a verified certificate")
        return
    if best is None:
        bad(f"{method}: optimal, but the ground-truth IC + IR LP is infeasible")
        return
    if not (mm.certificate is not None and mm.certificate.ok):
        bad(f"{method}: optimal without a verified mechanism")
    pi = mm.surplus
    scale = TIGHT_TOL * (1.0 + np.abs(pi))
    if np.any(pi > best + scale):
        h = int(np.argmax(pi - best))
        bad(f"{method}: Pi*({h}) = {pi[h]:.9g} above the ground-truth maximum {best[h]:.9g}")
    truly_tight = bool(np.all(best - pi <= scale))
    if tight is None:
        bad(f"{method}: no tightness diagnosis")
        return
    if tight["tight"] is True and not truly_tight:
        h = int(np.argmax(best - pi))
        bad(f"{method}: certified tight by {tight['by']!r}, but Pi({h}) can reach {best[h]:.9g} > {pi[h]:.9g}")
    if tight["tight"] is False:
        h = tight["history"]
        if best[h] < tight["best"] - scale[h] or best[h] <= pi[h] + scale[h]:
            bad(f"{method}: says not tight at {h} (best {tight['best']:.9g}), ground truth {best[h]:.9g}")
    verdict = _verdict(mm.message)
    if verdict is not None and tight["tight"] is not True:
        bad(f"{method}: unconditional verdict without certified tightness: {mm.message}")
    if "NOT tight" in mm.message and re.search(r"\b(im)?possible\b", mm.message):
        bad(f"{method}: says NOT tight and still gives a verdict: {mm.message}")
    if verdict is not None:
        for b, said in zip(("ex_ante", "interim"), verdict, strict=True):
            if truth[b] is not None and truth[b] != said:
                bad(f"{method}: says {b} balance {'possible' if said else 'impossible'}, ground truth disagrees")


def _check_feasibility(rec: Record, budget: str, res, mm, truth: bool | None, best: np.ndarray | None) -> None:
    bad = rec.violations.append
    # histories named as the reason of infeasibility (diagnosis["negative"], the CLI's "failing_histories") must be
    # ones where no IC + IR mechanism reaches Pi(h) >= 0
    for w in (res.diagnosis or {}).get("negative", []) if res.status == "infeasible" else []:
        h = w["history"]
        if best is not None and not (best[h] < 0 and abs(best[h] - w["value"]) <= TIGHT_TOL * (1 + abs(best[h]))):
            bad(f"feasibility {budget}: names {w['where']} (Pi* = {w['value']:.6g}) as failing; max Pi = {best[h]:.6g}")
    rec.feas[budget] = res.status
    proof = res.certificate is not None and res.certificate.ok
    if res.status in ("optimal", "infeasible") and not proof:
        bad(f"feasibility {budget}: {res.status} without its verified proof")
    if "WARNING" in res.message:
        bad(f"feasibility {budget}: {res.message}")
    if res.status in ("optimal", "infeasible") and truth is not None and truth != (res.status == "optimal"):
        bad(f"feasibility {budget}: {res.status}, ground truth {'feasible' if truth else 'infeasible'}")
    verdict = _verdict(mm.message) if mm.status == "optimal" else None
    if verdict is not None and res.status in ("optimal", "infeasible"):
        said = verdict[0] if budget == "ex_ante" else verdict[1]
        if said != (res.status == "optimal"):
            bad(f"feasibility {budget} {res.status} contradicts the min-max message: {mm.message}")


def audit(spec: Spec, budgets=("interim", "ex_ante", "ex_post"), recursion: bool = True) -> Record:
    """Run the library on ``spec``'s model and check every claim against the ground truth."""
    t0 = time.perf_counter()
    env = make_env(spec)
    rec = Record(spec, all(ag.is_fosd() for ag in env.agents))
    tr = ground_truth(env)
    best = tr.pointwise_max()
    margin = tr.interim_margin() if best is not None else None
    truth: dict = {"interim": None, "ex_ante": None}
    if best is None:
        truth = {"interim": False, "ex_ante": False}
    else:
        tie = TIE_TOL * (1.0 + np.abs(tr.welfare).max())
        truth["interim"] = None if abs(margin) <= tie else margin > 0
        truth["ex_ante"] = None if abs(best[0]) <= tie else best[0] > 0
    rec.truth_feasible = truth
    mm = design.minmax(env)
    if best is not None and mm.surplus is not None:
        gap = best - mm.surplus
        rec.truth_gap = float(gap.max())
        rec.min_pi = float(mm.surplus.min())
        rec.truth_tight = bool(np.all(gap <= TIGHT_TOL * (1.0 + np.abs(mm.surplus))))
    _check_minmax(rec, "lp", mm, best, truth)
    if recursion:
        try:
            mr = design.minmax(env, method="recursion")
        except ValueError as exc:  # a refusal with its reason is an honest answer
            rec.claims["recursion"] = f"refused: {exc}"
        else:
            if mr.status == "optimal" or best is None:
                _check_minmax(rec, "recursion", mr, best, truth)
            else:
                rec.claims["recursion"] = f"status {mr.status}"
    if mm.status == "optimal":
        for b in budgets:
            res = design.feasibility(env, b, space=mm.space, minmax_result=mm)
            _check_feasibility(rec, b, res, mm, truth.get(b), best)
    rec.seconds = time.perf_counter() - t0
    return rec


def find_contradiction(start: int = 0, tries: int = 3000) -> tuple[int, Environment] | None:
    """The first seed from ``start`` whose 3x3, discount 0.3, non-FOSD Markov model has min Pi* < 0 while
    interim balance is feasible (ground truth): the model where Pi* and the budget LP disagreed."""
    for seed in range(start, start + tries):
        spec = Spec(seed, (3, 3), ("random", "random"), 0.3, "infinite")
        env = make_env(spec)
        if all(ag.is_fosd() for ag in env.agents):
            continue
        tr = ground_truth(env)
        margin = tr.interim_margin()
        if margin is None or margin <= TIE_TOL:
            continue
        mm = design.minmax(env)
        if mm.status == "optimal" and mm.surplus.min() < -1e-6:
            return seed, env
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="number of random models (default 300)")
    ap.add_argument("--seed", type=int, default=0, help="first seed (models use seeds seed .. seed + n - 1)")
    ap.add_argument("--find-contradiction", action="store_true")
    args = ap.parse_args(argv)
    if args.find_contradiction:
        found = find_contradiction(args.seed)
        if found is None:
            print("no model found")
            return 1
        seed, env = found
        mm = design.minmax(env)
        feas = design.feasibility(env, "interim", space=mm.space, minmax_result=mm)
        print(f"seed {seed}: {env!r}\n  minmax: {mm.message}\n  feasibility: {feas.status}: {feas.message}")
        return 0
    t0 = time.perf_counter()
    records = [audit(random_spec(s)) for s in range(args.seed, args.seed + args.n)]
    print(summary(records))
    print(f"{len(records)} models in {time.perf_counter() - t0:.1f} s")
    return 1 if any(r.violations for r in records) else 0


def summary(records: list[Record]) -> str:
    """The counts printed by the benchmark, and every violation with its seed."""
    lines = []
    shapes = Counter("x".join(map(str, r.spec.shape)) for r in records)
    lines.append("models: " + ", ".join(f"{k} {v}" for k, v in sorted(shapes.items())))
    lines.append(
        f"  FOSD (all kernels) {sum(r.fosd for r in records)}, not FOSD {sum(not r.fosd for r in records)}; "
        f"Markov {sum(r.spec.horizon == 'infinite' for r in records)}, "
        f"trees {sum(r.spec.horizon != 'infinite' for r in records)}"
    )
    not_tight = [r for r in records if r.truth_tight is False]
    lines.append(
        f"ground truth: Pi* (max of sum_h Pi(h)) NOT pointwise maximal in {len(not_tight)} models "
        f"(largest gap {max((r.truth_gap for r in not_tight), default=0.0):.3g}); "
        f"{sum(r.truth_tight is None for r in records)} without an IC + IR mechanism"
    )
    split = sum(r.min_pi < -1e-9 and r.truth_feasible["interim"] is True for r in records)
    lines.append(f"  min Pi* < 0 yet interim balance feasible (the old WARNING pair): {split} models")
    for method in ("lp", "recursion"):
        c = Counter(
            re.sub(
                r" \(each Pi\(h\) maximised by its own LP \(\d+ LPs\)\)",
                " (one LP per history)",
                r.claims.get(method, "not run"),
            )
            for r in records
        )
        c = Counter({(k if not k.startswith("refused") else "refused (ValueError)"): v for k, v in c.items()})
        lines.append(f"minmax method={method}:")
        lines.extend(f"  {v:4d}  {k}" for k, v in sorted(c.items(), key=lambda kv: -kv[1]))
    for b in ("interim", "ex_ante", "ex_post"):
        c = Counter(r.feas.get(b, "not run") for r in records)
        ties = sum(r.truth_feasible.get(b, 0) is None for r in records) if b != "ex_post" else "n/a"
        lines.append(f"feasibility {b}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())) + f"; ties {ties}")
    viol = [r for r in records if r.violations]
    lines.append(f"VIOLATIONS: {sum(len(r.violations) for r in viol)} in {len(viol)} models")
    for r in viol:
        for v in r.violations:
            lines.append(f"  {r.spec.describe()}: {v}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
