"""Example adapters for the conformance suite (docs/conformance.md walks through `toy_contexts`)."""
