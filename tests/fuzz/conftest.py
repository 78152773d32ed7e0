def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    from tests.fuzz.test_account_api_fuzz import CALLS

    if CALLS[0]:
        terminalreporter.write_line(f"schemathesis: {CALLS[0]} generated requests, no 5xx")
