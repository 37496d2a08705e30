"""The compiled trace checker: C generated from the models' expressions (see docs/compiled-engine.md)."""
