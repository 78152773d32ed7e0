"""Adapters for a client and a provider that speak the same protocol: the body passes
through (the model renamed, the output limit set, usage always requested), and so does
every event, the terminator held back until the charge is durable."""
