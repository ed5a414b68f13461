"""Adversarial suite (issue 12): every attack that once succeeded against the gateway, replayed with
the same requests from real clients (boto3, botocore signers, requests, raw sockets, aws cli,
rclone), now asserting the refusal. Each test's docstring names the finding of the contract it
covers ("F<n>", numbered as in docs/SECURITY.md "Attacks the suite replays").

Every test that needs settings, tenants, quorum rules or could disturb other tests (brute force,
memory, file descriptors, debug logs) runs on a private gateway of this module; all of them stop at
the end of the module. Loops are bounded in count and time; all traffic stays on 127.0.0.0/8
(attackers bind 127.0.0.2/.5/.6, the honest client 127.0.0.1 or 127.0.0.3).
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import http.client
import json
import os
import re
import resource
import select
import shlex
import socket
import stat
import subprocess
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

import boto3
import pytest
import requests
from botocore.auth import HmacV1Auth, HmacV1QueryAuth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError

from conftest import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    Gateway,
    assert_s3_error,
    client_error_code,
    error_code,
    get_bytes,
    list_all,
    make_payload,
    sha256,
    tool,
    unique_bucket,
)

APPROVAL_ID = re.compile(r"\bapr-[0-9a-f]{20}\b")
KiB = 1024
MiB = 1024 * 1024


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


class DefaultsGateway(Gateway):
    """A gateway with the product's default limits: the suite's lifted rate limits are removed."""

    def env(self) -> dict:
        env = super().env()
        for k in list(env):
            if k.startswith("VAULTGATE_RATE_") and k not in self.extra_env:
                del env[k]
        return env


@pytest.fixture(scope="module")
def spawn(vaultgate_bin, log_dir, tmp_path_factory):
    """Private gateways of this module (stopped at the end of the module)."""
    started: list[Gateway] = []

    def make(name: str, cls=Gateway, binary: str | None = None, data_dir: Path | None = None, **env) -> Gateway:
        gw = cls(
            binary=binary or vaultgate_bin,
            data_dir=data_dir or tmp_path_factory.mktemp(f"data-{name}"),
            log_dir=log_dir,
            name=name,
            extra_env={k: str(v) for k, v in env.items()},
        )
        started.append(gw)
        gw.start()
        return gw

    yield make
    for gw in started:
        gw.stop()


def s3_as(gw: Gateway, access_key: str, secret_key: str, **cfg):
    """A boto3 S3 client of `gw` for another principal; one attempt (a SlowDown is not retried)."""
    conf = {
        "s3": {"addressing_style": "path"},
        "signature_version": "s3v4",
        "retries": {"max_attempts": 1, "mode": "standard"},
    }
    conf.update(cfg)
    return boto3.session.Session(
        aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=REGION
    ).client("s3", endpoint_url=gw.endpoint, config=Config(**conf))


class Api:
    """The admin REST API as one principal (bearer token from POST /admin/v1/auth/token)."""

    def __init__(self, gw: Gateway, access_key: str, secret_key: str):
        self.gw, self.access_key, self.secret_key = gw, access_key, secret_key
        r = requests.post(
            f"{gw.admin}/admin/v1/auth/token",
            json={"access_key": access_key, "secret_key": secret_key},
            timeout=30,
        )
        assert r.status_code == 200, f"login as {access_key}: {r.status_code} {r.text[:300]}"
        self.token = r.json()["token"]

    def call(self, method: str, path: str, body=None, headers: dict | None = None, params=None) -> requests.Response:
        h = {"Authorization": f"Bearer {self.token}"}
        h.update(headers or {})
        return requests.request(method, f"{self.gw.admin}{path}", json=body, headers=h, params=params, timeout=60)

    def ok(self, method: str, path: str, body=None, headers: dict | None = None, params=None):
        r = self.call(method, path, body, headers, params)
        assert r.status_code in (200, 201, 204), f"{method} {path}: {r.status_code} {r.text[:500]}"
        return r.json() if r.content else {}

    def principal(self, name: str, role: str, tenant: str | None = None) -> tuple[str, str]:
        """Creates principal `name` with `role` (in `tenant`) and a key for it: (access key id, secret)."""
        body = {"name": name, "role": role}
        if tenant:
            body["tenant"] = tenant
        self.ok("POST", "/admin/v1/principals", body)
        k = self.ok("POST", "/admin/v1/keys", {"principal": name})
        return k["access_key_id"], k["secret_key"]


def approval_id(text: str) -> str | None:
    ids = set(APPROVAL_ID.findall(text))
    return ids.pop() if len(ids) == 1 else None


def through_quorum(do, approvers: list[Api]) -> requests.Response:
    """Runs `do()`; when it is held for approval, the approvers approve and it runs once more."""
    r = do()
    aid = approval_id(r.text) if r.status_code == 403 else None
    if aid:
        for a in approvers:
            v = a.call("POST", f"/admin/v1/approvals/{aid}/approve")
            assert v.status_code == 200, f"approve {aid} as {a.access_key}: {v.status_code} {v.text[:300]}"
        r = do()
    return r


def post_object(gw: Gateway, access_key: str, secret_key: str, bucket: str, key: str, data: bytes) -> requests.Response:
    """A browser form upload (POST Object) prepared by boto3's generate_presigned_post."""
    p = s3_as(gw, access_key, secret_key).generate_presigned_post(Bucket=bucket, Key=key, ExpiresIn=600)
    return requests.post(p["url"], data=p["fields"], files={"file": ("upload.bin", data)}, timeout=60)


def head_status(client, bucket: str, key: str) -> int:
    """HTTP status of HeadObject; -1 when the answer cannot even be read (e.g. a giant header)."""
    try:
        client.head_object(Bucket=bucket, Key=key)
        return 200
    except ClientError as e:
        return client_error_code(e)[0]
    except BotoCoreError:
        return -1


