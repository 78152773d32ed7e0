from datetime import datetime, timezone
from decimal import Decimal
from uuid import UUID, uuid4, uuid5

import pytest

from domain.catalogue import Plan, model_allowed
from domain.charges import Charge, RequestFacts, RequestStatus, UsageSource
from domain.errors import InvalidAmount, InvalidTransition
from domain.grants import Grant, GrantReason
from domain.ids import charge_id_for, grant_id_for, user_id_for
from domain.keys import ApiKey, KeyStatus
from domain.money import Money
from domain.pricing import Price
from domain.usage import TokenUsage
from domain.users import Role, Status, User


def _facts(request_id: str = "req-1") -> RequestFacts:
    return RequestFacts(request_id, uuid4(), uuid4(), "k", "gpt-x", "openai", "/v1/chat/completions", False,
                        datetime.now(timezone.utc))


def test_a_charge_is_named_by_its_request() -> None:
    first = Charge.record(_facts(), TokenUsage(input=10), Price.of("1", "1"), Decimal(1), reserved=Money(1),
                          latency_ms=3, status=RequestStatus.SUCCESS, usage_source=UsageSource.UPSTREAM)
    again = Charge.record(_facts(), TokenUsage(input=99), Price.of("1", "1"), Decimal(1), reserved=Money(1),
                          latency_ms=3, status=RequestStatus.SUCCESS, usage_source=UsageSource.UPSTREAM)
    assert first.originator_id == again.originator_id == charge_id_for("req-1")
    assert isinstance(first.mutate(None), Charge)  # replay builds the aggregate from the event


def test_a_charge_computes_its_own_cost() -> None:
    event = Charge.record(_facts(), TokenUsage(input=1000, output=1000), Price.of("300", "1500"), Decimal(2),
                          reserved=Money(1), latency_ms=3, status=RequestStatus.SUCCESS,
                          usage_source=UsageSource.UPSTREAM)
    assert event.cost == Money("3.6")
    assert type(event).TOPIC == "tokensea.TokensConsumed"


def test_usernames_are_unique_regardless_of_case() -> None:
    assert User.create_id("Alice") == user_id_for("alice")


def test_user_changes_only_record_real_changes() -> None:
    user = User(username="bob", password_hash="h", email=None, role="user", invite_code="ABCDEFGH", invited_by=None)
    user.change_profile(name="bob")
    user.change_role(Role.USER)
    user.change_status(Status.DISABLED)
    topics = [type(e).TOPIC for e in user.collect_events()]
    assert topics == ["tokensea.UserRegistered", "tokensea.UserStatusChanged"]


def test_a_deleted_key_cannot_change() -> None:
    key = ApiKey(user_id=uuid4(), name="k", digest="d", prefix="tsk-ab", quota=None, models=None, plan_id=None,
                 expires_at=None)
    key.delete()
    with pytest.raises(InvalidTransition):
        key.rename("again")
    with pytest.raises(InvalidTransition):
        key.change_status(KeyStatus.ACTIVE)


def test_grants_must_be_positive_and_are_named_by_reference() -> None:
    user = uuid4()
    with pytest.raises(InvalidAmount):
        Grant.give("r", user, Money(0), GrantReason.ADMIN)
    assert Grant.give("r", user, Money(1), GrantReason.ADMIN).id == Grant.give("r", user, Money(5), GrantReason.ADMIN).id


def test_model_access_needs_both_key_and_plan() -> None:
    plan = Plan(1, "Starter", ("a", "b"))
    assert model_allowed("a", None, None)
    assert model_allowed("a", ["a"], plan)
    assert not model_allowed("c", None, plan)
    assert not model_allowed("b", ["a"], plan)
    assert not model_allowed("a", [], None)


@pytest.mark.parametrize("name", ["req_0123456789abcdef", "", "Zoë", "signup:" + "x" * 300, "ünïcödé 🙂"])
def test_ids_are_the_standard_uuid5(name: str) -> None:
    """Stored aggregates were named with ``uuid.uuid5``: the fast path must agree bit for bit."""
    assert charge_id_for(name) == uuid5(UUID("6f1c5d8e-2b0a-4a51-9a57-5f0c3a6e1d02"), name)
    assert grant_id_for(name) == uuid5(UUID("6f1c5d8e-2b0a-4a51-9a57-5f0c3a6e1d03"), name)
    assert user_id_for(name) == uuid5(UUID("6f1c5d8e-2b0a-4a51-9a57-5f0c3a6e1d01"), name.lower())
    assert charge_id_for(name).version == 5
