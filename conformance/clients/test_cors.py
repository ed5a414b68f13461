"""CORS with real clients against the `vaultgate` binary: the configuration through boto3, and
preflights and actual responses as a browser sends them (plain HTTP with `requests`), on a
presigned URL. The browser itself is in conformance/browser/test_cors.py (headless Chromium).
"""

from __future__ import annotations

import pytest
import requests
from botocore.exceptions import ClientError

ORIGIN = "https://app.example"


def rules():
    return {"CORSRules": [{
        "ID": "app", "AllowedOrigins": [ORIGIN], "AllowedMethods": ["GET", "PUT"],
        "AllowedHeaders": ["content-type", "x-amz-meta-*"], "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 120,
    }]}


def test_configuration_round_trip_and_validation(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.get_bucket_cors(Bucket=bucket)
    assert e.value.response["Error"]["Code"] == "NoSuchCORSConfiguration"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=rules())
    got = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert got == rules()["CORSRules"]
    for bad, code in [
        ({"CORSRules": [{"AllowedOrigins": [ORIGIN], "AllowedMethods": ["PATCH"]}]}, "InvalidRequest"),
        ({"CORSRules": [{"AllowedOrigins": ["https://*.*.example"], "AllowedMethods": ["GET"]}]}, "InvalidRequest"),
        ({"CORSRules": [{"AllowedOrigins": [ORIGIN], "AllowedMethods": ["GET"]}] * 101}, "MalformedXML"),
    ]:
        with pytest.raises(ClientError) as e:
            s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=bad)
        assert e.value.response["Error"]["Code"] == code
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == got
    s3.delete_bucket_cors(Bucket=bucket)
    with pytest.raises(ClientError):
        s3.get_bucket_cors(Bucket=bucket)


def test_preflight_and_response_headers_on_a_presigned_url(s3, bucket):
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=rules())
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=300)
    pre = requests.options(put_url, headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "content-type,x-amz-meta-note",
    }, timeout=10)
    assert pre.status_code == 200, pre.text
    assert pre.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert pre.headers["Access-Control-Allow-Methods"] == "GET, PUT"
    assert pre.headers["Access-Control-Allow-Headers"] == "content-type, x-amz-meta-note"
    assert pre.headers["Access-Control-Max-Age"] == "120"
    # refused: another origin, another method, a header no rule allows
    for h in (
        {"Origin": "https://evil.example", "Access-Control-Request-Method": "PUT"},
        {"Origin": ORIGIN, "Access-Control-Request-Method": "DELETE"},
        {"Origin": ORIGIN, "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "authorization"},
    ):
        r = requests.options(put_url, headers=h, timeout=10)
        assert r.status_code == 403 and "<Code>AccessForbidden</Code>" in r.text, (h, r.text)
        assert "Access-Control-Allow-Origin" not in r.headers
    # the actual PUT and GET from that origin carry the rule's headers
    r = requests.put(put_url, data=b"from a page", headers={"Origin": ORIGIN}, timeout=10)
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert r.headers["Access-Control-Expose-Headers"] == "ETag"
    assert r.headers["Vary"] == "Origin"
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=300)
    r = requests.get(get_url, headers={"Origin": ORIGIN}, timeout=10)
    assert r.status_code == 200 and r.content == b"from a page"
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    r = requests.get(get_url, headers={"Origin": "https://evil.example"}, timeout=10)
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
