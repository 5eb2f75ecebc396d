"""Persistence: the store port and its SQLite implementation."""
