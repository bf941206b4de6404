"""Fixtures that build real things: users, daemons, databases."""
