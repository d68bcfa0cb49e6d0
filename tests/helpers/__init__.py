"""Builders shared by several test files; tests/conftest.py puts tests/ on sys.path."""
