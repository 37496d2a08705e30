"""Checks derived from the models: the exhaustive explorer, symmetry reduction, z3 proofs, stateful tests."""