def raw(
    gw: Gateway,
    method: str,
    path: str,
    headers: dict | None = None,
    body: bytes = b"",
    source: str = "127.0.0.1",
    admin: bool = False,
    timeout: float = 30,
) -> tuple[int, dict, bytes]:
    """One HTTP/1.1 request from `source` (a loopback address) on its own connection."""
    port = gw.admin_port if admin else gw.s3_port
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def signed_headers(gw: Gateway, method: str, path: str, body: bytes = b"", headers: dict | None = None,
                   access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> dict:
    return gw.sign(method, f"{gw.endpoint}{path}", body, headers, access_key, secret_key)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


METRIC_LINE = re.compile(r"^(\w+)(?:\{[^}]*\})? ([0-9.eE+-]+)$")


def metric_sum(gw: Gateway, name: str) -> float:
    total = 0.0
    for line in requests.get(f"{gw.admin}/metrics", timeout=10).text.splitlines():
        m = METRIC_LINE.match(line)
        if m and m.group(1) == name:
            total += float(m.group(2))
    return total


def log_text(gw: Gateway, start: int = 0) -> str:
    with open(gw.log_path, "rb") as f:
        f.seek(start)
        return f.read().decode(errors="replace")


def log_size(gw: Gateway) -> int:
    return gw.log_path.stat().st_size


def content_md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode()


def audit_events(api: Api, **params) -> list[dict]:
    return api.ok("GET", "/admin/v1/audit", params={"limit": "1000", **params})["items"]


# ---------------------------------------------------------------------------------------------
# The arena: one private gateway with two tenants (ta, tb) and their principals
# ---------------------------------------------------------------------------------------------


@dataclass
class Arena:
    gw: Gateway
    root: Api
    keys: dict  # principal name -> (access key id, secret)
    bucket: str  # tenant tb's bucket
    existing: bytes  # tb's 116 kB object "existing.bin"

    def s3(self, who: str):
        return s3_as(self.gw, *self.keys[who])


@pytest.fixture(scope="module")
def arena(spawn) -> Arena:
    gw = spawn("attack-arena")
    root = Api(gw, ACCESS_KEY, SECRET_KEY)
    for t in ("ta", "tb"):
        root.ok("POST", "/admin/v1/tenants", {"name": t})
    keys = {}
    for name, role, tenant in [
        ("a-admin", "superadmin", "ta"),
        ("b-admin", "superadmin", "tb"),
        ("b-manager", "manager", "tb"),
        ("b-viewer", "viewer", "tb"),
    ]:
        keys[name] = root.principal(name, role, tenant)
    bucket = unique_bucket("tb")
    b = s3_as(gw, *keys["b-admin"])
    b.create_bucket(Bucket=bucket)
    existing = make_payload(116 * 1000)
    b.put_object(Bucket=bucket, Key="existing.bin", Body=existing)
    return Arena(gw, root, keys, bucket, existing)


# ---------------------------------------------------------------------------------------------
# F1: POST Object is authorised like PutObject
# ---------------------------------------------------------------------------------------------


def wait_for_events(api: Api, want, timeout: float = 5.0, **params) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        events = audit_events(api, **params)
        if want(events) or time.monotonic() > deadline:
            return events
        time.sleep(0.2)


def test_post_object_by_other_tenants_superadmin_is_refused_and_audited(arena):
    """F1 (Critical): tenant ta's SuperAdmin writes into tenant tb's bucket with a browser form upload
    (generate_presigned_post + requests.post), a new key and over an existing 116 kB object: 403
    AccessDenied XML, nothing created, the object's bytes unchanged, audited as PutObject with the key."""
    gw, bucket = arena.gw, arena.bucket
    a_key, a_secret = arena.keys["a-admin"]
    owner = arena.s3("b-admin")
    new_key = f"new-{uuid.uuid4().hex[:8]}.bin"

    r_new = post_object(gw, a_key, a_secret, bucket, new_key, make_payload(1000))
    r_over = post_object(gw, a_key, a_secret, bucket, "existing.bin", b"")
    wrong = []
    for what, r in (("new key", r_new), ("overwrite", r_over)):
        if (r.status_code, error_code(r.content)) != (403, "AccessDenied"):
            wrong.append(f"POST Object ({what}): want 403 AccessDenied, got {r.status_code} {r.content[:300]!r}")
    if head_status(owner, bucket, new_key) != 404:
        wrong.append(f"{new_key} was created by another tenant's POST")
    if get_bytes(owner, bucket, "existing.bin") != arena.existing:
        wrong.append("existing.bin was changed by another tenant's POST")

    def audited(events, key):
        return [e for e in events if e.get("key") == key and e.get("principal") == "a-admin"]

    events = wait_for_events(
        arena.root, lambda ev: audited(ev, new_key) and audited(ev, "existing.bin"), bucket=bucket
    )
    for key in (new_key, "existing.bin"):
        mine = audited(events, key)
        if not mine:
            seen = [(e["action"], e.get("key"), e.get("principal"), e["status"]) for e in events[:10]]
            wrong.append(f"no audit event of a-admin's POST naming key {key!r}; newest events: {seen}")
            continue
        e = mine[0]
        if (e["action"], e["outcome"], e["status"]) != ("PutObject", "denied", 403):
            wrong.append(f"audit event of the POST to {key!r}: {e['action']} {e['outcome']} {e['status']}")
    assert not wrong, "\n".join(wrong)


def test_post_object_by_viewer_is_refused(arena):
    """F1: a Viewer of the bucket's own tenant cannot write with POST Object."""
    key = f"viewer-{uuid.uuid4().hex[:8]}.bin"
    r = post_object(arena.gw, *arena.keys["b-viewer"], arena.bucket, key, make_payload(500))
    assert (r.status_code, error_code(r.content)) == (403, "AccessDenied"), r.content[:300]
    assert head_status(arena.s3("b-admin"), arena.bucket, key) == 404


def test_post_object_by_manager_of_own_tenant_works(arena):
    """F1: a Manager's POST Object into its own tenant's bucket succeeds and reads back byte-exact."""
    key = f"form-{uuid.uuid4().hex[:8]}.bin"
    data = make_payload(20_000)
    r = post_object(arena.gw, *arena.keys["b-manager"], arena.bucket, key, data)
    assert r.status_code in (200, 201, 204), f"{r.status_code} {r.content[:300]!r}"
    assert get_bytes(arena.s3("b-admin"), arena.bucket, key) == data


# ---------------------------------------------------------------------------------------------
# F2: unmapped operations are refused before any handler
# ---------------------------------------------------------------------------------------------

# (operation, method, path suffix after /bucket, query, body, extra headers, may a served read answer 200)
UNSERVED = [
    ("PutBucketAcl", "PUT", "", "acl", b"", {"x-amz-acl": "public-read"}, False),
    ("GetBucketLogging", "GET", "", "logging", b"", {}, False),
    ("GetBucketWebsite", "GET", "", "website", b"", {}, False),
    ("DeleteBucketWebsite", "DELETE", "", "website", b"", {}, False),
    ("GetBucketReplication", "GET", "", "replication", b"", {}, False),
    ("PutObjectAcl", "PUT", "/existing.bin", "acl", b"", {"x-amz-acl": "public-read"}, False),
    ("GetObjectTorrent", "GET", "/existing.bin", "torrent", b"", {}, False),
]


def test_unserved_operations_never_succeed(arena):
    """F2: operations the gateway does not serve (ACLs, logging, website, replication, object
    ACLs, torrents; versioning, tagging and lifecycle are served since issue 15, see
    test_versioning.py and gateway/tests/it/{tagging,lifecycle}.rs, CORS and bucket policies since
    issue 16, see test_cors.py, test_bucket_policy.py and gateway/tests/it/{cors,bucket_policy,
    authz_matrix}.rs) answer 501
    NotImplemented to the bucket's own SuperAdmin,
    501 or 403 AccessDenied to another tenant's SuperAdmin and to a Manager, never 2xx; the other
    tenant's bucket is untouched."""
    gw, bucket = arena.gw, arena.bucket
    before = list_all(arena.s3("b-admin"), bucket)
    before_bytes = get_bytes(arena.s3("b-admin"), bucket, "existing.bin")
    wrong = []
    for who, own in (("a-admin", False), ("b-manager", True), ("b-admin", True)):
        ak, sk = arena.keys[who]
        for op, method, suffix, query, body, extra, served_read in UNSERVED:
            headers = dict(extra)
            if body:
                headers["Content-MD5"] = content_md5(body)
            r = gw.signed(method, f"/{bucket}{suffix}", query, body, headers, access_key=ak, secret_key=sk)
            got = (r.status_code, error_code(r.content))
            if who == "b-admin":
                ok = got == (501, "NotImplemented") or (served_read and r.status_code == 200)
            else:
                ok = got in ((501, "NotImplemented"), (403, "AccessDenied"))
            if not ok:
                wrong.append(f"{who} {op}: got {got[0]} {got[1]}: {r.content[:200]!r}")
    after = list_all(arena.s3("b-admin"), bucket)
    if after != before:
        wrong.append(f"bucket listing changed: {sorted(set(after) ^ set(before))}")
    if get_bytes(arena.s3("b-admin"), bucket, "existing.bin") != before_bytes:
        wrong.append("existing.bin changed")
    assert not wrong, "\n".join(wrong)


# ---------------------------------------------------------------------------------------------
# F3: memory bound under unauthenticated requests with oversized access key ids
# ---------------------------------------------------------------------------------------------


def test_oversized_access_key_ids_do_not_grow_memory(spawn):
    """F3 (High): 2,000 unauthenticated requests with distinct oversized access key ids (1,000 S3
    requests with a 200 KiB id in `Authorization`, 1,000 `POST /admin/v1/auth/token` with a distinct
    1 MiB `access_key`) are all refused and leave the gateway's RSS within +20 MiB of its value after
    warm-up. (The per-address failure budget is lifted so every request reaches the key lookup.)"""
    gw = spawn("attack-memory", VAULTGATE_AUTH_FAILURES_PER_MIN="1000000")
    pid = gw.proc.pid
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    tag = uuid.uuid4().hex[:8].upper()

    def s3_attack(i: int) -> int | str:
        ident = f"{tag}{i:08d}".ljust(200 * KiB, "A")
        auth = (f"AWS4-HMAC-SHA256 Credential={ident}/{amz_date[:8]}/{REGION}/s3/aws4_request, "
                f"SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={'0' * 64}")
        headers = {"Authorization": auth, "x-amz-date": amz_date,
                   "x-amz-content-sha256": hashlib.sha256(b"").hexdigest()}
        try:
            return raw(gw, "GET", "/", headers, timeout=30)[0]
        except OSError as e:  # a connection the server closed on an oversized head is a refusal too
            return type(e).__name__

    def admin_attack(i: int) -> int | str:
        body = json.dumps({"access_key": f"{tag}{i:08d}".ljust(MiB, "B"), "secret_key": "x" * 40}).encode()
        try:
            return raw(gw, "POST", "/admin/v1/auth/token", {"Content-Type": "application/json"}, body,
                       admin=True, timeout=30)[0]
        except OSError as e:
            return type(e).__name__

    def run(n: int, offset: int, pool) -> list:
        jobs = [(s3_attack, offset + i) for i in range(n)] + [(admin_attack, offset + i) for i in range(n)]
        jobs.sort(key=lambda j: j[1])
        return list(pool.map(lambda j: j[0](j[1]), jobs))

    statuses: list = []
    sent = 0
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        # warm-up: the same kinds of request, so buffers and thread arenas exist before the baseline
        run(60, 10_000_000, pool)
        s3_as(gw, ACCESS_KEY, SECRET_KEY).list_buckets()
        time.sleep(1.0)
        base = rss_kib(pid)
        t0 = time.monotonic()
        # 1,000 + 1,000 in rounds of 50 + 50; a gateway already 256 MiB over its baseline has failed
        # (the rest would only eat the machine's memory)
        while sent < 1000 and (rss_kib(pid) - base) < 256 * 1024:
            statuses += run(50, sent, pool)
            sent += 50
    elapsed = time.monotonic() - t0
    time.sleep(1.0)
    after = rss_kib(pid)
    gw.stop()

    accepted = [s for s in statuses if isinstance(s, int) and (s < 400 or s >= 500 and s != 503)]
    assert not accepted, f"unauthenticated requests not refused: {sorted(set(accepted))}"
    grown = (after - base) / 1024
    assert grown <= 20, (
        f"RSS grew by {grown:.0f} MiB ({base // 1024} -> {after // 1024} MiB) over {2 * sent} requests "
        f"with oversized key ids ({elapsed:.0f}s); statuses {sorted(set(map(str, statuses)))}"
    )


# ---------------------------------------------------------------------------------------------
# F4: slow clients
# ---------------------------------------------------------------------------------------------


def raise_own_nofile(want: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < want:
        pytest.skip(f"this process cannot open {want} sockets (RLIMIT_NOFILE {soft}/{hard})")


def test_half_open_connections_do_not_starve_the_listeners(spawn, tmp_path, vaultgate_bin):
    """F4 (Medium): with the gateway limited to 1,024 fds, 1,100 connections from 127.0.0.2 that
    send half a request head (800 to the S3 listener, 300 to the admin listener) do not stop a
    normal HeadBucket (boto3, 127.0.0.1) and GET /health from answering within 2 s
    (VAULTGATE_MAX_CONNECTIONS_PER_IP, default 128; VAULTGATE_HEADER_READ_TIMEOUT_SECS, default 10)."""
    wrapper = tmp_path / "vaultgate-1024fds"
    wrapper.write_text(f"#!/bin/sh\nulimit -n 1024 || exit 97\nexec {shlex.quote(vaultgate_bin)} \"$@\"\n")
    wrapper.chmod(0o755)
    gw = spawn("attack-slowloris", binary=str(wrapper))
    limits = Path(f"/proc/{gw.proc.pid}/limits").read_text()
    assert re.search(r"Max open files\s+1024\s+1024", limits), limits
    bucket = unique_bucket("slow")
    s3 = s3_as(gw, ACCESS_KEY, SECRET_KEY, connect_timeout=2, read_timeout=2)
    s3.create_bucket(Bucket=bucket)
    raise_own_nofile(4096)

    half = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
    socks: list[socket.socket] = []
    refused = 0
    deadline = time.monotonic() + 30
    try:
        for i in range(1100):
            if time.monotonic() > deadline:
                break
            port = gw.s3_port if i < 800 else gw.admin_port
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(0.5)
            try:
                s.bind(("127.0.0.2", 0))
                s.connect(("127.0.0.1", port))
                s.sendall(half)
                socks.append(s)
            except OSError:
                refused += 1
                s.close()
        opened = time.monotonic()

        problems = []
        t = time.monotonic()
        try:
            s3.head_bucket(Bucket=bucket)
            took = time.monotonic() - t
            if took > 2:
                problems.append(f"HeadBucket took {took:.1f}s")
        except Exception as e:  # noqa: BLE001 - any failure to answer is the finding
            problems.append(f"HeadBucket failed after {time.monotonic() - t:.1f}s: {e!r}")
        t = time.monotonic()
        try:
            r = requests.get(f"{gw.admin}/health", timeout=2)
            if r.status_code != 200:
                problems.append(f"/health answered {r.status_code}")
        except requests.RequestException as e:
            problems.append(f"/health failed after {time.monotonic() - t:.1f}s: {e!r}")
        held = time.monotonic() - opened
    finally:
        for s in socks:
            s.close()
    assert not problems, (
        f"{len(socks)} half-open connections from 127.0.0.2 ({refused} refused at connect), "
        f"probed {held:.1f}s after the last one: " + "; ".join(problems)
    )


def test_body_at_one_byte_per_second_is_cut_off(spawn):
    """F4 (Medium): a PUT whose body arrives at 1 byte/s is answered 400 RequestTimeout or closed
    within ~10 s (VAULTGATE_BODY_READ_TIMEOUT_SECS=2, VAULTGATE_BODY_MIN_BYTES_PER_SEC default 1024),
    and no object is created."""
    gw = spawn("attack-slowbody", VAULTGATE_BODY_READ_TIMEOUT_SECS=2)
    s3 = s3_as(gw, ACCESS_KEY, SECRET_KEY)
    bucket = unique_bucket("slowbody")
    s3.create_bucket(Bucket=bucket)
    length = 100_000
    path = f"/{bucket}/slow.bin"
    hdrs = gw.sign("PUT", f"{gw.endpoint}{path}", b"", {"Content-Length": str(length)}, unsigned_payload=True)
    head = f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{gw.s3_port}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in hdrs.items() if k.lower() != "host") + "\r\n"
    s = socket.create_connection(("127.0.0.1", gw.s3_port), timeout=5)
    answer, closed, sent = b"", False, 0
    t0 = time.monotonic()
    try:
        s.sendall(head.encode())
        while time.monotonic() - t0 < 12:
            try:
                s.sendall(b"x")
                sent += 1
            except OSError:
                closed = True
                break
            ready, _, _ = select.select([s], [], [], 1.0)
            if ready:
                try:
                    chunk = s.recv(65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    closed = True
                    break
                answer += chunk
                if b"\r\n\r\n" in answer:
                    time.sleep(0.2)
                    try:
                        answer += s.recv(65536)
                    except OSError:
                        pass
                    break
    finally:
        s.close()
    took = time.monotonic() - t0
    assert answer or closed, f"a 1 byte/s body was still being read after {took:.0f}s ({sent} bytes sent)"
    if answer:
        status = answer.split(b"\r\n", 1)[0]
        body = answer.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in answer else b""
        assert b" 400 " in status and b"<Code>RequestTimeout</Code>" in body, answer[:600]
    assert took <= 11, f"cut off only after {took:.0f}s"
    assert head_status(s3, bucket, "slow.bin") == 404, "the slow PUT created an object"


# ---------------------------------------------------------------------------------------------
# F5: debug logs are no signing oracle and hold no credentials
# ---------------------------------------------------------------------------------------------

SIGNATURE_IN_LOG = re.compile(r"(?i)(?:x-amz-)?signature=([0-9a-f]{16,}|[A-Za-z0-9%+/=]{20,})")
SIGNATURE_FIELD = re.compile(r"(?i)signature\W{1,6}[0-9a-f]{64}")
HEX64 = re.compile(r"\b[0-9a-f]{64}\b")


def test_debug_log_is_no_signing_oracle(spawn, tmp_path):
    """F5 (Medium): at LOG_LEVEL=debug, a PUT signed with a zero signature for a known access key id
    must not make the gateway log the signature it expected, and no signature found in the log
    replays. Then a normal workload (aws cli cp up and down, a presigned GET URL, an admin token
    login) leaves no Authorization header, Signature=/X-Amz-Signature= value, presigned query string,
    admin token or secret key in any log line."""
    gw = spawn("attack-debuglog", LOG_LEVEL="debug")
    s3 = s3_as(gw, ACCESS_KEY, SECRET_KEY)
    bucket = unique_bucket("dbg")
    s3.create_bucket(Bucket=bucket)

    body = b"forged by an attacker who knows only the access key id"
    path = f"/{bucket}/oracle.bin"
    good = signed_headers(gw, "PUT", path, body)
    true_sig = re.search(r"Signature=([0-9a-f]{64})", good["Authorization"]).group(1)
    forged = dict(good)
    forged["Authorization"] = good["Authorization"].replace(true_sig, "0" * 64)
    mark = log_size(gw)
    r = requests.put(f"{gw.endpoint}{path}", data=body, headers=forged, timeout=30)
    assert r.status_code == 403, f"a zero signature was accepted: {r.status_code}"
    time.sleep(0.5)
    after_forgery = log_text(gw, mark)
    oracle = true_sig in after_forgery
    replays = []
    candidates = {h for h in HEX64.findall(after_forgery)} - {"0" * 64, sha256(body), hashlib.sha256(b"").hexdigest()}
    if oracle:
        candidates.add(true_sig)
    for cand in sorted(candidates)[:20]:
        h = dict(good)
        h["Authorization"] = good["Authorization"].replace(true_sig, cand)
        rr = requests.put(f"{gw.endpoint}{path}", data=body, headers=h, timeout=30)
        if rr.status_code != 403:
            replays.append(f"{cand[:12]}… from the log replayed with {rr.status_code}")
    hits = []
    if oracle:
        hits.append("the log holds the signature the server computed for the forged request (a signing oracle)")
    hits += replays

    # a normal workload; everything secret it sends is collected and looked for in the log
    work = tmp_path / "work"
    work.mkdir()
    (work / "up.bin").write_bytes(make_payload(3000))
    gw.aws(work, "s3", "cp", str(work / "up.bin"), f"s3://{bucket}/cli.bin")
    gw.aws(work, "s3", "cp", f"s3://{bucket}/cli.bin", str(work / "down.bin"))
    assert (work / "down.bin").read_bytes() == (work / "up.bin").read_bytes()
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "cli.bin"}, ExpiresIn=600)
    assert requests.get(url, timeout=30).status_code == 200
    query = urllib.parse.urlsplit(url).query
    presig = urllib.parse.parse_qs(query)["X-Amz-Signature"][0]
    put = signed_headers(gw, "PUT", f"/{bucket}/raw.bin", b"raw")
    assert requests.put(f"{gw.endpoint}/{bucket}/raw.bin", data=b"raw", headers=put, timeout=30).status_code == 200
    token = Api(gw, ACCESS_KEY, SECRET_KEY).token
    time.sleep(0.5)

    secrets = {
        "an Authorization header": put["Authorization"],
        "the forged request's Authorization header": forged["Authorization"],
        "a request signature": re.search(r"Signature=([0-9a-f]{64})", put["Authorization"]).group(1),
        "the presigned query string": query,
        "the presigned URL's signature": presig,
        "the admin token": token,
        "the admin token's signature": token.rsplit(".", 1)[-1],
        "the secret key": SECRET_KEY,
    }
    for n, line in enumerate(log_text(gw).splitlines(), 1):
        for what, value in secrets.items():
            if value in line:
                hits.append(f"line {n}: {what}")
        if "AWS4-HMAC-SHA256 Credential=" in line:
            hits.append(f"line {n}: an Authorization header value")
        m = SIGNATURE_IN_LOG.search(line) or SIGNATURE_FIELD.search(line)
        if m:
            hits.append(f"line {n}: a signature value ({m.group(0)[:30]}…)")
    assert not hits, f"{len(hits)} leaks in {gw.log_path}:\n" + "\n".join(hits[:30])


