"""Homeward's cross-service contracts: event models, topic names, settings, tokens, web plumbing.

Services import from here and never from each other.
"""
