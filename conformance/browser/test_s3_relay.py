"""The console's S3 routes (/admin/v1/s3…) against the real binary, without a browser: the
request is the signed-in principal's own S3 request, so the S3 listener's authorisation decides
exactly as for aws cli — a role without the right and another tenant are refused with S3's
AccessDenied (as the admin API's JSON error, S3's request id in `x-amz-request-id`), a revoked
key's token gets nothing — and each call leaves its admin event and its S3 event in the ledger."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import requests
from conftest import Admin

MiB = 1024 * 1024


def relay(gw, token, method, bucket=None, key=None, data=None, headers=None, **query):
    path = "/admin/v1/s3" + (f"/{bucket}" if bucket else "")
    params = dict(query)
    if key is not None:
        params["key"] = key
    h = {"authorization": f"Bearer {token}", **(headers or {})}
    return requests.request(method, f"{gw.admin}{path}", params=params, data=data, headers=h, timeout=60)


def s3_code(r) -> str | None:
    """The code of a refusal: S3's, carried in the admin API's JSON error."""
    return r.json()["error"]["code"]


def test_relay_authorises_like_the_s3_path(console_gw, admin: Admin):
    gw = console_gw
    sfx = uuid.uuid4().hex[:10]
    root = admin.token()
    bucket = f"relay-{sfx}"
    r = relay(gw, root, "PUT", bucket)
    assert r.status_code == 200, r.text
    body = b"relayed bytes \x00\xff" * 1000
    r = relay(gw, root, "PUT", bucket, key="dir/a b+c.bin", data=body, headers={"content-type": "application/x-test", "x-amz-meta-note": "hi"})
    assert r.status_code == 200, r.text
    etag = r.headers["etag"]
    r = relay(gw, root, "GET", bucket, key="dir/a b+c.bin")
    assert r.status_code == 200 and r.content == body
    assert r.headers["etag"] == etag and r.headers["x-amz-meta-note"] == "hi"
    assert r.headers["content-security-policy"] == "default-src 'none'; sandbox"
    r = relay(gw, root, "GET", bucket, key="missing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "NoSuchKey", r.text
    assert r.json()["error"]["request_id"] == r.headers["x-request-id"] and r.headers["x-amz-request-id"]
    r = relay(gw, root, "GET", bucket, **{"list-type": "2", "prefix": "dir/"})
    assert "<Key>dir/a b+c.bin</Key>" in r.text

    # a viewer reads but may not write or delete: S3's own refusal, nothing changed
    viewer = admin.token(*admin.user(f"viewer-{sfx}", "viewer"))
    r = relay(gw, viewer, "GET", bucket, key="dir/a b+c.bin")
    assert r.status_code == 200 and r.content == body
    for method, kw in (("PUT", {"key": "x", "data": b"no"}), ("DELETE", {"key": "dir/a b+c.bin"}), ("DELETE", {})):
        r = relay(gw, viewer, method, bucket, **kw)
        assert (r.status_code, s3_code(r)) == (403, "AccessDenied"), (method, kw, r.text)
    assert relay(gw, root, "GET", bucket, key="dir/a b+c.bin").content == body

    # another tenant's SuperAdmin sees neither the bucket nor its objects
    admin.call("POST", "/tenants", {"name": f"globex-{sfx}"}, expect=201)
    other = admin.token(*admin.user(f"boss-{sfx}", "superadmin", f"globex-{sfx}"))
    r = relay(gw, other, "GET")
    assert r.status_code == 200 and bucket not in r.text
    for method, kw in (("GET", {"key": "dir/a b+c.bin"}), ("GET", {"list-type": "2"}), ("PUT", {"key": "x", "data": b"no"}), ("DELETE", {"key": "dir/a b+c.bin"})):
        r = relay(gw, other, method, bucket, **kw)
        assert (r.status_code, s3_code(r)) == (403, "AccessDenied"), (method, kw, r.text)

    # a revoked key's token: 401 from the admin API, nothing reaches S3
    ak, sk = admin.user(f"gone-{sfx}", "superadmin")
    gone = admin.token(ak, sk)
    admin.call("POST", f"/keys/{ak}/revoke", {}, expect=200)
    r = relay(gw, gone, "GET", bucket, key="dir/a b+c.bin")
    assert r.status_code == 401 and r.json()["error"]["code"] == "Unauthorized"

    # smuggled signature parameters and bad names: 400 before anything is sent
    for kw in ({"X-Amz-Signature": "00"}, {"key": ""}):
        r = relay(gw, root, "GET", bucket, **kw)
        assert r.status_code == 400, r.text
    assert relay(gw, root, "GET", "Bad_Bucket").status_code == 400

    # each relayed call: one admin event and one S3 event of the same principal
    r = relay(gw, viewer, "PUT", bucket, key="denied", data=b"x")
    s3_rid = r.headers["x-amz-request-id"]
    admin_rid = r.headers["x-request-id"]
    s3_ev = admin.call("GET", f"/audit?request_id={s3_rid}", expect=200).json()["items"]
    adm_ev = admin.call("GET", f"/audit?request_id={admin_rid}", expect=200).json()["items"]
    assert len(s3_ev) == 1 and len(adm_ev) == 1
    assert (s3_ev[0]["kind"], s3_ev[0]["action"], s3_ev[0]["outcome"], s3_ev[0]["principal"]) == ("s3", "PutObject", "denied", f"viewer-{sfx}")
    assert (adm_ev[0]["kind"], adm_ev[0]["action"], adm_ev[0]["status"], adm_ev[0]["principal"]) == ("admin", "admin.S3Put", 403, f"viewer-{sfx}")
    assert (adm_ev[0]["bucket"], adm_ev[0]["key"]) == (bucket, "denied")


def _self_signed(dir: Path, name: str) -> tuple[Path, Path]:
    cert, key = dir / f"{name}.pem", dir / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "30", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )
    key.chmod(0o600)
    return cert, key


def test_relay_over_tls_trusts_exactly_the_certificate_the_s3_listener_serves(vaultgate_bin, log_dir, tmp_path):
    import vg_clients_conftest as vg

    import urllib3

    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # this client is not under test
    cert, key = _self_signed(tmp_path, "served")
    s3_port, admin_port = vg.free_port(), vg.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULTGATE_", "AWS_"))}
    env.update(
        VAULTGATE_DATA_DIR=str(tmp_path / "data"),
        VAULTGATE_S3_ADDR=f"127.0.0.1:{s3_port}",
        VAULTGATE_ADMIN_ADDR=f"127.0.0.1:{admin_port}",
        VAULTGATE_TLS_CERT=str(cert),
        VAULTGATE_TLS_KEY=str(key),
        VAULTGATE_ACCESS_KEY=vg.ACCESS_KEY,
        VAULTGATE_SECRET_KEY=vg.SECRET_KEY,
    )
    admin = f"https://127.0.0.1:{admin_port}"
    with open(Path(log_dir) / "console-tls.log", "wb") as logf:
        proc = subprocess.Popen([vaultgate_bin, "serve"], env=env, stdout=logf, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{admin}/ready", verify=False, timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "TLS gateway did not start"
            time.sleep(0.2)
        # (the certificate names localhost, not 127.0.0.1: the relay trusts it by pinning)
        tok = requests.post(f"{admin}/admin/v1/auth/token", json={"access_key": vg.ACCESS_KEY, "secret_key": vg.SECRET_KEY},
                            verify=False, timeout=10).json()["token"]
        h = {"authorization": f"Bearer {tok}"}
        assert requests.put(f"{admin}/admin/v1/s3/tls-bucket", headers=h, verify=False, timeout=30).status_code == 200
        body = os.urandom(3 * MiB)
        r = requests.put(f"{admin}/admin/v1/s3/tls-bucket", params={"key": "k"}, data=body, headers=h, verify=False, timeout=60)
        assert r.status_code == 200, r.text
        r = requests.get(f"{admin}/admin/v1/s3/tls-bucket", params={"key": "k"}, headers=h, verify=False, timeout=60)
        assert r.status_code == 200 and r.content == body
        # another certificate in the file: the listener keeps serving the old one (its key no
        # longer matches, the reload is refused) and the relay no longer trusts what it is served
        other, _ = _self_signed(tmp_path, "other")
        cert.write_bytes(other.read_bytes())
        r = requests.get(f"{admin}/admin/v1/s3/tls-bucket", params={"key": "k"}, headers=h, verify=False, timeout=60)
        assert r.status_code == 503 and r.json()["error"]["code"] == "Unavailable", r.text
    finally:
        proc.terminate()
        proc.wait(20)