# ---------------------------------------------------------------------------------------------
# F6: SigV2 is off by default; when on, it has a clock window and a presign cap
# ---------------------------------------------------------------------------------------------


class V2At(HmacV1Auth):
    """botocore's SigV2 header signer with a chosen Date header."""

    def __init__(self, credentials, date: str):
        super().__init__(credentials)
        self._date = date

    def _get_date(self):
        return self._date


def v2_get(gw: Gateway, path: str, date: str | None = None) -> requests.Response:
    req = AWSRequest(method="GET", url=f"{gw.endpoint}{path}")
    signer = V2At(Credentials(ACCESS_KEY, SECRET_KEY), date) if date else HmacV1Auth(Credentials(ACCESS_KEY, SECRET_KEY))
    signer.add_auth(req)
    return requests.get(req.url, headers=dict(req.headers.items()), timeout=30)


def v2_presigned(gw: Gateway, path: str, expires_in: int) -> str:
    req = AWSRequest(method="GET", url=f"{gw.endpoint}{path}")
    HmacV1QueryAuth(Credentials(ACCESS_KEY, SECRET_KEY), expires=expires_in).add_auth(req)
    return req.url


def test_sigv2_is_refused_by_default(arena):
    """F6 (Medium): on a default gateway a SigV2 request (botocore HmacV1Auth header, and a presigned
    v2 URL with AWSAccessKeyId/Expires/Signature) answers 400 InvalidRequest."""
    gw = arena.gw
    bucket = unique_bucket("v2")
    s3 = s3_as(gw, ACCESS_KEY, SECRET_KEY)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="o", Body=b"v2")
    wrong = []
    r = v2_get(gw, f"/{bucket}/o")
    if (r.status_code, error_code(r.content)) != (400, "InvalidRequest"):
        wrong.append(f"SigV2 header: got {r.status_code} {r.content[:200]!r}")
    r = requests.get(v2_presigned(gw, f"/{bucket}/o", 600), timeout=30)
    if (r.status_code, error_code(r.content)) != (400, "InvalidRequest"):
        wrong.append(f"SigV2 presigned: got {r.status_code} {r.content[:200]!r}")
    assert not wrong, "\n".join(wrong)


