"""restic against the gateway: a repository in a versioned bucket with object lock and a
COMPLIANCE default retention (the ransomware-proof setup of docs/IMMUTABILITY.md), a backup of a
few hundred files of mixed sizes, `restic check --read-data` (every pack downloaded and
verified), a restore compared by SHA-256, and the backup's objects locked: a SuperAdmin cannot
delete their versions.

restic comes from $RESTIC_BIN (conformance/run unpacks Debian's package into .cache/restic),
else from PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ACCESS_KEY, SECRET_KEY, REGION, MiB, client_error_code, tree_digests, unique_bucket, write_payload


def restic_bin() -> str:
    b = os.environ.get("RESTIC_BIN") or shutil.which("restic")
    if not b:
        pytest.fail("restic not found: set RESTIC_BIN or run ./conformance/run (which unpacks it into .cache/restic)")
    return b


def make_tree(root: Path) -> dict:
    sizes = [0, 1, 17, 4096, 65_535, 65_536, 100_000, 700_000, 3 * MiB + 11]
    for i in range(300):
        d = ["", "etc", "home/user", "var/log", "srv/data/deep"][i % 5]
        rel = (f"{d}/" if d else "") + f"f{i:03d}.bin"
        write_payload(root / rel, sizes[i % len(sizes)] if i % 37 else 9 * MiB + 3)
    return tree_digests(root)


def test_restic_backup_check_restore_into_a_locked_bucket(gateway, s3, workdir):
    bucket = unique_bucket("restic")
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
        },
    )
    src = workdir / "src"
    want = make_tree(src)
    assert len(want) == 300
    env = gateway.cli_env(workdir)
    env.update(
        RESTIC_REPOSITORY=f"s3:{gateway.endpoint}/{bucket}/repo",
        RESTIC_PASSWORD="restic-conformance-password",
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION=REGION,
        RESTIC_CACHE_DIR=str(workdir / "restic-cache"),
    )

    def restic(*args: str, timeout: float = 900, cwd: Path | None = None) -> subprocess.CompletedProcess:
        cmd = [restic_bin(), "--no-cache", "-o", f"s3.region={REGION}", *args]
        p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            pytest.fail(
                f"restic {' '.join(args)} failed ({p.returncode}):\n{p.stdout.decode(errors='replace')[-3000:]}"
                f"\n{p.stderr.decode(errors='replace')[-3000:]}\n--- gateway log ---\n{gateway.log_tail(40)}"
            )
        return p

    restic("init")
    restic("backup", "--host", "conformance", ".", cwd=src, timeout=1200)
    # a second, incremental snapshot after a change
    write_payload(src / "etc/changed.bin", 123_456)
    want = tree_digests(src)
    restic("backup", "--host", "conformance", ".", cwd=src, timeout=1200)
    snaps = restic("snapshots", "--json").stdout
    assert snaps.count(b'"short_id"') == 2, snaps[:500]

    # every pack downloaded and verified (restic's own hashes over the gateway's plaintext)
    out = restic("check", "--read-data", timeout=1200)
    assert b"no errors were found" in out.stdout, out.stdout[-2000:]

    # restore the latest snapshot and compare every file by SHA-256
    target = workdir / "restore"
    restic("restore", "latest", "--target", str(target), timeout=1200)
    assert tree_digests(target) == want

    # the backup is locked: its objects carry the COMPLIANCE default retention, and even the
    # bootstrap SuperAdmin cannot delete a version of a pack
    versions = s3.list_object_versions(Bucket=bucket, Prefix="repo/data/")["Versions"]
    assert versions, "no packs stored"
    v = versions[0]
    ret = s3.get_object_retention(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])["Retention"]
    assert ret["Mode"] == "COMPLIANCE"
    with pytest.raises(Exception) as e:
        s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"], BypassGovernanceRetention=True)
    assert client_error_code(e.value) == (403, "AccessDenied")
    body = s3.get_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])["Body"].read()
    assert len(body) == v["Size"]
