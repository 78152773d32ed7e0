"""Read models of the ledger: balances, request logs, daily and per-model usage."""