@pytest.fixture(scope="module")
def sigv2_gw(spawn):
    gw = spawn("attack-sigv2", VAULTGATE_SIGV2="true")
    bucket = unique_bucket("v2on")
    s3 = s3_as(gw, ACCESS_KEY, SECRET_KEY)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="o", Body=b"legacy client")
    return gw, bucket


def test_sigv2_when_enabled_has_a_clock_window_and_presign_cap(sigv2_gw):
    """F6 (Medium): with VAULTGATE_SIGV2=true, a request dated 2001 answers 403 RequestTimeTooSkewed,
    one whose Date is not a date 403 (RequestTimeTooSkewed or AccessDenied), a presigned v2 URL
    expiring more than 7 days ahead (8 days; and 2058 as observed) 400
    AuthorizationQueryParametersError."""
    gw, bucket = sigv2_gw
    wrong = []
    r = v2_get(gw, f"/{bucket}/o", "Mon, 01 Jan 2001 00:00:00 GMT")
    if (r.status_code, error_code(r.content)) != (403, "RequestTimeTooSkewed"):
        wrong.append(f"dated 2001: got {r.status_code} {r.content[:200]!r}")
    r = v2_get(gw, f"/{bucket}/o", "not a date at all")
    if (r.status_code, error_code(r.content)) not in ((403, "RequestTimeTooSkewed"), (403, "AccessDenied")):
        wrong.append(f"Date 'not a date at all': got {r.status_code} {r.content[:200]!r}")
    for what, expires_in in (("8 days ahead", 8 * 86400), ("in 2058", 2_800_000_000 - int(time.time()))):
        r = requests.get(v2_presigned(gw, f"/{bucket}/o", expires_in), timeout=30)
        if (r.status_code, error_code(r.content)) != (400, "AuthorizationQueryParametersError"):
            wrong.append(f"presigned v2 expiring {what}: got {r.status_code} {r.content[:200]!r}")
    assert not wrong, "\n".join(wrong)


def test_sigv2_when_enabled_serves_a_fresh_request(sigv2_gw):
    """F6: with VAULTGATE_SIGV2=true a fresh, valid SigV2 request (header and presigned) works."""
    gw, bucket = sigv2_gw
    r = v2_get(gw, f"/{bucket}/o", formatdate(usegmt=True))
    assert (r.status_code, r.content) == (200, b"legacy client"), r.content[:300]
    r = requests.get(v2_presigned(gw, f"/{bucket}/o", 600), timeout=30)
    assert (r.status_code, r.content) == (200, b"legacy client"), r.content[:300]


# ---------------------------------------------------------------------------------------------
# F7: SigV4 presigned URLs have a maximum lifetime
# ---------------------------------------------------------------------------------------------


def v4_presigned(gw: Gateway, path: str, expires: int) -> str:
    req = AWSRequest(method="GET", url=f"{gw.endpoint}{path}")
    S3SigV4QueryAuth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION, expires=expires).add_auth(req)
    return req.url


