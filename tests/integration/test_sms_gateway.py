"""The SMS channel against a real SMSC simulator process (npm `smpp` 0.5, tests/smsc): KALAN to 5555
answered with the exact balances of a subscriber of the embedded stack, in UCS-2 and correctly
concatenated; strangers and unknown keywords helped; notices and one-time codes sent; malformed
PDUs nacked while the session goes on; the SMSC restarted, unbinding or refusing the password."""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from cellcelly.application.selfcare import StoreBalanceLookup
from cellcelly.deploy.backends import Backends, open_backends
from cellcelly.domain.charging import ChargeRequest, NotificationEvent, RequestType, ServiceUsage
from cellcelly.domain.units import Service
from cellcelly.notifier.messages import render
from cellcelly.ports.records import SubscriberRecord
from cellcelly.settings import Settings
from cellcelly.sms.esme import Esme, NotBound, ResponseTimeout, SubmitRefused
from cellcelly.sms.gateway import SmsGateway
from cellcelly.sms.pdu import CommandId, Pdu, ShortMessage, encode
from cellcelly_dev.devservers import free_port
from smsc import Event, SmscProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SYSTEM_ID, PASSWORD = "cellcelly", "Sm5c!pw"
MSISDN, E164 = "5321234567", "905321234567"
MB = 1024 * 1024
TRT = timezone(timedelta(hours=3))


@pytest.fixture
def smsc() -> Iterator[SmscProcess]:
    process = SmscProcess(free_port(), SYSTEM_ID, PASSWORD)
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def components(tmp_path: Path) -> Iterator[Backends]:
    built = open_backends(Settings(data_dir=tmp_path, database_url="", balance_store="embedded"))
    built.accounts.open(
        SubscriberRecord(MSISDN, "Gülşen", "Çağlar", "gulsen@example.com", "active", "DIYARBAKIR")
    )
    try:
        yield built
    finally:
        built.close()


