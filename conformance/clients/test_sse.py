"""Per-request encryption with real clients (issue 16).

SSE-C with aws cli v1 (`--sse-c AES256 --sse-c-key fileb://KEY`): single and multipart uploads
(every part carries the key), downloads with the key, refusals without it or with another key,
copies SSE-C -> SSE-C under a new key (`--sse-c-copy-source`) and SSE-C -> gateway keys; boto3
HEAD echoes the algorithm and key MD5. `--sse aws:kms`: refused with a clear 400 on a gateway
that runs on its local key; on a gateway over a KMS (moto, when VAULTGATE_TEST_KMS_ENDPOINT is
set) it is honoured and reported with the key's ARN, and `--sse-kms-key-id` (key id, ARN or
alias) seals the object under a bucket data key wrapped by that KMS key: uploads (single,
multipart), downloads and copies between keys with aws cli, HEAD reporting the key, an unknown
or disabled key refused with S3's `KMS.*` codes, encryption context round trip and refusals,
and a restart reading everything back. Bucket default encryption with `aws s3api put/get/delete-bucket-encryption`:
bad configurations refused with S3's codes, ServerSideEncryptionConfigurationNotFoundError when
unset, and plain `aws s3 cp` uploads (single and multipart) and copies reporting the default.
"""

from __future__ import annotations

import base64
import json
import hashlib
import os
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import MiB, client_error_code, sha256_file, write_payload


def key_file(workdir, name: str, raw: bytes):
    p = workdir / name
    p.write_bytes(raw)
    return p


def sse_c_args(raw: bytes) -> dict:
    return {
        "SSECustomerAlgorithm": "AES256",
        "SSECustomerKey": raw,  # boto3 base64-encodes it and adds the MD5
    }


def test_awscli_sse_c_upload_download_copy(gateway, s3, bucket, workdir):
    ka, kb = os.urandom(32), os.urandom(32)
    fa, fb = key_file(workdir, "a.key", ka), key_file(workdir, "b.key", kb)
    small = workdir / "small.bin"
    small_digest = write_payload(small, 300_000)
    big = workdir / "big.bin"
    big_digest = write_payload(big, 9 * MiB + 321)  # above aws cli's 8 MiB multipart threshold

    for src, key in ((small, "small.bin"), (big, "big.bin")):
        gateway.aws(workdir, "s3", "cp", str(src), f"s3://{bucket}/{key}", "--sse-c", "AES256",
                    "--sse-c-key", f"fileb://{fa}")

    # downloads with the key give the bytes back
    for key, digest in (("small.bin", small_digest), ("big.bin", big_digest)):
        out = workdir / f"{key}.out"
        gateway.aws(workdir, "s3", "cp", f"s3://{bucket}/{key}", str(out), "--sse-c", "AES256",
                    "--sse-c-key", f"fileb://{fa}")
        assert sha256_file(out) == digest, key

    # without the key, or with another, nothing comes back
    for extra in ([], ["--sse-c", "AES256", "--sse-c-key", f"fileb://{fb}"]):
        out = workdir / "refused.out"
        r = gateway.aws(workdir, "s3", "cp", f"s3://{bucket}/small.bin", str(out), *extra, check=False)
        assert r.returncode != 0, r.stdout
        err = r.stderr.decode(errors="replace")
        assert "400" in err or "Bad Request" in err, err
        assert not out.exists() or out.stat().st_size == 0

    # HEAD echoes the algorithm and the key MD5; without the key it is a 400
    head = s3.head_object(Bucket=bucket, Key="big.bin", **sse_c_args(ka))
    assert head["SSECustomerAlgorithm"] == "AES256"
    assert head["SSECustomerKeyMD5"] == base64.b64encode(hashlib.md5(ka).digest()).decode()
    assert head["ContentLength"] == 9 * MiB + 321
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="big.bin")
    assert client_error_code(e.value)[0] == 400

    # copy SSE-C (A) -> SSE-C (B)
    gateway.aws(workdir, "s3", "cp", f"s3://{bucket}/small.bin", f"s3://{bucket}/rekeyed.bin",
                "--sse-c-copy-source", "AES256", "--sse-c-copy-source-key", f"fileb://{fa}",
                "--sse-c", "AES256", "--sse-c-key", f"fileb://{fb}")
    out = workdir / "rekeyed.out"
    gateway.aws(workdir, "s3", "cp", f"s3://{bucket}/rekeyed.bin", str(out), "--sse-c", "AES256",
                "--sse-c-key", f"fileb://{fb}")
    assert sha256_file(out) == small_digest
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key="rekeyed.bin", **sse_c_args(ka))

    # copy SSE-C -> the gateway's own keys: readable without a customer key
    gateway.aws(workdir, "s3", "cp", f"s3://{bucket}/small.bin", f"s3://{bucket}/plain.bin",
                "--sse-c-copy-source", "AES256", "--sse-c-copy-source-key", f"fileb://{fa}")
    out = workdir / "plain.out"
    gateway.aws(workdir, "s3", "cp", f"s3://{bucket}/plain.bin", str(out))
    assert sha256_file(out) == small_digest
    assert s3.head_object(Bucket=bucket, Key="plain.bin")["ServerSideEncryption"] == "AES256"

    # the customer keys never reach the gateway's log
    log = gateway.log_path.read_text(errors="replace") if gateway.log_path else ""
    for raw in (ka, kb):
        for form in (base64.b64encode(raw).decode(), raw.hex()):
            assert form not in log

    # a copy without the source key is refused and writes nothing
    r = gateway.aws(workdir, "s3", "cp", f"s3://{bucket}/small.bin", f"s3://{bucket}/nokey.bin",
                    check=False)
    assert r.returncode != 0
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="nokey.bin")
    assert client_error_code(e.value)[0] == 404


