"""The ``User`` aggregate: registration, profile, role, status and rate limits."""

from __future__ import annotations

from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidTransition
from domain.ids import user_id_for
from domain.rates import Limits


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


class Status(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class User(Aggregate):
    TOPIC = "tokensea.User"

    class Created(Aggregate.Created):  # unused; eventsourcing wants every event class named
        TOPIC = "tokensea.User.Created"

    class Registered(Aggregate.Created):
        TOPIC = "tokensea.UserRegistered"
        username: str
        password_hash: str
        email: str | None
        role: str
        invite_code: str
        invited_by: UUID | None

    class ProfileChanged(Aggregate.Event):
        TOPIC = "tokensea.UserProfileChanged"
        name: str
        email: str | None

    class RoleChanged(Aggregate.Event):
        TOPIC = "tokensea.UserRoleChanged"
        role: str

    class StatusChanged(Aggregate.Event):
        TOPIC = "tokensea.UserStatusChanged"
        status: str

    class LimitsChanged(Aggregate.Event):
        TOPIC = "tokensea.UserLimitsChanged"
        rpm: int | None
        tpm: int | None
        max_concurrency: int | None

    # Until an admin sets them, a user has no limits of their own (users registered
    # before limits existed have no event that sets these).
    limits: Limits = Limits()

    @staticmethod
    def create_id(username: str) -> UUID:
        return user_id_for(username)

    @event(Registered)
    def __init__(
        self,
        username: str,
        password_hash: str,
        email: str | None,
        role: str,
        invite_code: str,
        invited_by: UUID | None,
    ) -> None:
        self.username = username
        self.password_hash = password_hash
        self.name = username
        self.email = email
        self.role = Role(role).value
        self.status = Status.ACTIVE.value
        self.invite_code = invite_code
        self.invited_by = invited_by

    def change_profile(self, name: str | None = None, email: str | None = None) -> None:
        new_name = self.name if name is None else name
        new_email = self.email if email is None else email
        if (new_name, new_email) != (self.name, self.email):
            self._profile_changed(name=new_name, email=new_email)

    @event(ProfileChanged)
    def _profile_changed(self, name: str, email: str | None) -> None:
        self.name = name
        self.email = email

    def change_role(self, role: Role) -> None:
        if role.value != self.role:
            self._role_changed(role=role.value)

    @event(RoleChanged)
    def _role_changed(self, role: str) -> None:
        self.role = role

    def change_status(self, status: Status) -> None:
        if status.value != self.status:
            self._status_changed(status=status.value)

    @event(StatusChanged)
    def _status_changed(self, status: str) -> None:
        if status not in {s.value for s in Status}:
            raise InvalidTransition(f"unknown user status {status!r}")
        self.status = status

    def change_limits(self, limits: Limits) -> None:
        if limits != self.limits:
            self._limits_changed(rpm=limits.rpm, tpm=limits.tpm, max_concurrency=limits.max_concurrency)

    @event(LimitsChanged)
    def _limits_changed(self, rpm: int | None, tpm: int | None, max_concurrency: int | None) -> None:
        self.limits = Limits(rpm, tpm, max_concurrency)
