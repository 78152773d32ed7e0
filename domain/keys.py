"""The ``ApiKey`` aggregate. Only a digest of the secret is ever recorded."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidTransition
from domain.money import Money
from domain.rates import Limits


class KeyStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"
    DELETED = "deleted"


class ApiKey(Aggregate):
    TOPIC = "tokensea.ApiKey"

    class Created(Aggregate.Created):  # unused; eventsourcing wants every event class named
        TOPIC = "tokensea.ApiKey.Created"

    class KeyCreated(Aggregate.Created):
        TOPIC = "tokensea.KeyCreated"
        user_id: UUID
        name: str
        digest: str
        prefix: str
        quota: Money | None
        models: list[str] | None
        plan_id: int | None
        expires_at: datetime | None

    class KeyRenamed(Aggregate.Event):
        TOPIC = "tokensea.KeyRenamed"
        name: str

    class KeyStatusChanged(Aggregate.Event):
        TOPIC = "tokensea.KeyStatusChanged"
        status: str

    class KeyQuotaChanged(Aggregate.Event):
        TOPIC = "tokensea.KeyQuotaChanged"
        quota: Money | None

    class KeyDeleted(Aggregate.Event):
        TOPIC = "tokensea.KeyDeleted"

    class KeyLimitsChanged(Aggregate.Event):
        TOPIC = "tokensea.KeyLimitsChanged"
        rpm: int | None
        tpm: int | None
        max_concurrency: int | None

    limits: Limits = Limits()  # the key's own, until its owner sets them: none

    @event(KeyCreated)
    def __init__(
        self,
        user_id: UUID,
        name: str,
        digest: str,
        prefix: str,
        quota: Money | None,
        models: list[str] | None,
        plan_id: int | None,
        expires_at: datetime | None,
    ) -> None:
        self.user_id = user_id
        self.name = name
        self.digest = digest
        self.prefix = prefix
        self.quota = quota
        self.models = models
        self.plan_id = plan_id
        self.expires_at = expires_at
        self.status = KeyStatus.ACTIVE.value

    def _require_not_deleted(self) -> None:
        if self.status == KeyStatus.DELETED.value:
            raise InvalidTransition("the key was deleted")

    def rename(self, name: str) -> None:
        self._require_not_deleted()
        if name != self.name:
            self._renamed(name=name)

    @event(KeyRenamed)
    def _renamed(self, name: str) -> None:
        self.name = name

    def change_status(self, status: KeyStatus) -> None:
        self._require_not_deleted()
        if status is KeyStatus.DELETED:
            raise InvalidTransition("use delete() to delete a key")
        if status.value != self.status:
            self._status_changed(status=status.value)

    @event(KeyStatusChanged)
    def _status_changed(self, status: str) -> None:
        self.status = status

    def change_quota(self, quota: Money | None) -> None:
        self._require_not_deleted()
        if quota != self.quota:
            self._quota_changed(quota=quota)

    @event(KeyQuotaChanged)
    def _quota_changed(self, quota: Money | None) -> None:
        self.quota = quota

    def delete(self) -> None:
        self._require_not_deleted()
        self._deleted()

    @event(KeyDeleted)
    def _deleted(self) -> None:
        self.status = KeyStatus.DELETED.value

    def change_limits(self, limits: Limits) -> None:
        """The key's own rate limits (its plan's apply too: the tighter of each wins)."""
        self._require_not_deleted()
        if limits != self.limits:
            self._limits_changed(rpm=limits.rpm, tpm=limits.tpm, max_concurrency=limits.max_concurrency)

    @event(KeyLimitsChanged)
    def _limits_changed(self, rpm: int | None, tpm: int | None, max_concurrency: int | None) -> None:
        self.limits = Limits(rpm, tpm, max_concurrency)
