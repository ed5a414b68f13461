"""The admin API keeps its OpenAPI contract (issue 17 item 3): schemathesis (PyPI) generates
requests from `/admin/v1/openapi.json` of a running `vaultgate serve` and runs every check on the
answers: no server error, every status and body as documented, schema-valid requests accepted,
schema-violating ones refused, missing auth refused with 401, undeclared methods answered 405,
and the stateful phase (create → read → delete chains the document's links allow).

The gateway gets its own data dir; its rate limits are lifted so the run reaches the handlers
instead of the limiter (429 is documented on every route and checked by the attack tests).
The run is seeded, so a failure replays with the same cases; the full report is written to the
log directory. Hooks (schemathesis/hooks.py) give positive cases fresh Idempotency-Keys.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import requests

from conftest import ACCESS_KEY, SECRET_KEY, tool

HERE = Path(__file__).resolve().parent
SEED = "20261205"
MAX_EXAMPLES = os.environ.get("VAULTGATE_SCHEMATHESIS_EXAMPLES", "30")


def test_admin_api_keeps_its_openapi_contract(gateway_factory, log_dir):
    gw = gateway_factory(
        "schemathesis",
        VAULTGATE_RATE_ADMIN_PER_MIN="1000000",
        VAULTGATE_AUTH_FAILURES_PER_MIN="1000000",
    )
    r = requests.post(
        f"{gw.admin}/admin/v1/auth/token",
        json={"access_key": ACCESS_KEY, "secret_key": SECRET_KEY},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    report = log_dir / "schemathesis.txt"
    env = dict(os.environ, SCHEMATHESIS_HOOKS="hooks", PYTHONPATH=str(HERE / "schemathesis"))
    proc = subprocess.run(
        [
            tool("st"),
            "run",
            f"{gw.admin}/admin/v1/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            "all",
            "--workers",
            "1",
            "--seed",
            SEED,
            "--max-examples",
            MAX_EXAMPLES,
            "--no-color",
        ],
        env=env,
        cwd=log_dir,
        capture_output=True,
        text=True,
        timeout=900,
    )
    report.write_text(proc.stdout + proc.stderr)
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-60:])
    assert proc.returncode == 0, f"schemathesis found failures (report {report}):\n{tail}"
    # the run reached every operation of the document (none skipped as unreachable)
    assert "Tested: " in proc.stdout, tail
    gw.stop()