def test_sigv4_presign_lifetime_is_capped(arena):
    """F7 (Medium): X-Amz-Expires=999999999 answers 400 AuthorizationQueryParametersError, a negative
    value too; 604800 (7 days, AWS's maximum) works."""
    gw = arena.gw
    bucket = unique_bucket("presign")
    s3 = s3_as(gw, ACCESS_KEY, SECRET_KEY)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="o", Body=b"seven days")
    wrong = []
    for expires in (999999999, -1, -3600):
        r = requests.get(v4_presigned(gw, f"/{bucket}/o", expires), timeout=30)
        if (r.status_code, error_code(r.content)) != (400, "AuthorizationQueryParametersError"):
            wrong.append(f"X-Amz-Expires={expires}: got {r.status_code} {r.content[:200]!r}")
    r = requests.get(v4_presigned(gw, f"/{bucket}/o", 604800), timeout=30)
    if (r.status_code, r.content) != (200, b"seven days"):
        wrong.append(f"X-Amz-Expires=604800: got {r.status_code} {r.content[:200]!r}")
    assert not wrong, "\n".join(wrong)


# ---------------------------------------------------------------------------------------------
# F8: overwriting a quorum-protected object is gated like deleting it
# ---------------------------------------------------------------------------------------------


@dataclass
class Guarded:
    gw: Gateway
    root: Api
    manager: tuple
    bucket: str
    original: bytes


@pytest.fixture(scope="module")
def guarded(spawn) -> Guarded:
    gw = spawn("attack-quorum-write")
    root = Api(gw, ACCESS_KEY, SECRET_KEY)
    for name in ("qw-admin2", "qw-admin3"):
        root.principal(name, "superadmin")
    manager = root.principal("qw-manager", "manager")
    bucket = unique_bucket("guarded")
    s3 = s3_as(gw, ACCESS_KEY, SECRET_KEY)
    s3.create_bucket(Bucket=bucket)
    original = make_payload(116 * 1000)
    s3.put_object(Bucket=bucket, Key="protected.bin", Body=original)
    s3.put_object(Bucket=bucket, Key="src.bin", Body=b"replacement")
    rule = root.ok("PUT", "/admin/v1/quorum/rules/guard-deletes", {
        "action": "s3:DeleteObject", "bucket_pattern": bucket, "approvals": 2,
        "approver_roles": ["superadmin"], "ttl_secs": 600,
    })
    assert rule["approvals"] == 2, rule
    return Guarded(gw, root, manager, bucket, original)


def overwrite_put(g: Guarded, c):
    c.put_object(Bucket=g.bucket, Key="protected.bin", Body=b"")


def overwrite_copy(g: Guarded, c):
    c.copy_object(Bucket=g.bucket, Key="protected.bin", CopySource={"Bucket": g.bucket, "Key": "src.bin"})


def overwrite_multipart(g: Guarded, c):
    up = c.create_multipart_upload(Bucket=g.bucket, Key="protected.bin")["UploadId"]
    try:
        etag = c.upload_part(Bucket=g.bucket, Key="protected.bin", UploadId=up, PartNumber=1, Body=b"mp")["ETag"]
        c.complete_multipart_upload(Bucket=g.bucket, Key="protected.bin", UploadId=up,
                                    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    except ClientError:
        try:
            c.abort_multipart_upload(Bucket=g.bucket, Key="protected.bin", UploadId=up)
        except ClientError:
            pass
        raise


def overwrite_post(g: Guarded, c):
    r = post_object(g.gw, *g.manager, g.bucket, "protected.bin", b"")
    if r.status_code >= 300:
        raise ClientError({"Error": {"Code": error_code(r.content) or "?", "Message": r.text},
                           "ResponseMetadata": {"HTTPStatusCode": r.status_code}}, "PostObject")


@pytest.mark.parametrize(
    "overwrite", [overwrite_put, overwrite_copy, overwrite_multipart, overwrite_post],
    ids=["put-0-bytes", "copy-onto", "complete-multipart", "post-object"],
)
def test_overwrite_of_quorum_protected_object_is_gated(guarded, overwrite):
    """F8 (Medium): with s3:DeleteObject on the bucket gated by quorum, a Manager's 0-byte PutObject
    onto an existing key, a CopyObject onto it, a CompleteMultipartUpload onto it and a POST Object
    onto it each get 403 AccessDenied naming an approval id; the object's bytes are unchanged."""
    g = guarded
    c = s3_as(g.gw, *g.manager)
    root_s3 = s3_as(g.gw, ACCESS_KEY, SECRET_KEY)
    refused = None
    try:
        overwrite(g, c)
    except ClientError as e:
        refused = e
    now = get_bytes(root_s3, g.bucket, "protected.bin")
    if now != g.original:  # best effort: put it back so the other cases start from the original
        try:
            root_s3.put_object(Bucket=g.bucket, Key="protected.bin", Body=g.original)
        except ClientError:
            pass
    assert refused is not None, f"the overwrite went through: protected.bin is now {len(now)} bytes"
    status, code = client_error_code(refused)
    msg = refused.response["Error"].get("Message", "")
    assert (status, code) == (403, "AccessDenied") and approval_id(msg), f"{status} {code}: {msg}"
    assert now == g.original, "protected.bin changed although the request was refused"


def test_new_keys_in_quorum_protected_bucket_still_work(guarded):
    """F8: writing a NEW key in the protected bucket still works for the Manager."""
    g = guarded
    c = s3_as(g.gw, *g.manager)
    data = make_payload(5000)
    key = f"fresh-{uuid.uuid4().hex[:8]}.bin"
    c.put_object(Bucket=g.bucket, Key=key, Body=data)
    assert get_bytes(c, g.bucket, key) == data


# ---------------------------------------------------------------------------------------------
# F9: SSE-C / SSE-KMS are never silently ignored
# ---------------------------------------------------------------------------------------------


def test_sse_c_and_sse_kms_are_refused_not_ignored(arena):
    """F9 (Medium): an object stored with SSECustomerAlgorithm/SSECustomerKey is never served
    without its key (400; issue 16 honours SSE-C); ServerSideEncryption='aws:kms' + SSEKMSKeyId on
    this local-key gateway answers 400 InvalidArgument and stores nothing;
    ServerSideEncryption='AES256' works."""
    s3 = s3_as(arena.gw, ACCESS_KEY, SECRET_KEY)
    bucket = unique_bucket("sse")
    s3.create_bucket(Bucket=bucket)
    wrong = []
    ck = os.urandom(32)
    s3.put_object(Bucket=bucket, Key="sse-c", Body=b"customer secret",
                  SSECustomerAlgorithm="AES256", SSECustomerKey=ck)
    try:
        s3.get_object(Bucket=bucket, Key="sse-c")["Body"].read()
        wrong.append("sse-c: GET without the key succeeded")
    except ClientError as e:
        if client_error_code(e)[0] != 400:
            wrong.append(f"sse-c: GET without the key got {client_error_code(e)}")
    got = s3.get_object(Bucket=bucket, Key="sse-c", SSECustomerAlgorithm="AES256",
                        SSECustomerKey=ck)["Body"].read()
    if got != b"customer secret":
        wrong.append("sse-c: bytes differ with the key")
    try:
        s3.put_object(Bucket=bucket, Key="sse-kms", Body=b"must not be stored",
                      ServerSideEncryption="aws:kms",
                      SSEKMSKeyId="arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab")
        wrong.append("sse-kms: PutObject succeeded")
    except ClientError as e:
        if client_error_code(e) != (400, "InvalidArgument"):
            wrong.append(f"sse-kms: got {client_error_code(e)}")
    if head_status(s3, bucket, "sse-kms") != 404:
        wrong.append("sse-kms: an object was stored")
    r = s3.put_object(Bucket=bucket, Key="aes256", Body=b"fine", ServerSideEncryption="AES256")
    if r.get("ServerSideEncryption") != "AES256":
        wrong.append(f"AES256: answer says {r.get('ServerSideEncryption')!r}")
    if get_bytes(s3, bucket, "aes256") != b"fine":
        wrong.append("AES256: bytes differ")
    assert not wrong, "\n".join(wrong)


# ---------------------------------------------------------------------------------------------
# F10: low items
# ---------------------------------------------------------------------------------------------


def test_keys_with_control_bytes_are_refused(arena):
    """F10 (Low): object keys with NUL or another control byte (e.g. "a\\x01b") answer 400
    InvalidArgument and are not stored; the bucket still lists."""
    gw = arena.gw
    bucket = unique_bucket("ctl")
    s3 = s3_as(gw, ACCESS_KEY, SECRET_KEY)
    s3.create_bucket(Bucket=bucket)
    wrong = []
    for key in ("a\x01b", "a\x00b", "a\x08b", "a\x1bb", "a\x1fb"):
        r = gw.signed("PUT", f"/{bucket}/{urllib.parse.quote(key)}", body=b"ctl")
        if (r.status_code, error_code(r.content)) != (400, "InvalidArgument"):
            wrong.append(f"{key!r}: got {r.status_code} {r.content[:200]!r}")
    try:
        listed = list_all(s3, bucket)
        if listed:
            wrong.append(f"stored: {sorted(listed)!r}")
    except Exception as e:  # noqa: BLE001 - a listing broken by a stored key is the finding
        wrong.append(f"ListObjectsV2 fails: {e!r}")
    assert not wrong, "\n".join(wrong)


def test_user_metadata_over_2kb_is_refused(arena):
    """F10 (Low): user metadata over 2 KB answers 400 MetadataTooLarge (a 300 kB header as observed
    may instead be refused as a too-large head, 400/431); 1 KB works."""
    s3 = s3_as(arena.gw, ACCESS_KEY, SECRET_KEY)
    bucket = unique_bucket("meta")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="ok", Body=b"m", Metadata={"small": "v" * 1000})
    assert s3.head_object(Bucket=bucket, Key="ok")["Metadata"]["small"] == "v" * 1000
    wrong = []
    r = arena.gw.signed("PUT", f"/{bucket}/big", body=b"m", headers={"x-amz-meta-big": "v" * 2100})
    if (r.status_code, error_code(r.content)) != (400, "MetadataTooLarge"):
        wrong.append(f"2,100 B of metadata: got {r.status_code} {r.content[:200]!r}")
    try:
        r = arena.gw.signed("PUT", f"/{bucket}/huge", body=b"m", headers={"x-amz-meta-huge": "v" * 300_000})
        if (r.status_code, error_code(r.content)) != (400, "MetadataTooLarge") and r.status_code not in (400, 431):
            wrong.append(f"300 kB of metadata: got {r.status_code} {r.content[:200]!r}")
    except requests.ConnectionError:
        pass  # the connection closed on a too-large head: refused
    for key in ("big", "huge"):
        st = head_status(s3, bucket, key)
        if st != 404:
            wrong.append(f"{key}: stored" + (" and now unreadable with botocore (HeadObject fails)" if st == -1 else ""))
    assert not wrong, "\n".join(wrong)


