"""boto3 against a gateway with VAULTGATE_DOMAIN set, virtual-hosted style and left at its default.

boto3 1.44 left at its default addressing style uses path style with a custom endpoint_url (seen
here: every URL it sent was `http://s3.localhost:PORT/BUCKET/...`), so the whole scenario runs
twice: with the default (path style on the base domain, which must keep working) and with
`addressing_style="virtual"`, where botocore addresses DNS-compatible buckets as
`http://BUCKET.s3.localhost:PORT/KEY` (what the AWS SDKs for Rust, Go and Java do by default). `*.localhost` does not resolve on this machine's
resolver (glibc without nss-myhostname), so the test maps `s3.localhost` and its subdomains to
127.0.0.1 in this process's own resolver (socket.getaddrinfo); every byte on the wire, the Host
header and the signature are what a client behind a wildcard DNS record sends. A hook on
botocore's `before-send` records each request's URL, so the test proves the requests really were
virtual-hosted style.
"""

from __future__ import annotations

import hashlib
import io
import socket

import boto3
import pytest
import requests
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from conftest import ACCESS_KEY, MiB, REGION, SECRET_KEY, make_payload, unique_bucket

DOMAIN = "s3.localhost"


@pytest.fixture(scope="module")
def vgw(gateway_factory):
    return gateway_factory("vhost", VAULTGATE_DOMAIN=f"{DOMAIN},s3.other.test")


@pytest.fixture
def resolver(monkeypatch):
    real = socket.getaddrinfo

    def fake(host, *args, **kwargs):
        if isinstance(host, str) and (host == DOMAIN or host.endswith("." + DOMAIN)):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def default_client(gw, sent: list, style: str | None = None):
    cfg = {"signature_version": "s3v4", "retries": {"max_attempts": 1}}
    if style:
        cfg["s3"] = {"addressing_style": style}
    c = boto3.session.Session(
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
    ).client("s3", endpoint_url=f"http://{DOMAIN}:{gw.s3_port}", config=Config(**cfg))
    c.meta.events.register("before-send.s3", lambda request, **_: sent.append(request.url))
    return c


@pytest.mark.parametrize("style", ["virtual", None])
def test_boto3_on_the_base_domain(vgw, resolver, style):
    sent: list[str] = []
    s3 = default_client(vgw, sent, style)
    bucket = unique_bucket("vhost")
    s3.create_bucket(Bucket=bucket)
    body = make_payload(300_000)
    s3.put_object(Bucket=bucket, Key="dir/a.bin", Body=body, ContentType="application/x-test")
    assert s3.get_object(Bucket=bucket, Key="dir/a.bin")["Body"].read() == body
    head = s3.head_object(Bucket=bucket, Key="dir/a.bin")
    assert head["ContentLength"] == len(body)
    assert head["ETag"].strip('"') == hashlib.md5(body).hexdigest()
    ranged = s3.get_object(Bucket=bucket, Key="dir/a.bin", Range="bytes=100-199")["Body"].read()
    assert ranged == body[100:200]
    # multipart through the subdomain (boto3's transfer manager)
    big = make_payload(12 * MiB)
    s3.upload_fileobj(
        io.BytesIO(big), bucket, "big.bin",
        Config=TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=2),
    )
    out = io.BytesIO()
    s3.download_fileobj(bucket, "big.bin", out)
    assert hashlib.sha256(out.getvalue()).hexdigest() == hashlib.sha256(big).hexdigest()
    s3.copy_object(Bucket=bucket, Key="copy.bin", CopySource={"Bucket": bucket, "Key": "dir/a.bin"})
    assert s3.get_object(Bucket=bucket, Key="copy.bin")["Body"].read() == body
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["big.bin", "copy.bin", "dir/a.bin"]
    listed_v1 = s3.list_objects(Bucket=bucket, Prefix="dir/")
    assert [o["Key"] for o in listed_v1["Contents"]] == ["dir/a.bin"]
    # presigned GETs fetched by a plain HTTP client: boto3's default presigns path style on the
    # base domain (the base domain itself is path style); a virtual-hosted one works too
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "dir/a.bin"}, ExpiresIn=300)
    r = requests.get(url, timeout=10)
    assert r.status_code == 200 and r.content == body
    vs3 = boto3.session.Session(
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
    ).client(
        "s3", endpoint_url=f"http://{DOMAIN}:{vgw.s3_port}",
        config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"}),
    )
    url = vs3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "dir/a.bin"}, ExpiresIn=300)
    assert url.startswith(f"http://{bucket}.{DOMAIN}:"), url
    r = requests.get(url, timeout=10)
    assert r.status_code == 200 and r.content == body
    deleted = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]}
    )["Deleted"]
    assert sorted(d["Key"] for d in deleted) == keys
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    s3.delete_bucket(Bucket=bucket)
    bucket_requests = [u for u in sent if bucket in u]
    assert bucket_requests, sent
    if style is None:
        # the default: path style on the base domain
        assert all(u.startswith(f"http://{DOMAIN}:{vgw.s3_port}/{bucket}") for u in bucket_requests), sent
        return
    # virtual: every request named the bucket in the host, never in the path
    for u in bucket_requests:
        assert u.startswith(f"http://{bucket}.{DOMAIN}:"), "\n".join(sent)
        assert f"/{bucket}/" not in u and not u.rstrip("/").endswith(f"/{bucket}"), u


def test_path_style_still_works_beside_it(vgw, resolver):
    bucket = unique_bucket("vhostpath")
    path = vgw.s3()  # path style on 127.0.0.1
    path.create_bucket(Bucket=bucket)
    path.put_object(Bucket=bucket, Key="k", Body=b"path style")
    sent: list[str] = []
    vhost = default_client(vgw, sent, "virtual")
    assert vhost.get_object(Bucket=bucket, Key="k")["Body"].read() == b"path style"
    assert sent[-1].startswith(f"http://{bucket}.{DOMAIN}:")
    # the S3 error of a missing bucket is the same either way
    with pytest.raises(vhost.exceptions.NoSuchBucket):
        vhost.list_objects_v2(Bucket=unique_bucket("absent"))
