"""Key rotation end to end under aws cli traffic (issue 17), once on the local disk backend and once
on SeaweedFS (a fresh backend bucket, as in test_backends.py): a private gateway on its key file;
`vaultgate admin kek rotate`, `kek rewrap`, `kek reencrypt --bucket` (polled with
`kek reencrypt-status`) and `kek retire` of the old KEK — without --accept-header-copies, since
the re-encryption left no stream header carrying it — while a thread uploads with `aws s3 cp`
and reads back the whole time. No request fails, every object (a multipart one included) is
byte-exact afterwards and after a restart, and the audit ledger has one event per step. On
SeaweedFS the backend is then read directly: every sealed stream of the bucket names the new data
key version and the current KEK in its header (docs/FORMAT.md), none the retired ones.

The SeaweedFS case needs VAULTGATE_TEST_S3_* (conformance/run starts SeaweedFS); without them it
fails when VAULTGATE_REQUIRE_SERVICES=1 (as conformance/run sets) and is skipped otherwise.
"""

from __future__ import annotations

import json
import os
import secrets
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from conftest import (
    ACCESS_KEY,
    S3_ENV,
    SECRET_KEY,
    Gateway,
    MiB,
    SeaweedStore,
    make_payload,
    require_env,
    sha256,
    unique_bucket,
)


def admin(gw: Gateway, home: Path, *args: str) -> dict | list:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULTGATE_", "AWS_"))}
    env.update(HOME=str(home), LC_ALL="C.UTF-8")
    cmd = [gw.binary, "admin", "--endpoint", gw.admin, "--format", "json", *args]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"vaultgate admin {' '.join(args)} failed:\n{p.stderr}\n{p.stdout}"
    return json.loads(p.stdout) if p.stdout.strip() else {}


