"""boto3 against the gateway: upload_file/download_file with default checksums (multipart and
ranged downloads), put_object with SHA256/CRC32C checksums (and a wrong one), ETag = MD5,
header/metadata round-trip, presigned GET/PUT over plain HTTP and an expired presigned URL.
"""

from __future__ import annotations

import base64
import hashlib
import time
import zlib

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import (
    MiB,
    assert_bucket_holds,
    assert_s3_error,
    client_error_code,
    get_bytes,
    make_payload,
    sha256,
    sha256_file,
    small_transfer_config,
    write_payload,
)


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_crc32c_helper_known_answer():
    # RFC 3720 B.4 test vector: 32 bytes of zeros
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"123456789") == 0xE3069283


def test_upload_file_download_file_default_checksums(gateway, s3, bucket, workdir):
    cfg = small_transfer_config()
    big = workdir / "big.bin"
    big_digest = write_payload(big, 17 * MiB + 3)  # 4 parts of 5 MiB
    small = workdir / "small.bin"
    small_digest = write_payload(small, 4096)

    s3.upload_file(str(big), bucket, "up/big.bin", Config=cfg)
    s3.upload_file(str(small), bucket, "up/small.bin", Config=cfg)

    head = s3.head_object(Bucket=bucket, Key="up/big.bin")
    assert head["ContentLength"] == 17 * MiB + 3
    data = big.read_bytes()
    part_md5s = b"".join(hashlib.md5(data[i : i + 5 * MiB]).digest() for i in range(0, len(data), 5 * MiB))
    assert head["ETag"].strip('"') == f"{hashlib.md5(part_md5s).hexdigest()}-4"
    assert head.get("ServerSideEncryption"), "no x-amz-server-side-encryption on HEAD"

    small_head = s3.head_object(Bucket=bucket, Key="up/small.bin")
    assert small_head["ETag"].strip('"') == hashlib.md5(small.read_bytes()).hexdigest()

    out = workdir / "big.out"
    s3.download_file(bucket, "up/big.bin", str(out), Config=cfg)  # ranged GETs in parallel
    assert sha256_file(out) == big_digest
    out2 = workdir / "small.out"
    s3.download_file(bucket, "up/small.bin", str(out2), Config=cfg)
    assert sha256_file(out2) == small_digest


def test_put_object_sha256_checksum(s3, bucket):
    body = make_payload(300_000)
    r = s3.put_object(Bucket=bucket, Key="sha.bin", Body=body, ChecksumAlgorithm="SHA256")
    want = b64(hashlib.sha256(body).digest())
    assert r["ChecksumSHA256"] == want
    assert r["ETag"].strip('"') == hashlib.md5(body).hexdigest()
    h = s3.head_object(Bucket=bucket, Key="sha.bin", ChecksumMode="ENABLED")
    assert h["ChecksumSHA256"] == want
    assert h["ETag"] == r["ETag"]
    g = s3.get_object(Bucket=bucket, Key="sha.bin", ChecksumMode="ENABLED")
    assert g["ChecksumSHA256"] == want
    assert sha256(g["Body"].read()) == sha256(body)


def test_put_object_crc32c_checksum(s3, bucket):
    body = make_payload(150_001)
    want = b64(crc32c(body).to_bytes(4, "big"))
    # The value is given explicitly (botocore computes CRC32C only with awscrt installed).
    r = s3.put_object(Bucket=bucket, Key="crc.bin", Body=body, ChecksumCRC32C=want)
    assert r["ChecksumCRC32C"] == want
    h = s3.head_object(Bucket=bucket, Key="crc.bin", ChecksumMode="ENABLED")
    assert h["ChecksumCRC32C"] == want
    assert get_bytes(s3, bucket, "crc.bin") == body


def test_wrong_checksums_are_refused_and_store_nothing(s3, bucket):
    body = make_payload(10_000)
    bad_sha = b64(hashlib.sha256(body + b"x").digest())
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="bad-sha.bin", Body=body, ChecksumSHA256=bad_sha)
    assert client_error_code(e.value) == (400, "BadDigest")
    bad_md5 = b64(hashlib.md5(body + b"x").digest())
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="bad-md5.bin", Body=body, ContentMD5=bad_md5)
    assert client_error_code(e.value) == (400, "BadDigest")
    bad_crc = b64((zlib.crc32(body) ^ 1).to_bytes(4, "big"))
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="bad-crc.bin", Body=body, ChecksumCRC32=bad_crc)
    assert client_error_code(e.value) == (400, "BadDigest")
    assert_bucket_holds(s3, bucket, {})


