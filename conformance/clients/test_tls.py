"""The production front door: both listeners over TLS with a test CA made here (openssl CLI), the
real clients against it (aws cli --ca-bundle, rclone --ca-cert, boto3 verify=CA: multipart and
presigned URLs), HTTP/2 through ALPN (curl --http2), certificates replaced on disk while an upload
is in flight, admin mTLS, the handshake deadline, the start-up refusals (plain HTTP on a public
address, secrets on the command line), `config check` on expired / mismatched / expiring
certificates, and the master key taken from a systemd-style credentials directory only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import http.client
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import (
    ACCESS_KEY,
    REGION,
    REPO_ROOT,
    SECRET_KEY,
    Gateway,
    MiB,
    free_port,
    make_payload,
    run,
    sha256,
    sha256_file,
    small_transfer_config,
    tool,
    unique_bucket,
    write_payload,
)

OPENSSL = "openssl"
CA_CNF = """[ca]
default_ca = d
[d]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = p
copy_extensions = copy
unique_subject = no
[p]
commonName = supplied
"""


def sh(*args: str, cwd: Path) -> None:
    p = subprocess.run(args, cwd=cwd, capture_output=True, check=False)
    assert p.returncode == 0, f"{' '.join(args)}: {p.stderr.decode(errors='replace')}"


class Pki:
    """A test CA and the certificates it issues (EC P-256), made with the openssl CLI."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "index.txt").write_text("")
        (root / "serial").write_text("1000\n")
        (root / "ca.cnf").write_text(CA_CNF)
        self.ca = root / "ca.crt"
        sh(OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-days", "3650", "-subj", "/CN=Vaultgate Test CA", "-keyout", "ca.key", "-out", "ca.crt", cwd=root)
        os.chmod(root / "ca.key", 0o600)

    def issue(self, name: str, cn: str = "localhost", start: str | None = None, end: str | None = None,
              days: int = 90, client: bool = False) -> tuple[Path, Path]:
        """key and certificate `name`.{key,crt}, signed by the CA; SAN localhost and 127.0.0.1."""
        key, csr, crt = f"{name}.key", f"{name}.csr", f"{name}.crt"
        san = "subjectAltName=DNS:localhost,IP:127.0.0.1"
        eku = "extendedKeyUsage=clientAuth" if client else "extendedKeyUsage=serverAuth"
        sh(OPENSSL, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-subj", f"/CN={cn}", "-addext", san, "-addext", eku, "-keyout", key, "-out", csr, cwd=self.root)
        dates = ["-startdate", start, "-enddate", end] if start else ["-days", str(days)]
        sh(OPENSSL, "ca", "-batch", "-notext", "-config", "ca.cnf", "-cert", "ca.crt", "-keyfile", "ca.key",
           "-in", csr, "-out", crt, *dates, cwd=self.root)
        os.chmod(self.root / key, 0o600)
        return self.root / crt, self.root / key

    def self_signed(self, name: str) -> tuple[Path, Path]:
        sh(OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-days", "30", "-subj", "/CN=other", "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=self.root)
        os.chmod(self.root / f"{name}.key", 0o600)
        return self.root / f"{name}.crt", self.root / f"{name}.key"


@dataclass
class TlsGateway(Gateway):
    """A gateway whose listeners serve TLS; every client trusts the test CA explicitly."""

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.s3_port}"

    @property
    def admin(self) -> str:
        return f"https://127.0.0.1:{self.admin_port}"

    def s3(self, **cfg):
        conf = {"s3": {"addressing_style": "path"}, "signature_version": "s3v4",
                "retries": {"max_attempts": 2, "mode": "standard"}}
        conf.update(cfg)
        return boto3.session.Session(
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
        ).client("s3", endpoint_url=self.endpoint, config=Config(**conf), verify=self.ca_bundle)

    def aws(self, workdir: Path, *args: str, timeout: float = 600, check: bool = True):
        cmd = [tool("aws"), "--endpoint-url", self.endpoint, "--ca-bundle", str(self.ca_bundle),
               "--region", REGION, *args]
        # aws cli v1 presigns with SigV2 unless told otherwise (the gateway refuses SigV2 by default)
        cfg = workdir / "aws-config"
        cfg.write_text("[default]\ns3 =\n    signature_version = s3v4\n")
        env = self.cli_env(workdir)
        env["AWS_CONFIG_FILE"] = str(cfg)
        return run(cmd, env, timeout, check, self)

    def rclone(self, workdir: Path, *args: str, timeout: float = 600, check: bool = True):
        cmd = [tool("rclone"), "--ca-cert", str(self.ca_bundle), "--retries", "1",
               "--low-level-retries", "1", *args]
        return run(cmd, self.cli_env(workdir), timeout, check, self)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_factory(vaultgate_bin, log_dir, tmp_path_factory, pki):
    """Starts TLS gateways with a fresh certificate each (files in their own dir, replaceable)."""
    started: list[TlsGateway] = []

    def make(name: str, start: bool = True, **extra_env) -> TlsGateway:
        crt, key = pki.issue(f"{name}-{len(started)}")
        d = tmp_path_factory.mktemp(f"tls-{name}")
        (d / "tls.crt").write_bytes(crt.read_bytes())
        (d / "tls.key").write_bytes(key.read_bytes())
        os.chmod(d / "tls.key", 0o600)
        env = {"VAULTGATE_TLS_CERT": str(d / "tls.crt"), "VAULTGATE_TLS_KEY": str(d / "tls.key")}
        env.update(extra_env)
        gw = TlsGateway(binary=vaultgate_bin, data_dir=d / "data", log_dir=log_dir, name=f"tls-{name}",
                        extra_env=env, ca_bundle=str(pki.ca))
        started.append(gw)
        if start:
            gw.start()
        return gw

    yield make
    for gw in started:
        gw.stop()


@pytest.fixture(scope="module")
def tgw(tls_factory) -> TlsGateway:
    return tls_factory("shared")


def peer_cert(port: int, ca: str, http2: bool = False) -> tuple[bytes, str | None]:
    """The DER certificate a new TLS connection to 127.0.0.1:port is served, and the ALPN choice."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(["h2", "http/1.1"] if http2 else ["http/1.1"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            return s.getpeercert(binary_form=True), s.selected_alpn_protocol()


def der_of(pem_path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem_path.read_text())


# ---------------------------------------------------------------------------------------------
# Real clients over HTTPS
# ---------------------------------------------------------------------------------------------


def test_awscli_over_https_multipart_and_presigned(tgw, workdir):
    bucket = unique_bucket("tls-aws")
    tgw.aws(workdir, "s3", "mb", f"s3://{bucket}")
    src = workdir / "big.bin"
    digest = write_payload(src, 21 * MiB + 7)  # over the cli's 8 MiB threshold: multipart
    small = workdir / "small.txt"
    small.write_bytes(make_payload(4000))
    tgw.aws(workdir, "s3", "cp", str(src), f"s3://{bucket}/big.bin")
    tgw.aws(workdir, "s3", "cp", str(small), f"s3://{bucket}/small.txt")
    head = json.loads(tgw.aws(workdir, "s3api", "head-object", "--bucket", bucket, "--key", "big.bin").stdout)
    assert head["ContentLength"] == 21 * MiB + 7
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]  # 8 MiB parts: 3 of them
    down = workdir / "down.bin"
    tgw.aws(workdir, "s3", "cp", f"s3://{bucket}/big.bin", str(down))
    assert sha256_file(down) == digest
    ls = tgw.aws(workdir, "s3", "ls", f"s3://{bucket}/").stdout.decode()
    assert "big.bin" in ls and "small.txt" in ls
    # a presigned URL made by the cli, fetched over HTTPS with the CA
    url = tgw.aws(workdir, "s3", "presign", f"s3://{bucket}/small.txt", "--expires-in", "300").stdout.decode().strip()
    assert url.startswith("https://127.0.0.1:")
    r = requests.get(url, verify=tgw.ca_bundle, timeout=30)
    assert r.status_code == 200 and r.content == small.read_bytes()
    # without the CA, the cli refuses the certificate (it is not a public one)
    env = tgw.cli_env(workdir)
    p = run([tool("aws"), "--endpoint-url", tgw.endpoint, "--region", REGION, "s3", "ls"], env, 120, False, tgw)
    assert p.returncode != 0 and b"SSL" in p.stderr + p.stdout, p.stderr


def test_rclone_over_https_multipart_and_check(tgw, workdir):
    bucket = unique_bucket("tls-rc")
    src = workdir / "src"
    digests = {"a/big.bin": write_payload(src / "a" / "big.bin", 12 * MiB + 5),
               "b.txt": write_payload(src / "b.txt", 3000)}
    remote = f"gw:{bucket}/tree"
    tgw.rclone(workdir, "mkdir", f"gw:{bucket}")
    tgw.rclone(workdir, "copy", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", str(src), remote)
    tgw.rclone(workdir, "check", "--download", str(src), remote)
    down = workdir / "down"
    tgw.rclone(workdir, "copy", remote, str(down))
    assert {k: sha256_file(down / k) for k in digests} == digests
    s3 = tgw.s3()
    etag = s3.head_object(Bucket=bucket, Key="tree/a/big.bin")["ETag"].strip('"')
    assert etag.endswith("-3"), etag  # 5 MiB chunks: multipart
    # rclone without the CA cannot connect
    p = run([tool("rclone"), "--retries", "1", "--low-level-retries", "1", "lsf", remote], tgw.cli_env(workdir),
            120, False, tgw)
    assert p.returncode != 0 and b"certificate" in p.stderr, p.stderr


def test_boto3_over_https_multipart_and_presigned(tgw, tmp_path):
    s3 = tgw.s3()
    bucket = unique_bucket("tls-b3")
    s3.create_bucket(Bucket=bucket)
    big = tmp_path / "big.bin"
    digest = write_payload(big, 11 * MiB + 3)
    s3.upload_file(str(big), bucket, "big.bin", Config=small_transfer_config())
    assert s3.head_object(Bucket=bucket, Key="big.bin")["ETag"].strip('"').endswith("-3")
    assert sha256(s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read()) == digest
    rng = s3.get_object(Bucket=bucket, Key="big.bin", Range="bytes=5242870-5242889")["Body"].read()
    assert rng == big.read_bytes()[5242870:5242890]
    # presigned PUT then presigned GET, both over HTTPS
    body = make_payload(70_000)
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "p.bin"}, ExpiresIn=300)
    assert put_url.startswith("https://")
    r = requests.put(put_url, data=body, verify=tgw.ca_bundle, timeout=30)
    assert r.status_code == 200, r.text
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p.bin"}, ExpiresIn=300)
    r = requests.get(get_url, verify=tgw.ca_bundle, timeout=30)
    assert r.status_code == 200 and sha256(r.content) == sha256(body)
    # a tampered presigned URL is refused over TLS as over HTTP
    r = requests.get(get_url.replace("p.bin", "big.bin"), verify=tgw.ca_bundle, timeout=30)
    assert r.status_code == 403


def test_http2_via_alpn_and_old_protocols_refused(tgw, tmp_path):
    s3 = tgw.s3()
    bucket = unique_bucket("tls-h2")
    s3.create_bucket(Bucket=bucket)
    body = make_payload(300_000)
    s3.put_object(Bucket=bucket, Key="h2.bin", Body=body)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "h2.bin"}, ExpiresIn=300)
    out = tmp_path / "h2.out"
    for flag, want in (("--http2", "2"), ("--http1.1", "1.1")):
        p = subprocess.run(["curl", "-sS", flag, "--cacert", tgw.ca_bundle, "-o", str(out), "-w",
                            "%{http_version} %{http_code}", url], capture_output=True, timeout=60, check=False)
        assert p.stdout.decode() == f"{want} 200", (flag, p.stdout, p.stderr)
        assert out.read_bytes() == body
    # the admin listener too (same certificate by default)
    p = subprocess.run(["curl", "-sS", "--http2", "--cacert", tgw.ca_bundle, "-w", " %{http_version}",
                        f"{tgw.admin}/health"], capture_output=True, timeout=30, check=False)
    assert p.stdout.decode().endswith(" 2"), p.stdout
    _, alpn = peer_cert(tgw.s3_port, tgw.ca_bundle, http2=True)
    assert alpn == "h2"
    # TLS 1.1 and below are not offered
    p = subprocess.run(["curl", "-sS", "--tlsv1.0", "--tls-max", "1.1", "--cacert", tgw.ca_bundle, url],
                       capture_output=True, timeout=30, check=False)
    assert p.returncode != 0, p.stdout
    # the expiry metric names both listeners
    m = requests.get(f"{tgw.admin}/metrics", verify=tgw.ca_bundle, timeout=10).text
    found = dict(re.findall(r'vaultgate_tls_cert_not_after_seconds\{listener="(\w+)"\} (\d+)', m))
    assert set(found) == {"s3", "admin"}, m
    assert int(found["s3"]) > time.time() + 80 * 86400


# ---------------------------------------------------------------------------------------------
# Certificate reload
# ---------------------------------------------------------------------------------------------


def replace_pair(d: Path, crt: Path, key: Path) -> None:
    """As certbot or cert-manager do: new files moved into place (key first, then the chain)."""
    for src, dst in ((key, d / "tls.key"), (crt, d / "tls.crt")):
        tmp = dst.with_suffix(".new")
        tmp.write_bytes(src.read_bytes())
        os.chmod(tmp, 0o600)
        os.replace(tmp, dst)


def wait_served(gw: TlsGateway, want: bytes, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if peer_cert(gw.s3_port, gw.ca_bundle)[0] == want:
            return time.monotonic() - t0
        time.sleep(0.2)
    pytest.fail(f"new certificate not served after {timeout}s; log:\n{gw.log_tail(30)}")


def test_certificate_replaced_on_disk_while_an_upload_is_in_flight(tls_factory, pki):
    gw = tls_factory("reload")
    d = Path(gw.extra_env["VAULTGATE_TLS_CERT"]).parent
    first = der_of(d / "tls.crt")
    assert peer_cert(gw.s3_port, gw.ca_bundle)[0] == first
    s3 = gw.s3()
    bucket = unique_bucket("tls-rl")
    s3.create_bucket(Bucket=bucket)

    # a slow PUT on its own TLS connection: 24 pieces of 128 KiB, one every 0.4 s (~10 s)
    pieces = [make_payload(128 * 1024) for _ in range(24)]
    body = b"".join(pieces)
    url = f"{gw.endpoint}/{bucket}/slow.bin"
    hdrs = gw.sign("PUT", url, headers={"Content-Length": str(len(body))}, unsigned_payload=True)
    ctx = ssl.create_default_context(cafile=gw.ca_bundle)
    conn = http.client.HTTPSConnection("127.0.0.1", gw.s3_port, context=ctx, timeout=60)
    result: dict = {}

    def upload() -> None:
        try:
            conn.putrequest("PUT", f"/{bucket}/slow.bin", skip_accept_encoding=True)
            for k, v in hdrs.items():
                if k.lower() != "host":
                    conn.putheader(k, v)
            conn.endheaders()
            for p in pieces:
                conn.send(p)
                time.sleep(0.4)
            resp = conn.getresponse()
            result["status"] = resp.status
            result["body"] = resp.read()
        except Exception as e:  # noqa: BLE001 - reported below
            result["error"] = repr(e)

    t = threading.Thread(target=upload)
    t.start()
    time.sleep(1.0)
    assert conn.sock is not None and der_of_sock(conn.sock) == first
    # renewal in place, picked up by the file poll (no signal, no restart)
    crt2, key2 = pki.issue("renewed-1")
    replace_pair(d, crt2, key2)
    waited = wait_served(gw, der_of(crt2), timeout=15)
    t.join(60)
    assert not t.is_alive()
    assert result.get("status") == 200, (result, gw.log_tail(30))
    assert sha256(s3.get_object(Bucket=bucket, Key="slow.bin")["Body"].read()) == sha256(body)
    assert waited < 12

    # SIGHUP reloads at once
    crt3, key3 = pki.issue("renewed-2")
    replace_pair(d, crt3, key3)
    gw.proc.send_signal(signal.SIGHUP)
    assert wait_served(gw, der_of(crt3), timeout=3) < 3
    # a broken renewal (a certificate of another key) keeps the served one and says why
    crt4, _ = pki.issue("renewed-3")
    (d / "tls.crt").write_bytes(crt4.read_bytes())
    gw.proc.send_signal(signal.SIGHUP)
    time.sleep(1.5)
    assert peer_cert(gw.s3_port, gw.ca_bundle)[0] == der_of(crt3)
    assert "does not match" in gw.log_tail(20)
    assert gw.proc.poll() is None, "SIGHUP must not end the process"
    m = requests.get(f"{gw.admin}/metrics", verify=gw.ca_bundle, timeout=10).text
    assert 'vaultgate_tls_reloads_total{listener="s3",result="error"}' in m
    # a restart with the broken pair refuses to start, naming the files
    gw.stop()
    p = subprocess.run([gw.binary, "serve"], env=gw.env(), capture_output=True, timeout=60, check=False)
    assert p.returncode != 0
    assert "does not match" in p.stderr.decode().strip().splitlines()[-1]


def der_of_sock(sock) -> bytes:
    return sock.getpeercert(binary_form=True)


# ---------------------------------------------------------------------------------------------
# Admin mTLS, handshake deadline
# ---------------------------------------------------------------------------------------------


def test_admin_listener_requires_a_client_certificate_when_configured(tls_factory, pki, tmp_path):
    gw = tls_factory("mtls", start=False, VAULTGATE_ADMIN_TLS_CLIENT_CA=str(pki.ca))
    ccrt, ckey = pki.issue("client-1", cn="operator", client=True)
    # the readiness probe of the fixture has no client certificate: start by hand, wait on S3
    gw.s3_port, gw.admin_port = free_port(), free_port()
    gw.data_dir.mkdir(parents=True, exist_ok=True)
    log = tmp_path / "mtls.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen([gw.binary, "serve"], env=gw.env(), stdout=f, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(gw.endpoint, verify=gw.ca_bundle, timeout=2)
                break
            except requests.RequestException:
                time.sleep(0.2)
        health = f"{gw.admin}/health"
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(health, verify=gw.ca_bundle, timeout=5)
        r = requests.get(health, verify=gw.ca_bundle, cert=(str(ccrt), str(ckey)), timeout=5)
        assert r.status_code == 200 and r.json()["status"] == "ok"
        # a client certificate from another CA is refused
        ocrt, okey = pki.self_signed("stranger")
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(health, verify=gw.ca_bundle, cert=(str(ocrt), str(okey)), timeout=5)
        # the S3 listener does not ask for one
        r = requests.get(gw.endpoint, verify=gw.ca_bundle, timeout=5)
        assert r.status_code == 403
        assert "client certificates required" in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def test_a_silent_client_is_cut_off_at_the_handshake_deadline(tls_factory):
    gw = tls_factory("deadline", VAULTGATE_HEADER_READ_TIMEOUT_SECS="3", VAULTGATE_MAX_CONNECTIONS_PER_IP="3")
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", gw.s3_port), timeout=10) as s:
        assert s.recv(1) == b""  # closed by the server, no handshake started
    took = time.monotonic() - t0
    assert 2.5 < took < 7, took
    # the per-address cap applies before the handshake: 3 silent sockets, the 4th is closed at once
    held = [socket.create_connection(("127.0.0.1", gw.s3_port), timeout=10) for _ in range(3)]
    time.sleep(1.0)  # let the accept loop take all three (the machine may be busy)
    with socket.create_connection(("127.0.0.1", gw.s3_port), timeout=10) as s:
        t1 = time.monotonic()
        assert s.recv(1) == b""
        assert time.monotonic() - t1 < 2  # the handshake deadline is 3 s
    for s in held:
        s.close()
    time.sleep(3.5)
    assert peer_cert(gw.s3_port, gw.ca_bundle)[0]  # still serving
    m = requests.get(f"{gw.admin}/metrics", verify=gw.ca_bundle, timeout=10).text
    n = re.search(r'vaultgate_tls_handshake_failures_total\{listener="s3"\} (\d+)', m)
    assert n and int(n.group(1)) >= 1, m


# ---------------------------------------------------------------------------------------------
# Refusals and config check
# ---------------------------------------------------------------------------------------------


def one_line_failure(p: subprocess.CompletedProcess) -> str:
    assert p.returncode != 0, p.stdout
    err = p.stderr.decode().strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("vaultgate: "), err
    return err


def test_refusals_exit_non_zero_with_one_line(vaultgate_bin, pki, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULTGATE_", "BLOB_KEY", "CREDENTIALS"))}
    env["VAULTGATE_DATA_DIR"] = str(tmp_path / "data")

    def vg(*args: str, **extra) -> subprocess.CompletedProcess:
        return subprocess.run([vaultgate_bin, *args], env={**env, **extra}, capture_output=True, timeout=60,
                              check=False)

    err = one_line_failure(vg("serve", "--s3-addr", "0.0.0.0:0", "--admin-addr", "127.0.0.1:0"))
    assert "not a loopback address and has no TLS certificate" in err and "--insecure-http" in err
    err = one_line_failure(vg("serve", "--admin-addr", "0.0.0.0:0", "--s3-addr", "127.0.0.1:0"))
    assert "admin_addr 0.0.0.0:0" in err
    assert not (tmp_path / "data").exists(), "refused before anything was created"
    # a secret on the command line
    err = one_line_failure(vg("serve", "--master-key", "ab" * 32))
    assert "--master-key is refused" in err and "ab" * 32 not in err
    err = one_line_failure(vg("config", "check", "--secret-key", "s3cr3t-value"))
    assert "--secret-key is refused" in err and "s3cr3t-value" not in err

    expired = pki.issue("expired", start="20200101000000Z", end="20200201000000Z")
    good = pki.issue("good")
    other = pki.issue("other")
    soon = pki.issue("soon", days=10)
    err = one_line_failure(vg("config", "check", "--tls-cert", str(expired[0]), "--tls-key", str(expired[1])))
    assert "expired at 2020-02-01T00:00:00Z" in err, err
    err = one_line_failure(vg("config", "check", "--tls-cert", str(good[0]), "--tls-key", str(other[1])))
    assert "does not match" in err, err
    err = one_line_failure(vg("config", "check", "--tls-cert", str(good[0])))
    assert "must be set together" in err, err
    err = one_line_failure(vg("config", "check", "--tls-cert", str(good[0]), "--tls-key", str(good[1]),
                              "--admin-tls-cert", str(expired[0]), "--admin-tls-key", str(expired[1])))
    assert "expired" in err, err
    # serve refuses an expired certificate too
    err = one_line_failure(vg("serve", "--s3-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
                              "--tls-cert", str(expired[0]), "--tls-key", str(expired[1])))
    assert "expired" in err
    # a valid one is reported; one expiring within 30 days is warned about (exit 0)
    p = vg("config", "check", "--tls-cert", str(good[0]), "--tls-key", str(good[1]))
    assert p.returncode == 0, p.stderr
    assert "# s3 listener: TLS, certificate" in p.stdout.decode() and p.stderr == b""
    p = vg("config", "check", "--tls-cert", str(soon[0]), "--tls-key", str(soon[1]))
    assert p.returncode == 0, p.stderr
    assert "in less than 30 days" in p.stderr.decode()
    # a public address with TLS is accepted by config check (nothing is bound)
    p = vg("config", "check", "--s3-addr", "0.0.0.0:9000", "--admin-addr", "0.0.0.0:9001",
           "--tls-cert", str(good[0]), "--tls-key", str(good[1]))
    assert p.returncode == 0, p.stderr
    p = vg("config", "check", "--s3-addr", "0.0.0.0:9000", VAULTGATE_INSECURE_HTTP="true")
    assert p.returncode == 0, p.stderr


# ---------------------------------------------------------------------------------------------
# Master key custody
# ---------------------------------------------------------------------------------------------


def test_master_key_only_from_a_credentials_directory(gateway_factory, tmp_path):
    key = os.urandom(32).hex()
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "master_key").write_text(key + "\n")
    os.chmod(creds / "master_key", 0o400)
    os.chmod(creds, 0o500)
    gw = gateway_factory("creds", start=False, CREDENTIALS_DIRECTORY=str(creds))
    gw.start()
    started = [json.loads(line) for line in gw.log_path.read_text().splitlines()
               if line.startswith("{") and "vaultgate started" in line]
    assert len(started) == 1, gw.log_tail()
    line = started[0]
    assert line["key_provider"] == "local key from systemd credential master_key", line
    assert line["secret_sources"].startswith("master_key: systemd credential master_key;"), line
    assert key not in gw.log_path.read_text()
    # no key file was generated next to the data: the data dir was not a key source
    assert not (gw.data_dir / "master.key").exists()
    s3 = gw.s3()
    s3.create_bucket(Bucket="custody")
    body = make_payload(200_000)
    s3.put_object(Bucket="custody", Key="k.bin", Body=body)
    gw.stop()

    # the same key from the environment reads the object: it was sealed under that key
    gw.extra_env = {"VAULTGATE_MASTER_KEY": key}
    gw.start()
    assert sha256(gw.s3().get_object(Bucket="custody", Key="k.bin")["Body"].read()) == sha256(body)
    gw.stop()
    # another key cannot: the gateway refuses to start, because the data (and the sealed access
    # keys) are wrapped by the credential's key, not by anything else it might have read
    other = os.urandom(32).hex()
    env = {**gw.env(), "VAULTGATE_MASTER_KEY": other}
    err = subprocess.run([gw.binary, "serve"], env=env, capture_output=True, timeout=60,
                         check=False).stderr.decode().strip().splitlines()[-1]
    assert "is not in this key provider" in err, err
    assert other not in err and key not in err

    # the credential and a variable at once: refused, naming both sources, never a value
    wrong = os.urandom(32).hex()
    env = {**gw.env(), "CREDENTIALS_DIRECTORY": str(creds), "VAULTGATE_MASTER_KEY": wrong}
    p = subprocess.run([gw.binary, "serve"], env=env, capture_output=True, timeout=60, check=False)
    err = one_line_failure(p)
    assert "systemd credential master_key" in err and "environment VAULTGATE_MASTER_KEY" in err, err
    assert key not in err and wrong not in err
    # a credential file other users may read is refused
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "master_key").write_text(key)
    os.chmod(loose / "master_key", 0o644)
    env = {**gw.env(), "CREDENTIALS_DIRECTORY": str(loose)}
    env.pop("VAULTGATE_MASTER_KEY", None)
    err = one_line_failure(subprocess.run([gw.binary, "serve"], env=env, capture_output=True, timeout=60,
                                          check=False))
    assert "readable by other users" in err, err
    # VAULTGATE_MASTER_KEY_FILE (a Kubernetes secret mounted as a file) works the same way
    kf = tmp_path / "mk"
    kf.write_text(key)
    os.chmod(kf, 0o440)
    gw.extra_env = {"VAULTGATE_MASTER_KEY_FILE": str(kf)}
    gw.start()
    assert sha256(gw.s3().get_object(Bucket="custody", Key="k.bin")["Body"].read()) == sha256(body)
    assert f"file {kf} (VAULTGATE_MASTER_KEY_FILE)" in gw.log_path.read_text()
    gw.stop()


# ---------------------------------------------------------------------------------------------
# deploy/haproxy/haproxy.cfg in front of a TLS gateway
# ---------------------------------------------------------------------------------------------


def test_deploy_haproxy_config_streams_s3_through_to_a_tls_gateway(tls_factory, pki, tmp_path, workdir):
    """The shipped HAProxy config (paths and addresses substituted only) in front of a gateway:
    TLS to the client, re-encrypted and verified to the gateway, health-checked on /ready; aws cli
    multipart up and down, a 100-continue upload with curl, HTTP/2 to the client."""
    haproxy = shutil.which("haproxy")
    assert haproxy, "haproxy not installed (conformance/run's deploy step installs it with apt)"
    gw = tls_factory("lb")
    certs = tmp_path / "certs"
    certs.mkdir()
    crt, key = pki.issue("lb-front")
    (certs / "lb.pem").write_bytes(crt.read_bytes() + key.read_bytes())
    (certs / "ca.crt").write_bytes(Path(gw.ca_bundle).read_bytes())
    lb_port = free_port()
    cfg = (REPO_ROOT / "deploy" / "haproxy" / "haproxy.cfg").read_text()
    for old, new in (("/etc/haproxy/certs/", f"{certs}/"), ("bind :8443", f"bind 127.0.0.1:{lb_port}"),
                     ("vaultgate1 vaultgate:9000", f"vaultgate1 127.0.0.1:{gw.s3_port}"),
                     ("port 9001", f"port {gw.admin_port}"), ("str(vaultgate)", "str(localhost)"),
                     ("check-sni vaultgate", "check-sni localhost"),
                     # this machine's descriptor limit is lower than a production host's
                     ("maxconn 20000", "maxconn 2000")):
        assert old in cfg, old
        cfg = cfg.replace(old, new)
    (tmp_path / "haproxy.cfg").write_text(cfg)
    log = open(tmp_path / "haproxy.log", "wb")
    proc = subprocess.Popen([haproxy, "-f", str(tmp_path / "haproxy.cfg"), "-db"], stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        lb = f"https://127.0.0.1:{lb_port}"
        deadline = time.monotonic() + 20
        code = 0
        while time.monotonic() < deadline and code != 403:  # anonymous GET / reaches the gateway
            try:
                code = requests.get(lb, verify=gw.ca_bundle, timeout=2).status_code
            except requests.RequestException:
                pass
            time.sleep(0.3)
        assert code == 403, (tmp_path / "haproxy.log").read_text()[-2000:]
        via = TlsGateway(binary=gw.binary, data_dir=gw.data_dir, log_dir=gw.log_dir, name="via-lb",
                         ca_bundle=gw.ca_bundle)
        via.s3_port = lb_port
        bucket = unique_bucket("tls-lb")
        via.aws(workdir, "s3", "mb", f"s3://{bucket}")
        src = workdir / "big.bin"
        digest = write_payload(src, 20 * MiB + 1)
        via.aws(workdir, "s3", "cp", str(src), f"s3://{bucket}/big.bin")
        down = workdir / "down.bin"
        via.aws(workdir, "s3", "cp", f"s3://{bucket}/big.bin", str(down))
        assert sha256_file(down) == digest
        # Expect: 100-continue (curl sends it for bodies over 1 MiB) through the proxy
        url = via.s3().generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "c.bin"},
                                              ExpiresIn=300)
        p = subprocess.run(["curl", "-sS", "-v", "--http1.1", "--cacert", gw.ca_bundle, "-T", str(src), "-o",
                            "/dev/null", "-w", "%{http_code}", url], capture_output=True, timeout=120, check=False)
        assert p.stdout.decode() == "200", p.stderr[-2000:]
        assert b"Expect: 100-continue" in p.stderr and b"HTTP/1.1 100 Continue" in p.stderr
        assert sha256(gw.s3().get_object(Bucket=bucket, Key="c.bin")["Body"].read()) == digest
        p = subprocess.run(["curl", "-sS", "--http2", "--cacert", gw.ca_bundle, "-o", "/dev/null", "-w",
                            "%{http_version}", lb], capture_output=True, timeout=30, check=False)
        assert p.stdout.decode() == "2", p
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_master_key_rotation_with_the_previous_key_as_a_credential(gateway_factory, tmp_path):
    """Rotation: the new key as master_key and the old one as master_key_previous (both systemd
    credentials); the gateway re-wraps every data key at start, after which the new key alone
    reads everything and the old one alone no longer starts the gateway."""
    old, new = os.urandom(32).hex(), os.urandom(32).hex()

    def creds(name: str, **files: str) -> str:
        d = tmp_path / name
        d.mkdir()
        for k, v in files.items():
            (d / k).write_text(v)
            os.chmod(d / k, 0o400)
        return str(d)

    gw = gateway_factory("rotate", start=False, CREDENTIALS_DIRECTORY=creds("c1", master_key=old))
    gw.start()
    s3 = gw.s3()
    s3.create_bucket(Bucket="rot-a")
    s3.create_bucket(Bucket="rot-b")
    bodies = {("rot-a", "x"): make_payload(100_000), ("rot-b", "y"): make_payload(7 * MiB)}
    for (b, k), v in bodies.items():
        s3.put_object(Bucket=b, Key=k, Body=v)
    gw.stop()

    gw.extra_env = {"CREDENTIALS_DIRECTORY": creds("c2", master_key=new, master_key_previous=old)}
    gw.start()
    deadline = time.monotonic() + 20
    while "master key rotation: every data key" not in gw.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    line = [json.loads(x) for x in gw.log_path.read_text().splitlines()
            if x.startswith("{") and "master key rotation" in x]
    assert line and line[0]["level"] == "INFO" and line[0]["rewrapped"] >= 3, gw.log_tail()  # 2 buckets + secrets
    assert "master_key_previous: systemd credential master_key_previous" in gw.log_path.read_text()
    gw.stop()

    gw.extra_env = {"CREDENTIALS_DIRECTORY": creds("c3", master_key=new)}
    gw.start()
    for (b, k), v in bodies.items():
        assert sha256(gw.s3().get_object(Bucket=b, Key=k)["Body"].read()) == sha256(v)
    gw.stop()
    env = {**gw.env(), "CREDENTIALS_DIRECTORY": creds("c4", master_key=old)}
    err = subprocess.run([gw.binary, "serve"], env=env, capture_output=True, timeout=60,
                         check=False).stderr.decode().strip().splitlines()[-1]
    assert "is not in this key provider" in err, err