def test_awscli_sse_aws_kms_on_a_local_key_gateway_is_a_clear_400(gateway, s3, bucket, workdir):
    src = workdir / "k.bin"
    write_payload(src, 1000)
    r = gateway.aws(workdir, "s3", "cp", str(src), f"s3://{bucket}/k.bin", "--sse", "aws:kms",
                    check=False)
    assert r.returncode != 0
    err = r.stderr.decode(errors="replace")
    assert "InvalidArgument" in err, err
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="k.bin")
    assert client_error_code(e.value)[0] == 404
    # AES256 is today's behaviour
    gateway.aws(workdir, "s3", "cp", str(src), f"s3://{bucket}/aes.bin", "--sse", "AES256")
    assert s3.head_object(Bucket=bucket, Key="aes.bin")["ServerSideEncryption"] == "AES256"


@pytest.fixture(scope="module")
def kms_gateway(gateway_factory):
    endpoint = os.environ.get("VAULTGATE_TEST_KMS_ENDPOINT")
    if not endpoint:
        if os.environ.get("VAULTGATE_REQUIRE_SERVICES") == "1":
            pytest.fail("VAULTGATE_REQUIRE_SERVICES=1 but VAULTGATE_TEST_KMS_ENDPOINT is not set")
        pytest.skip("VAULTGATE_TEST_KMS_ENDPOINT not set (moto KMS)")
    import boto3

    kms = boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    arn = kms.create_key(Description="vaultgate test_sse")["KeyMetadata"]["Arn"]
    alias = f"alias/vg-sse-{uuid.uuid4().hex[:12]}"
    kms.create_alias(AliasName=alias, TargetKeyId=arn)
    gw = gateway_factory(
        "sse-kms",
        VAULTGATE_KMS=f"aws-kms://{alias}?region=us-east-1&endpoint={endpoint}",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_EC2_METADATA_DISABLED="true",
    )
    return gw, arn, kms


