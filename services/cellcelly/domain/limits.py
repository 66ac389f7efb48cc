"""What the system of record can hold: one set of limits for its schema and for the edges.

A value that the record cannot store must be refused where it enters (Diameter 5004 with
Failed-AVP, HTTP 400), not answered 2001 and then fail every batch of the SF that tries to write
it. `adapters/sql/schema.py` sizes its columns from these constants; the Diameter mapping
(`dgw/gy.py`), the JSON schemas (`ocs/schemas.py`) and the charging engine check against them.

Every integer column is a signed 64-bit BIGINT (Oracle NUMBER(19)); the unit limits are chosen so
that every sum kept from them stays below 2^63 - 1 with room to spare:

- one report (the used units of one Multiple-Services-Credit-Control, summed over its
  Used-Service-Units and over input + output octets) is at most `MAX_UNITS` = 2^53. That is 8 PiB
  of data or 285 million years of talk in one report, beyond anything real, and still exact in
  every JSON parser (events travel as JSON on the bus; a parser with doubles would round above).
  A usage record's units, bucket units, wallet units and uncharged units are parts of one report.
- what a session's rating group has used in total (`RatedService.used`, kept by the balance
  store) is at most `MAX_SESSION_UNITS` = 2^62: the charging engine refuses (5012) a report that
  would take it further, so even that total plus one more report (2^62 + 2^53) is below 2^63.
- money never exceeds the wallet: a debit is at most what the wallet can pay, so the record's
  money columns and their sums are bounded by the top-ups (each at most 10^11 kuruş).
"""

from __future__ import annotations

from typing import Final

INT64_MAX: Final = 2**63 - 1

# Diameter's CC-Request-Number and Rating-Group are Unsigned32; the JSON API takes the same range.
MAX_U32: Final = 2**32 - 1
MAX_REQUEST_NUMBER: Final = MAX_U32
MAX_RATING_GROUP: Final = MAX_U32

# A Session-Id in characters. The balance store keeps it in 1024 bytes (VoltDB VARCHAR(1024 BYTES)),
# which holds 256 characters of UTF-8 at 4 bytes each at most.
MAX_SESSION_ID: Final = 256
# A usage event's id is "<session id>#<request number>#<rating group>".
MAX_USAGE_EVENT_ID: Final = MAX_SESSION_ID + 2 * (1 + len(str(max(MAX_REQUEST_NUMBER, MAX_RATING_GROUP))))
EVENT_ID_COLUMN: Final = 300  # usage_records.event_id and the ids that refer to it: room above 278

MAX_UNITS: Final = 2**53  # one report (see above)
MAX_SESSION_UNITS: Final = 2**62  # one rating group of one session, in total (see above)

assert MAX_USAGE_EVENT_ID <= EVENT_ID_COLUMN
assert MAX_SESSION_UNITS + MAX_UNITS <= INT64_MAX


def session_id_fits(session_id: str) -> bool:
    return 0 < len(session_id) <= MAX_SESSION_ID


def units_fit(units: int) -> bool:
    return 0 <= units <= MAX_UNITS


def request_number_fits(number: int) -> bool:
    return 0 <= number <= MAX_REQUEST_NUMBER


def rating_group_fits(group: int) -> bool:
    return 0 <= group <= MAX_RATING_GROUP
