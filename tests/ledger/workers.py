"""Code that runs in child processes for the multi-process ledger tests."""

from __future__ import annotations

import os
import random
import threading
from decimal import Decimal
from uuid import UUID

from domain.money import Money
from ledger import Database, Hold, Ledger, Refused
from tests.ledger.helpers import charge, facts, new_key


def spend(url: str, user_id: str, key_id: str, prefix: str, threads: int, attempts: int, queue: object) -> None:
    """Many threads admit and settle requests as fast as they can; report what was charged."""
    ledger = Ledger(Database.from_url(url), serving=True)
    charged: list[str] = []
    lock = threading.Lock()

    def work(thread: int) -> None:
        rng = random.Random(f"{prefix}-{thread}")
        for attempt in range(attempts):
            request_id = f"{prefix}-{thread}-{attempt}"
            hold = Money(rng.choice(["3", "5", "7"]))
            try:
                ledger.admit(Hold(facts(request_id, UUID(user_id), UUID(key_id)), hold, ledger.instance_id))
            except Refused:
                continue
            tokens = rng.randint(0, int(hold.cents) * 100)  # actual usage never above the hold
            ledger.settle(charge(request_id, UUID(user_id), UUID(key_id), tokens, reserved=str(hold)))
            with lock:
                charged.append(str(Decimal(tokens) / 100))

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    ledger.close()
    queue.put(charged)  # type: ignore[attr-defined]


def admit_then_die(url: str, user_id: str, key_id: str, count: int, ready: object) -> None:
    """Admit ``count`` holds, report, and die without settling (as kill -9 would)."""
    ledger = Ledger(Database.from_url(url), serving=True)
    for n in range(count):
        ledger.admit(Hold(facts(f"doomed-{n}", UUID(user_id), UUID(key_id)), Money(2), ledger.instance_id))
    ready.set()  # type: ignore[attr-defined]
    threading.Event().wait(60)  # the test kills us here
    os._exit(0)


def spend_and_grant(url: str, user_id: str, key_id: str, prefix: str, threads: int, attempts: int, grants: int,
                    queue: object) -> None:
    """``spend``'s charges from many threads, while the first thread also grants (and now
    and then makes a key: commands, the other way into the events table) after each of its
    first ``grants`` charges, so this process's events alternate between the two ways in.
    Reports the charges and the grants."""
    from domain.grants import GrantReason
    from ledger import commands

    ledger = Ledger(Database.from_url(url), serving=True)
    charged: list[str] = []
    granted: list[str] = []
    lock = threading.Lock()

    def work(thread: int) -> None:
        for attempt in range(attempts):
            request_id = f"{prefix}-{thread}-{attempt}"
            ledger.admit(Hold(facts(request_id, UUID(user_id), UUID(key_id)), Money(3), ledger.instance_id))
            tokens = (thread * 31 + attempt * 7) % 300
            ledger.settle(charge(request_id, UUID(user_id), UUID(key_id), tokens, reserved="3"))
            with lock:
                charged.append(str(Decimal(tokens) / 100))
            if thread == 0 and attempt < grants:
                ledger.run(commands.GrantQuota(UUID(user_id), Money(1), GrantReason.ADMIN, "chain",
                                               f"{prefix}-grant-{attempt}"))
                granted.append("1")
                if attempt % 5 == 0:
                    new_key(ledger, UUID(user_id), name=f"{prefix}-key-{attempt}")

    spenders = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for spender in spenders:
        spender.start()
    for spender in spenders:
        spender.join()
    ledger.close()
    queue.put((charged, granted))  # type: ignore[attr-defined]
