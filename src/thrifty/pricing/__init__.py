"""Prices as data and the cost of a call."""
