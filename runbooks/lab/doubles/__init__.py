"""Doubles of what cannot run in the virtual lab (named doubles; never installed on a real site)."""
