"""CORS in a real browser: headless Chromium on a page served from another origin (a tiny
http.server on its own port) uploads to the gateway with a presigned PUT URL (a cross-origin PUT,
so the browser sends a preflight first) and with a presigned POST form, then reads the object
back with fetch, all under the bucket's CORS rule; without a rule for that origin the browser
refuses (the preflight fails, the PUT is never sent, the object is never written).
"""

from __future__ import annotations

import http.server
import threading
import uuid
from functools import partial

import boto3
import pytest
from botocore.config import Config

import conftest as bc

vg = bc.vg

PAGE = b"<!doctype html><html><head><meta charset=utf-8><title>cors page</title></head><body>app</body></html>"


@pytest.fixture(scope="module")
def gw(gateway_factory):
    return gateway_factory("cors")


@pytest.fixture(scope="module")
def page_origin(tmp_path_factory):
    """An origin of its own: http://127.0.0.1:<port> serving one HTML page."""
    d = tmp_path_factory.mktemp("cors-page")
    (d / "index.html").write_bytes(PAGE)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(d))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def client(gw):
    return boto3.session.Session(
        aws_access_key_id=bc.ACCESS_KEY, aws_secret_access_key=bc.SECRET_KEY, region_name="us-east-1"
    ).client("s3", endpoint_url=gw.endpoint, config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))


UPLOAD_JS = """async ([putUrl, getUrl, body]) => {
  const out = {};
  try {
    const put = await fetch(putUrl, { method: "PUT", body, headers: { "Content-Type": "text/plain" } });
    out.putStatus = put.status;
    out.etag = put.headers.get("ETag");
  } catch (e) { out.putError = String(e); return out; }
  try {
    const get = await fetch(getUrl);
    out.getStatus = get.status;
    out.text = await get.text();
  } catch (e) { out.getError = String(e); }
  return out;
}"""

POST_JS = """async ([url, fields, body]) => {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  form.append("file", new Blob([body], { type: "text/plain" }), "note.txt");
  try {
    const r = await fetch(url, { method: "POST", body: form });
    return { status: r.status, etag: r.headers.get("ETag") };
  } catch (e) { return { error: String(e) }; }
}"""


def presigned(s3, bucket, key):
    put = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    get = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    return put, get


def exists(s3, bucket, key) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except s3.exceptions.ClientError:
        return False


def test_a_page_of_another_origin_uploads_and_reads_under_a_cors_rule(gw, browser, page_origin):
    s3 = client(gw)
    allowed, closed, other = (f"cors-{n}-{uuid.uuid4().hex[:12]}" for n in ("open", "closed", "other"))
    for b in (allowed, closed, other):
        s3.create_bucket(Bucket=b)
    s3.put_bucket_cors(
        Bucket=allowed,
        CORSConfiguration={"CORSRules": [{
            "AllowedOrigins": [page_origin], "AllowedMethods": ["GET", "PUT", "POST"],
            "AllowedHeaders": ["*"], "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 60,
        }]},
    )
    # a rule for some other site only
    s3.put_bucket_cors(
        Bucket=other,
        CORSConfiguration={"CORSRules": [{"AllowedOrigins": ["https://elsewhere.example"], "AllowedMethods": ["GET", "PUT"]}]},
    )
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        page.goto(f"{page_origin}/index.html")
        assert page.evaluate("() => location.origin") == page_origin

        body = f"written by a browser page at {page_origin} {uuid.uuid4().hex}"
        put_url, get_url = presigned(s3, allowed, "from-browser.txt")
        out = page.evaluate(UPLOAD_JS, [put_url, get_url, body])
        assert out.get("putStatus") == 200, out
        assert out.get("getStatus") == 200 and out.get("text") == body, out
        assert out.get("etag"), "ETag is exposed by the rule"
        stored = s3.get_object(Bucket=allowed, Key="from-browser.txt")
        assert stored["Body"].read().decode() == body
        assert out["etag"] == stored["ETag"]

        # a presigned POST form (multipart, a "simple" request: no preflight; the page can read
        # the answer only because the response carries the rule's headers)
        form_body = f"form upload {uuid.uuid4().hex}"
        post = s3.generate_presigned_post(allowed, "form.txt", ExpiresIn=300)
        res = page.evaluate(POST_JS, [post["url"], post["fields"], form_body])
        assert res.get("status") == 204, res
        assert s3.get_object(Bucket=allowed, Key="form.txt")["Body"].read().decode() == form_body

        # no rule for this origin: the preflight is refused and the PUT never sent
        for bucket in (closed, other):
            put_url, get_url = presigned(s3, bucket, "blocked.txt")
            out = page.evaluate(UPLOAD_JS, [put_url, get_url, "must not arrive"])
            assert "putError" in out and "putStatus" not in out, out
            assert not exists(s3, bucket, "blocked.txt"), bucket
        # the POST form to a bucket without a rule: the browser hides the answer from the page
        post = s3.generate_presigned_post(closed, "form.txt", ExpiresIn=300)
        res = page.evaluate(POST_JS, [post["url"], post["fields"], "hidden answer"])
        assert "error" in res, res
        # the browser did send its preflights (Playwright does not show them): the gateway's
        # audit trail holds one CorsPreflight event per preflight, granted for the open bucket
        # and refused for the two others
        events = bc.Admin(gw).call("GET", "/audit?limit=1000", expect=200).json()["items"]
        pre = [(e["bucket"], e["status"]) for e in events if e["action"] == "CorsPreflight"]
        assert (allowed, 200) in pre and (closed, 403) in pre and (other, 403) in pre, pre
    finally:
        ctx.close()
