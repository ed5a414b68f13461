"""Audit ledger (issue 5) with the real binary, the aws cli and the `vaultgate admin` CLI.

A private gateway with a mirror file. A scripted session of aws cli commands (mb, cp up small and
multipart, ls, cp down, rm, a refused request with a wrong secret, rb) and `vaultgate admin`
commands (login, status, user create/list, key create). Then the ledger, read with sqlite3 in
read-only mode, is compared with what the tools sent, counted independently:

* every `x-amz-request-id` the aws cli received (its --debug output) names exactly one S3 event,
  and there is no S3 event the cli did not receive an id for (one event per request);
* the S3 events per action equal the gateway's `vaultgate_s3_requests_total` per op;
* the admin events equal the admin calls (`admin_operations_total`), all named `admin.*`;
* `vaultgate audit verify` accepts the database and the mirror (exit 0), and rejects the mirror
  once one line is edited (exit 1, naming the seq).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path

import requests

from conftest import ACCESS_KEY, SECRET_KEY, REGION, MiB, tool, unique_bucket, write_payload

REQUEST_ID = re.compile(r"'x-amz-request-id': '([0-9A-F]{16})'")
METRIC = re.compile(r'^(\w+)\{(\w+)="([^"]+)"(?:,\w+="[^"]*")*\} (\d+)$')


def aws_debug(gw, workdir: Path, ids: set, *args: str, check: bool = True, secret: str = SECRET_KEY):
    """Runs `aws --debug ARGS`, adding every request id the cli received to `ids`."""
    env = gw.cli_env(workdir)
    env["AWS_SECRET_ACCESS_KEY"] = secret
    cmd = [tool("aws"), "--debug", "--endpoint-url", gw.endpoint, "--region", REGION, *args]
    p = subprocess.run(cmd, env=env, capture_output=True, timeout=600, stdin=subprocess.DEVNULL)
    err = p.stderr.decode(errors="replace")
    if check:
        assert p.returncode == 0, f"aws {' '.join(args)} failed:\n{err[-3000:]}"
    ids.update(REQUEST_ID.findall(err))
    return p


def admin_cli(gw, home: Path, *args: str) -> dict | list:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULTGATE_", "AWS_"))}
    env.update(HOME=str(home), LC_ALL="C.UTF-8")
    cmd = [gw.binary, "admin", "--endpoint", gw.admin, "--format", "json", *args]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"vaultgate admin {' '.join(args)} failed:\n{p.stderr}\n{p.stdout}"
    return json.loads(p.stdout) if p.stdout.strip() else {}


def metrics(gw) -> dict:
    out: dict = {}
    for line in requests.get(f"{gw.admin}/metrics", timeout=10).text.splitlines():
        m = METRIC.match(line)
        if m:
            name, _label, value, n = m.groups()
            out.setdefault(name, Counter())[value] += int(n)
    return out


def ledger_rows(data_dir: Path) -> list[dict]:
    con = sqlite3.connect(f"file:{data_dir / 'index.db'}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM audit_events ORDER BY seq")]
    finally:
        con.close()


def vaultgate(gw, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULTGATE_")}
    return subprocess.run([gw.binary, *args], env=env, capture_output=True, text=True, timeout=120)


def test_one_event_per_request_from_real_tools(gateway_factory, tmp_path):
    mirror = tmp_path / "audit.jsonl"
    gw = gateway_factory("audit", VAULTGATE_AUDIT_MIRROR=str(mirror))
    work = tmp_path / "work"
    work.mkdir()
    bucket = unique_bucket("aud")
    small = work / "small.bin"
    big = work / "big.bin"
    write_payload(small, 1000)
    write_payload(big, 17 * MiB)  # multipart with the cli's 8 MiB parts
    ids: set[str] = set()

    aws_debug(gw, work, ids, "s3", "mb", f"s3://{bucket}")
    aws_debug(gw, work, ids, "s3", "cp", str(small), f"s3://{bucket}/dir/small.bin")
    aws_debug(gw, work, ids, "s3", "cp", str(big), f"s3://{bucket}/big.bin")
    aws_debug(gw, work, ids, "s3", "ls", f"s3://{bucket}/", "--recursive")
    aws_debug(gw, work, ids, "s3", "cp", f"s3://{bucket}/dir/small.bin", str(work / "back.bin"))
    assert (work / "back.bin").read_bytes() == small.read_bytes()
    p = aws_debug(gw, work, ids, "s3", "ls", f"s3://{bucket}/", check=False, secret="wrong-secret-0123456789")
    assert p.returncode != 0
    aws_debug(gw, work, ids, "s3api", "head-object", "--bucket", bucket, "--key", "missing", check=False)
    aws_debug(gw, work, ids, "s3", "rm", f"s3://{bucket}/dir/small.bin")
    aws_debug(gw, work, ids, "s3", "rm", f"s3://{bucket}/big.bin")
    aws_debug(gw, work, ids, "s3", "rb", f"s3://{bucket}")

    home = tmp_path / "home"
    home.mkdir()
    admin_cli(gw, home, "login", "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY)
    admin_cli(gw, home, "status")
    admin_cli(gw, home, "user", "create", "auditee", "--role", "viewer")
    users = admin_cli(gw, home, "user", "list")
    assert any(u["name"] == "auditee" for u in users), users
    key = admin_cli(gw, home, "key", "create", "--user", "auditee")
    assert key["principal"] == "auditee"

    rows = ledger_rows(gw.data_dir)
    s3_rows = [r for r in rows if r["kind"] == "s3"]
    admin_rows = [r for r in rows if r["kind"] == "admin"]
    # the chain: seq 1..n without gaps
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))

    # every response the cli received has exactly one event, and no event lacks a response
    by_id = Counter(r["request_id"] for r in s3_rows)
    assert len(ids) >= 13, ids  # mb, put, 5 multipart, ls, head+get, bad ls, head, rm, rm, rb
    assert set(by_id) == ids, (set(by_id) ^ ids)
    assert all(n == 1 for n in by_id.values()), [i for i, n in by_id.items() if n > 1]

    # events per action == the gateway's request counter per op
    m = metrics(gw)
    assert Counter(r["action"] for r in s3_rows) == +m["vaultgate_s3_requests_total"]
    actions = Counter(r["action"] for r in s3_rows)
    for a in ("CreateBucket", "PutObject", "CreateMultipartUpload", "UploadPart",
              "CompleteMultipartUpload", "ListObjectsV2", "GetObject", "HeadObject",
              "DeleteObject", "DeleteBucket"):
        assert actions[a] >= 1, (a, actions)
    assert actions["UploadPart"] == 3, actions

    # outcomes: the wrong secret is denied, the missing key is an error, the rest succeeded
    denied = [r for r in s3_rows if r["outcome"] == "denied"]
    assert denied and all(r["status"] == 403 and r["principal"] is None for r in denied), denied
    assert any(r["error_code"] == "SignatureDoesNotMatch" for r in denied), denied
    missing = [r for r in s3_rows if r["object_key"] == "missing"]
    assert [(r["action"], r["status"], r["outcome"]) for r in missing] == [("HeadObject", 404, "error")]
    puts = [r for r in s3_rows if r["action"] == "PutObject"]
    assert [(r["object_key"], r["bytes_in"], r["principal"]) for r in puts] == [("dir/small.bin", 1000, "admin")]
    parts = [r for r in s3_rows if r["action"] == "UploadPart"]
    assert sum(r["bytes_in"] for r in parts) == 17 * MiB
    gets = [r for r in s3_rows if r["action"] == "GetObject" and r["status"] == 200]
    assert sum(r["bytes_out"] for r in gets) == 1000 and all(r["key_version"] for r in gets)
    assert all(r["source"] == "127.0.0.1" for r in s3_rows)

    # admin: one event per admin call, each named admin.<operation>
    assert admin_rows and all(r["action"].startswith("admin.") for r in admin_rows)
    assert len(admin_rows) == sum(m["admin_operations_total"].values()), (admin_rows, m["admin_operations_total"])
    assert Counter(r["action"].removeprefix("admin.") for r in admin_rows) == +m["admin_operations_total"]
    assert len({r["request_id"] for r in admin_rows}) == len(admin_rows)

    # the ledger verifies, in the database and in the mirror
    p = vaultgate(gw, "audit", "verify", "--data-dir", str(gw.data_dir))
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"OK, {len(rows)} events" in p.stdout, p.stdout
    p = vaultgate(gw, "audit", "verify", "--file", str(mirror))
    assert p.returncode == 0, p.stdout + p.stderr
    lines = mirror.read_text().splitlines()
    assert len(lines) == len(rows)
    i = next(i for i, line in enumerate(lines) if i >= 2 and '"principal":"admin"' in line)
    seq = json.loads(lines[i])["seq"]
    lines[i] = lines[i].replace('"principal":"admin"', '"principal":"mallory"', 1)
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("\n".join(lines) + "\n")
    p = vaultgate(gw, "audit", "verify", "--file", str(tampered))
    assert p.returncode == 1, p.stdout + p.stderr
    assert f"BROKEN at seq {seq}" in p.stdout, p.stdout