def audit_count(gw: Gateway, token: str, action: str) -> int:
    r = requests.get(
        f"{gw.admin}/admin/v1/audit",
        params={"action": action, "limit": 1000},
        headers={"authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return len(r.json()["items"])


def stream_header(data: bytes) -> tuple[str, int, str] | None:
    """(bucket, data_key_version, kek_id) of a sealed stream's clear header (docs/FORMAT.md), or
    None for a backend object that is not a stream."""
    if len(data) < 126 or data[:4] != b"VGSS":
        return None
    (version,) = struct.unpack_from(">I", data, 116)
    fields, off = [], 120
    for _ in range(2):  # bucket, kek_id (u16 length + UTF-8 each)
        (n,) = struct.unpack_from(">H", data, off)
        fields.append(data[off + 2 : off + 2 + n].decode())
        off += 2 + n
    return fields[0], version, fields[1]


@pytest.mark.parametrize("backend", ["local", "seaweedfs"])
def test_rotate_rewrap_reencrypt_retire_under_aws_cli_traffic(backend, gateway_factory, tmp_path):
    token = secrets.token_hex(6)
    store = None
    if backend == "seaweedfs":
        require_env(S3_ENV, "SeaweedFS")
        store = SeaweedStore(f"vgkeys-{token}")
        assert not store.exists(), f"fresh backend bucket {store.name} exists already"
    gw = gateway_factory(f"keys-e2e-{backend}-{token}", **(store.gateway_env() if store else {}))
    home = tmp_path / "home"
    home.mkdir()
    admin(gw, home, "login", "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY)
    bucket = unique_bucket("keys")
    gw.aws(tmp_path, "s3", "mb", f"s3://{bucket}")

    files: dict[str, str] = {}
    for i, size in enumerate([0, 1, 65536, 300_000, 12 * MiB]):  # the last goes multipart
        data = make_payload(size)
        path = tmp_path / f"seed{i}"
        path.write_bytes(data)
        gw.aws(tmp_path, "s3", "cp", str(path), f"s3://{bucket}/seed{i}")
        files[f"seed{i}"] = sha256(data)

    # aws cli traffic the whole time: an upload, then a read-back of a seeded object
    stop = threading.Event()
    failures: list[str] = []
    written: dict[str, str] = {}

    def traffic() -> None:
        i = 0
        while not stop.is_set() or i < 3:
            data = make_payload(20_000 + i * 997)
            src = tmp_path / f"live{i}"
            src.write_bytes(data)
            p = gw.aws(tmp_path, "s3", "cp", str(src), f"s3://{bucket}/live{i}", check=False)
            if p.returncode != 0:
                failures.append(f"put live{i}: {p.stderr.decode(errors='replace')[-500:]}")
            else:
                written[f"live{i}"] = sha256(data)
            name = f"seed{i % 4}"
            dst = tmp_path / f"back{i}"
            p = gw.aws(tmp_path, "s3", "cp", f"s3://{bucket}/{name}", str(dst), check=False)
            if p.returncode != 0:
                failures.append(f"get {name}: {p.stderr.decode(errors='replace')[-500:]}")
            elif sha256(dst.read_bytes()) != files[name]:
                failures.append(f"get {name}: other bytes")
            i += 1

    t = threading.Thread(target=traffic, daemon=True)
    t.start()
    try:
        status = admin(gw, home, "kek", "status")
        old = status["keks"][0]["kek_id"]
        rotated = admin(gw, home, "kek", "rotate")
        assert rotated["current_kek_id"] != old
        assert rotated["failed"] == []
        rewrap = admin(gw, home, "kek", "rewrap")
        assert rewrap["rewrapped"] == 0 and rewrap["failed"] == []
        started = admin(gw, home, "kek", "reencrypt", "--bucket", bucket, "--rate", "100")
        assert started["target_version"] == 2 and started["running"] is True, started
        deadline = time.monotonic() + 300
        while True:
            st = admin(gw, home, "kek", "reencrypt-status", "--bucket", bucket)
            if not st["running"]:
                break
            assert time.monotonic() < deadline, st
            time.sleep(0.5)
        assert st["finished_ms"] is not None and st["failed"] == 0 and st["remaining"] == 0, st
        assert st["resealed"] >= 5, st
        status = admin(gw, home, "kek", "status")
        old_kek = next(k for k in status["keks"] if k["kek_id"] == old)
        assert old_kek["stream_headers"] == 0, status
        retired = admin(gw, home, "kek", "retire", old)
        assert retired["kek_id"] == old and retired["stream_headers"] == 0
        current = rotated["current_kek_id"]
    finally:
        stop.set()
        t.join(600)
    assert not failures, failures
    assert len(written) >= 3

    def check_all(g: Gateway) -> None:
        for name, digest in {**files, **written}.items():
            dst = tmp_path / f"check-{name}"
            g.aws(tmp_path, "s3", "cp", f"s3://{bucket}/{name}", str(dst))
            assert sha256(dst.read_bytes()) == digest, name

    check_all(gw)
    r = requests.post(
        f"{gw.admin}/admin/v1/auth/token",
        json={"access_key": ACCESS_KEY, "secret_key": SECRET_KEY},
        timeout=30,
    )
    token = r.json()["token"]
    for action, n in [
        ("admin.RotateKek", 1),
        ("admin.RewrapDataKeys", 1),
        ("admin.ReencryptBucket", 1),
        ("admin.ReencryptBucketFinished", 1),
        ("admin.RetireKek", 1),
    ]:
        assert audit_count(gw, token, action) == n, action
    if store is not None:
        # Nothing stayed on the local disk, and every stream of the bucket on SeaweedFS is sealed
        # under the new data key version wrapped by the current KEK (the re-encryption replaced
        # the old streams, the traffic's new ones were sealed under it).
        local = gw.data_dir / "objects"
        assert not local.exists() or not [p for p in local.rglob("*") if p.is_file()]
        headers = [stream_header(store.read(n)) for n in store.names()]
        ours = [hd for hd in headers if hd is not None and hd[0] == bucket]
        assert len(ours) >= len(files) + len(written), (len(ours), headers)
        stale = [hd for hd in ours if hd[1] != started["target_version"] or hd[2] != current]
        assert not stale, stale[:10]
    gw.restart()
    check_all(gw)
