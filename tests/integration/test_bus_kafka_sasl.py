"""KafkaBus logging in over SASL (PLAIN and SCRAM-SHA-512) to the session's real broker, whose second
listener asks for a login (`KAFKA_SASL_USERS` of scripts/kafka.sh): what an external, secured Kafka
of a CellCellyStack (kafka.external.secretRef) needs from the services."""

from __future__ import annotations

import uuid

import pytest
from kafka_server import SASL_PASSWORD, SASL_USER, KafkaServer
from test_bus_kafka import CONSUMER_OPTIONS, drain, events

from cellcelly.adapters.bus_kafka import KafkaBus, KafkaBusError, KafkaSecurity
from cellcelly.deploy.backends import build_bus
from cellcelly.settings import Settings
from cellcelly_testing import require

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture()
def sasl_bootstrap(kafka: KafkaServer) -> str:
    require(kafka.sasl_bootstrap is not None, "no SASL listener on a Kafka this run did not start")
    assert kafka.sasl_bootstrap is not None
    return kafka.sasl_bootstrap


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
async def test_publishes_and_consumes_with_a_login(sasl_bootstrap: str, mechanism: str) -> None:
    security = KafkaSecurity("SASL_PLAINTEXT", mechanism, SASL_USER, SASL_PASSWORD)
    bus = KafkaBus(sasl_bootstrap, consumer_options=CONSUMER_OPTIONS, security=security)
    topic = f"test.sasl.{uuid.uuid4().hex[:8]}"
    try:
        await bus.publish(events(topic, 20))
        consumer = bus.consumer(f"group-{topic}", [topic])
        got = await drain(consumer, 20)
        await consumer.commit(got)
        assert sorted(r.key for r in got) == sorted(e.key for e in events(topic, 20))
    finally:
        await bus.close()


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
async def test_a_wrong_password_is_refused_and_the_right_one_then_works(
    sasl_bootstrap: str, mechanism: str
) -> None:
    wrong = KafkaBus(
        sasl_bootstrap,
        publish_timeout=5.0,
        security=KafkaSecurity("SASL_PLAINTEXT", mechanism, SASL_USER, "nope"),
    )
    topic = f"test.sasl.{uuid.uuid4().hex[:8]}"
    try:
        with pytest.raises(KafkaBusError, match=sasl_bootstrap):
            await wrong.publish(events(topic, 1))
    finally:
        await wrong.close()
    right = KafkaBus(
        sasl_bootstrap, security=KafkaSecurity("SASL_PLAINTEXT", mechanism, SASL_USER, SASL_PASSWORD)
    )
    try:
        await right.publish(events(topic, 1))
    finally:
        await right.close()


async def test_the_settings_reach_the_bus(sasl_bootstrap: str) -> None:
    """CELLCELLY_KAFKA_* as the operator sets them from the stack's Secret."""
    settings = Settings(
        event_bus="kafka",
        kafka_bootstrap=sasl_bootstrap,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_username=SASL_USER,
        kafka_password=SASL_PASSWORD,
    )
    bus = build_bus(settings)
    assert isinstance(bus, KafkaBus)
    try:
        await bus.publish(events(f"test.sasl.{uuid.uuid4().hex[:8]}", 3))
    finally:
        await bus.close()


async def test_the_plain_listener_is_not_the_sasl_one(kafka: KafkaServer, sasl_bootstrap: str) -> None:
    """A client without a login cannot talk to the SASL listener (the tests above are not passing on an
    open door)."""
    bus = KafkaBus(sasl_bootstrap, publish_timeout=5.0)
    try:
        with pytest.raises(KafkaBusError):
            await bus.publish(events(f"test.sasl.{uuid.uuid4().hex[:8]}", 1))
    finally:
        await bus.close()
