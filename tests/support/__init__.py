"""Helpers shared by tests: starting real servers on loopback."""
