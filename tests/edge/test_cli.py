"""The command line's failures: one line on stderr that says what to do, a documented exit
code, no traceback (unless --debug); and the auditor's commands, which only read."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from edge.cli import EXIT_FOUND, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE
from tests.conftest import POSTGRES, fresh_database


def tokensea(*args: str, url: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "TOKENSEA_DATABASE_URL": url, "TOKENSEA_JWT_SECRET": "x" * 40}
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=120, check=False)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


def test_a_new_database_is_migrated_and_then_used(empty_url: str) -> None:
    before = tokensea("db", "status", url=empty_url)
    assert before.returncode == EXIT_FOUND and json.loads(before.stdout)["pending"][0] == "0001"
    refused = tokensea("ledger", "verify", url=empty_url)  # read-only: it creates nothing
    assert refused.returncode == EXIT_USAGE and "tokensea db upgrade" in one_line(refused)
    assert json.loads(tokensea("db", "status", url=empty_url).stdout)["version"] is None
    upgraded = tokensea("db", "upgrade", url=empty_url)
    assert upgraded.returncode == EXIT_OK, upgraded.stderr
    assert json.loads(upgraded.stdout)["applied"][0] == "0001"
    status = tokensea("db", "status", url=empty_url)
    assert status.returncode == EXIT_OK and json.loads(status.stdout)["pending"] == []
    assert json.loads(tokensea("db", "upgrade", url=empty_url).stdout)["applied"] == []
    made = tokensea("admin", "create-user", "ann", "--password-stdin", url=empty_url, stdin="tide-pool-42\n")
    assert made.returncode == EXIT_OK, made.stderr
    taken = tokensea("admin", "create-user", "ANN", "--password-stdin", url=empty_url, stdin="tide-pool-42\n")
    assert taken.returncode == EXIT_FOUND and "already exists" in one_line(taken)
    short = tokensea("admin", "create-user", "bob", "--password-stdin", url=empty_url, stdin="abc\n")
    assert short.returncode == EXIT_USAGE and "password" in one_line(short)
    for amount in ("0.5e0x", "-3", "1.5.5"):
        bad = tokensea("admin", "grant", "ann", amount, url=empty_url)
        assert bad.returncode == EXIT_USAGE and "amount" in one_line(bad)
    nobody = tokensea("admin", "grant", "nobody", "1", url=empty_url)
    assert nobody.returncode == EXIT_USAGE and "no user named" in one_line(nobody)
    assert tokensea("ledger", "verify", url=empty_url).returncode == EXIT_OK


def test_bad_settings_and_an_unreachable_database(tmp_path: Path) -> None:
    wrong = tokensea("ledger", "verify", url="mysql://somewhere/db")
    assert wrong.returncode == EXIT_USAGE and "TOKENSEA_DATABASE_URL" in one_line(wrong)
    down = tokensea("admin", "grant", "ann", "1", url="postgresql://postgres@127.0.0.1:1/test")
    assert down.returncode == EXIT_UNREACHABLE and "unreachable" in one_line(down)
    config = tmp_path / "bad.toml"
    config.write_text('signup_quota = 0.5\n')
    settings = tokensea("--config", str(config), "db", "status", url=f"sqlite:///{tmp_path / 'x.db'}")
    assert settings.returncode == EXIT_USAGE and "signup_quota" in one_line(settings)
    usage = tokensea("ledger", "frobnicate", url="mysql://unused")
    assert usage.returncode == EXIT_USAGE and "invalid choice" in one_line(usage)
    debug = tokensea("--debug", "ledger", "verify", url="postgresql://postgres@127.0.0.1:1/test")
    assert debug.returncode != EXIT_OK and "Traceback" in debug.stderr


def test_the_auditors_commands_only_read(tmp_path: Path) -> None:
    """Run by a PostgreSQL role that may only SELECT (an auditor's credentials): any write
    or DDL would fail with "permission denied"."""
    with fresh_database("postgres", tmp_path) as url:
        assert tokensea("db", "upgrade", url=url).returncode == EXIT_OK
        assert tokensea("admin", "create-user", "ann", "--password-stdin", url=url, stdin="tide-pool-42\n").returncode == 0
        assert tokensea("admin", "grant", "ann", "5", url=url).returncode == 0
        schema = url.rsplit("schema=", 1)[1]
        role = f"auditor_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {role} LOGIN")
            conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
            conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}")
        try:
            audit_url = url.replace("postgres@", f"{role}@", 1)
            for command in (("db", "status"), ("projections", "status"), ("ledger", "verify"), ("ledger", "export"),
                            ("ledger", "head")):
                result = tokensea(*command, url=audit_url)
                assert result.returncode == EXIT_OK, (command, result.stderr)
            exported = tokensea("ledger", "export", url=audit_url).stdout.splitlines()
            assert [json.loads(line)["topic"] for line in exported][-1].endswith("QuotaGranted")
        finally:
            with psycopg.connect(POSTGRES, autocommit=True) as conn:
                conn.execute(f"DROP OWNED BY {role}")
                conn.execute(f"DROP ROLE {role}")
