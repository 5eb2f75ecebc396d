"""Persistence: the store port (ports.py), SQLite (sqlite.py) and memory (memory.py)."""
