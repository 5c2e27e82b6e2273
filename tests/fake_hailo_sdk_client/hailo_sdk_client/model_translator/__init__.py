"""Fake DFC model translator package (tests only)."""
