"""Versioning and object lock (issue 15) with real clients against the vaultgate binary.

aws cli: versioning on, versions listed, an old version restored by copy (the bytes compared by
SHA-256), delete markers hidden and removed. boto3: a COMPLIANCE-locked version survives a
SuperAdmin key (S3 and admin API) trying every route — version delete with the bypass header,
batch delete, overwrite, copy over, retention shortening and removal, suspending versioning,
bucket delete, and the admin API giving itself a role and dropping quorum rules. Governance
bypass: allowed for a SuperAdmin; under a quorum rule on s3:BypassGovernanceRetention it waits
for another admin's approval (`vaultgate admin approvals approve`), then goes through once.
Lifecycle: aws cli sets a rule, boto3 sees the expiry happen within the worker interval, and a
COMPLIANCE-locked version outlives it.
"""

import datetime
import json
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY, REGION, SECRET_KEY, client_error_code, make_payload, sha256, unique_bucket
from test_quorum import APPROVAL_ID, Admin


def versions_of(s3, bucket: str, key: str) -> list[dict]:
    out = s3.list_object_versions(Bucket=bucket, Prefix=key)
    rows = [dict(v, marker=False) for v in out.get("Versions", [])]
    rows += [dict(m, marker=True) for m in out.get("DeleteMarkers", [])]
    return [r for r in rows if r["Key"] == key]


def body(s3, bucket: str, key: str, version: str | None = None) -> bytes:
    extra = {"VersionId": version} if version else {}
    return s3.get_object(Bucket=bucket, Key=key, **extra)["Body"].read()


def test_aws_cli_lists_versions_and_restores_an_old_one_by_copy(gateway, s3, workdir):
    bucket = unique_bucket("ver-cli")
    gateway.aws(workdir, "s3", "mb", f"s3://{bucket}")
    gateway.aws(
        workdir, "s3api", "put-bucket-versioning", "--bucket", bucket,
        "--versioning-configuration", "Status=Enabled",
    )
    out = json.loads(gateway.aws(workdir, "s3api", "get-bucket-versioning", "--bucket", bucket).stdout)
    assert out["Status"] == "Enabled"
    payloads = [make_payload(70_000 + i, nonce=i) for i in range(3)]
    ids = []
    for i, data in enumerate(payloads):
        f = workdir / f"v{i}.bin"
        f.write_bytes(data)
        p = gateway.aws(workdir, "s3api", "put-object", "--bucket", bucket, "--key", "db.dump", "--body", str(f))
        ids.append(json.loads(p.stdout)["VersionId"])
    assert len(set(ids)) == 3
    listed = json.loads(
        gateway.aws(workdir, "s3api", "list-object-versions", "--bucket", bucket).stdout
    )["Versions"]
    assert [(v["VersionId"], v["IsLatest"], v["Size"]) for v in listed] == [
        (ids[2], True, len(payloads[2])), (ids[1], False, len(payloads[1])), (ids[0], False, len(payloads[0]))
    ]
    # restore the oldest by copying it over its key
    p = gateway.aws(
        workdir, "s3api", "copy-object", "--bucket", bucket, "--key", "db.dump",
        "--copy-source", f"{bucket}/db.dump?versionId={ids[0]}",
    )
    restored = json.loads(p.stdout)
    assert restored["CopySourceVersionId"] == ids[0] and restored["VersionId"] not in ids
    gateway.aws(workdir, "s3", "cp", f"s3://{bucket}/db.dump", str(workdir / "now.bin"))
    assert sha256((workdir / "now.bin").read_bytes()) == sha256(payloads[0])
    # an older version by id, with aws cli
    gateway.aws(
        workdir, "s3api", "get-object", "--bucket", bucket, "--key", "db.dump",
        "--version-id", ids[1], str(workdir / "v1.out"),
    )
    assert (workdir / "v1.out").read_bytes() == payloads[1]
    # `aws s3 rm` leaves a delete marker; removing the marker undeletes
    gateway.aws(workdir, "s3", "rm", f"s3://{bucket}/db.dump")
    assert client_error_code(pytest.raises(ClientError, s3.head_object, Bucket=bucket, Key="db.dump").value)[0] == 404
    marker = [v for v in versions_of(s3, bucket, "db.dump") if v["marker"]]
    assert len(marker) == 1 and marker[0]["IsLatest"]
    gateway.aws(
        workdir, "s3api", "delete-object", "--bucket", bucket, "--key", "db.dump",
        "--version-id", marker[0]["VersionId"],
    )
    assert body(s3, bucket, "db.dump") == payloads[0]
    assert len(versions_of(s3, bucket, "db.dump")) == 4


