"""HTTP-level conformance scenarios for Workers-compatible runtimes (issue 6).

* `vocabulary`: the behaviour vocabulary scenarios describe workers in (data, no code);
* `scenario.schema.json` + `scenarios`: the scenario files and their loader/validator;
* `jsgen`: JavaScript module workers generated from the vocabulary (for workerd);
* `workerd`: the adapter that runs scenarios against a real `workerd serve`;
* `client`, `recorder`: the raw HTTP client and the side-effect recorder the adapters share;
* `expect`: compares an observation with an expectation (pinned or predicted).

Run: ``python -m conformance.http [--workerd-bin PATH] [--slow] [--json FILE] [ID ...]``.
"""
