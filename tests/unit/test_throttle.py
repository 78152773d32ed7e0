import pytest

from edge.errors import Problem
from edge.security import LoginThrottle


def test_usernames_and_addresses_have_their_own_allowance() -> None:
    throttle = LoginThrottle(per_user=2, per_address=3, window_seconds=60)
    for name in ("a", "b", "c"):
        throttle.check(f"user:{name}", "addr:1.2.3.4")
        throttle.failed(f"user:{name}", "addr:1.2.3.4")
    with pytest.raises(Problem) as refused:
        throttle.check("user:d", "addr:1.2.3.4")  # the address is spent
    assert refused.value.status == 429
    throttle.check("user:d", "addr:5.6.7.8")
    throttle.failed("user:d", "addr:5.6.7.8")
    throttle.failed("user:d", "addr:5.6.7.8")
    with pytest.raises(Problem):
        throttle.check("user:d", "addr:9.9.9.9")  # the username is spent
    throttle.succeeded("user:d")
    throttle.check("user:d", "addr:9.9.9.9")


def test_failures_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("edge.security.time.monotonic", lambda: clock[0])
    throttle = LoginThrottle(per_user=1, per_address=10, window_seconds=60)
    throttle.failed("user:a", "addr:x")
    with pytest.raises(Problem):
        throttle.check("user:a", "addr:x")
    clock[0] += 61
    throttle.check("user:a", "addr:x")
