"""Shared pytest configuration for iospec's own tests."""
