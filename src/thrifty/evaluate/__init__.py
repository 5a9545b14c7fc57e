"""Offline evaluation over recorded outcomes: replays what each model scored, no provider calls."""
