"""The SMS channel: an SMPP 3.4 ESME of our own, GSM 7-bit/UCS-2 text, the KALAN service on 5555
and the notifier's SMS channel.

    pdu.py       PDU codec (header, bind, submit_sm, deliver_sm, enquire_link, unbind, generic_nack)
    esme.py      the client: bind, keepalive, window, reconnect with backoff
    encoding.py  GSM 03.38 / UCS-2, concatenation (UDH), reassembly of incoming parts
    keywords.py  Turkish-aware keyword matching
    replies.py   the Turkish texts a subscriber gets
    service.py   what an incoming message to the short code gets back
    channel.py   SmsChannel (notifier Channel) and one-time codes
    gateway.py   SmsGateway: the service object the stack runs
"""