def gateway_for(smsc: SmscProcess, components: Backends, password: str = PASSWORD, **kw: float) -> SmsGateway:
    packages = components.catalogue.current.packages
    options: dict[str, float] = {"reconnect_min": 0.1, "reconnect_max": 0.5, "response_timeout": 2.0}
    options.update(kw)
    return SmsGateway(
        "127.0.0.1",
        smsc.port,
        SYSTEM_ID,
        password,
        StoreBalanceLookup(components.store),
        package_name=lambda code: packages[code].name if code in packages else code,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
async def gateway(smsc: SmscProcess, components: Backends) -> AsyncIterator[SmsGateway]:
    gw = gateway_for(smsc, components)
    mark = smsc.mark
    await gw.start()
    await gw.wait_bound(10)
    # the simulator logs its side of the bind a moment after it answered: a test's mark taken before
    # that would count the fixture's bind as one of its own (seen under load)
    await smsc.wait_for(lambda e: e["event"] == "bind" and e.get("ok"), since=mark)
    try:
        yield gw
    finally:
        await gw.stop()


async def reply(smsc: SmscProcess, to: str, since: int) -> tuple[str, list[Event]]:
    """The next message submitted to `to`, all its parts checked and joined as npm smpp decoded them."""
    first = await smsc.wait_for(
        lambda e: e["event"] == "submit_sm" and e["destination_addr"] == to, since=since
    )
    raw = bytes.fromhex(first["short_message_hex"])
    if not first["esm_class"] & 0x40:
        return first["message"], [first]
    reference, total = raw[3], raw[4]

    def same(e: Event) -> bool:
        if e["event"] != "submit_sm" or e["destination_addr"] != to:
            return False
        data = bytes.fromhex(e["short_message_hex"])
        return data[:4] == bytes((5, 0, 3, reference)) and data[4] == total

    parts = await smsc.wait_count(same, total, since=since)
    parts.sort(key=lambda e: bytes.fromhex(e["short_message_hex"])[5])
    assert [bytes.fromhex(p["short_message_hex"])[5] for p in parts] == list(range(1, total + 1))
    return "".join(p["message"] for p in parts), parts


def use_some(components: Backends) -> None:
    """Real charging on the subscriber: a 125 s call, one SMS, 100 MB; and a 12,50 TL top-up."""
    charge = components.charging.charge
    call = (ServiceUsage(1, Service.VOICE, 60, 0, "905551112233"),)
    charge(ChargeRequest("call", RequestType.INITIAL, 0, MSISDN, call))
    charge(ChargeRequest("call", RequestType.TERMINATE, 1, MSISDN, (ServiceUsage(1, Service.VOICE, 0, 125),)))
    charge(
        ChargeRequest(
            "sms", RequestType.EVENT, 0, MSISDN, (ServiceUsage(2, Service.SMS, 1, 0, "905551112233"),)
        )
    )
    charge(ChargeRequest("data", RequestType.INITIAL, 0, MSISDN, (ServiceUsage(3, Service.DATA, MB),)))
    charge(
        ChargeRequest("data", RequestType.TERMINATE, 1, MSISDN, (ServiceUsage(3, Service.DATA, 0, 100 * MB),))
    )
    components.accounts.top_up(MSISDN, 1250, "voucher-1")


@pytest.mark.parametrize(
    ("text", "coding"), [("KALAN", 0), ("kalan", 8), (" Kalan ", 0), ("kAlAn\n", 8), ("KALAN", 3)]
)
async def test_kalan_gets_the_exact_balance_in_ucs2_parts(
    smsc: SmscProcess, components: Backends, gateway: SmsGateway, text: str, coding: int
) -> None:
    use_some(components)
    account = components.store.get(MSISDN)
    assert account is not None
    ends = min(b.valid_until for b in account.buckets.values())
    expected = (
        "CellCelly kalan haklarınız:\n"
        "Bakiye: 112,50 TL\n"  # 100,00 TL at opening + 12,50 TL; usage came from the package
        "Dakika: 6997 dakika\n"  # 7000 min - 125 s, whole minutes left
        "SMS: 6999 SMS\n"
        "İnternet: 6,9 GB\n"  # 7168 MB - 100 MB = 7068 MB
        "Paket: Diyarbakır\n"
        f"Geçerlilik: {datetime.fromtimestamp(ends, UTC).astimezone(TRT):%d.%m.%Y} tarihine kadar"
    )
    mark = smsc.mark
    await smsc.command(
        cmd="deliver", source_addr=E164, destination_addr="5555", text=text, data_coding=coding
    )
    said, parts = await reply(smsc, E164, mark)
    assert said == expected
    assert len(parts) == 3  # 170 UCS-2 units: 67 + 67 + 36
    for part in parts:
        raw = bytes.fromhex(part["short_message_hex"])
        assert part["data_coding"] == 8 and part["esm_class"] == 0x40 and len(raw) <= 140
        assert raw[6:].decode("utf-16-be") == part["message"]  # our octets, decoded by npm smpp and by Python
        assert (part["source_addr"], part["source_addr_ton"]) == ("5555", 3)
        assert (part["destination_addr"], part["dest_addr_ton"], part["dest_addr_npi"]) == (E164, 1, 1)
    resp = await smsc.wait_for(lambda e: e["event"] == "deliver_sm_resp", since=mark)
    assert resp["command_status"] == 0


@pytest.mark.parametrize("source", ["+905321234567", "5321234567"])
async def test_sender_in_other_forms_is_the_same_subscriber(
    smsc: SmscProcess, gateway: SmsGateway, source: str
) -> None:
    mark = smsc.mark
    ton = 1 if source.startswith("+") else 2
    await smsc.command(cmd="deliver", source_addr=source, source_addr_ton=ton, text="KALAN", data_coding=0)
    said, _ = await reply(smsc, E164, mark)  # answered to the international form
    assert said.startswith("CellCelly kalan haklarınız:\nBakiye: 100,00 TL\nDakika: 7000 dakika\n")


async def test_a_concatenated_mo_is_answered_once(smsc: SmscProcess, gateway: SmsGateway) -> None:
    mark = smsc.mark
    # "yardım" in two UCS-2 parts, the second delivered first
    await smsc.command(cmd="deliver", source_addr=E164, text="dım", data_coding=8, udh_hex="050003410202")
    await smsc.command(cmd="deliver", source_addr=E164, text="yar", data_coding=8, udh_hex="050003410201")
    said, _ = await reply(smsc, E164, mark)
    assert said.startswith("CellCelly SMS komutları (5555 numarasına gönderin): KALAN:")
    await asyncio.sleep(0.3)
    assert len(smsc.of("submit_sm", mark)) == len(_)  # one answer, not one per part
    assert [e["command_status"] for e in smsc.of("deliver_sm_resp", mark)] == [0, 0]


async def test_unknown_sender_is_told_politely(smsc: SmscProcess, gateway: SmsGateway) -> None:
    mark = smsc.mark
    await smsc.command(cmd="deliver", source_addr="905551112233", text="KALAN")
    said, _ = await reply(smsc, "905551112233", mark)
    assert "CellCelly abonesi değilsiniz" in said


async def test_unknown_keyword_gets_the_keyword_list(smsc: SmscProcess, gateway: SmsGateway) -> None:
    mark = smsc.mark
    await smsc.command(cmd="deliver", source_addr=E164, text="FATURA", data_coding=0)
    said, _ = await reply(smsc, E164, mark)
    assert said.startswith('"FATURA" anlaşılamadı.') and "KALAN" in said and "YARDIM" in said


async def test_other_short_codes_are_acknowledged_and_ignored(smsc: SmscProcess, gateway: SmsGateway) -> None:
    mark = smsc.mark
    await smsc.command(cmd="deliver", source_addr=E164, destination_addr="4444", text="KALAN")
    resp = await smsc.wait_for(lambda e: e["event"] == "deliver_sm_resp", since=mark)
    assert resp["command_status"] == 0
    await asyncio.sleep(0.5)
    assert smsc.of("submit_sm", mark) == []


async def test_notices_and_one_time_codes_go_out_through_the_channel(
    smsc: SmscProcess, gateway: SmsGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    subscriber = SubscriberRecord(MSISDN, "Gülşen", "Çağlar", "gulsen@example.com")
    notice = NotificationEvent("n1", MSISDN, "bucket-80", 0, "voice", "DIYARBAKIR", "b1", 84000, 420000)
    subject, text = render(notice, subscriber.first_name)
    mark = smsc.mark
    await gateway.channel.send(subscriber, subject, text)
    said, parts = await reply(smsc, E164, mark)
    assert said == (
        "Merhaba Gülşen, DIYARBAKIR paketinizdeki dakika hakkınızın %80'ini kullandınız. "
        "Kalan: 1400 dakika. CellCelly"
    )
    assert parts[0]["data_coding"] == 8

    mark = smsc.mark
    await gateway.channel.send_sms("+905321234567", "CellCelly doğrulama kodunuz: 482913")
    said, _ = await reply(smsc, E164, mark)
    assert said == "CellCelly doğrulama kodunuz: 482913"
    assert all("482913" not in str(r.__dict__) for r in caplog.records)  # a code is never logged

    mark = smsc.mark
    await gateway.channel.send_sms(MSISDN, "Kod: 1234")  # GSM 7-bit fits
    event = await smsc.wait_for(lambda e: e["event"] == "submit_sm", since=mark)
    assert (event["data_coding"], event["short_message_hex"]) == (0, b"Kod: 1234".hex())


async def test_a_refused_submit_raises_so_the_notifier_retries(
    smsc: SmscProcess, gateway: SmsGateway
) -> None:
    await smsc.command(cmd="fail_submits", count=1, status=0x58)
    subscriber = SubscriberRecord(MSISDN, "Gülşen", "Çağlar", "")
    with pytest.raises(SubmitRefused, match="ESME_RTHROTTLED"):
        await gateway.channel.send(subscriber, "Bakiyeniz azaldı", "Bakiyeniz 5,00 TL'ye düştü.")
    mark = smsc.mark
    await gateway.channel.send(subscriber, "Bakiyeniz azaldı", "Bakiyeniz 5,00 TL'ye düştü.")  # the retry
    said, _ = await reply(smsc, E164, mark)
    assert said == "Bakiyeniz 5,00 TL'ye düştü."


async def test_malformed_pdus_get_generic_nack_and_the_session_goes_on(
    smsc: SmscProcess, gateway: SmsGateway
) -> None:
    mark = smsc.mark
    # an unknown command_id
    await smsc.command(cmd="raw", hex="00000010" + "00000999" + "00000000" + "0000beef")
    nack = await smsc.wait_for(lambda e: e["event"] == "generic_nack", since=mark)
    assert (nack["sequence"], nack["command_status"]) == (0xBEEF, 0x03)  # ESME_RINVCMDID
    # a deliver_sm whose source_addr never ends
    body = "00" + "0101" + "39" * 30
    await smsc.command(cmd="raw", hex=f"{16 + 33:08x}" + "00000005" + "00000000" + "0000bef0" + body)
    nack = await smsc.wait_for(lambda e: e["event"] == "generic_nack" and e["sequence"] == 0xBEF0, since=mark)
    assert nack["command_status"] == 0xC2  # ESME_RINVPARLEN
    # a deliver_sm with sm_length past its end
    sm = (
        "00"
        + "0101"
        + E164.encode().hex()
        + "00"
        + "0000"
        + "3535353500"
        + "000000"
        + "0000"
        + "00000000"
        + "c8"
    )
    await smsc.command(cmd="raw", hex=f"{16 + len(sm) // 2:08x}" + "00000005" + "00000000" + "0000bef1" + sm)
    nack = await smsc.wait_for(lambda e: e["event"] == "generic_nack" and e["sequence"] == 0xBEF1, since=mark)
    assert nack["command_status"] == 0x01  # ESME_RINVMSGLEN

    await smsc.command(cmd="deliver", source_addr=E164, text="KALAN")
    said, _ = await reply(smsc, E164, mark)
    assert said.startswith("CellCelly kalan haklarınız:")
    assert smsc.of("bind", mark) == [] and smsc.of("close", mark) == []  # the same session throughout
    assert gateway.esme.stats.nacks_sent == 3


async def test_random_frames_are_each_answered_and_nothing_breaks(
    smsc: SmscProcess, gateway: SmsGateway
) -> None:
    """40 seeded hostile frames (sound lengths, random bodies): each request gets exactly one answer."""
    rng = random.Random(5555)
    good = encode(Pdu(CommandId.DELIVER_SM, 1, 0, ShortMessage(E164, "5555", b"KALAN", 1, 1)))[16:]
    mark = smsc.mark
    sequences = []
    for i in range(40):
        kind = i % 4
        if kind == 0:
            command, body = (
                rng.choice([0x0999, 0x0103, 0x0004, 0x0009, 0x000B]),
                rng.randbytes(rng.randrange(40)),
            )
        elif kind == 1:
            command, body = 0x0005, rng.randbytes(rng.randrange(80))
        else:  # a real deliver_sm with octets changed or cut
            mutated = bytearray(good)
            for _ in range(rng.randrange(1, 4)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            command, body = 0x0005, bytes(mutated[: rng.randrange(len(mutated) + 1)])
        sequence = 0x10000 + i
        sequences.append(sequence)
        frame = struct.pack(">IIII", 16 + len(body), command, 0, sequence) + body
        await smsc.command(cmd="raw", hex=frame.hex())

    def answer(e: Event) -> bool:
        return e["event"] in ("generic_nack", "deliver_sm_resp") and e["sequence"] in sequences

    answers = await smsc.wait_count(answer, len(sequences), since=mark)
    await asyncio.sleep(0.3)
    answers = smsc.matching(answer, mark)
    assert sorted(e["sequence"] for e in answers) == sequences  # one each, none twice
    assert smsc.of("bind", mark) == [] and smsc.of("close", mark) == []
    mark = smsc.mark
    await smsc.command(cmd="deliver", source_addr=E164, text="KALAN")
    said, _ = await reply(smsc, E164, mark)
    assert said.startswith("CellCelly kalan haklarınız:")


async def test_a_lost_frame_length_closes_and_the_esme_binds_again(
    smsc: SmscProcess, gateway: SmsGateway
) -> None:
    mark = smsc.mark
    await smsc.command(cmd="raw", hex="00000008" + "00000005" + "00000000" + "00000042")
    nack = await smsc.wait_for(lambda e: e["event"] == "generic_nack", since=mark)
    assert nack["command_status"] == 0x02  # ESME_RINVCMDLEN
    await smsc.wait_for(lambda e: e["event"] == "bind" and e["ok"], since=mark)
    await gateway.wait_bound(5)
    mark = smsc.mark
    await smsc.command(cmd="deliver", source_addr=E164, text="KALAN")
    said, _ = await reply(smsc, E164, mark)
    assert said.startswith("CellCelly kalan haklarınız:")


async def test_the_smsc_restarted_the_esme_binds_again(smsc: SmscProcess, gateway: SmsGateway) -> None:
    smsc.stop()
    for _ in range(200):
        if not gateway.esme.bound.is_set():
            break
        await asyncio.sleep(0.01)
    with pytest.raises(NotBound):
        await gateway.channel.send_sms(MSISDN, "Kod: 1234")  # raises: the notifier will retry it
    mark = smsc.mark
    smsc.start()
    await smsc.wait_for(lambda e: e["event"] == "bind" and e["ok"], since=mark)
    await gateway.wait_bound(5)
    await smsc.command(cmd="deliver", source_addr=E164, text="kalan")
    said, _ = await reply(smsc, E164, mark)
    assert said.startswith("CellCelly kalan haklarınız:\nBakiye: 100,00 TL")
    assert gateway.esme.stats.binds == 2


async def test_an_unbind_from_the_smsc_is_answered_and_bound_again(
    smsc: SmscProcess, gateway: SmsGateway
) -> None:
    mark = smsc.mark
    await smsc.command(cmd="unbind")
    await smsc.wait_for(lambda e: e["event"] == "unbind_resp", since=mark)
    await smsc.wait_for(lambda e: e["event"] == "bind" and e["ok"], since=mark)
    await gateway.wait_bound(5)
    await gateway.channel.send_sms(MSISDN, "Kod: 1")
    await smsc.wait_for(lambda e: e["event"] == "submit_sm", since=mark)


async def test_enquire_link_keeps_the_link(smsc: SmscProcess, components: Backends) -> None:
    gw = gateway_for(smsc, components, enquire_link_interval=0.2)
    await gw.start()
    try:
        await gw.wait_bound(10)
        mark = smsc.mark
        await smsc.wait_count(lambda e: e["event"] == "enquire_link", 3, timeout=5, since=mark)
        # the gateway counts one when its answer is back: a moment after the SMSC saw the request
        deadline = time.monotonic() + 5
        while gw.esme.stats.enquire_links < 3:
            assert time.monotonic() < deadline, gw.esme.stats
            await asyncio.sleep(0.02)
    finally:
        await gw.stop()
    # the simulator's events are read from its output by a thread: a moment after it got the PDU
    await smsc.wait_for(lambda e: e["event"] == "unbind", timeout=5)  # stop() unbinds


async def test_bad_password_is_logged_clearly_and_retried_with_backoff(
    smsc: SmscProcess, components: Backends, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    gw = gateway_for(smsc, components, password="wr0ngpw", reconnect_min=0.2, reconnect_max=0.8)
    await gw.start()
    try:
        attempts = await smsc.wait_count(lambda e: e["event"] == "bind", 4, timeout=10)
        assert all(not a["ok"] and a["status"] == 0x0E for a in attempts)  # ESME_RINVPASWD
        times = [a["ts"] for a in attempts[:4]]
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert gaps[0] < gaps[1] < gaps[2], gaps  # 0.2, 0.4, 0.8 s (±20 %)
        with pytest.raises(NotBound, match="ESME_RINVPASWD"):
            await gw.wait_bound(0.1)
    finally:
        await gw.stop()
    refused = [r for r in caplog.records if r.getMessage() == "SMSC refused the bind"]
    assert refused and all(r.levelno == logging.ERROR for r in refused)
    assert refused[0].__dict__["status"] == "ESME_RINVPASWD"
    assert all("wr0ngpw" not in str(r.__dict__) for r in caplog.records)  # never the password


async def test_the_window_bounds_requests_in_flight_and_timeouts_free_it(smsc: SmscProcess) -> None:
    esme = Esme("127.0.0.1", smsc.port, SYSTEM_ID, PASSWORD, window=2, response_timeout=0.6)
    await esme.start()
    try:
        await esme.wait_bound(10)
        await smsc.command(cmd="mute_submits", count=3)
        sm = ShortMessage("5555", E164, b"x", 3, 0, 1, 1)
        mark = smsc.mark
        sends = [asyncio.ensure_future(esme.submit(sm)) for _ in range(3)]
        await asyncio.sleep(0.3)
        assert len(smsc.of("submit_sm_muted", mark)) == 2  # the third waits for a slot
        results = await asyncio.gather(*sends, return_exceptions=True)
        assert all(isinstance(r, ResponseTimeout) for r in results)
        muted = smsc.of("submit_sm_muted", mark)
        assert len(muted) == 3 and muted[2]["ts"] - muted[1]["ts"] > 0.4
        assert await esme.submit(sm) == "m1"  # the session is still good
    finally:
        await esme.stop()
