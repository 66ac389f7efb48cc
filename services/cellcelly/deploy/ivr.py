"""The IVR: SIP/UDP calls answered with the balance spoken in Turkish."""

from __future__ import annotations

from cellcelly.deploy.service import Lifecycle
from cellcelly.ivr.prompt import PromptAudio
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
