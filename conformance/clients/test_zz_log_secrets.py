"""No key material or secret in any gateway log of the session. Runs last (file name), after every
other test has written its gateway logs: the master key(s) from each data dir's generated key file
(hex, upper-case hex, base64) and the fixed S3 secret key must not appear in any log line.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from conftest import SECRET_KEY


def key_file_secrets(data_dirs: list[Path]) -> list[str]:
    """Every encoding of every KEK found in the session's key files."""
    out: list[str] = []
    for d in data_dirs:
        f = d / "master.key"
        if not f.exists():
            continue
        for k in json.loads(f.read_text())["keys"]:
            raw = bytes.fromhex(k["hex"])
            out += [raw.hex(), raw.hex().upper(), base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()]
    return out


def test_no_key_material_or_secret_in_logs(gateway, gateway_factory, log_dir):
    # make sure at least one gateway of the session has written requests to its log
    s3 = gateway.s3()
    s3.list_buckets()
    logs = sorted(Path(log_dir).glob("*.log"))
    assert logs, f"no gateway logs in {log_dir}"
    data_dirs = sorted({p.parent for p in Path(gateway.data_dir).parent.glob("*/master.key")})
    secrets = key_file_secrets(data_dirs)
    assert secrets, "no generated key file found to check against"
    secrets.append(SECRET_KEY)
    hits = []
    for log in logs:
        text = log.read_text(errors="replace")
        for s in secrets:
            if s in text:
                hits.append(f"{log.name}: contains a secret ({s[:4]}…)")
    assert not hits, "\n".join(hits)
