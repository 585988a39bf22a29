"""``mechlp second-best --tail`` mirrors ``second_best(tail=...)`` (issue #13, item 6): revenue-optimal answers on
the infinite horizon are history dependent by default, with the depth sequence and the Markov value beside them.

Expected values: Battaglini's closed form on the infinite horizon (:func:`test_optimal.infinite_closed_form`, the
series of tests/test_optimal.py's docstring, 16.1578) and the issue's best Markov value 16.0696.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from test_optimal import DELTA, battaglini_env, infinite_closed_form

from mechlp.audit.verifier import verify
from mechlp.catalog.io import load_model
from mechlp.cli import main
from mechlp.cli.main import build_parser
from mechlp.model.environment import Environment
from mechlp.solve.questions import minmax
from mechlp.solve.second_best import default_tail, second_best

MODEL = Path(__file__).resolve().parents[1] / "models" / "battaglini.toml"
MARKOV = 16.0696  # the best Markov revenue, to 4 decimals


def _sub(name: str):
    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices[name]


def test_bundled_battaglini_model_is_the_test_environment():
    env, ref = load_model(str(MODEL)), battaglini_env()
    assert env.infinite and env.discount == DELTA and env.actions == ref.actions
    a, b = env.agents[0], ref.agents[0]
    assert a.types == b.types
    np.testing.assert_allclose(a.prior, b.prior, rtol=0, atol=1e-15)
    np.testing.assert_allclose(a.transition, b.transition, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(a.valuation, b.valuation)


def test_exact_verification_of_a_one_agent_markov_mechanism():
    """One agent has no others: the others' kernel product is a column of exact ones (a float column turned the
    exact check's rationals into floating point and ``verify(exact=True)`` raised)."""
    mech = minmax(load_model(str(MODEL))).mechanism
    ver = verify(mech, exact=True)
    for fam, text in ver.exact_violation.items():
        assert 0 <= Fraction(text) < 1e-12, fam  # the solver's floats miss binding rows by rounding only


def test_cli_revenue_default_is_history_dependent_with_the_markov_value_beside_it(tmp_path, capsys):
    out = tmp_path / "a.json"
    code = main(["second-best", str(MODEL), "--objective", "revenue", "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    closed = infinite_closed_form()
    assert closed == pytest.approx(16.1578, abs=5e-5)
    payload = json.loads(out.read_text())
    assert payload["status"] == "optimal" and payload["value"] >= closed - 1e-6
    assert payload["value"] == pytest.approx(closed, abs=1e-8)
    search = payload["method"]["tail_search"]
    assert search["depth"] == 3 and search["depths"][:4] == [0, 1, 2, 3]  # excluded on L^1..L^3
    assert search["markov_value"] == pytest.approx(MARKOV, abs=5e-5) == search["values"][0]
    # the printed report: every depth, the depth answered, the Markov value beside the answer
    assert re.search(r"depth  3: 16\.1577\d*  <- answer", text), text
    m = re.search(r"answer at depth 3: ([\d.]+); best Markov value ([\d.]+)", text)
    assert m is not None, text
    assert float(m.group(1)) >= closed - 1e-6 and float(m.group(2)) == pytest.approx(MARKOV, abs=5e-5)
    assert "heuristic" in text


def test_cli_tail_off_is_the_best_markov_mechanism(tmp_path, capsys):
    out = tmp_path / "a.json"
    code = main(["second-best", str(MODEL), "--objective", "revenue", "--tail", "off", "--json", str(out)])
    text = capsys.readouterr().out
    payload = json.loads(out.read_text())
    assert code == 0 and payload["value"] == pytest.approx(MARKOV, abs=5e-5)
    assert "tail_search" not in payload["method"] and "best Markov" not in text


def test_cli_bare_tail_with_horizon_keeps_its_meaning(tmp_path, capsys):
    """``--horizon 3 --tail``: three history-dependent periods, then a Markov tail -- enough for Battaglini's
    optimum (the low type is excluded on L^1..L^3 only)."""
    out = tmp_path / "a.json"
    code = main(["second-best", str(MODEL), "--objective", "revenue", "--horizon", "3", "--tail", "--json", str(out)])
    capsys.readouterr()
    payload = json.loads(out.read_text())
    assert code == 0 and payload["value"] == pytest.approx(infinite_closed_form(), abs=1e-8)
    assert "tail_search" not in payload["method"]


def test_cli_tail_parsing():
    sub = _sub("second-best")
    assert sub.parse_args(["m.toml"]).tail is None
    assert sub.parse_args(["m.toml", "--tail"]).tail is True
    assert sub.parse_args(["m.toml", "--tail", "on"]).tail is True
    assert sub.parse_args(["m.toml", "--tail", "auto"]).tail == "auto"
    assert sub.parse_args(["m.toml", "--tail", "off"]).tail is False
    assert sub.parse_args(["m.toml", "--tail", "--horizon", "2"]).tail is True  # bare, before another option
    assert _sub("solve").parse_args(["m.toml", "--tail"]).tail is True  # solve keeps its on/off flag


def test_cli_bad_tail_values(capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["second-best", "m.toml", "--tail", "deep"])
    assert info.value.code == 2 and "--tail must be one of auto, on, off" in capsys.readouterr().err
    assert main(["second-best", str(MODEL), "--objective", "revenue", "--tail"]) == 2
    assert "--tail on needs --horizon T" in capsys.readouterr().err


def test_python_default_tail():
    inf = Environment([battaglini_env().agents[0]], ("no", "sell"), DELTA, "infinite")
    assert default_tail(inf, "revenue", None, None) == "auto"
    assert default_tail(inf, "welfare", None, None) is False
    assert default_tail(inf, "gains_from_trade", None, None) is False
    assert default_tail(inf, "revenue", None, 3) is False
    assert default_tail(battaglini_env(), "revenue", None, None) is False
    res = second_best(inf, objective="revenue", budget="none")
    assert res.space.kind == "tail" and res.value == pytest.approx(infinite_closed_form(), abs=1e-8)
    assert second_best(inf, objective="welfare").space.kind == "markov"