def test_awscli_sse_aws_kms_on_a_kms_gateway(kms_gateway, workdir):
    gw, arn, _ = kms_gateway
    s3 = gw.s3()
    bucket = f"kms-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    src = workdir / "k.bin"
    digest = write_payload(src, 200_000)
    gw.aws(workdir, "s3", "cp", str(src), f"s3://{bucket}/k.bin", "--sse", "aws:kms")
    head = s3.head_object(Bucket=bucket, Key="k.bin")
    assert head["ServerSideEncryption"] == "aws:kms"
    # no key named: the gateway's own key, reported by its ARN (the alias resolved)
    assert head["SSEKMSKeyId"] == arn
    assert head["BucketKeyEnabled"] is True
    out = workdir / "k.out"
    gw.aws(workdir, "s3", "cp", f"s3://{bucket}/k.bin", str(out))
    assert sha256_file(out) == digest


def new_kms_key(kms, description: str) -> tuple[str, str, str]:
    """A new moto KMS key: (key id, ARN, alias)."""
    meta = kms.create_key(Description=description)["KeyMetadata"]
    alias = f"alias/vg-{uuid.uuid4().hex[:12]}"
    kms.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
    return meta["KeyId"], meta["Arn"], alias


def test_awscli_sse_kms_key_per_request(kms_gateway, workdir):
    """Objects under two named KMS keys and under the gateway's key, in one bucket: bytes back,
    HEAD reports each key's ARN (given as id, ARN or alias), copies move between keys,
    multipart keeps the key of its CreateMultipartUpload, a restart reads everything back."""
    gw, default_arn, kms = kms_gateway
    s3 = gw.s3()
    bucket = f"kmsk-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    id1, arn1, alias1 = new_kms_key(kms, "vaultgate test_sse key 1")
    id2, arn2, _ = new_kms_key(kms, "vaultgate test_sse key 2")
    small = workdir / "s.bin"
    small_digest = write_payload(small, 70_000)
    big = workdir / "b.bin"
    big_digest = write_payload(big, 9 * MiB + 11)  # multipart in aws cli
    plan = {  # object key -> (local file, digest, --sse-kms-key-id or None, ARN reported)
        "k1-by-id.bin": (small, small_digest, id1, arn1),
        "k1-by-alias.bin": (small, small_digest, alias1, arn1),
        "k2-by-arn.bin": (small, small_digest, arn2, arn2),
        "k2-big.bin": (big, big_digest, arn2, arn2),
        "default.bin": (small, small_digest, None, default_arn),
    }
    for key, (local, _, key_id, _) in plan.items():
        extra = ["--sse-kms-key-id", key_id] if key_id else []
        gw.aws(workdir, "s3", "cp", str(local), f"s3://{bucket}/{key}", "--sse", "aws:kms", *extra)

    def check_all():
        for key, (_, digest, _, want_arn) in plan.items():
            head = s3.head_object(Bucket=bucket, Key=key)
            assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", want_arn), key
            assert head["BucketKeyEnabled"] is True
            out = workdir / f"{key}.out"
            gw.aws(workdir, "s3", "cp", f"s3://{bucket}/{key}", str(out))
            assert sha256_file(out) == digest, key
            got = s3.get_object(Bucket=bucket, Key=key, Range="bytes=5-1004")
            assert got["SSEKMSKeyId"] == want_arn
            with open(out, "rb") as f:
                assert got["Body"].read() == f.read()[5:1005], key

    check_all()
    # copies between keys re-encrypt under the destination's key (aws cli and boto3)
    gw.aws(workdir, "s3", "cp", f"s3://{bucket}/k1-by-id.bin", f"s3://{bucket}/k1-to-k2.bin",
           "--sse", "aws:kms", "--sse-kms-key-id", arn2)
    plan["k1-to-k2.bin"] = (small, small_digest, arn2, arn2)
    r = s3.copy_object(Bucket=bucket, Key="k2-to-k1.bin", CopySource=f"{bucket}/k2-big.bin",
                       ServerSideEncryption="aws:kms", SSEKMSKeyId=alias1)
    assert (r["ServerSideEncryption"], r["SSEKMSKeyId"]) == ("aws:kms", arn1)
    plan["k2-to-k1.bin"] = (big, big_digest, arn1, arn1)
    r = s3.copy_object(Bucket=bucket, Key="k2-to-aes.bin", CopySource=f"{bucket}/k2-by-arn.bin",
                       ServerSideEncryption="AES256")
    assert r["ServerSideEncryption"] == "AES256" and "SSEKMSKeyId" not in r
    # boto3 multipart: the key chosen at Create is reported by every step and kept
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp.bin", ServerSideEncryption="aws:kms",
                                    SSEKMSKeyId=id1)
    assert up["SSEKMSKeyId"] == arn1
    with open(big, "rb") as f:
        data = f.read()
    parts = []
    for n, off in enumerate(range(0, len(data), 5 * MiB), start=1):
        p = s3.upload_part(Bucket=bucket, Key="mp.bin", UploadId=up["UploadId"], PartNumber=n,
                           Body=data[off:off + 5 * MiB])
        assert (p["ServerSideEncryption"], p["SSEKMSKeyId"]) == ("aws:kms", arn1)
        parts.append({"PartNumber": n, "ETag": p["ETag"]})
    done = s3.complete_multipart_upload(Bucket=bucket, Key="mp.bin", UploadId=up["UploadId"],
                                        MultipartUpload={"Parts": parts})
    assert (done["ServerSideEncryption"], done["SSEKMSKeyId"]) == ("aws:kms", arn1)
    plan["mp.bin"] = (big, big_digest, id1, arn1)
    check_all()
    # a restart (caches empty, keys unwrapped again from the KMS) reads everything back
    gw.restart()
    s3 = gw.s3()
    check_all()


