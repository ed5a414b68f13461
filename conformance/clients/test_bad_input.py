"""Bad and awkward input, sent as raw SigV4-signed HTTP (botocore's signer) or through boto3:
malformed XML, unsatisfiable and garbled ranges, over-long and odd keys, a body shorter than its
Content-Length, unknown credentials. Every S3 error's XML <Code> is asserted, and after each test
the bucket lists exactly what was stored, every object intact.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import urllib.parse

import pytest
from botocore.exceptions import ClientError

from conftest import (
    SECRET_KEY,
    assert_bucket_holds,
    assert_s3_error,
    client_error_code,
    error_code,
    get_bytes,
    make_payload,
    sha256,
)


def content_md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode()


@pytest.mark.parametrize(
    "body",
    [
        b"<Delete><Object><Key>a</Key></Object>",  # truncated
        b"this is not xml",
        b"<Delete><Object><Key>a</Key></Object></Remove>",  # mismatched end tag
    ],
    ids=["truncated", "not-xml", "mismatched"],
)
def test_delete_objects_malformed_xml(gateway, s3, bucket, body):
    keep = make_payload(100)
    s3.put_object(Bucket=bucket, Key="a", Body=keep)
    r = gateway.signed("POST", f"/{bucket}", "delete", body, {"Content-MD5": content_md5(body)})
    assert_s3_error(r, 400, "MalformedXML")
    assert_bucket_holds(s3, bucket, {"a": sha256(keep)})


@pytest.mark.parametrize(
    "body",
    [
        b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>",
        b"garbage{}",
        b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part></Oops>",
    ],
    ids=["truncated", "not-xml", "mismatched"],
)
def test_complete_multipart_malformed_xml(gateway, s3, bucket, body):
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp.bin")["UploadId"]
    part = make_payload(5 * 1024 * 1024)
    etag = s3.upload_part(Bucket=bucket, Key="mp.bin", UploadId=up, PartNumber=1, Body=part)["ETag"]
    r = gateway.signed("POST", f"/{bucket}/mp.bin", f"uploadId={urllib.parse.quote(up)}", body)
    assert_s3_error(r, 400, "MalformedXML")
    assert_bucket_holds(s3, bucket, {})
    # the upload is still intact and completes properly afterwards
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp.bin", UploadId=up, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}
    )
    assert_bucket_holds(s3, bucket, {"mp.bin": sha256(part)})


def test_ranges_unsatisfiable_and_garbled(gateway, s3, bucket):
    body = make_payload(100)
    s3.put_object(Bucket=bucket, Key="r", Body=body)
    empty = b""
    s3.put_object(Bucket=bucket, Key="empty", Body=empty)

    wrong = []  # every deviation, so one run reports them all

    # start at or past the end: 416 InvalidRange (AWS)
    for key, rng in [("r", "bytes=100-200"), ("r", "bytes=1000-2000"), ("r", "bytes=100-"), ("empty", "bytes=0-0")]:
        r = gateway.signed("GET", f"/{bucket}/{key}", headers={"Range": rng})
        if (r.status_code, error_code(r.content)) != (416, "InvalidRange"):
            wrong.append(f"{key} Range {rng}: want 416 InvalidRange, got {r.status_code} {r.content[:200]!r}")

    # syntactically invalid ranges are ignored by AWS S3 (RFC 9110): 200 with the full body
    for rng in ["bytes=-", "bytes=5-2", "bytes=abc", "bytes=1-0"]:
        r = gateway.signed("GET", f"/{bucket}/r", headers={"Range": rng})
        if r.status_code != 200 or r.content != body or "Content-Range" in r.headers:
            wrong.append(f"Range {rng}: want 200 with the full body, got {r.status_code} {r.content[:200]!r}")

    # valid ones, including an end past EOF (clamped) and a suffix longer than the object
    for rng, first, last in [
        ("bytes=0-99", 0, 99),
        ("bytes=90-500", 90, 99),
        ("bytes=-1000", 0, 99),
        ("bytes=99-", 99, 99),
    ]:
        r = gateway.signed("GET", f"/{bucket}/r", headers={"Range": rng})
        want = (206, body[first : last + 1], f"bytes {first}-{last}/100")
        if (r.status_code, r.content, r.headers.get("Content-Range")) != want:
            wrong.append(f"Range {rng}: want 206 {want[2]}, got {r.status_code} {r.headers.get('Content-Range')}")
    assert not wrong, "\n".join(wrong)
    assert_bucket_holds(s3, bucket, {"r": sha256(body), "empty": sha256(empty)})


def test_key_too_long(gateway, s3, bucket):
    ok_key = "k" * 1024
    body = make_payload(10)
    s3.put_object(Bucket=bucket, Key=ok_key, Body=body)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k" * 1025, Body=body)
    assert client_error_code(e.value) == (400, "KeyTooLongError")
    # multi-byte: 342 x 3-byte characters = 1026 bytes
    r = gateway.signed("PUT", f"/{bucket}/{urllib.parse.quote('€' * 342)}", body=body)
    assert_s3_error(r, 400, "KeyTooLongError")
    assert_bucket_holds(s3, bucket, {ok_key: sha256(body)})


ODD_KEYS = [
    "..",
    "a/../b",
    "./c",
    "../../etc/passwd",
    "pct%2Fliteral",
    "100% sure",
    "ünïcødé/日本語/файл ✓.txt",
    "trailing/",
    "//double//slash",
    "sp ace+plus&amp=eq?q#hash",
    "emoji-🔐",
]


# Keys with control characters (NUL, tab, newline, DEL, ...) are refused since issue 12: AWS
# stores them, but they break every listing read without encoding-type=url (XML 1.0 cannot carry
# them). The refusal itself is asserted in test_attacks.py (F10).
CONTROL_KEYS = ["ctl\x01\x02\x1f\x7f-end", "tab\tand\nnewline"]


def test_control_character_keys_are_refused_not_stored(gateway, s3, bucket):
    for key in CONTROL_KEYS:
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=bucket, Key=key, Body=b"x")
        assert e.value.response["Error"]["Code"] == "InvalidArgument", repr(key)
    assert_bucket_holds(s3, bucket, {})


def test_odd_keys_roundtrip(gateway, s3, bucket):
    stored = {}
    for key in ODD_KEYS:
        body = make_payload(len(key.encode()) * 10 + 1)
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        stored[key] = sha256(body)
        got = s3.get_object(Bucket=bucket, Key=key)
        assert sha256(got["Body"].read()) == stored[key], repr(key)
        assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(body), repr(key)

    assert_bucket_holds(s3, bucket, stored)
    # delimiter listing with odd keys
    page = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    prefixes = {p["Prefix"] for p in page.get("CommonPrefixes", [])}
    assert prefixes == {"a/", "./", "../", "ünïcødé/", "trailing/", "/"}
    for key in list(stored):
        s3.delete_object(Bucket=bucket, Key=key)
    assert_bucket_holds(s3, bucket, {})


@pytest.mark.xfail(
    strict=True,
    reason="known gap: s3s 0.14.1 builds the SigV4 canonical URI from the decoded path and only "
    "falls back to the raw path when it has unencoded reserved characters, so a %2F signed as sent "
    "is refused with SignatureDoesNotMatch (docs/CONFIGURATION.md, 'Known gaps'). Strict: passes once fixed.",
)
def test_encoded_slash_in_path_is_a_slash_of_the_key(gateway, s3, bucket):
    """PUT /bucket/enc%2Fslash signed over the path as sent (S3 does not normalise the path for
    SigV4) stores the key "enc/slash"."""
    body = make_payload(333)
    r = gateway.signed("PUT", f"/{bucket}/enc%2Fslash", body=body)
    assert r.status_code == 200, (r.status_code, r.content[:300])
    assert get_bytes(s3, bucket, "enc/slash") == body
    r = gateway.signed("GET", f"/{bucket}/enc%2Fslash")
    assert r.status_code == 200 and r.content == body, (r.status_code, r.content[:300])
    assert_bucket_holds(s3, bucket, {"enc/slash": sha256(body)})


def _raw_put_short_body(gateway, bucket: str, key: str, declared: int, sent: bytes):
    """PUT with Content-Length `declared` but only `sent` bytes, then half-close. Returns the raw reply."""
    hdrs = gateway.sign(
        "PUT",
        f"{gateway.endpoint}/{bucket}/{key}",
        headers={"Content-Length": str(declared)},
        unsigned_payload=True,
    )
    assert hdrs["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    head = f"PUT /{bucket}/{key} HTTP/1.1\r\nHost: 127.0.0.1:{gateway.s3_port}\r\n"
    for k, v in hdrs.items():
        if k.lower() == "host":
            continue
        head += f"{k}: {v}\r\n"
    head += "Connection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", gateway.s3_port), timeout=30) as s:
        s.sendall(head.encode() + sent)
        s.shutdown(socket.SHUT_WR)
        reply = b""
        try:
            while chunk := s.recv(65536):
                reply += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return reply


def parse_http_reply(reply: bytes) -> tuple[int, bytes]:
    """Status and body of one raw HTTP/1.1 response (Content-Length, chunked or read-to-close)."""
    head, _, rest = reply.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(b":") for ln in lines[1:])}
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = b""
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            body += rest[:size]
            rest = rest[size + 2 :]
        return status, body
    if b"content-length" in headers:
        return status, rest[: int(headers[b"content-length"])]
    return status, rest


def test_body_shorter_than_content_length(gateway, s3, bucket):
    for declared, sent in [(1000, 500), (200_000, 70_000), (10, 0)]:
        key = f"short-{declared}"
        reply = _raw_put_short_body(gateway, bucket, key, declared, make_payload(sent))
        if reply:
            # AWS answers 400 IncompleteBody; a closed connection without a reply is the other outcome
            status, body = parse_http_reply(reply)
            assert (status, error_code(body)) == (400, "IncompleteBody"), reply[:500]
        with pytest.raises(ClientError) as e:
            s3.head_object(Bucket=bucket, Key=key)
        assert client_error_code(e.value)[0] == 404
    assert_bucket_holds(s3, bucket, {})


def test_unknown_access_key_and_bad_secret(gateway, s3, bucket):
    body = make_payload(50)
    s3.put_object(Bucket=bucket, Key="k", Body=body)
    r = gateway.signed("GET", f"/{bucket}/k", access_key="AKIAUNKNOWNKEY000000")
    assert_s3_error(r, 403, "InvalidAccessKeyId")
    r = gateway.signed("PUT", f"/{bucket}/intruder", body=b"x", access_key="AKIAUNKNOWNKEY000000")
    assert_s3_error(r, 403, "InvalidAccessKeyId")
    r = gateway.signed("PUT", f"/{bucket}/intruder", body=b"x", secret_key=SECRET_KEY[:-1] + "X")
    assert_s3_error(r, 403, "SignatureDoesNotMatch")
    r = gateway.signed("GET", "/", access_key="AKIAUNKNOWNKEY000000")
    assert_s3_error(r, 403, "InvalidAccessKeyId")
    assert_bucket_holds(s3, bucket, {"k": sha256(body)})


def test_missing_objects_and_buckets(gateway, s3, bucket):
    r = gateway.signed("GET", f"/{bucket}/nope")
    assert_s3_error(r, 404, "NoSuchKey")
    r = gateway.signed("GET", "/no-such-bucket-vg-xyz/nope")
    assert_s3_error(r, 404, "NoSuchBucket")
    r = gateway.signed("PUT", "/no-such-bucket-vg-xyz/k", body=b"x")
    assert_s3_error(r, 404, "NoSuchBucket")
    r = gateway.signed("GET", f"/{bucket}", "list-type=2&max-keys=abc")
    assert r.status_code == 400, (r.status_code, r.content[:300])
    assert_bucket_holds(s3, bucket, {})
