"""Shared pytest configuration for iospec's own tests.

Tests marked ``slow`` (long campaigns) run only with ``IOSPEC_SLOW=1`` (``tox -e soak`` sets it).
"""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("IOSPEC_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set IOSPEC_SLOW=1 (tox -e soak)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
