"""Certified evidence camera agent: capture, seal, store, verify."""

__version__ = "0.1.0"
