"""Shared fixtures: run every parametrized test in both executors."""

import pytest


@pytest.fixture(params=[True, False], ids=["rust", "python"])
def use_rust(request):
    """True for the Rust core, False for the pure-Python executor."""
    return request.param
