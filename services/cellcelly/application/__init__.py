"""Application services: the domain put to work on the ports (no web framework here either)."""