def test_boto3_suspended_versioning_keeps_one_null_version(s3):
    bucket = unique_bucket("ver-susp")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"before")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"versioned")["VersionId"]
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    s3.put_object(Bucket=bucket, Key="k", Body=b"null 1")
    s3.put_object(Bucket=bucket, Key="k", Body=b"null 2")
    rows = versions_of(s3, bucket, "k")
    assert sorted(r["VersionId"] for r in rows) == sorted(["null", v1]), rows
    assert body(s3, bucket, "k", "null") == b"null 2"
    assert body(s3, bucket, "k", v1) == b"versioned"
    with pytest.raises(ClientError) as e:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Disabled"})
    assert client_error_code(e.value)[0] == 400


def in_days(days: float) -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)


@pytest.fixture(scope="module")
def lock_env(gateway_factory, tmp_path_factory):
    gw = gateway_factory("objlock")
    home = tmp_path_factory.mktemp("lock-homes")
    boot = Admin(gw, home, "admin")
    boot.login(ACCESS_KEY, SECRET_KEY)
    boot.ok("user", "create", "approver", "--role", "superadmin")
    k = boot.ok("key", "create", "--user", "approver")
    approver = Admin(gw, home, "approver")
    approver.login(k["access_key_id"], k["secret_key"])
    return gw, boot, approver


def test_a_superadmin_cannot_destroy_a_compliance_locked_version(lock_env, workdir):
    gw, boot, _ = lock_env
    s3 = gw.s3()
    bucket = unique_bucket("worm")
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
        },
    )
    data = make_payload(300_000, nonce=42)
    v1 = s3.put_object(Bucket=bucket, Key="backup.tar", Body=data)["VersionId"]
    ret = s3.get_object_retention(Bucket=bucket, Key="backup.tar", VersionId=v1)["Retention"]
    assert ret["Mode"] == "COMPLIANCE"

    def denied(call, **kw):
        with pytest.raises(ClientError) as e:
            call(**kw)
        assert client_error_code(e.value) == (403, "AccessDenied"), e.value.response

    # the admin API: the compromised SuperAdmin mints itself a second SuperAdmin key; no role,
    # key or quorum setting reaches a COMPLIANCE retention
    boot.ok("user", "create", "mallory", "--role", "superadmin")
    k = boot.ok("key", "create", "--user", "mallory")
    mallory = boto3.session.Session(
        aws_access_key_id=k["access_key_id"], aws_secret_access_key=k["secret_key"], region_name=REGION
    ).client("s3", endpoint_url=gw.endpoint, config=Config(s3={"addressing_style": "path"}))
    with pytest.raises(ClientError) as e:
        mallory.delete_object(Bucket=bucket, Key="backup.tar", VersionId=v1, BypassGovernanceRetention=True)
    assert client_error_code(e.value) == (403, "AccessDenied")
    denied(s3.delete_object, Bucket=bucket, Key="backup.tar", VersionId=v1)
    denied(s3.delete_object, Bucket=bucket, Key="backup.tar", VersionId=v1, BypassGovernanceRetention=True)
    out = s3.delete_objects(
        Bucket=bucket, BypassGovernanceRetention=True,
        Delete={"Objects": [{"Key": "backup.tar", "VersionId": v1}]},
    )
    assert not out.get("Deleted") and out["Errors"][0]["Code"] == "AccessDenied", out
    for mode, until in (("COMPLIANCE", in_days(0.01)), ("GOVERNANCE", in_days(5))):
        denied(
            s3.put_object_retention, Bucket=bucket, Key="backup.tar", VersionId=v1,
            Retention={"Mode": mode, "RetainUntilDate": until}, BypassGovernanceRetention=True,
        )
    # aws cli: the same refusal through another client
    p = gw.aws(
        workdir, "s3api", "delete-object", "--bucket", bucket, "--key", "backup.tar",
        "--version-id", v1, "--bypass-governance-retention", check=False,
    )
    assert p.returncode != 0 and b"AccessDenied" in p.stderr, p.stderr
    # overwrite, copy over, hide behind a marker: new versions, the locked one intact
    s3.put_object(Bucket=bucket, Key="backup.tar", Body=b"encrypted by ransomware")
    s3.copy_object(
        Bucket=bucket, Key="backup.tar", CopySource={"Bucket": bucket, "Key": "backup.tar"},
        MetadataDirective="REPLACE",
    )
    s3.delete_object(Bucket=bucket, Key="backup.tar")
    with pytest.raises(ClientError) as e:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert client_error_code(e.value) == (409, "InvalidBucketState")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=bucket)
    assert client_error_code(e.value)[1] == "BucketNotEmpty"
    assert sha256(body(s3, bucket, "backup.tar", v1)) == sha256(data)
    # extending stays possible
    s3.put_object_retention(
        Bucket=bucket, Key="backup.tar", VersionId=v1,
        Retention={"Mode": "COMPLIANCE", "RetainUntilDate": in_days(2)},
    )


