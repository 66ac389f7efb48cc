"""KafkaSecurity: the aiokafka options a secured cluster needs, and clear errors for settings that
cannot work (they fail when the bus is made, not at the first publish)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from cellcelly.adapters.bus_kafka import KafkaBus, KafkaBusError, KafkaSecurity

pytestmark = pytest.mark.unit


def test_plaintext_by_default() -> None:
    assert KafkaSecurity().options() == {"security_protocol": "PLAINTEXT"}


def test_sasl_carries_the_login_and_tls_a_context() -> None:
    options = KafkaSecurity("SASL_SSL", "SCRAM-SHA-256", "app", "pw").options()
    assert options["security_protocol"] == "SASL_SSL"
    assert (options["sasl_mechanism"], options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "SCRAM-SHA-256",
        "app",
        "pw",
    )
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED


def test_a_ca_file_is_trusted_when_there_and_ignored_when_not(tmp_path: Path) -> None:
    import certifi  # a real CA bundle

    base = KafkaSecurity("SSL").options()["ssl_context"].cert_store_stats()["x509_ca"]
    with_ca = KafkaSecurity("SSL", cafile=Path(certifi.where())).options()["ssl_context"]
    assert with_ca.cert_store_stats()["x509_ca"] > 0 and with_ca.cert_store_stats()["x509_ca"] >= base
    absent = KafkaSecurity("SSL", cafile=tmp_path / "ca.crt").options()["ssl_context"]
    assert absent.cert_store_stats()["x509_ca"] == base


def test_the_password_is_not_in_the_repr() -> None:
    assert "s3cret" not in repr(KafkaSecurity("SASL_SSL", "PLAIN", "app", "s3cret"))


@pytest.mark.parametrize(
    ("security", "message"),
    [
        (KafkaSecurity("SASL_SSL"), "needs a username"),
        (KafkaSecurity("TLS"), "unknown Kafka security protocol"),
    ],
)
def test_settings_that_cannot_work_fail_when_the_bus_is_made(security: KafkaSecurity, message: str) -> None:
    with pytest.raises(KafkaBusError, match=message):
        KafkaBus("127.0.0.1:9092", security=security)
