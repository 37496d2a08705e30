"""The JSON Schema of a model-level scenario file, derived from the operation table.

The committed schema (``conformance/scenario.schema.json``) is what a harness in any
language validates scenario files with; it is generated from `conformance.operations.OPS`
so the two cannot disagree (tests/test_conformance_scenarios.py checks the committed file is
current; ``python -m conformance.schema`` rewrites it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from model.catalog import MODELS

from .operations import HANDLER_STEPS, OPS

__all__ = ["SCHEMA_PATH", "build_schema", "schema_text"]

SCHEMA_PATH = Path(__file__).with_name("scenario.schema.json")

_IDENT = {
    "Thread": {"type": "string", "pattern": "^(t[0-9]+|gc)$"},
    "Ctx": {"type": "string", "pattern": "^c[a-z0-9_]*$"},
    "Req": {"type": "string", "pattern": "^r[a-z0-9_]*$"},
    "Obj": {"type": "string", "pattern": "^o[a-z0-9_]*$"},
    "Actor": {"type": "string", "pattern": "^a[a-z0-9_]*$"},
    "Isolate": {"type": "string", "pattern": "^i[a-z0-9_]*$"},
    "Handle": {"type": "string", "pattern": "^[hwklx][a-z0-9_]*$"},
    "bool": {"type": "boolean"},
    "reason": {"enum": ["REASON_A", "REASON_B"]},
    "kind": {"enum": ["IO_OWN", "IO_PTR"]},
    "text": {"type": "string", "maxLength": 200},
    "int": {"type": "integer", "minimum": 0, "maximum": 10000},
    "program": {"$ref": "#/$defs/program"},
    "fallback": {"enum": ["ok", "fail", "none"]},
}


def _step_schema(name: str) -> dict[str, Any]:
    op = OPS[name]
    props: dict[str, Any] = {"op": {"const": name}, "expect": {"$ref": "#/$defs/pin"},
                             "note": {"type": "string"}}
    for param, kind in op.params.items():
        props[param] = _IDENT[kind]
        if param == "actor":
            props[param] = {"oneOf": [_IDENT["Actor"], {"type": "null"}]}
    required = ["op", *(p for p in op.params if p not in op.defaults)]
    return {"type": "object", "description": op.doc, "required": required, "additionalProperties": False,
            "properties": props}


def build_schema() -> dict[str, Any]:
    steps = {f"op_{name}": _step_schema(name) for name in OPS}
    handler_step = {
        "type": "object", "required": ["do"], "additionalProperties": False,
        "properties": {"do": {"enum": list(HANDLER_STEPS)}, "body": {"type": "string", "maxLength": 200},
                       "chunks": {"type": "array", "items": {"type": "string", "maxLength": 200}, "minItems": 1},
                       "message": {"type": "string", "maxLength": 200}, "h": _IDENT["Handle"]},
        "description": "; ".join(f"{k}: {v}" for k, v in HANDLER_STEPS.items()),
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "iospec:conformance/scenario.schema.json",
        "title": "iospec model-level conformance scenario file",
        "description": "A file holds a list of scenarios. A scenario is a sequence of operations (see the "
                       "operation table in docs/conformance.md) an implementation performs; what it must observe "
                       "is predicted by running the same operations through the model, not written here. "
                       "Generated from conformance/operations.py by `python -m conformance.schema`.",
        "type": "object",
        "required": ["description", "scenarios"],
        "additionalProperties": False,
        "properties": {
            "description": {"type": "string"},
            "scenarios": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/scenario"}},
        },
        "$defs": {
            "scenario": {
                "type": "object",
                "required": ["id", "title", "rules", "level", "model", "steps"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9.-]*$", "maxLength": 80},
                    "title": {"type": "string", "minLength": 1},
                    "description": {"type": "string"},
                    "rules": {"type": "array", "minItems": 1, "uniqueItems": True,
                              "items": {"type": "string", "pattern": "^(INV-[A-Z]+[0-9]+|G[0-9]+)$"},
                              "description": "rule ids from model/rules.py (each has its workerd file:line)"},
                    "level": {"enum": ["MUST", "SHOULD", "INFORMATIONAL"],
                              "description": "MUST: workerd enforces it; SHOULD: workerd only logs or warns; "
                                             "INFORMATIONAL: differs between workerd serve and production"},
                    "model": {"enum": sorted(MODELS), "description": "the model whose prediction is compared"},
                    "consts": {"type": "object", "additionalProperties": False,
                               "properties": {"production": {"type": "boolean"},
                                              "tunnel_exceptions": {"type": "boolean"}},
                               "description": "model constants (production: a production limit enforcer, "
                                              "whose drain and scheduled limits fire)"},
                    "steps": {"type": "array", "minItems": 1, "maxItems": 200, "items": {"$ref": "#/$defs/step"}},
                },
            },
            "step": {"type": "object", "required": ["op"], "properties": {"op": {"enum": list(OPS)}},
                     "allOf": [{"if": {"properties": {"op": {"const": name}}}, "then": {"$ref": f"#/$defs/op_{name}"}}
                               for name in OPS]},
            "pin": {"type": "object", "description": "a pinned prediction (a regression check); it must equal the "
                                                     "model's prediction"},
            "program": {"type": "array", "minItems": 1, "maxItems": 20, "items": handler_step},
            **steps,
        },
    }


def schema_text() -> str:
    return json.dumps(build_schema(), indent=1) + "\n"


if __name__ == "__main__":  # pragma: no cover - the regeneration command
    SCHEMA_PATH.write_text(schema_text())
    print(f"wrote {SCHEMA_PATH}", file=sys.stderr)