def test_bucket_names_with_dash_next_to_dot_are_refused(arena):
    """F10 (Low): bucket names like `foo-.bar` and `foo.-bar` answer 400 InvalidBucketName."""
    gw = arena.gw
    tag = uuid.uuid4().hex[:10]
    wrong = []
    for name in (f"foo{tag}-.bar", f"foo{tag}.-bar"):
        r = gw.signed("PUT", f"/{name}")
        if (r.status_code, error_code(r.content)) != (400, "InvalidBucketName"):
            wrong.append(f"{name}: got {r.status_code} {r.content[:200]!r}")
        if r.status_code == 200:
            gw.signed("DELETE", f"/{name}")
    assert not wrong, "\n".join(wrong)


def test_multipart_listings_name_the_principal_not_its_key_id(arena):
    """F10 (Low): ListParts and ListMultipartUploads, read by a Viewer, show the initiator's principal
    name as Initiator/Owner, never the initiator's access key id."""
    gw, bucket = arena.gw, arena.bucket
    mgr_key, _ = arena.keys["b-manager"]
    v_key, v_secret = arena.keys["b-viewer"]
    c = arena.s3("b-manager")
    key = f"mpu-{uuid.uuid4().hex[:8]}.bin"
    up = c.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    try:
        c.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=1, Body=make_payload(1000))
        wrong = []
        for op, path, query in (
            ("ListParts", f"/{bucket}/{key}", f"uploadId={urllib.parse.quote(up, safe='')}"),
            ("ListMultipartUploads", f"/{bucket}", "uploads="),
        ):
            r = gw.signed("GET", path, query, access_key=v_key, secret_key=v_secret)
            if r.status_code != 200:
                wrong.append(f"{op} as Viewer: {r.status_code} {r.content[:200]!r}")
                continue
            if mgr_key in r.text:
                wrong.append(f"{op} shows the initiator's access key id")
            if "b-manager" not in r.text:
                wrong.append(f"{op} does not name the initiator b-manager: {r.text[:400]}")
        assert not wrong, "\n".join(wrong)
    finally:
        c.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=up)


def normalised(r: requests.Response, ident: str) -> tuple[int, str]:
    try:
        body = r.json()
        if isinstance(body.get("error"), dict):
            body["error"].pop("request_id", None)
        text = json.dumps(body, sort_keys=True)
    except ValueError:
        text = r.text
    return r.status_code, text.replace(ident, "<id>")


def test_revoking_another_tenants_key_looks_like_an_unknown_key(arena):
    """F10 (Low): tenant ta's SuperAdmin revoking a key id of tenant tb gets exactly the answer of a
    nonexistent id (same status and body but for the id, no owner named), and the key keeps working."""
    a = Api(arena.gw, *arena.keys["a-admin"])
    victim, v_secret = arena.keys["b-viewer"]
    ghost = victim[:-6] + ("ZZZZZZ" if not victim.endswith("ZZZZZZ") else "YYYYYY")
    r_other = a.call("POST", f"/admin/v1/keys/{victim}/revoke")
    r_ghost = a.call("POST", f"/admin/v1/keys/{ghost}/revoke")
    wrong = []
    if normalised(r_other, victim) != normalised(r_ghost, ghost):
        wrong.append(f"other tenant's key: {r_other.status_code} {r_other.text[:300]}\n"
                     f"nonexistent key: {r_ghost.status_code} {r_ghost.text[:300]}")
    for leak in ("b-viewer", "tb"):
        if re.search(rf"\b{re.escape(leak)}\b", r_other.text):
            wrong.append(f"the answer names {leak!r}: {r_other.text[:300]}")
    if 200 <= r_other.status_code < 300:
        wrong.append("the other tenant's key was revoked")
    else:
        s3_as(arena.gw, victim, v_secret).head_bucket(Bucket=arena.bucket)
    assert not wrong, "\n".join(wrong)


def test_custom_roles_are_not_shared_across_tenants(arena):
    """F10 (Low, issue 12's last finding on roles): a custom role made by tenant tb's SuperAdmin is
    neither listed to tenant ta's SuperAdmin nor deletable by it."""
    b = Api(arena.gw, *arena.keys["b-admin"])
    a = Api(arena.gw, *arena.keys["a-admin"])
    role = f"tb-backup-{uuid.uuid4().hex[:6]}"
    b.ok("POST", "/admin/v1/roles", {"name": role, "actions": ["PutObject", "DeleteObject"]})
    wrong = []
    listed = [r["name"] for r in a.ok("GET", "/admin/v1/roles")["items"]]
    if role in listed:
        wrong.append(f"tenant ta's SuperAdmin lists tb's role {role}")
    r = a.call("DELETE", f"/admin/v1/roles/{role}")
    if r.status_code != 404:
        wrong.append(f"tenant ta's SuperAdmin deleting tb's role: {r.status_code} {r.text[:200]}")
    if role not in [x["name"] for x in b.ok("GET", "/admin/v1/roles")["items"]]:
        wrong.append("tb's role is gone")
    assert not wrong, "\n".join(wrong)


def test_wrong_content_sha256_is_a_mismatch(arena):
    """F10 (Low): a body that does not match its signed x-amz-content-sha256 answers 400
    XAmzContentSHA256Mismatch and nothing is stored."""
    gw = arena.gw
    bucket = unique_bucket("sha")
    s3 = s3_as(gw, ACCESS_KEY, SECRET_KEY)
    s3.create_bucket(Bucket=bucket)
    path = f"/{bucket}/o"
    hdrs = signed_headers(gw, "PUT", path, b"A" * 64)
    r = requests.put(f"{gw.endpoint}{path}", data=b"B" * 64, headers=hdrs, timeout=30)
    assert_s3_error(r, 400, "XAmzContentSHA256Mismatch")
    assert head_status(s3, bucket, "o") == 404


