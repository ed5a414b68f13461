"""Plaintext scan of the data dir: after uploads through aws cli, rclone and boto3 (single part,
multipart, presigned), no file under the data dir (objects, index.db, its WAL, key files, anything)
holds any 32-byte window of the session's random marker, and no object key appears in any file or
path name under <data dir>/objects. (Bucket names are not checked: the sealed-stream header carries
the bucket in clear as the data key's KMS encryption context, by format design.) Runs last (file name), so the shared gateway's
data dir holds everything the suite uploaded.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import requests

from conftest import BLOCK, MARKER, MiB, get_bytes, make_payload, sha256, small_transfer_config, write_payload

# Any 32-byte window of the 64-byte marker contains one of these aligned 16-byte blocks, so finding
# none of them proves that no 32-byte window is present (and is the stricter test).
NEEDLES = [MARKER[i : i + 16] for i in range(0, len(MARKER), 16)]


def files_under(root: Path) -> list[Path]:
    return [p for p in sorted(root.rglob("*")) if p.is_file()]


def find_marker(root: Path) -> list[str]:
    """Files under root holding a 16-byte aligned block of the marker (read in overlapping windows)."""
    hits = []
    for path in files_under(root):
        with open(path, "rb") as f:
            tail = b""
            while chunk := f.read(8 * MiB):
                buf = tail + chunk
                if any(n in buf for n in NEEDLES):
                    hits.append(str(path))
                    break
                tail = buf[-15:]
    return hits


def find_names(root: Path, names: list[str]) -> list[str]:
    """Occurrences of any of `names` (UTF-8) in the contents or path names of files under root."""
    enc = [n.encode() for n in names]
    hits = []
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        hits += [f"path {rel} contains {n!r}" for n in names if n in rel]
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{rel} contains {n!r}" for n, e in zip(names, enc, strict=True) if e in data]
    return hits


def test_scan_finds_the_marker_in_plaintext(tmp_path):
    """The scanner itself: a plaintext payload anywhere (even split across read windows) is found."""
    for offset in [0, 100, 8 * MiB - 24]:  # the last one straddles two read windows
        d = tmp_path / f"o{offset}"
        d.mkdir()
        (d / "f").write_bytes(os.urandom(offset) + make_payload(BLOCK + 32)[BLOCK - 16 :])
        assert find_marker(d) == [str(d / "f")], offset
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "f").write_bytes(os.urandom(3 * MiB))
    assert find_marker(clean) == []


def test_private_gateway_stores_no_plaintext_and_no_names(gateway_factory, tmp_path):
    gw = gateway_factory("scan")
    s3 = gw.s3()
    token = secrets.token_hex(8)
    bucket = f"secret-bucket-{token}"
    s3.create_bucket(Bucket=bucket)
    keys = []

    def key(label: str) -> str:
        k = f"confidential-{label}-{secrets.token_hex(8)}.dat"
        keys.append(k)
        return k

    stored = {}
    # boto3: single PUT, multipart, with metadata, presigned PUT
    body = make_payload(200_000)
    k = key("put")
    s3.put_object(Bucket=bucket, Key=k, Body=body, Metadata={"note": "public"})
    stored[k] = sha256(body)
    big = tmp_path / "big.bin"
    stored[key("mp")] = write_payload(big, 11 * MiB)
    s3.upload_file(str(big), bucket, keys[-1], Config=small_transfer_config())
    k = key("presigned")
    body = make_payload(9999)
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": k}, ExpiresIn=300)
    assert requests.put(url, data=body, timeout=30).status_code == 200
    stored[k] = sha256(body)
    # aws cli: single and multipart
    wd = tmp_path / "wd"
    wd.mkdir()
    for label, size in [("cli-small", 5000), ("cli-mp", 9 * MiB)]:
        k = key(label)
        stored[k] = write_payload(wd / k, size)
        gw.aws(wd, "s3", "cp", str(wd / k), f"s3://{bucket}/{k}")
    # rclone: single and multipart (ordinary file names, so the key is the name)
    rc = tmp_path / "rc"
    for label, size in [("rc-small", 70_000), ("rc-mp", 6 * MiB)]:
        k = key(label)
        stored[k] = write_payload(rc / k, size)
    gw.rclone(wd, "copy", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", str(rc), f"gw:{bucket}")

    # the plaintext really went in (otherwise a clean scan proves nothing)
    for k, digest in stored.items():
        data = get_bytes(s3, bucket, k)
        assert sha256(data) == digest
        assert MARKER in data

    objects = gw.data_dir / "objects"
    assert objects.is_dir(), f"no objects dir in {sorted(os.listdir(gw.data_dir))}"
    assert files_under(objects), "no backend objects were written"
    assert (gw.data_dir / "index.db").is_file()

    assert find_marker(gw.data_dir) == [], "plaintext found in the data dir (gateway running)"
    assert find_names(objects, keys) == []

    assert gw.stop() == 0, f"no clean exit on SIGTERM; log {gw.log_path}"  # also checkpoints the WAL
    assert find_marker(gw.data_dir) == [], "plaintext found in the data dir (gateway stopped)"
    assert find_names(objects, keys) == []


def test_shared_gateway_data_dir_holds_no_plaintext(gateway):
    """Everything the suite uploaded to the shared gateway (all payloads carry the marker)."""
    s3 = gateway.s3()
    s3.create_bucket(Bucket="scan-shared")
    body = make_payload(100_000)
    s3.put_object(Bucket="scan-shared", Key="last", Body=body)
    assert get_bytes(s3, "scan-shared", "last") == body
    total = sum(p.stat().st_size for p in files_under(gateway.data_dir / "objects"))
    assert total >= len(body)
    assert find_marker(gateway.data_dir) == [], "plaintext found in the shared gateway's data dir"
