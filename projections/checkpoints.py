"""Checkpoints: the derived state at a ledger position, so that rebuilds and verification
start there instead of at the first event.

A checkpoint keeps the auditor's fold (``projections.audit_fold``) at its position: every
row of the index tables and the read models but the request log, whose rows never
change once written and stay in the read model itself. ``tokensea ledger checkpoint``
first verifies everything derived against the events since the previous checkpoint (or
genesis), and records one only if nothing differs.

Each checkpoint carries a digest over its position, the ledger's chain hash there and
its state. Before one is used, the digest is recomputed and the chain hash compared
with the events' own: a checkpoint that fails either (damaged, edited, or describing
events that have changed since) is reported and skipped for an older one, or genesis.
``ledger verify --full`` also compares every checkpoint with the fold of the events at
its position. The newest ``KEEP`` checkpoints are kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ledger.database import Database, to_datetime
from projections.audit_fold import Fold

KEEP = 3
ChainAt = Callable[[Any, int], bytes | None]  # (cursor, position) -> the chain hash stored there


@dataclass(frozen=True)
class Checkpoint:
    id: int
    position: int
    chain: bytes  # the ledger's chain hash at ``position`` (``ledger.chain``)
    digest: str
    created_at: datetime
    state: bytes

    def fold(self) -> Fold:
        return Fold.restore(self.state)

    def describe(self) -> str:
        return f"checkpoint {self.id} at position {self.position}"


def digest_of(position: int, chain: bytes, state: bytes) -> str:
    seal = hashlib.sha256(f"tokensea checkpoint {position}\n".encode())
    seal.update(chain.hex().encode() + b"\n")
    seal.update(state)
    return seal.hexdigest()


def _from_row(row: Any) -> Checkpoint:
    return Checkpoint(
        id=int(row["id"]), position=int(row["position"]),
        chain=bytes(row["chain"]), digest=str(row["digest"]),
        created_at=to_datetime(row["created_at"]), state=bytes(row["state"]),
    )


def stored(cur: Any) -> list[Checkpoint]:
    """Every checkpoint, newest position first."""
    cur.execute("SELECT id, position, chain, digest, created_at, state FROM proj_checkpoints ORDER BY position DESC, id DESC")
    return [_from_row(row) for row in cur.fetchall()]


def refusal(checkpoint: Checkpoint, cur: Any, chain_at: ChainAt) -> str | None:
    """Why ``checkpoint`` cannot be used (None: it can)."""
    if digest_of(checkpoint.position, checkpoint.chain, checkpoint.state) != checkpoint.digest:
        return f"{checkpoint.describe()} refused: its digest does not match its contents"
    if chain_at(cur, checkpoint.position) != checkpoint.chain:
        return f"{checkpoint.describe()} refused: the events up to position {checkpoint.position} have changed since"
    try:
        if checkpoint.fold().position != checkpoint.position:
            return f"{checkpoint.describe()} refused: its state is for another position"
    except (ValueError, KeyError, TypeError) as exc:
        return f"{checkpoint.describe()} refused: its state cannot be read ({exc})"
    return None


def latest(cur: Any, chain_at: ChainAt) -> tuple[Checkpoint | None, list[str]]:
    """The newest usable checkpoint (None: start at genesis), and why newer ones were refused."""
    refused: list[str] = []
    for checkpoint in stored(cur):
        reason = refusal(checkpoint, cur, chain_at)
        if reason is None:
            return checkpoint, refused
        refused.append(reason)
    return None, refused


def record(db: Database, fold: Fold, chain: bytes) -> Checkpoint:
    """Store ``fold`` as a checkpoint, and drop all but the newest ``KEEP``."""
    state = fold.state()
    digest = digest_of(fold.position, chain, state)
    created = datetime.now(timezone.utc)
    conn = db.connect()
    try:
        with db.transaction(conn) as cur:
            cur.execute(
                db.sql("INSERT INTO proj_checkpoints (position, chain, digest, state, created_at) "
                       "VALUES (%s, %s, %s, %s, %s) RETURNING id"),
                [fold.position, chain, digest, state, created],
            )
            made = int(cur.fetchone()["id"])
            cur.execute(
                db.sql("DELETE FROM proj_checkpoints WHERE id NOT IN "
                       "(SELECT id FROM proj_checkpoints ORDER BY position DESC, id DESC LIMIT %s)"),
                [KEEP],
            )
    finally:
        conn.close()
    return Checkpoint(made, fold.position, chain, digest, created, state)
