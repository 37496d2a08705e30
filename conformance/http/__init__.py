"""HTTP-level conformance scenarios for Workers-compatible runtimes (issue 6).

* `vocabulary`: the behaviour vocabulary scenarios describe workers in (data, no code);
* `scenario.schema.json` + `scenarios`: the scenario files and their loader/validator;
* `jsgen`: JavaScript module workers generated from the vocabulary (for workerd);
* `workerd`: the adapter that runs scenarios against a real `workerd serve`;
* `pygen`, `reference`: Python handlers from the vocabulary, and the adapter that runs scenarios against the
  reference implementation's HTTP listener;
* `predict`, `differential`: the models' prediction, and the three-way comparison (`iospec differential`);
* `client`, `recorder`: the raw HTTP client and the side-effect recorder the adapters share;
* `expect`: compares an observation with an expectation (pinned or predicted).

Run: ``python -m conformance.http [--workerd-bin PATH] [--slow] [--json FILE] [ID ...]`` (workerd alone) or
``iospec differential`` (model | reference | workerd).
"""

from typing import Any as _Any


def run_for_conformance(args: _Any) -> list:  # type: ignore[type-arg]
    """``iospec conformance --impl workerd|reference [--workerd-bin PATH]``: the HTTP suite's ScenarioResults.

    See `conformance.http.differential.run_for_conformance` (imported lazily: loading the package stays cheap).
    """
    from .differential import run_for_conformance as run

    return run(args)
