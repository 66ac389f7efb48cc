"""Diameter (RFC 6733) and Diameter Credit-Control (RFC 8506) with 3GPP TS 32.299 AVPs, on asyncio.

Our own codec: python-diameter measured too slow to reach the gateway's targets (see
`cellcelly.diameter.codec` and `make bench`), and it has no asyncio transport.
"""