def test_governance_bypass_with_and_without_quorum(lock_env, workdir):
    gw, boot, approver = lock_env
    s3 = gw.s3()
    bucket = unique_bucket("gov")
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)

    def governed(key: str) -> str:
        return s3.put_object(
            Bucket=bucket, Key=key, Body=b"governed", ObjectLockMode="GOVERNANCE",
            ObjectLockRetainUntilDate=in_days(1),
        )["VersionId"]

    # without quorum: the header is needed, and enough for a SuperAdmin
    v = governed("a")
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket=bucket, Key="a", VersionId=v)
    assert client_error_code(e.value) == (403, "AccessDenied")
    s3.delete_object(Bucket=bucket, Key="a", VersionId=v, BypassGovernanceRetention=True)
    assert versions_of(s3, bucket, "a") == []

    # with a quorum rule on the bypass: refused naming an approval, then once after approval
    rule = boot.ok(
        "quorum", "set", "bypass-guard", "--action", "s3:BypassGovernanceRetention",
        "--bucket-pattern", f"{bucket[:8]}*", "--approvals", "1", "--roles", "superadmin", "--ttl", "600",
    )
    assert rule["action"] == "s3:BypassGovernanceRetention"
    v = governed("b")
    cmd = ("s3api", "delete-object", "--bucket", bucket, "--key", "b", "--version-id", v,
           "--bypass-governance-retention")
    p = gw.aws(workdir, *cmd, check=False)
    err = p.stderr.decode(errors="replace")
    assert p.returncode != 0 and "AccessDenied" in err, err
    ids = set(APPROVAL_ID.findall(err))
    assert len(ids) == 1, err
    assert body(s3, bucket, "b", v) == b"governed"
    approval = ids.pop()
    vote = approver.ok("approvals", "approve", approval)
    assert vote["state"] == "approved", vote
    gw.aws(workdir, *cmd)
    assert versions_of(s3, bucket, "b") == []
    # the approval was used up: the next bypass waits again
    v = governed("c")
    p = gw.aws(workdir, "s3api", "delete-object", "--bucket", bucket, "--key", "c", "--version-id", v,
               "--bypass-governance-retention", check=False)
    assert p.returncode != 0 and APPROVAL_ID.search(p.stderr.decode(errors="replace"))


