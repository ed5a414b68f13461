"""Bucket policies with real clients (issue 16): the "deny unencrypted uploads" policy of AWS's
documentation put with `aws s3api put-bucket-policy`, then `aws s3 cp` refused without `--sse`
and stored with `--sse AES256` (single and multipart), the document read back byte-exact with
`get-bucket-policy`, a malformed one refused with MalformedPolicy, and `delete-bucket-policy`
lifting it; boto3 listing under a prefix-restricting policy.
"""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from conftest import MiB, client_error_code, sha256_file, write_payload


def deny_unencrypted(bucket: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Id": "PutObjPolicy",
        "Statement": [{
            "Sid": "DenyUnEncryptedObjectUploads",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{bucket}/*",
            "Condition": {"Null": {"s3:x-amz-server-side-encryption": "true"}},
        }],
    }, indent=2)


def test_awscli_deny_unencrypted_uploads(gateway, s3, bucket, workdir):
    doc = deny_unencrypted(bucket)
    gateway.aws(workdir, "s3api", "put-bucket-policy", "--bucket", bucket, "--policy", doc)
    got = json.loads(gateway.aws(workdir, "s3api", "get-bucket-policy", "--bucket", bucket).stdout)
    assert got["Policy"] == doc

    small = workdir / "small.bin"
    small_digest = write_payload(small, 100_000)
    big = workdir / "big.bin"
    big_digest = write_payload(big, 9 * MiB + 17)  # multipart with aws cli's defaults

    for src in (small, big):
        r = gateway.aws(workdir, "s3", "cp", str(src), f"s3://{bucket}/plain/{src.name}", check=False)
        assert r.returncode != 0, r.stdout
        assert "AccessDenied" in r.stderr.decode(errors="replace")
        with pytest.raises(ClientError) as e:
            s3.head_object(Bucket=bucket, Key=f"plain/{src.name}")
        assert client_error_code(e.value)[0] == 404

    for src, digest in ((small, small_digest), (big, big_digest)):
        gateway.aws(workdir, "s3", "cp", str(src), f"s3://{bucket}/sealed/{src.name}", "--sse", "AES256")
        out = workdir / f"{src.name}.out"
        gateway.aws(workdir, "s3", "cp", f"s3://{bucket}/sealed/{src.name}", str(out))
        assert sha256_file(out) == digest

    # a policy naming another bucket is refused, the stored one unchanged
    r = gateway.aws(workdir, "s3api", "put-bucket-policy", "--bucket", bucket,
                    "--policy", deny_unencrypted("some-other-bucket"), check=False)
    assert r.returncode != 0
    assert "MalformedPolicy" in r.stderr.decode(errors="replace")
    got = json.loads(gateway.aws(workdir, "s3api", "get-bucket-policy", "--bucket", bucket).stdout)
    assert got["Policy"] == doc

    gateway.aws(workdir, "s3api", "delete-bucket-policy", "--bucket", bucket)
    gateway.aws(workdir, "s3", "cp", str(small), f"s3://{bucket}/plain/after.bin")
    r = gateway.aws(workdir, "s3api", "get-bucket-policy", "--bucket", bucket, check=False)
    assert r.returncode != 0 and "NoSuchBucketPolicy" in r.stderr.decode(errors="replace")


def test_boto3_listing_only_under_a_prefix(s3, bucket):
    for k in ("public/a", "public/b", "private/c"):
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": "s3:ListBucket",
            "Resource": f"arn:aws:s3:::{bucket}",
            "Condition": {"StringNotLike": {"s3:prefix": "public/*"}},
        }],
    }))
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="public/")["Contents"]]
    assert keys == ["public/a", "public/b"]
    for prefix in ("", "private/"):
        with pytest.raises(ClientError) as e:
            s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
        assert client_error_code(e.value) == (403, "AccessDenied")
    # reads are not listings: the policy says nothing of them
    assert s3.get_object(Bucket=bucket, Key="private/c")["Body"].read() == b"x"
    s3.delete_bucket_policy(Bucket=bucket)
    assert len(s3.list_objects_v2(Bucket=bucket)["Contents"]) == 3
