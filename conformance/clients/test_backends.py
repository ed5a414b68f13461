"""Real clients against a gateway whose backend is a real object store: SeaweedFS (`s3://`) and
Azurite (`azure://`), each test module run once per backend with its own fresh backend bucket or
container and its own gateway data dir.

- aws cli: `s3 cp` of a ~40 MiB file (8 MiB multipart parts) up and down, `s3 sync` of ~50 files up
  and back down into a new dir.
- rclone: `sync` up, `check --download` clean, `copy` back down.
- Then the backend is read DIRECTLY with an independent client (boto3 against SeaweedFS with the
  backend credentials; SharedKey-signed REST calls against Azurite with the emulator's well-known
  key): every backend object name is opaque (no object key, key segment or bucket name in it), and
  no backend object holds plaintext (any 16-byte aligned block of the session marker that every
  uploaded payload carries) or an object key.

Every download is compared by SHA-256 with its source. The services come from `conformance/run`
(or `conformance/lib/{seaweedfs,azurite}.sh`), which export VAULTGATE_TEST_S3_ENDPOINT,
VAULTGATE_TEST_S3_ACCESS_KEY, VAULTGATE_TEST_S3_SECRET_KEY and VAULTGATE_TEST_AZURE_ENDPOINT; when
they are missing these tests fail if VAULTGATE_REQUIRE_SERVICES=1 and are skipped otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from conftest import (
    MARKER,
    S3_ENV,
    Gateway,
    MiB,
    SeaweedStore,
    list_all,
    make_payload,
    require_env,
    sha256,
    sha256_file,
    tree_digests,
    write_payload,
)

# Any 32-byte window of the 64-byte marker contains one of these aligned 16-byte blocks.
NEEDLES = [MARKER[i : i + 16] for i in range(0, len(MARKER), 16)]

OPAQUE_ID = re.compile(r"[0-9a-f]{4}[0-9a-f.-]{0,124}")

AZURE_ACCOUNT = "devstoreaccount1"
# The Azure storage emulator's published, well-known development key (not a secret).
AZURE_DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURE_VERSION = "2021-08-06"

AZURE_ENV = ("VAULTGATE_TEST_AZURE_ENDPOINT",)


def multipart_etag(path: Path, part_size: int) -> str:
    md5s = []
    with open(path, "rb") as f:
        while chunk := f.read(part_size):
            md5s.append(hashlib.md5(chunk).digest())
    return f"{hashlib.md5(b''.join(md5s)).hexdigest()}-{len(md5s)}"


# ---------------------------------------------------------------------------------------------
# Independent clients of the backend stores
# ---------------------------------------------------------------------------------------------


class AzuriteStore:
    """One container of Azurite, read with SharedKey-signed REST calls (the emulator's dev key)."""

    def __init__(self, container: str):
        self.container = self.name = container
        self.endpoint = os.environ["VAULTGATE_TEST_AZURE_ENDPOINT"].rstrip("/")
        self.key = base64.b64decode(AZURE_DEV_KEY)
        self.http = requests.Session()

    def gateway_env(self) -> dict:
        return {
            "VAULTGATE_BACKEND": (
                f"azure://{self.container}?account={AZURE_ACCOUNT}&endpoint={self.endpoint}&use_emulator=true"
            ),
        }

    def _request(
        self, method: str, path: str, query: dict, body: bytes = b"", headers: dict | None = None
    ) -> requests.Response:
        """METHOD endpoint/path?query, signed with Shared Key (path-style emulator URL)."""
        url_path = requests.utils.urlparse(self.endpoint).path + path
        ms = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": AZURE_VERSION, **(headers or {})}
        canon_headers = "".join(f"{k}:{ms[k]}\n" for k in sorted(ms))
        canon_resource = f"/{AZURE_ACCOUNT}{url_path}" + "".join(
            f"\n{k.lower()}:{query[k]}" for k in sorted(query, key=str.lower)
        )
        # VERB, Content-Encoding, -Language, -Length (empty when 0), -MD5, -Type, Date, If-Modified-Since,
        # If-Match, If-None-Match, If-Unmodified-Since, Range; then x-ms-* headers and the resource.
        length = str(len(body)) if body else ""
        string_to_sign = f"{method}\n\n\n{length}\n\n\n\n\n\n\n\n\n" + canon_headers + canon_resource
        sig = base64.b64encode(hmac.new(self.key, string_to_sign.encode(), hashlib.sha256).digest()).decode()
        ms["Authorization"] = f"SharedKey {AZURE_ACCOUNT}:{sig}"
        return self.http.request(method, self.endpoint + path, params=query, headers=ms, data=body, timeout=60)

    def _get(self, path: str, query: dict) -> requests.Response:
        return self._request("GET", path, query)

    def exists(self) -> bool:
        r = self._get(f"/{self.container}", {"restype": "container"})
        assert r.status_code in (200, 404), f"container properties: {r.status_code} {r.text[:400]}"
        return r.status_code == 200

    def names(self) -> list[str]:
        out: list[str] = []
        marker = ""
        while True:
            q = {"restype": "container", "comp": "list", "maxresults": "1000"}
            if marker:
                q["marker"] = marker
            r = self._get(f"/{self.container}", q)
            assert r.status_code == 200, f"list blobs: {r.status_code} {r.text[:400]}"
            root = ET.fromstring(r.content)
            out += [n.text or "" for n in root.iter("Name")]
            marker = (root.findtext("NextMarker") or "").strip()
            if not marker:
                return out

    def read(self, name: str) -> bytes:
        r = self._get(f"/{self.container}/{quote(name, safe='/')}", {})
        assert r.status_code == 200, f"get blob {name!r}: {r.status_code} {r.text[:400]}"
        return r.content

    def put(self, name: str, body: bytes) -> None:
        r = self._request(
            "PUT", f"/{self.container}/{quote(name, safe='/')}", {}, body, {"x-ms-blob-type": "BlockBlob"}
        )
        assert r.status_code == 201, f"put blob {name!r}: {r.status_code} {r.text[:400]}"

    def delete(self, name: str) -> None:
        r = self._request("DELETE", f"/{self.container}/{quote(name, safe='/')}", {})
        assert r.status_code == 202, f"delete blob {name!r}: {r.status_code} {r.text[:400]}"


@dataclass
class BackendGateway:
    kind: str
    gw: Gateway
    store: SeaweedStore | AzuriteStore
    bucket: str
    token: str
    uploaded: dict = field(default_factory=dict)  # gateway key -> sha256 of what the clients uploaded

    def s3(self):
        return self.gw.s3()


@pytest.fixture(scope="module", params=["s3", "azure"])
def bk(request, gateway_factory) -> BackendGateway:
    kind = request.param
    token = secrets.token_hex(6)
    if kind == "s3":
        require_env(S3_ENV, "SeaweedFS")
        store = SeaweedStore(f"vgbk-{token}")
    else:
        require_env(AZURE_ENV, "Azurite")
        store = AzuriteStore(f"vgbk-{token}")
    assert not store.exists(), f"fresh backend {kind} bucket/container {store.name} exists already"
    gw = gateway_factory(f"backend-{kind}-{token}", **store.gateway_env())
    # The gateway creates its bucket/container at start-up.
    assert store.exists(), f"the gateway did not create the {kind} backend bucket/container"
    bucket = f"clients-bucket-{token}"
    gw.s3().create_bucket(Bucket=bucket)
    yield BackendGateway(kind=kind, gw=gw, store=store, bucket=bucket, token=token)
    gw.stop()


# ---------------------------------------------------------------------------------------------
# aws cli
# ---------------------------------------------------------------------------------------------


def test_aws_cp_40mib_multipart_roundtrip(bk, tmp_path):
    key = f"big-object-{bk.token}.bin"
    src = tmp_path / "big.bin"
    digest = write_payload(src, 40 * MiB + 4321)
    bk.gw.aws(tmp_path, "s3", "cp", str(src), f"s3://{bk.bucket}/{key}")
    bk.uploaded[key] = digest

    head = bk.s3().head_object(Bucket=bk.bucket, Key=key)
    assert head["ContentLength"] == 40 * MiB + 4321
    # aws cli v1 uses 8 MiB parts: 6 parts, S3's multipart ETag over the plaintext parts
    assert head["ETag"].strip('"') == multipart_etag(src, 8 * MiB)

    out = tmp_path / "big.out"
    bk.gw.aws(tmp_path, "s3", "cp", f"s3://{bk.bucket}/{key}", str(out))
    assert sha256_file(out) == digest


def make_sync_tree(root: Path, token: str) -> dict:
    """~50 files with distinctive names (so a leaked name is findable) in nested dirs."""
    sizes = [0, 33, 80, 4096, 65535, 65537, 200_003]
    dirs = ["", f"folder-{token}", f"folder-{token}/nested-{token}", f"other dir-{token}"]
    files = {}
    for i in range(48):
        d = dirs[i % len(dirs)]
        rel = (f"{d}/" if d else "") + f"document-{i:02d}-{token}.dat"
        files[rel] = write_payload(root / rel, sizes[i % len(sizes)])
    files[f"large/nine-mib-{token}.bin"] = write_payload(root / f"large/nine-mib-{token}.bin", 9 * MiB + 11)
    old = time.time() - 3600  # an hour old: LastModified has whole seconds
    for rel in files:
        os.utime(root / rel, (old, old))
    return files


def test_aws_sync_tree_up_and_down(bk, tmp_path):
    src = tmp_path / "src"
    files = make_sync_tree(src, f"aws{bk.token}")
    assert len(files) >= 49
    prefix = f"synced-{bk.token}/"
    bk.gw.aws(tmp_path, "s3", "sync", str(src), f"s3://{bk.bucket}/{prefix}", timeout=600)
    for rel, digest in files.items():
        bk.uploaded[prefix + rel] = digest

    listed = list_all(bk.s3(), bk.bucket)
    assert sorted(k for k in listed if k.startswith(prefix)) == sorted(prefix + k for k in files)
    assert all(listed[prefix + k][0] == (src / k).stat().st_size for k in files)

    down = tmp_path / "down"
    bk.gw.aws(tmp_path, "s3", "sync", f"s3://{bk.bucket}/{prefix}", str(down), timeout=600)
    assert tree_digests(down) == files


# ---------------------------------------------------------------------------------------------
# rclone
# ---------------------------------------------------------------------------------------------


def test_rclone_sync_check_download(bk, tmp_path):
    src = tmp_path / "rsrc"
    files = make_sync_tree(src, f"rc{bk.token}")
    remote = f"gw:{bk.bucket}/rclone-{bk.token}"
    multipart = ["--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M"]
    bk.gw.rclone(tmp_path, "sync", *multipart, str(src), remote)
    for rel, digest in files.items():
        bk.uploaded[f"rclone-{bk.token}/{rel}"] = digest

    # check --download reads back every file and compares the bytes (exit 0: no differences)
    p = bk.gw.rclone(tmp_path, "check", "--download", str(src), remote)
    assert b"0 differences found" in p.stderr, p.stderr.decode(errors="replace")[-2000:]

    listed = list_all(bk.s3(), bk.bucket)
    assert sorted(k for k in listed if k.startswith(f"rclone-{bk.token}/")) == sorted(
        f"rclone-{bk.token}/{k}" for k in files
    )

    down = tmp_path / "rdown"
    bk.gw.rclone(tmp_path, "copy", remote, str(down))
    assert tree_digests(down) == files

    # a changed file on the remote side must make check --download fail (the check is real)
    changed = next(k for k in files if (src / k).stat().st_size > 100)
    data = bytearray((src / changed).read_bytes())
    data[50] ^= 0xFF
    (src / changed).write_bytes(bytes(data))
    p = bk.gw.rclone(tmp_path, "check", "--download", str(src), remote, check=False)
    assert p.returncode != 0, "rclone check --download did not notice a changed byte"
    assert b"1 differences found" in p.stderr, p.stderr.decode(errors="replace")[-2000:]


# ---------------------------------------------------------------------------------------------
# The backend, read directly
# ---------------------------------------------------------------------------------------------


def test_backend_holds_only_opaque_names_and_no_plaintext(bk):
    # One object of this test's own, so the scan never runs on an empty store.
    s3 = bk.s3()
    own_key = f"scan-object-{bk.token}.bin"
    payload = make_payload(300_000)
    s3.put_object(Bucket=bk.bucket, Key=own_key, Body=payload)
    bk.uploaded[own_key] = sha256(payload)
    assert sha256(s3.get_object(Bucket=bk.bucket, Key=own_key)["Body"].read()) == sha256(payload)

    listed = list_all(s3, bk.bucket)
    assert set(bk.uploaded) <= set(listed), sorted(set(bk.uploaded) - set(listed))[:10]

    names = bk.store.names()
    # Every object (even an empty one) is a sealed stream of its own on the backend.
    assert len(names) >= len(listed), f"{len(names)} backend objects for {len(listed)} gateway objects"
    assert len(set(names)) == len(names)
    # Backend ids per CONTRACTS.md (`backend::validate_id`): [0-9a-f.-], first 4 chars hex, <= 128.
    bad = [n for n in names if not OPAQUE_ID.fullmatch(n)]
    assert not bad, f"backend names that are not opaque ids: {bad[:10]}"

    # Nothing went to the local data dir's object store instead.
    local = bk.gw.data_dir / "objects"
    local_files = [p for p in local.rglob("*") if p.is_file()] if local.exists() else []
    assert local_files == [], f"objects stored locally with a {bk.kind} backend: {local_files[:5]}"

    # Opaque names: no key, key segment or bucket name of the gateway appears in a backend name.
    secrets_in_names = {bk.bucket}
    for key in listed:
        secrets_in_names.add(key)
        secrets_in_names.update(seg for seg in key.split("/") if len(seg) >= 8)
    leaked = [(n, s) for n in names for s in secrets_in_names if s in n]
    assert not leaked, f"backend names reveal object names: {leaked[:10]}"
    assert not any(bk.token in n for n in names), [n for n in names if bk.token in n][:10]

    # No plaintext and no key in any backend object's bytes.
    keys_enc = [k.encode() for k in listed]
    marker_hits, key_hits, total = [], [], 0
    for n in names:
        data = bk.store.read(n)
        total += len(data)
        if any(needle in data for needle in NEEDLES):
            marker_hits.append(n)
        key_hits += [(n, k) for k in keys_enc if k in data]
    assert not marker_hits, f"plaintext marker found in backend objects: {marker_hits[:10]}"
    assert not key_hits, f"object keys found in backend objects: {key_hits[:10]}"
    # The sealed streams hold at least the ~40 MiB uploaded above (when that test ran).
    big = f"big-object-{bk.token}.bin"
    if big in listed:
        assert total >= listed[big][0]


def test_scan_detects_plaintext_through_the_independent_client(bk):
    """The scan above is real: a plaintext object put straight into the backend store (with the same
    independent client) is listed, read back byte for byte, and its marker found."""
    name = f"plain-probe-{bk.token}"
    body = b"x" * 10 + make_payload(200)
    bk.store.put(name, body)
    try:
        assert name in bk.store.names()
        data = bk.store.read(name)
    finally:
        bk.store.delete(name)
    assert data == body
    assert any(needle in data for needle in NEEDLES)
    assert name not in bk.store.names()
