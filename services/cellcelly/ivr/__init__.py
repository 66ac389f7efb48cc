"""IVR: answers a SIP call to the balance number and speaks the caller's balance in Turkish over RTP.

`prompt` builds the sentences and their audio (espeak-ng + sox), `sip` parses and builds SIP
messages and SDP, `rtp` paces G.711 frames, `service` is the UDP user agent server tying them up.
"""
