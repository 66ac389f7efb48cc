"""CellCelly: an open-source prepaid telco stack (OCS/BSS)."""

__version__ = "0.1.0"
