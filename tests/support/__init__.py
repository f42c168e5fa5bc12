"""Helpers shared by test modules (none of them is a test): test modules import from here, never
from each other or from conftest.py (tests/test_architecture.py checks it)."""
