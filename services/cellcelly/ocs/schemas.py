"""The JSON charging API, modelled on 3GPP TS 32.291 Nchf_ConvergedCharging (v3).

Field names follow the specification (camelCase). CellCelly extensions, marked below, carry what
the Diameter Gy/Ro side has and Nchf spreads over service-specific structures: the Diameter
Session-Id (so a retransmitted create is recognised), the service type, the called number and the
visited country.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cellcelly.domain.catalogue import HOME_LOCATION
from cellcelly.domain.charging import ResultCode
from cellcelly.domain.limits import MAX_RATING_GROUP, MAX_REQUEST_NUMBER, MAX_SESSION_ID, MAX_UNITS
from cellcelly.domain.msisdn import Msisdn
from cellcelly.domain.units import Service

Units = Annotated[int, Field(ge=0, le=MAX_UNITS)]  # one report: see domain/limits.py


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class ServiceUnit(_Model):
    time: Units | None = None  # seconds
    totalVolume: Units | None = None  # octets
    uplinkVolume: Units | None = None
    downlinkVolume: Units | None = None
    serviceSpecificUnits: Units | None = None  # messages

    def amount(self, service: Service) -> int | None:
        if service is Service.VOICE:
            return self.time
        if service is Service.SMS:
            return self.serviceSpecificUnits
        if self.totalVolume is not None:
            return self.totalVolume
        if self.uplinkVolume is not None or self.downlinkVolume is not None:
            return (self.uplinkVolume or 0) + (self.downlinkVolume or 0)
        return None

    def implied_service(self) -> Service | None:
        if self.time is not None:
            return Service.VOICE
        if self.serviceSpecificUnits is not None:
            return Service.SMS
        if self.totalVolume is not None or self.uplinkVolume is not None or self.downlinkVolume is not None:
            return Service.DATA
        return None


class UsedUnitContainer(ServiceUnit):
    quotaManagementIndicator: str | None = None
    localSequenceNumber: int | None = None


class MultipleUnitUsage(_Model):
    ratingGroup: Annotated[int, Field(ge=0, le=MAX_RATING_GROUP)]
    requestedUnit: ServiceUnit | None = None
    usedUnitContainer: list[UsedUnitContainer] = Field(default_factory=list, max_length=32)
    # CellCelly extensions
    serviceType: Service | None = None
    destination: Annotated[str, Field(max_length=32, pattern=r"^\+?\d*$")] = ""

    def service(self) -> Service | None:
        if self.serviceType is not None:
            return self.serviceType
        for unit in (self.requestedUnit, *self.usedUnitContainer):
            if unit is not None and (found := unit.implied_service()) is not None:
                return found
        return None


class ChargingDataRequest(_Model):
    subscriberIdentifier: str | None = Field(default=None, max_length=40)
    nfConsumerIdentification: dict[str, str] | None = None
    invocationTimeStamp: str | None = Field(default=None, max_length=64)
    invocationSequenceNumber: Annotated[int, Field(ge=0, le=MAX_REQUEST_NUMBER)]
    oneTimeEvent: bool = False
    oneTimeEventType: str | None = Field(default=None, pattern=r"^(IEC|PEC)$")
    multipleUnitUsage: list[MultipleUnitUsage] = Field(default_factory=list, max_length=32)
    # CellCelly extensions
    sessionId: (
        Annotated[str, Field(min_length=1, max_length=MAX_SESSION_ID, pattern=r"^[\x21-\x7e]+$")] | None
    ) = None
    location: Annotated[str, Field(pattern=r"^\d{1,4}$")] = HOME_LOCATION

    @field_validator("subscriberIdentifier")
    @classmethod
    def _msisdn(cls, value: str | None) -> str | None:
        return None if value is None else Msisdn.parse(value).national


class ResultName(StrEnum):
    SUCCESS = "SUCCESS"
    END_USER_SERVICE_DENIED = "END_USER_SERVICE_DENIED"
    QUOTA_LIMIT_REACHED = "QUOTA_LIMIT_REACHED"
    USER_UNKNOWN = "USER_UNKNOWN"
    RATING_FAILED = "RATING_FAILED"
    SESSION_UNKNOWN = "SESSION_UNKNOWN"
    UNABLE_TO_COMPLY = "UNABLE_TO_COMPLY"


RESULT_NAMES: dict[ResultCode, ResultName] = {
    ResultCode.SUCCESS: ResultName.SUCCESS,
    ResultCode.END_USER_SERVICE_DENIED: ResultName.END_USER_SERVICE_DENIED,
    ResultCode.CREDIT_LIMIT_REACHED: ResultName.QUOTA_LIMIT_REACHED,
    ResultCode.USER_UNKNOWN: ResultName.USER_UNKNOWN,
    ResultCode.RATING_FAILED: ResultName.RATING_FAILED,
    ResultCode.UNKNOWN_SESSION_ID: ResultName.SESSION_UNKNOWN,
    ResultCode.UNABLE_TO_COMPLY: ResultName.UNABLE_TO_COMPLY,
}

# the HTTP status of a charging answer, by its command-level result
HTTP_STATUS: dict[ResultCode, int] = {
    ResultCode.SUCCESS: 200,
    ResultCode.END_USER_SERVICE_DENIED: 403,
    ResultCode.CREDIT_LIMIT_REACHED: 403,
    ResultCode.RATING_FAILED: 403,
    ResultCode.USER_UNKNOWN: 404,
    ResultCode.UNKNOWN_SESSION_ID: 404,
    ResultCode.UNABLE_TO_COMPLY: 409,
}


class TopUp(_Model):
    amount: Annotated[str, Field(pattern=r"^\d{1,9}(\.\d{1,2})?$")]
    reference: Annotated[str, Field(min_length=1, max_length=128)]


class PackagePurchase(_Model):
    package: Annotated[str, Field(min_length=1, max_length=32)]
    reference: Annotated[str, Field(min_length=1, max_length=128)]


class NewSubscriber(_Model):
    msisdn: str
    firstName: Annotated[str, Field(min_length=1, max_length=100)]
    lastName: Annotated[str, Field(min_length=1, max_length=100)]
    email: Annotated[str, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
    package: Annotated[str, Field(max_length=32)] = ""

    @field_validator("msisdn")
    @classmethod
    def _msisdn(cls, value: str) -> str:
        return Msisdn.parse(value).national


class StatusChange(_Model):
    status: Annotated[str, Field(pattern=r"^(active|suspended)$")]
    reference: Annotated[str, Field(min_length=1, max_length=128)] = "admin"