def test_sigkill_during_mixed_versioned_puts_and_deletes(gateway_factory):
    """Versioned PUTs and DELETEs (markers) on a few keys from 6 threads while the gateway is
    SIGKILLed: after a restart every acknowledged version reads back intact under its id, every
    acknowledged delete marker is listed, and every listed version is one a client sent."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    gw = gateway_factory("vcrash")
    s3 = gw.s3()
    bucket = "vcrash-bucket"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    client = gw.s3(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=60)
    keys = [f"k{i}" for i in range(4)]
    payloads = {n: make_payload(20_000 + 997 * n, nonce=n) for n in range(400)}
    digests = {sha256(p): n for n, p in payloads.items()}
    lock = threading.Lock()
    acked_versions: dict[str, tuple[str, int]] = {}  # version id -> (key, payload number)
    acked_markers: dict[str, str] = {}  # version id -> key
    killed = threading.Event()

    def work(n: int) -> None:
        if killed.is_set():
            return
        key = keys[n % len(keys)]
        try:
            if n % 5 == 4:
                out = client.delete_object(Bucket=bucket, Key=key)
                with lock:
                    acked_markers[out["VersionId"]] = key
            else:
                out = client.put_object(Bucket=bucket, Key=key, Body=payloads[n])
                with lock:
                    acked_versions[out["VersionId"]] = (key, n)
        except Exception:  # noqa: BLE001 - the gateway died under it: not acknowledged
            return

    pool = ThreadPoolExecutor(max_workers=6)
    futures = [pool.submit(work, n) for n in payloads]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with lock:
            if len(acked_versions) >= 20 and acked_markers:
                break
        time.sleep(0.01)
    gw.kill()
    killed.set()
    for f in futures:
        f.result(timeout=300)
    pool.shutdown()
    assert acked_versions and acked_markers, "nothing acknowledged before the kill"
    assert len(acked_versions) + len(acked_markers) < len(payloads), "the kill interrupted nothing"

    gw.start()
    s3 = gw.s3()
    versions, markers = {}, {}
    kw = {}
    while True:
        out = s3.list_object_versions(Bucket=bucket, **kw)
        versions.update({v["VersionId"]: v for v in out.get("Versions", [])})
        markers.update({m["VersionId"]: m for m in out.get("DeleteMarkers", [])})
        if not out.get("IsTruncated"):
            break
        kw = {"KeyMarker": out["NextKeyMarker"], "VersionIdMarker": out["NextVersionIdMarker"]}
    for vid, (key, n) in acked_versions.items():
        assert vid in versions, f"acknowledged version {vid} of {key} is missing"
        assert body(s3, bucket, key, vid) == payloads[n], f"version {vid} reads back corrupted"
    for vid, key in acked_markers.items():
        assert vid in markers and markers[vid]["Key"] == key, f"acknowledged marker {vid} missing"
    for vid, v in versions.items():
        data = body(s3, bucket, v["Key"], vid)
        assert len(data) == v["Size"], f"{vid}: partial version visible"
        assert sha256(data) in digests, f"{vid}: a version no client sent"
    # exactly one latest per key
    for key in keys:
        latest = [x for x in list(versions.values()) + list(markers.values()) if x["Key"] == key and x["IsLatest"]]
        assert len(latest) <= 1, latest


def test_lifecycle_expiry_is_observed_within_the_worker_interval(gateway_factory, workdir):
    """Lifecycle with real clients on a gateway whose worker runs every second and whose "day"
    lasts 2 s (VAULTGATE_LIFECYCLE_INTERVAL_SECS / _DAY_SECS): aws cli sets a rule expiring
    `logs/` after 1 day on a versioned bucket and noncurrent versions after 1 day; boto3 sees
    the current version hidden by a delete marker, then the old versions gone, while `keep/`
    stays; a COMPLIANCE-locked version in a locked bucket outlives the same rule."""
    gw = gateway_factory(
        "lifecycle", VAULTGATE_LIFECYCLE_INTERVAL_SECS="1", VAULTGATE_LIFECYCLE_DAY_SECS="2"
    )
    s3 = gw.s3()
    bucket = unique_bucket("lc")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    rules = {
        "Rules": [
            {
                "ID": "logs",
                "Filter": {"Prefix": "logs/"},
                "Status": "Enabled",
                "Expiration": {"Days": 1},
                "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
            }
        ]
    }
    f = workdir / "lc.json"
    f.write_text(json.dumps(rules))
    gw.aws(workdir, "s3api", "put-bucket-lifecycle-configuration", "--bucket", bucket,
           "--lifecycle-configuration", f"file://{f}")
    got = json.loads(gw.aws(workdir, "s3api", "get-bucket-lifecycle-configuration", "--bucket", bucket).stdout)
    assert [r["ID"] for r in got["Rules"]] == ["logs"]
    s3.put_object(Bucket=bucket, Key="logs/a.log", Body=b"old")
    s3.put_object(Bucket=bucket, Key="logs/a.log", Body=b"new")
    s3.put_object(Bucket=bucket, Key="keep/b.txt", Body=b"kept")
    head = s3.head_object(Bucket=bucket, Key="logs/a.log")
    assert "x-amz-expiration" in head["ResponseMetadata"]["HTTPHeaders"]

    # expired current version: a delete marker on top (1 day = 2 s, the worker every 1 s)
    deadline = time.time() + 30
    while time.time() < deadline:
        rows = versions_of(s3, bucket, "logs/a.log")
        if any(r["marker"] and r.get("IsLatest") for r in rows):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"no delete marker within 30 s: {versions_of(s3, bucket, 'logs/a.log')}")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="logs/a.log")
    assert client_error_code(e.value) == (404, "NoSuchKey")
    # then the noncurrent versions expire too
    deadline = time.time() + 30
    while time.time() < deadline:
        if not any(not r["marker"] for r in versions_of(s3, bucket, "logs/a.log")):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"noncurrent versions not expired: {versions_of(s3, bucket, 'logs/a.log')}")
    assert body(s3, bucket, "keep/b.txt") == b"kept"

    # a COMPLIANCE-locked version outlives the same rule
    locked = unique_bucket("lc-lock")
    s3.create_bucket(Bucket=locked, ObjectLockEnabledForBucket=True)
    until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    v = s3.put_object(
        Bucket=locked, Key="logs/evidence.log", Body=b"locked",
        ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until,
    )["VersionId"]
    s3.put_bucket_lifecycle_configuration(Bucket=locked, LifecycleConfiguration=rules)
    time.sleep(8)  # four "days" and eight worker runs
    assert body(s3, locked, "logs/evidence.log", v) == b"locked"