def test_sse_kms_bad_keys_and_contexts_are_refused(kms_gateway, workdir):
    gw, arn, kms = kms_gateway
    s3 = gw.s3()
    bucket = f"kmsbad-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    kid, karn, _ = new_kms_key(kms, "vaultgate test_sse disabled")
    kms.disable_key(KeyId=kid)
    missing = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    for key_id, want in (
        ("alias/vg-does-not-exist", "KMS.NotFoundException"),
        (missing, "KMS.NotFoundException"),
        ("not a key id!", "KMS.NotFoundException"),
        (kid, "KMS.DisabledException"),
        (karn, "KMS.DisabledException"),
    ):
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=bucket, Key="x", Body=b"x", ServerSideEncryption="aws:kms",
                          SSEKMSKeyId=key_id)
        status, code = client_error_code(e.value)
        assert (status, code) == (400, want), key_id
        msg = e.value.response["Error"].get("Message", "")
        assert msg.startswith("The KMS key") and "DescribeKey" not in msg, msg
    r = gw.aws(workdir, "s3", "cp", __file__, f"s3://{bucket}/cli.bin", "--sse", "aws:kms",
               "--sse-kms-key-id", "alias/vg-nope", check=False)
    assert "KMS.NotFoundException" in cli_error(r)
    # a key id without aws:kms, and SSE-C with SSE-KMS, are 400 InvalidArgument
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="x", Body=b"x", ServerSideEncryption="AES256",
                      SSEKMSKeyId=arn)
    assert client_error_code(e.value) == (400, "InvalidArgument")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="x", Body=b"x", ServerSideEncryption="aws:kms",
                      SSEKMSKeyId=arn, **sse_c_args(os.urandom(32)))
    assert client_error_code(e.value) == (400, "InvalidArgument")
    # encryption context: base64 of a JSON object of strings, recorded and reported back
    ctx = base64.b64encode(json.dumps({"project": "vg", "dept": "42"}).encode()).decode()
    r = s3.put_object(Bucket=bucket, Key="ctx", Body=b"context", ServerSideEncryption="aws:kms",
                      SSEKMSKeyId=arn, SSEKMSEncryptionContext=ctx)
    assert r["SSEKMSEncryptionContext"] == ctx and r["SSEKMSKeyId"] == arn
    assert s3.get_object(Bucket=bucket, Key="ctx")["Body"].read() == b"context"
    c = s3.copy_object(Bucket=bucket, Key="ctx2", CopySource=f"{bucket}/ctx",
                       ServerSideEncryption="aws:kms", SSEKMSEncryptionContext=ctx)
    assert c["SSEKMSEncryptionContext"] == ctx and c["SSEKMSKeyId"] == arn
    for bad in ("%%%not-base64",
                base64.b64encode(b"not json").decode(),
                base64.b64encode(b'["a list"]').decode(),
                base64.b64encode(b'{"n": 1}').decode()):
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=bucket, Key="badctx", Body=b"x", ServerSideEncryption="aws:kms",
                          SSEKMSEncryptionContext=bad)
        assert client_error_code(e.value) == (400, "InvalidArgument"), bad
    # nothing was written by any refusal
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert listed == ["ctx", "ctx2"]


