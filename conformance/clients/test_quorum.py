"""End-to-end quorum (issue 7) with the real binary, the aws cli and the `vaultgate admin` CLI.

A private gateway; the bootstrap SuperAdmin logs in with the CLI (profile file, mode 0600, in a
temporary HOME), creates two more SuperAdmins and a rule "s3:DeleteBucket on qrm-* needs 2
approvals from superadmins". Then: `aws s3 rb` is refused with AccessDenied naming the approval
request, a retry names the same request, the requester cannot approve its own request, a second
vote by the same admin is refused, two other admins approve, the retry succeeds exactly once (the
bucket made again is guarded again by a new request), and an expired request can neither be
approved nor used.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import ACCESS_KEY, SECRET_KEY, Gateway

APPROVAL_ID = re.compile(r"\bapr-[0-9a-f]{20}\b")


class Admin:
    """One `vaultgate admin` identity: its own profile file, in a HOME of its own."""

    def __init__(self, gw: Gateway, home: Path, name: str):
        self.gw, self.name = gw, name
        self.home = home / name
        self.home.mkdir(parents=True, exist_ok=True)
        self.profile = self.home / ".config" / "vaultgate" / "admin.json"

    def run(self, *args: str, fmt: str = "json") -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULTGATE_", "AWS_"))}
        env.update(HOME=str(self.home), LC_ALL="C.UTF-8")
        cmd = [self.gw.binary, "admin", "--endpoint", self.gw.admin, "--format", fmt, *args]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)

    def ok(self, *args: str) -> dict | list:
        p = self.run(*args)
        assert p.returncode == 0, f"{self.name}: vaultgate admin {' '.join(args)} failed:\n{p.stderr}\n{p.stdout}"
        return json.loads(p.stdout)

    def refused(self, *args: str) -> str:
        p = self.run(*args)
        assert p.returncode != 0, f"{self.name}: vaultgate admin {' '.join(args)} should fail:\n{p.stdout}"
        return p.stderr

    def login(self, access_key: str, secret_key: str) -> None:
        self.ok("login", "--access-key", access_key, "--secret-key", secret_key)
        mode = stat.S_IMODE(self.profile.stat().st_mode)
        assert mode == 0o600, f"profile {self.profile} has mode {mode:o}"


def rb(gw: Gateway, workdir: Path, bucket: str) -> subprocess.CompletedProcess:
    return gw.aws(workdir, "s3", "rb", f"s3://{bucket}", check=False, timeout=120)


def refused_with_approval(gw: Gateway, workdir: Path, bucket: str) -> str:
    """`aws s3 rb` is refused with AccessDenied; returns the approval id its message names."""
    p = rb(gw, workdir, bucket)
    err = p.stderr.decode(errors="replace")
    assert p.returncode != 0, f"rb s3://{bucket} should have been refused: {p.stdout!r}"
    assert "AccessDenied" in err, err
    ids = APPROVAL_ID.findall(err)
    assert len(set(ids)) == 1, f"no single approval id in: {err}"
    return ids[0]


def bucket_exists(gw: Gateway, workdir: Path, bucket: str) -> bool:
    return gw.aws(workdir, "s3api", "head-bucket", "--bucket", bucket, check=False).returncode == 0


def approval(admin: Admin, approval_id: str) -> dict:
    rows = admin.ok("approvals", "list")
    found = [a for a in rows if a["id"] == approval_id]
    assert len(found) == 1, f"{approval_id} not listed: {rows}"
    return found[0]


@pytest.fixture(scope="module")
def quorum_env(gateway_factory, tmp_path_factory):
    gw = gateway_factory("quorum")
    home = tmp_path_factory.mktemp("quorum-homes")
    boot = Admin(gw, home, "admin")
    boot.login(ACCESS_KEY, SECRET_KEY)
    others = []
    for name in ("admin2", "admin3"):
        p = boot.ok("user", "create", name, "--role", "superadmin")
        assert (p["name"], p["role"], p["tenant"]) == (name, "superadmin", "default"), p
        k = boot.ok("key", "create", "--user", name)
        assert k["principal"] == name and k["access_key_id"] and k["secret_key"], k
        a = Admin(gw, home, name)
        a.login(k["access_key_id"], k["secret_key"])
        others.append(a)
    rule = boot.ok(
        "quorum", "set", "rb-guard", "--action", "s3:DeleteBucket", "--bucket-pattern", "qrm-*",
        "--approvals", "2", "--roles", "superadmin", "--ttl", "600",
    )
    assert (rule["approvals"], rule["bucket_pattern"], rule["approver_roles"]) == (2, "qrm-*", ["superadmin"]), rule
    return gw, boot, others[0], others[1]


def test_delete_bucket_needs_two_other_admins_and_runs_once(quorum_env, workdir):
    gw, boot, admin2, admin3 = quorum_env
    bucket = f"qrm-{uuid.uuid4().hex[:16]}"
    gw.aws(workdir, "s3", "mb", f"s3://{bucket}")

    first = refused_with_approval(gw, workdir, bucket)
    assert refused_with_approval(gw, workdir, bucket) == first, "a retry must name the same request"
    assert bucket_exists(gw, workdir, bucket)
    a = approval(boot, first)
    assert (a["state"], a["requester"], a["action"], a["needed"]) == ("pending", "admin", "s3:DeleteBucket", 2), a

    # the requester cannot approve its own request
    err = boot.refused("approvals", "approve", first)
    assert "Forbidden" in err and "requester" in err, err
    # one vote per admin
    v = admin2.ok("approvals", "approve", first)
    assert (v["id"], v["state"]) == (first, "pending"), v
    err = admin2.refused("approvals", "approve", first)
    assert "Conflict" in err and "already voted" in err, err
    assert approval(boot, first)["state"] == "pending"
    assert refused_with_approval(gw, workdir, bucket) == first, "one approval of two is not enough"

    v = admin3.ok("approvals", "approve", first)
    assert (v["state"], sorted(x["approver"] for x in v["votes"])) == ("approved", ["admin2", "admin3"]), v

    p = rb(gw, workdir, bucket)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    assert not bucket_exists(gw, workdir, bucket)
    assert approval(boot, first)["state"] == "consumed"
    # a consumed approval cannot be voted on any more
    assert "Conflict" in admin3.refused("approvals", "reject", first)

    # the approval was used exactly once: the same bucket made again is guarded again
    gw.aws(workdir, "s3", "mb", f"s3://{bucket}")
    second = refused_with_approval(gw, workdir, bucket)
    assert second != first
    assert bucket_exists(gw, workdir, bucket)
    assert approval(boot, second)["state"] == "pending"

    # a rejection ends the request; the retry opens a fresh one
    r = admin2.ok("approvals", "reject", second)
    assert r["state"] == "rejected", r
    assert "Conflict" in admin3.refused("approvals", "approve", second)
    third = refused_with_approval(gw, workdir, bucket)
    assert third not in (first, second)
    assert bucket_exists(gw, workdir, bucket)

    # buckets the rule does not cover are not gated
    free = f"free-{uuid.uuid4().hex[:16]}"
    gw.aws(workdir, "s3", "mb", f"s3://{free}")
    assert rb(gw, workdir, free).returncode == 0


def test_expired_requests_can_be_neither_approved_nor_used(quorum_env, workdir):
    gw, boot, admin2, admin3 = quorum_env
    ttl = 3
    boot.ok(
        "quorum", "set", "rb-short", "--action", "s3:DeleteBucket", "--bucket-pattern", "qexp-*",
        "--approvals", "2", "--roles", "superadmin", "--ttl", str(ttl),
    )
    bucket = f"qexp-{uuid.uuid4().hex[:16]}"
    gw.aws(workdir, "s3", "mb", f"s3://{bucket}")

    # approving after the window closed is refused
    stale = refused_with_approval(gw, workdir, bucket)
    time.sleep(ttl + 0.5)
    assert approval(boot, stale)["state"] == "expired"
    err = admin2.refused("approvals", "approve", stale)
    assert "Expired" in err, err
    assert bucket_exists(gw, workdir, bucket)

    # an approval granted in time but used after the window is not honoured either
    fresh = refused_with_approval(gw, workdir, bucket)
    assert fresh != stale, "an expired request must not be handed out again"
    t0 = time.monotonic()
    admin2.ok("approvals", "approve", fresh)
    assert admin3.ok("approvals", "approve", fresh)["state"] == "approved"
    assert time.monotonic() - t0 < ttl, "approvals took longer than the window; the test cannot judge"
    time.sleep(ttl + 0.5)
    assert approval(boot, fresh)["state"] == "expired"
    late = refused_with_approval(gw, workdir, bucket)
    assert late not in (stale, fresh)
    assert bucket_exists(gw, workdir, bucket)


def test_cli_tables_and_refusals_without_a_login(quorum_env, tmp_path):
    gw, boot, _, _ = quorum_env
    p = boot.run("quorum", "list", fmt="table")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ACTION", "BUCKET_PATTERN", "APPROVALS", "APPROVER_ROLES", "TTL_SECS"]
    assert any(line.split()[:4] == ["rb-guard", "s3:DeleteBucket", "qrm-*", "2"] for line in lines[1:]), p.stdout
    # no profile, no token: the API refuses
    nobody = Admin(gw, tmp_path, "nobody")
    err = nobody.refused("approvals", "list")
    assert "Unauthorized" in err, err
    # a profile readable by others is refused before any call
    nobody.profile.parent.mkdir(parents=True, exist_ok=True)
    nobody.profile.write_text(boot.profile.read_text())
    nobody.profile.chmod(0o644)
    err = nobody.refused("approvals", "list")
    assert "chmod 600" in err, err
