"""Every rule id of workerd-semantics.md section 9 (as transcribed in model/rules.py) is implemented by
some model's action or invariant, or listed in `LEFT_OUT` with the reason; the check itself can fail."""

from __future__ import annotations

from model.catalog import MODELS, get_model
from model.rules import LEFT_OUT, RULES, coverage_problems, rule_coverage


def test_every_rule_is_implemented_or_left_out_with_a_reason() -> None:
    assert coverage_problems(get_model(n) for n in MODELS) == []


def test_the_coverage_check_catches_a_rule_no_model_cites() -> None:
    models = [get_model(n) for n in MODELS]
    cited = rule_coverage(models)
    implemented = next(r for r, by in cited.items() if by)
    # a rule that no model cites: pretend the models are empty, and forget a reason
    assert any(p.startswith(implemented) for p in coverage_problems([], LEFT_OUT))
    forgotten = dict(LEFT_OUT)
    gone = next(iter(forgotten))
    forgotten[gone] = " "
    assert any(p.startswith(gone) for p in coverage_problems(models, forgotten))
    # a rule both implemented and left out
    assert any(p.startswith(implemented) for p in coverage_problems(models, {**LEFT_OUT, implemented: "x"}))


def test_section_nine_ids_are_all_there() -> None:
    prefixes = {r.removeprefix("INV-").rstrip("0123456789") for r in RULES}
    assert {"G", "R", "C", "A", "T", "O", "L", "E"} <= prefixes
    assert all(RULES[r].id == r for r in RULES)