def bucket_default(alg: str, key_id: str | None = None) -> str:
    by_default = {"SSEAlgorithm": alg}
    if key_id:
        by_default["KMSMasterKeyID"] = key_id
    return json.dumps({"Rules": [{"ApplyServerSideEncryptionByDefault": by_default,
                                  "BucketKeyEnabled": True}]})


def put_default(gw, workdir, bucket: str, cfg: str, check: bool = True):
    return gw.aws(workdir, "s3api", "put-bucket-encryption", "--bucket", bucket,
                  "--server-side-encryption-configuration", cfg, check=check)


def cli_error(r) -> str:
    assert r.returncode != 0
    return r.stderr.decode(errors="replace")


def test_awscli_bucket_encryption_on_a_local_key_gateway(gateway, s3, bucket, workdir):
    def put(cfg: str, check: bool = True):
        return put_default(gateway, workdir, bucket, cfg, check)

    r = gateway.aws(workdir, "s3api", "get-bucket-encryption", "--bucket", bucket, check=False)
    assert "ServerSideEncryptionConfigurationNotFoundError" in cli_error(r)
    # refusals with S3's codes
    for cfg, want in (
        (bucket_default("aws:kms"), "InvalidArgument"),  # no KMS on this gateway
        (bucket_default("AES256", "alias/x"), "InvalidArgument"),  # key id without aws:kms
        (bucket_default("AES128"), "MalformedXML"),
        (json.dumps({"Rules": []}), "MalformedXML"),
    ):
        err = cli_error(put(cfg, check=False))
        assert f"({want})" in err, (cfg, err)
    r = gateway.aws(workdir, "s3api", "get-bucket-encryption", "--bucket", bucket, check=False)
    assert "ServerSideEncryptionConfigurationNotFoundError" in cli_error(r)
    put(bucket_default("AES256"))
    got = json.loads(gateway.aws(workdir, "s3api", "get-bucket-encryption", "--bucket",
                                 bucket).stdout)
    rule = got["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert rule["BucketKeyEnabled"] is True
    src = workdir / "d.bin"
    digest = write_payload(src, 5000)
    gateway.aws(workdir, "s3", "cp", str(src), f"s3://{bucket}/d.bin")
    assert s3.head_object(Bucket=bucket, Key="d.bin")["ServerSideEncryption"] == "AES256"
    out = workdir / "d.out"
    gateway.aws(workdir, "s3", "cp", f"s3://{bucket}/d.bin", str(out))
    assert sha256_file(out) == digest
    gateway.aws(workdir, "s3api", "delete-bucket-encryption", "--bucket", bucket)
    r = gateway.aws(workdir, "s3api", "get-bucket-encryption", "--bucket", bucket, check=False)
    assert "ServerSideEncryptionConfigurationNotFoundError" in cli_error(r)


def test_awscli_bucket_default_encryption_on_a_kms_gateway(kms_gateway, workdir):
    gw, arn, kms = kms_gateway
    s3 = gw.s3()
    bucket = f"kmsdef-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    src = workdir / "k.bin"
    digest = write_payload(src, 100_000)
    big = workdir / "big.bin"
    big_digest = write_payload(big, 9 * MiB + 7)  # multipart in aws cli

    def put(cfg: str, check: bool = True):
        return put_default(gw, workdir, bucket, cfg, check)

    # without a default, a plain upload reports the gateway's mode
    gw.aws(workdir, "s3", "cp", str(src), f"s3://{bucket}/before.bin")
    assert s3.head_object(Bucket=bucket, Key="before.bin")["ServerSideEncryption"] == "aws:kms"
    # a default of AES256: plain uploads (single, multipart) and copies report AES256
    put(bucket_default("AES256"))
    for local, key in ((src, "aes.bin"), (big, "aes-big.bin")):
        gw.aws(workdir, "s3", "cp", str(local), f"s3://{bucket}/{key}")
        assert s3.head_object(Bucket=bucket, Key=key)["ServerSideEncryption"] == "AES256", key
    r = s3.copy_object(Bucket=bucket, Key="copied.bin", CopySource=f"{bucket}/before.bin")
    assert r["ServerSideEncryption"] == "AES256"
    # existing objects keep what they reported
    assert s3.head_object(Bucket=bucket, Key="before.bin")["ServerSideEncryption"] == "aws:kms"
    # a default of aws:kms (the gateway's key): plain uploads report aws:kms
    put(bucket_default("aws:kms"))
    got = json.loads(gw.aws(workdir, "s3api", "get-bucket-encryption", "--bucket", bucket).stdout)
    by_default = got["ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"]
    assert by_default == {"SSEAlgorithm": "aws:kms"}
    for local, key in ((src, "kms.bin"), (big, "kms-big.bin")):
        gw.aws(workdir, "s3", "cp", str(local), f"s3://{bucket}/{key}")
        assert s3.head_object(Bucket=bucket, Key=key)["ServerSideEncryption"] == "aws:kms", key
    assert s3.get_object(Bucket=bucket, Key="aes-big.bin")["ServerSideEncryption"] == "AES256"
    for key, want in (("kms.bin", digest), ("kms-big.bin", big_digest), ("aes-big.bin", big_digest)):
        out = workdir / f"{key}.out"
        gw.aws(workdir, "s3", "cp", f"s3://{bucket}/{key}", str(out))
        assert sha256_file(out) == want, key
    # an explicit header beats the default
    gw.aws(workdir, "s3", "cp", str(src), f"s3://{bucket}/explicit.bin", "--sse", "AES256")
    assert s3.head_object(Bucket=bucket, Key="explicit.bin")["ServerSideEncryption"] == "AES256"
    assert s3.head_object(Bucket=bucket, Key="kms.bin")["SSEKMSKeyId"] == arn
    # a default naming another KMS key (by alias): kept and reported as given, plain uploads
    # sealed under that key and reporting its ARN
    _, arn1, alias1 = new_kms_key(kms, "vaultgate test_sse bucket default")
    put(bucket_default("aws:kms", alias1))
    got = json.loads(gw.aws(workdir, "s3api", "get-bucket-encryption", "--bucket", bucket).stdout)
    assert got["ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": alias1}
    for local, key, want in ((src, "k1.bin", digest), (big, "k1-big.bin", big_digest)):
        gw.aws(workdir, "s3", "cp", str(local), f"s3://{bucket}/{key}")
        head = s3.head_object(Bucket=bucket, Key=key)
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", arn1), key
        out = workdir / f"{key}.out"
        gw.aws(workdir, "s3", "cp", f"s3://{bucket}/{key}", str(out))
        assert sha256_file(out) == want, key
    # objects written under the earlier default keep their key
    assert s3.head_object(Bucket=bucket, Key="kms.bin")["SSEKMSKeyId"] == arn
    # a default naming a key that does not exist is refused, the stored default unchanged
    err = cli_error(put(bucket_default("aws:kms", "alias/vg-no-such-key"), check=False))
    assert "(KMS.NotFoundException)" in err, err
    got = json.loads(gw.aws(workdir, "s3api", "get-bucket-encryption", "--bucket", bucket).stdout)
    assert got["ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": alias1}