def error_lines(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        try:
            if json.loads(line).get("level") == "ERROR":
                out.append(line)
        except ValueError:
            if " ERROR " in line:
                out.append(line)
    return out


def test_a_client_error_logs_at_most_one_error_line(arena):
    """F10 (Low): one client error (unknown key, bad signature, malformed XML, wrong content hash,
    unknown access key) produces at most one ERROR log line (ideally none)."""
    gw = arena.gw
    bucket = unique_bucket("logerr")
    s3_as(gw, ACCESS_KEY, SECRET_KEY).create_bucket(Bucket=bucket)
    bad_xml = b"this is not xml"
    cases = {
        "NoSuchKey": lambda: gw.signed("GET", f"/{bucket}/missing"),
        "SignatureDoesNotMatch": lambda: gw.signed("GET", f"/{bucket}", secret_key="wrong-secret-0123456789"),
        "InvalidAccessKeyId": lambda: gw.signed("GET", f"/{bucket}", access_key="VGNOSUCHKEY000000000"),
        "MalformedXML": lambda: gw.signed("POST", f"/{bucket}", "delete", bad_xml, {"Content-MD5": content_md5(bad_xml)}),
        "content hash": lambda: requests.put(
            f"{gw.endpoint}/{bucket}/o", data=b"B" * 8, headers=signed_headers(gw, "PUT", f"/{bucket}/o", b"A" * 8),
            timeout=30),
    }
    wrong = []
    for what, send in cases.items():
        mark = log_size(gw)
        r = send()
        assert 400 <= r.status_code < 500, f"{what}: {r.status_code}"
        time.sleep(0.5)
        errs = error_lines(log_text(gw, mark))
        if len(errs) > 1:
            wrong.append(f"{what} ({r.status_code}): {len(errs)} ERROR lines:\n  " + "\n  ".join(e[:300] for e in errs))
    assert not wrong, "\n".join(wrong)


# ---------------------------------------------------------------------------------------------
# F11: admin tokens are re-checked against the store
# ---------------------------------------------------------------------------------------------


def test_token_of_a_demoted_superadmin_cannot_create_principals(arena):
    """F11 (High): a token issued before its principal was demoted to viewer can no longer create a
    principal (403), and nothing is created."""
    root = arena.root
    name = f"demoted-{uuid.uuid4().hex[:6]}"
    ak, sk = root.principal(name, "superadmin")
    api = Api(arena.gw, ak, sk)
    assert api.call("GET", "/admin/v1/principals").status_code == 200
    root.ok("PUT", f"/admin/v1/principals/{name}/role", {"role": "viewer"})
    made = f"made-by-{name}"
    r = api.call("POST", "/admin/v1/principals", {"name": made, "role": "superadmin"})
    created = root.call("GET", f"/admin/v1/principals/{made}").status_code != 404
    assert r.status_code == 403 and not created, f"{r.status_code} {r.text[:300]}; created: {created}"


def test_token_of_a_revoked_key_is_refused(arena):
    """F11 (High): a token whose access key was revoked answers 401."""
    root = arena.root
    name = f"revoked-{uuid.uuid4().hex[:6]}"
    ak, sk = root.principal(name, "superadmin")
    api = Api(arena.gw, ak, sk)
    assert api.call("GET", "/admin/v1/principals").status_code == 200
    root.ok("POST", f"/admin/v1/keys/{ak}/revoke")
    r = api.call("GET", "/admin/v1/principals")
    assert r.status_code == 401, f"{r.status_code} {r.text[:300]}"


def test_token_of_a_disabled_principal_is_refused(arena):
    """F11 (High): a disabled principal's token answers 401."""
    root = arena.root
    name = f"disabled-{uuid.uuid4().hex[:6]}"
    ak, sk = root.principal(name, "superadmin")
    api = Api(arena.gw, ak, sk)
    assert api.call("GET", "/admin/v1/principals").status_code == 200
    root.ok("POST", f"/admin/v1/principals/{name}/disable")
    r = api.call("GET", "/admin/v1/principals")
    assert r.status_code == 401, f"{r.status_code} {r.text[:300]}"


# ---------------------------------------------------------------------------------------------
# F12: quorum covers the ways around it
# ---------------------------------------------------------------------------------------------


@dataclass
class Council:
    gw: Gateway
    root: Api
    others: list  # two SuperAdmins that existed before the rules
    bucket: str


@pytest.fixture(scope="module")
def council(spawn) -> Council:
    gw = spawn("attack-quorum-admin")
    root = Api(gw, ACCESS_KEY, SECRET_KEY)
    others = [Api(gw, *root.principal(n, "superadmin")) for n in ("qa-admin2", "qa-admin3")]
    bucket = unique_bucket("council")
    s3_as(gw, ACCESS_KEY, SECRET_KEY).create_bucket(Bucket=bucket)
    for name, action, pattern in (("guard-delete", "s3:DeleteObject", bucket), ("guard-roles", "admin:ChangeRole", "*")):
        root.ok("PUT", f"/admin/v1/quorum/rules/{name}", {
            "action": action, "bucket_pattern": pattern, "approvals": 2,
            "approver_roles": ["superadmin"], "ttl_secs": 600,
        })
    return Council(gw, root, others, bucket)


def test_creating_a_superadmin_is_gated_by_quorum(council):
    """F12 (High): with "admin:ChangeRole needs 2" in force, a SuperAdmin creating a new principal with
    role superadmin is held for approval (the answer names an approval id) and nobody is created."""
    name = f"sneaky-{uuid.uuid4().hex[:6]}"
    r = council.root.call("POST", "/admin/v1/principals", {"name": name, "role": "superadmin"})
    exists = council.root.call("GET", f"/admin/v1/principals/{name}").status_code == 200
    assert r.status_code == 403 and approval_id(r.text) and not exists, (
        f"{r.status_code} {r.text[:300]}; principal created: {exists}"
    )


def test_principals_newer_than_a_request_cannot_approve_it(council):
    """F12 (High): a principal created (with the quorum's approval) after an approval request was
    opened cannot approve that request (403); the request stays pending and the object stays."""
    c, root = council, council.root
    s3 = s3_as(c.gw, ACCESS_KEY, SECRET_KEY)
    s3.put_object(Bucket=c.bucket, Key="keep.bin", Body=b"keep")
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket=c.bucket, Key="keep.bin")
    aid = approval_id(e.value.response["Error"].get("Message", ""))
    assert client_error_code(e.value) == (403, "AccessDenied") and aid, e.value.response["Error"]

    late = f"late-{uuid.uuid4().hex[:6]}"
    r = through_quorum(lambda: root.call("POST", "/admin/v1/principals", {"name": late, "role": "superadmin"}), c.others)
    assert r.status_code == 201, f"create {late}: {r.status_code} {r.text[:300]}"
    r = through_quorum(lambda: root.call("POST", "/admin/v1/keys", {"principal": late}), c.others)
    assert r.status_code == 201, f"key for {late}: {r.status_code} {r.text[:300]}"
    newcomer = Api(c.gw, r.json()["access_key_id"], r.json()["secret_key"])

    v = newcomer.call("POST", f"/admin/v1/approvals/{aid}/approve")
    state = root.ok("GET", f"/admin/v1/approvals/{aid}")["state"]
    assert v.status_code == 403, f"a principal newer than {aid} approved it: {v.status_code} {v.text[:300]}"
    assert state == "pending", state
    assert get_bytes(s3, c.bucket, "keep.bin") == b"keep"


# ---------------------------------------------------------------------------------------------
# F13: secrets at rest and file modes
# ---------------------------------------------------------------------------------------------


