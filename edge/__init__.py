"""TokenSea's HTTP edge: the Sanic app, auth, relays, account routes and the CLI."""
