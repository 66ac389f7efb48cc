"""The IVR: SIP/UDP calls answered with the balance spoken in Turkish."""

from __future__ import annotations

from cellcelly.application.selfcare import StoreBalanceLookup
from cellcelly.deploy.backends import Backends
from cellcelly.deploy.service import Alone, Lifecycle
from cellcelly.errors import ConfigurationError
from cellcelly.ivr.prompt import PromptAudio, tools_missing
from cellcelly.ivr.service import IvrService
from cellcelly.ports.selfcare import BalanceLookup
from cellcelly.settings import Settings


class Ivr(Lifecycle):
    def __init__(self, ivr: IvrService) -> None:
        self.ivr = ivr
        super().__init__("ivr", ivr.start, ivr.stop)

    @property
    def port(self) -> int:
        return self.ivr.port


def alone(settings: Settings, backends: Backends) -> Alone:
    """`cellcelly ivr`: balances spoken from the store it is configured with."""
    if missing := tools_missing():
        raise ConfigurationError(f"{' and '.join(missing)} not installed (apt-get install espeak-ng sox)")
    audio = PromptAudio(settings.ivr_voice, settings.ivr_speed)
    service = build(settings, StoreBalanceLookup(backends.store), audio)
    return Alone(
        service, lambda: f"IVR on sip:{settings.ivr_number}@{settings.ivr_host}:{service.port} (UDP)"
    )


def build(settings: Settings, lookup: BalanceLookup, audio: PromptAudio) -> Ivr:
    """`audio` is shared with the MW in the embedded stack: the web's WAV is what callers hear."""
    return Ivr(
        IvrService(
            settings.ivr_host,
            settings.ivr_port,
            lookup,
            number=settings.ivr_number,
            audio=audio,
            advertise_host=settings.ivr_advertise_host or None,
            trusted_peers=settings.ivr_trusted_peers,
        )
    )
