"""Holds ``sitecustomize.py``; this directory goes first on ``PYTHONPATH`` under ``lazypatch run``."""