def test_headers_and_user_metadata_roundtrip(s3, bucket):
    body = make_payload(5000)
    s3.put_object(
        Bucket=bucket,
        Key="meta.bin",
        Body=body,
        ContentType="application/x-vaultgate-test",
        CacheControl="max-age=60",
        ContentDisposition='attachment; filename="m.bin"',
        Metadata={"mtime": "1700000000.5", "md5chksum": "abc", "Mixed-Case": "v a l"},
    )
    h = s3.head_object(Bucket=bucket, Key="meta.bin")
    assert h["ContentType"] == "application/x-vaultgate-test"
    assert h["CacheControl"] == "max-age=60"
    assert h["ContentDisposition"] == 'attachment; filename="m.bin"'
    assert h["Metadata"] == {"mtime": "1700000000.5", "md5chksum": "abc", "mixed-case": "v a l"}
    g = s3.get_object(Bucket=bucket, Key="meta.bin")
    assert g["Metadata"] == h["Metadata"]
    assert g["ContentLength"] == len(body) == h["ContentLength"]
    assert g["Body"].read() == body


def test_presigned_get_put_and_expired(gateway, s3, bucket):
    body = make_payload(70_000)
    s3.put_object(Bucket=bucket, Key="pre/get.bin", Body=body)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "pre/get.bin"}, ExpiresIn=300)
    r = requests.get(url, timeout=30)
    assert r.status_code == 200, r.text[:500]
    assert sha256(r.content) == sha256(body)
    assert r.headers["ETag"].strip('"') == hashlib.md5(body).hexdigest()

    r = requests.get(url, headers={"Range": "bytes=10-19"}, timeout=30)
    assert r.status_code == 206 and r.content == body[10:20]

    put_body = make_payload(123_457)
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "pre/put.bin"}, ExpiresIn=300)
    r = requests.put(put_url, data=put_body, timeout=30)
    assert r.status_code == 200, r.text[:500]
    assert r.headers["ETag"].strip('"') == hashlib.md5(put_body).hexdigest()
    assert get_bytes(s3, bucket, "pre/put.bin") == put_body

    # a presigned URL for another key must not be usable for this one
    tampered = url.replace("pre/get.bin", "pre/put.bin")
    r = requests.get(tampered, timeout=30)
    assert_s3_error(r, 403, "SignatureDoesNotMatch")

    short = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "pre/get.bin"}, ExpiresIn=1)
    short_put = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "pre/late.bin"}, ExpiresIn=1)
    time.sleep(2.5)
    assert_s3_error(requests.get(short, timeout=30), 403, "AccessDenied")
    assert_s3_error(requests.put(short_put, data=b"late", timeout=30), 403, "AccessDenied")
    assert_bucket_holds(s3, bucket, {"pre/get.bin": sha256(body), "pre/put.bin": sha256(put_body)})


def test_presigned_post_with_conditions(s3, bucket):
    """boto3's generate_presigned_post with Conditions (key prefix with ${filename}, metadata,
    Content-Type, content-length-range, success_action_status) posted by requests as a browser
    would: stored byte-exact with its fields; a file outside the length range (400
    EntityTooLarge), a field the policy does not name and a failed condition (403 AccessDenied)
    store nothing."""
    fields = {"x-amz-meta-owner": "ana", "Content-Type": "text/plain", "success_action_status": "201"}
    conditions = [
        ["starts-with", "$key", "forms/"],
        {"x-amz-meta-owner": "ana"},
        ["starts-with", "$Content-Type", "text/"],
        {"success_action_status": "201"},
        ["content-length-range", 1, 4096],
    ]
    p = s3.generate_presigned_post(
        Bucket=bucket, Key="forms/${filename}", Fields=fields, Conditions=conditions, ExpiresIn=600
    )
    data = make_payload(3000)
    r = requests.post(p["url"], data=p["fields"], files={"file": ("note.txt", data)}, timeout=60)
    assert r.status_code == 201, r.text
    assert "<Key>forms/note.txt</Key>" in r.text
    assert get_bytes(s3, bucket, "forms/note.txt") == data
    head = s3.head_object(Bucket=bucket, Key="forms/note.txt")
    assert head["Metadata"] == {"owner": "ana"}
    assert head["ContentType"] == "text/plain"

    r = requests.post(p["url"], data=p["fields"], files={"file": ("big.txt", make_payload(5000))}, timeout=60)
    assert_s3_error(r, 400, "EntityTooLarge")
    extra = dict(p["fields"], **{"x-amz-meta-extra": "1"})
    r = requests.post(p["url"], data=extra, files={"file": ("extra.txt", b"x")}, timeout=60)
    assert_s3_error(r, 403, "AccessDenied")
    wrong = dict(p["fields"], **{"x-amz-meta-owner": "eve"})
    r = requests.post(p["url"], data=wrong, files={"file": ("wrong.txt", b"x")}, timeout=60)
    assert_s3_error(r, 403, "AccessDenied")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["forms/note.txt"]
