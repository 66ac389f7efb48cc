"""DGW: the Diameter Gy/Ro gateway in front of the OCS."""