def test_secrets_are_not_in_the_database_files_and_modes_are_private(spawn, tmp_path_factory):
    """F13 (Medium): on a fresh start the data dir is 0700 and the database files 0600; after
    `POST /admin/v1/keys` with an Idempotency-Key (and its replay) the secret is in none of index.db,
    -wal, -shm (raw bytes, while running and after shutdown)."""
    base = tmp_path_factory.mktemp("data-attack-secrets")
    real = base / "vaultgate"  # not there yet: the gateway creates it
    gw = spawn("attack-secrets", data_dir=base, VAULTGATE_DATA_DIR=str(real))
    root = Api(gw, ACCESS_KEY, SECRET_KEY)
    root.ok("POST", "/admin/v1/principals", {"name": "backup-job", "role": "manager"})
    idem = {"Idempotency-Key": str(uuid.uuid4())}
    first = root.call("POST", "/admin/v1/keys", {"principal": "backup-job"}, headers=idem)
    assert first.status_code == 201, first.text[:300]
    secret = first.json()["secret_key"]
    root.call("POST", "/admin/v1/keys", {"principal": "backup-job"}, headers=idem)

    wrong = []
    mode = stat.S_IMODE(real.stat().st_mode)
    if mode != 0o700:
        wrong.append(f"data dir {real} has mode {mode:o}")
    db_files = [real / n for n in ("index.db", "index.db-wal", "index.db-shm")]
    for f in db_files + [real / "master.key"]:
        if f.exists() and stat.S_IMODE(f.stat().st_mode) != 0o600:
            wrong.append(f"{f.name} has mode {stat.S_IMODE(f.stat().st_mode):o}")
    needles = {
        "the new key's secret": secret.encode(),
        "the new key's secret (base64)": base64.b64encode(secret.encode()),
        "the bootstrap secret": SECRET_KEY.encode(),
    }

    def scan(when: str) -> None:
        for f in db_files:
            if not f.exists():
                continue
            data = f.read_bytes()
            for what, needle in needles.items():
                if needle in data:
                    wrong.append(f"{when}: {what} is in {f.name} in clear")

    scan("running")
    gw.stop()
    scan("after shutdown")
    assert not wrong, "\n".join(wrong)


# ---------------------------------------------------------------------------------------------
# F14: the defaults serve honest bulk clients
# ---------------------------------------------------------------------------------------------


def test_defaults_serve_backup_jobs(spawn, tmp_path):
    """F14: on a fresh gateway with default settings, `aws s3 sync` of 1,000 small files succeeds (and
    `aws s3 ls --recursive` counts 1,000), `rclone sync` + `rclone check` of 300 files succeeds, and a
    boto3 loop of 2,000 PUTs meets no SlowDown."""
    gw = spawn("attack-defaults", cls=DefaultsGateway)
    assert not any(k.startswith("VAULTGATE_RATE_") for k in gw.env()), "not a default-settings gateway"
    bucket = unique_bucket("defaults")
    s3 = s3_as(gw, ACCESS_KEY, SECRET_KEY)
    s3.create_bucket(Bucket=bucket)

    env = gw.cli_env(tmp_path)
    env.update(AWS_MAX_ATTEMPTS="2", AWS_RETRY_MODE="standard")  # a SlowDown fails fast instead of backing off
    wrong: list[str] = []
    timings: list[str] = []

    def tool_run(what: str, cmd: list[str], limit: float = 90) -> subprocess.CompletedProcess | None:
        t = time.monotonic()
        try:
            p = subprocess.run(cmd, env=env, capture_output=True, timeout=limit, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            wrong.append(f"{what}: no end after {limit:.0f}s")
            return None
        took = time.monotonic() - t
        if p.returncode != 0:
            err = p.stderr.decode(errors="replace")
            slow = err.count("SlowDown")
            last = err.strip().splitlines()[-1][:300] if err.strip() else ""
            wrong.append(f"{what} failed after {took:.0f}s ({p.returncode}, {slow} SlowDown): {last}")
        timings.append(f"{what}: {took:.1f}s")
        return p

    src = tmp_path / "sync"
    for i in range(1000):
        d = src / f"d{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:04d}.txt").write_bytes(f"file {i}\n".encode() * (1 + i % 7))
    aws = [tool("aws"), "--endpoint-url", gw.endpoint, "--region", REGION]
    tool_run("aws s3 sync of 1,000 files", aws + ["s3", "sync", str(src), f"s3://{bucket}/aws/"])
    ls = tool_run("aws s3 ls --recursive", aws + ["s3", "ls", "--recursive", f"s3://{bucket}/aws/"])
    if ls is not None and ls.returncode == 0:
        n = len(ls.stdout.decode().strip().splitlines())
        if n != 1000:
            wrong.append(f"aws s3 ls --recursive counts {n} objects, not 1,000")

    rsrc = tmp_path / "rclone"
    for i in range(300):
        d = rsrc / f"r{i % 5}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"g{i:03d}.bin").write_bytes(os.urandom(64 + i))
    rclone = [tool("rclone"), "--retries", "1", "--low-level-retries", "2"]
    # (rclone waits out SlowDown's Retry-After; 45 s is ten times what it needs when not throttled)
    tool_run("rclone sync of 300 files", rclone + ["sync", str(rsrc), f"gw:{bucket}/rc", "--transfers", "8"], 45)
    tool_run("rclone check", rclone + ["check", str(rsrc), f"gw:{bucket}/rc"], 45)

    def put(i: int) -> str | None:
        try:
            s3.put_object(Bucket=bucket, Key=f"loop/{i:05d}", Body=b"x")
            return None
        except ClientError as e:
            return "%s %s" % client_error_code(e)

    t = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        errors = [e for e in ex.map(put, range(2000)) if e]
    timings.append(f"boto3 2,000 PUTs: {time.monotonic() - t:.1f}s")
    if errors:
        wrong.append(f"boto3: {len(errors)} of 2,000 PUTs failed: {sorted(set(errors))}")
    assert not wrong, "\n".join(wrong + timings)
    print("; ".join(timings))


# ---------------------------------------------------------------------------------------------
# F15: brute force is slowed per source address and counted
# ---------------------------------------------------------------------------------------------


def test_brute_force_is_refused_per_address_and_counted(spawn):
    """F15: 200 requests with bad signatures from one address (127.0.0.5 on S3; 127.0.0.6 on the admin
    token endpoint) within a minute: after the default budget (VAULTGATE_AUTH_FAILURES_PER_MIN, 60) they
    are refused with 503 SlowDown / 429 even with a correct signature from that address,
    vaultgate_auth_failures_total grows, and a client from 127.0.0.3 is unaffected."""
    gw = spawn("attack-bruteforce")
    bucket = unique_bucket("brute")
    s3_as(gw, ACCESS_KEY, SECRET_KEY).create_bucket(Bucket=bucket)
    before = metric_sum(gw, "vaultgate_auth_failures_total")
    t0 = time.monotonic()

    def s3_get(source: str, secret: str) -> tuple[int, str | None]:
        st, _, body = raw(gw, "GET", f"/{bucket}", signed_headers(gw, "GET", f"/{bucket}", secret_key=secret),
                          source=source)
        return st, error_code(body)

    def login(source: str, secret: str) -> int:
        body = json.dumps({"access_key": ACCESS_KEY, "secret_key": secret}).encode()
        return raw(gw, "POST", "/admin/v1/auth/token", {"Content-Type": "application/json"}, body,
                   source=source, admin=True)[0]

    s3_seen = [s3_get("127.0.0.5", "wrong-secret-0123456789") for _ in range(200)]
    admin_seen = [login("127.0.0.6", f"wrong-secret-{i}") for i in range(200)]
    s3_after = s3_get("127.0.0.5", SECRET_KEY)
    admin_after = login("127.0.0.6", SECRET_KEY)
    other_s3 = s3_get("127.0.0.3", SECRET_KEY)
    other_admin = login("127.0.0.3", SECRET_KEY)
    elapsed = time.monotonic() - t0
    after = metric_sum(gw, "vaultgate_auth_failures_total")

    wrong = []
    if elapsed > 60:
        wrong.append(f"the attack took {elapsed:.0f}s, not within a minute: the test cannot judge")
    if any(s[0] < 400 for s in s3_seen) or any(s < 400 for s in admin_seen):
        wrong.append("a bad signature was accepted")
    late_s3 = set(s3_seen[70:])
    if late_s3 != {(503, "SlowDown")}:
        wrong.append(f"S3 requests 71-200 from 127.0.0.5: {sorted(late_s3, key=str)} (want only 503 SlowDown)")
    late_admin = set(admin_seen[70:])
    if late_admin != {429}:
        wrong.append(f"token requests 71-200 from 127.0.0.6: {sorted(late_admin)} (want only 429)")
    if s3_after != (503, "SlowDown"):
        wrong.append(f"a correct S3 signature from 127.0.0.5 after the attack: {s3_after}")
    if admin_after != 429:
        wrong.append(f"a correct login from 127.0.0.6 after the attack: {admin_after}")
    if other_s3[0] != 200:
        wrong.append(f"S3 from 127.0.0.3 was affected: {other_s3}")
    if other_admin != 200:
        wrong.append(f"a login from 127.0.0.3 was affected: {other_admin}")
    if after < before + 60:
        wrong.append(f"vaultgate_auth_failures_total went from {before} to {after}")
    assert not wrong, "\n".join(wrong)
