"""Offline operations through the real `vaultgate` binary: `migrate` killed halfway (SIGKILL) and
resumed, the gateway refusing the old backend after the switch; `reindex` after deleting the SQLite
index; `import-hub` of hub-format blobs written here (AES-256-GCM records) with a tampered blob
rejected by name."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from pathlib import Path

import botocore.exceptions
import pytest
from boto3.s3.transfer import TransferConfig
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from conftest import MiB, Gateway, make_payload, sha256

HUB_KEY = "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"


def vg(gw: Gateway, *args: str, timeout: float = 300, **extra_env) -> subprocess.CompletedProcess:
    env = gw.env()
    env.update(extra_env)
    return subprocess.run(
        [gw.binary, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def state(s3, bucket: str) -> dict:
    """key -> (size, etag, last-modified, content-type, metadata, sha256 of the body)."""
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            got = s3.get_object(Bucket=bucket, Key=o["Key"])
            body = got["Body"].read()
            out[o["Key"]] = (
                o["Size"],
                o["ETag"],
                o["LastModified"],
                got.get("ContentType"),
                got.get("Metadata"),
                sha256(body),
            )
    return out


def remove_index(data_dir: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        p = data_dir / f"index.db{suffix}"
        if p.exists():
            p.unlink()


def copied_rows(data_dir: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{data_dir / 'index.db'}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("SELECT COUNT(*) FROM migrate_copied").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def test_migrate_killed_halfway_resumes_and_switches(gateway_factory, tmp_path):
    gw = gateway_factory("ops-migrate")
    s3 = gw.s3()
    s3.create_bucket(Bucket="mig")
    for i in range(120):
        s3.put_object(Bucket="mig", Key=f"obj/{i:04d}", Body=make_payload(256 * 1024 + i),
                      ContentType="application/x-mig", Metadata={"n": str(i)})
    big = tmp_path / "big.bin"
    big.write_bytes(make_payload(12 * MiB))
    s3.upload_file(str(big), "mig", "multi/big.bin",
                   Config=TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB))
    before = state(s3, "mig")
    gw.stop()

    dest = tmp_path / "dest"
    dest_url = f"file://{dest}"
    proc = subprocess.Popen([gw.binary, "migrate", "--to", dest_url, "--quiet"], env=gw.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while copied_rows(gw.data_dir) < 10 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, "migrate finished before it could be killed halfway"
    proc.kill()
    proc.wait(10)
    done = copied_rows(gw.data_dir)
    assert 10 <= done < 124, done

    # not switched: the gateway still serves from the old backend
    gw.start()
    assert state(gw.s3(), "mig") == before
    gw.stop()

    r = vg(gw, "migrate", "--to", dest_url, "--quiet")
    assert r.returncode == 0, r.stderr + r.stdout
    assert f"{done} already verified" in r.stdout, r.stdout
    assert f"VAULTGATE_BACKEND={dest_url}" in r.stdout, r.stdout

    # the old backend is refused now, with the value to set
    old = subprocess.run([gw.binary, "serve"], env=gw.env(), capture_output=True, text=True, timeout=60)
    assert old.returncode != 0
    assert f"VAULTGATE_BACKEND={dest_url}" in old.stderr + old.stdout

    gw.extra_env["VAULTGATE_BACKEND"] = dest_url
    gw.start()
    assert state(gw.s3(), "mig") == before
    gw.stop()


def test_reindex_after_deleting_the_index(gateway_factory, tmp_path):
    gw = gateway_factory("ops-reindex")
    s3 = gw.s3()
    s3.create_bucket(Bucket="keep")
    s3.put_object(Bucket="keep", Key="a.txt", Body=b"alpha", ContentType="text/plain",
                  Metadata={"colour": "red", "id": "7"})
    s3.put_object(Bucket="keep", Key="dir/empty", Body=b"")
    s3.put_object(Bucket="keep", Key="dir/bin", Body=make_payload(300_000), CacheControl="no-cache")
    big = tmp_path / "big.bin"
    big.write_bytes(make_payload(11 * MiB))
    s3.upload_file(str(big), "keep", "multi.bin",
                   Config=TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB))
    before = state(s3, "keep")
    gw.stop()

    remove_index(gw.data_dir)
    r = vg(gw, "reindex", "--quiet")
    assert r.returncode == 0, r.stderr + r.stdout
    assert "1 buckets, 4 objects (1 multipart)" in r.stdout, r.stdout

    # a second reindex into the now filled index is refused
    again = vg(gw, "reindex", "--quiet")
    assert again.returncode == 1
    assert "empty index" in again.stderr

    gw.start()
    assert state(gw.s3(), "keep") == before
    gw.stop()


def test_reindex_with_tenant_flag_gives_the_buckets_to_that_tenant(gateway_factory):
    gw = gateway_factory("ops-reindex-tenant")
    s3 = gw.s3()
    s3.create_bucket(Bucket="fin")
    s3.put_object(Bucket="fin", Key="ledger.csv", Body=b"a,b\n")
    gw.stop()

    remove_index(gw.data_dir)
    bad = vg(gw, "reindex", "--quiet", "--tenant", "no such/tenant")
    assert bad.returncode == 1, bad.stderr + bad.stdout
    assert "tenant name" in bad.stderr, bad.stderr
    r = vg(gw, "reindex", "--quiet", "--tenant", "acme")
    assert r.returncode == 0, r.stderr + r.stdout
    assert "1 buckets, 1 objects" in r.stdout, r.stdout

    gw.start()
    # the bootstrap admin belongs to tenant "default": the bucket is no longer its own
    s3 = gw.s3()
    assert s3.list_buckets()["Buckets"] == []
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket="fin", Key="ledger.csv")
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    gw.stop()


def hub_blob(key_hex: str, chunks: list[bytes]) -> bytes:
    aead = AESGCM(bytes.fromhex(key_hex))
    out = b""
    for c in chunks:
        nonce = os.urandom(12)
        ct = aead.encrypt(nonce, c, None)
        out += nonce + len(ct).to_bytes(4, "big") + ct
    return out


def test_import_hub_imports_blobs_and_rejects_a_tampered_one_by_name(gateway_factory, tmp_path):
    gw = gateway_factory("ops-hub", start=False)
    hub = tmp_path / "hub"
    (hub / "docs").mkdir(parents=True)
    good = {"photo.jpg": [make_payload(70_000), make_payload(30_000)], "docs/readme.md": [b"# readme\n"]}
    for name, chunks in good.items():
        (hub / name).write_bytes(hub_blob(HUB_KEY, chunks))
    bad = bytearray(hub_blob(HUB_KEY, [make_payload(5000)]))
    bad[40] ^= 1
    (hub / "docs" / "tampered.bin").write_bytes(bytes(bad))
    key_file = tmp_path / "blob.key"
    key_file.write_text(HUB_KEY + "\n")

    r = vg(gw, "import-hub", "--bucket", "hub", "--key-file", str(key_file), "--quiet", str(hub))
    assert r.returncode == 2, r.stderr + r.stdout
    assert "3 files, 2 imported into bucket hub" in r.stdout, r.stdout
    assert "skipped: docs/tampered.bin" in r.stdout, r.stdout

    # without any key: a clear refusal
    nokey = vg(gw, "import-hub", "--bucket", "hub", str(hub))
    assert nokey.returncode == 1 and "BLOB_KEY" in nokey.stderr

    gw.start()
    s3 = gw.s3()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="hub").get("Contents", [])]
    assert keys == ["docs/readme.md", "photo.jpg"]
    for name, chunks in good.items():
        assert s3.get_object(Bucket="hub", Key=name)["Body"].read() == b"".join(chunks)
    gw.stop()
