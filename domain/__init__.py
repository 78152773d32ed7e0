"""TokenSea's pure domain model: money, prices, token usage, and the aggregates whose
events make up the billing ledger.

Nothing here does I/O. Every value is immutable and exact:

- ``Money`` is a count of cents held as a ``Decimal``; floats are refused everywhere,
  and arithmetic runs in a context that raises instead of rounding.
- ``Price`` is cents per million tokens for each ``TokenKind``; ``cost()`` multiplies
  usage by price and a plan multiplier, exactly, with no per-request rounding.
- The aggregates (``User``, ``ApiKey``, ``Grant``, ``Charge``) carry explicit, stable
  event topics so that moving a class never breaks the replay of old events.
  ``Grant`` and ``Charge`` are single-event aggregates whose ids are derived from a
  business reference (``uuid5``), so recording the same grant or the same request's
  charge twice collides in the event store instead of counting twice.
"""
