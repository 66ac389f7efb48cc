"""Ports: the small interfaces each back end implements (embedded and real adapters)."""
