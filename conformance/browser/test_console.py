"""The web console in headless Chromium against a running gateway: sign-in (failure, expiry,
renewal), a quorum-gated bucket deletion approved by two approvers in two browser contexts while
the requester retries with aws cli, a 50 MiB upload with progress, pause and resume, then a
download compared by hash, a key whose secret is shown once, an audit event found by request id
and an evidence bundle that `vaultgate evidence verify` accepts. axe-core runs on every page; no
secret or token reaches the page's storage, URL, cookies or the server log. The overview's key
management rotates, rewraps, re-encrypts a bucket and retires the old KEK (quorum-gated). Screenshots of each
page go to $CONSOLE_SCREENSHOTS (docs/console for the guide)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from playwright.sync_api import expect
from conftest import (
    ACCESS_KEY,
    SECRET_KEY,
    Admin,
    assert_no_secret_in_browser,
    axe_check,
    shot,
    sign_in,
    vg,
)

MiB = 1024 * 1024
APPROVAL_ID = re.compile(r"apr-[A-Za-z0-9_-]+")


def s3_client(gw, ak=ACCESS_KEY, sk=SECRET_KEY):
    return boto3.session.Session(aws_access_key_id=ak, aws_secret_access_key=sk, region_name="us-east-1").client(
        "s3",
        endpoint_url=gw.endpoint,
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4", retries={"max_attempts": 1}),
    )


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            h.update(chunk)
    return h.hexdigest()


def test_sign_in_failure_then_success_and_the_session_lives_in_memory_only(console_gw, new_context, seen, shots):
    page = new_context().new_page()
    page.goto(f"{console_gw.admin}/console/")
    axe_check(page, "sign-in")
    shot(page, shots, "signin")
    page.get_by_label("Access key id").fill(ACCESS_KEY)
    page.get_by_label("Secret key").fill("wrong-secret-0123456789")
    page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "Sign-in failed" in alert.inner_text()
    assert page.get_by_label("Secret key").input_value() == "", "the typed secret is cleared"
    # then the right secret: the approvals inbox is the landing page
    page.get_by_label("Secret key").fill(SECRET_KEY)
    page.get_by_role("button", name="Sign in").click()
    page.locator("#whoami").wait_for()
    assert page.locator("#whoami").inner_text() == "admin"
    assert page.url.endswith("/console/approvals")
    seen.add(SECRET_KEY)
    assert_no_secret_in_browser(page, seen.values)
    # a reload forgets the session (memory only): the sign-in form is back
    page.reload()
    page.get_by_label("Access key id").wait_for()
    assert page.locator("#whoami").count() == 0


def test_keyboard_only_sign_in_and_navigation(console_gw, new_context):
    page = new_context().new_page()
    page.goto(f"{console_gw.admin}/console/")
    page.get_by_label("Access key id").wait_for()
    # the access key field has the focus on arrival; Tab reaches the secret, Enter signs in
    assert page.evaluate("() => document.activeElement.name") == "access_key"
    page.keyboard.type(ACCESS_KEY)
    page.keyboard.press("Tab")
    page.keyboard.type(SECRET_KEY)
    page.keyboard.press("Enter")
    page.locator("#whoami").wait_for()
    # (the page has rendered and taken the focus to its main region)
    page.locator(".updated", has_text="Updated").wait_for()
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'main'")
    # from the skip link at the top, Tab walks the navigation in order
    page.locator(".skip").focus()
    order = ["Skip to content"]
    for _ in range(7):
        page.keyboard.press("Tab")
        order.append(page.evaluate("() => document.activeElement.textContent.trim()"))
    assert order[:6] == ["Skip to content", "Approvals", "Buckets", "Audit", "Identities", "Overview"], order
    for _ in range(len(order) - 1 - order.index("Audit")):
        page.keyboard.press("Shift+Tab")
    assert page.evaluate("() => document.activeElement.textContent.trim()") == "Audit"
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Audit", exact=True).wait_for()
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'main'")
    # the page's first control is reachable and named
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent.trim()") == "Verify the chain now"


def test_a_revoked_key_ends_the_session(console_gw, admin, new_context):
    ak, sk = admin.user(name("eve"), "viewer")
    page = new_context().new_page()
    sign_in(page, console_gw, ak, sk)
    admin.call("POST", f"/keys/{ak}/revoke", {}, expect=200)
    page.get_by_role("link", name="Overview").click()
    page.get_by_label("Access key id").wait_for()
    assert "Sign in again" in page.locator("main").inner_text()


def test_the_session_renews_and_an_unrenewable_one_expires(gateway_factory, new_context, seen):
    gw = gateway_factory("console-ttl", VAULTGATE_ADMIN_TOKEN_TTL_SECS="6")
    # renewed at 3/4 of its life: still signed in after twice the lifetime
    ctx = new_context()
    page = ctx.new_page()
    renewals = []
    page.on("response", lambda r: renewals.append(r.status) if r.url.endswith("/auth/renew") else None)
    sign_in(page, gw, ACCESS_KEY, SECRET_KEY)
    page.wait_for_timeout(13_000)
    page.get_by_role("link", name="Audit").click()
    page.get_by_role("heading", name="Audit", exact=True).wait_for()
    assert page.locator("#whoami").count() == 1
    assert renewals and all(s == 200 for s in renewals), renewals
    # renewal blocked: the token runs out and the console asks to sign in again
    page2 = new_context().new_page()
    page2.route("**/admin/v1/auth/renew", lambda route: route.abort())
    sign_in(page2, gw, ACCESS_KEY, SECRET_KEY)
    page2.get_by_label("Access key id").wait_for(timeout=20_000)
    assert "expired" in page2.locator("main").inner_text()
    assert_no_secret_in_browser(page2, seen.values)


def test_two_approvers_let_a_gated_bucket_deletion_through(console_gw, admin: Admin, new_context, tmp_path, shots):
    bucket = name("gated")
    admin.call(
        "PUT",
        "/quorum/rules/console-delete-bucket",
        {"action": "s3:DeleteBucket", "bucket_pattern": "gated-*", "approvals": 2, "approver_roles": ["superadmin"], "ttl_secs": 600},
        expect=200,
    )
    alice = admin.user(name("alice"), "superadmin")
    bob = admin.user(name("bob"), "superadmin")
    time.sleep(0.05)
    console_gw.aws(tmp_path, "s3", "mb", f"s3://{bucket}")
    # the requester (the bootstrap admin) asks with aws cli and is held
    p = console_gw.aws(tmp_path, "s3", "rb", f"s3://{bucket}", check=False)
    assert p.returncode != 0
    m = APPROVAL_ID.search(p.stderr.decode())
    assert m, p.stderr
    approval = m.group(0)

    # the requester sees its own request as not approvable
    own = new_context().new_page()
    sign_in(own, console_gw, ACCESS_KEY, SECRET_KEY)
    row = own.locator("tr", has=own.locator(f"code[id='{approval}']"))
    row.wait_for()
    assert "Your own request" in row.inner_text()
    assert row.get_by_role("button").count() == 0

    # a viewer sees what it may not do: no buttons, the role it lacks
    viewer = new_context().new_page()
    sign_in(viewer, console_gw, *admin.user(name("val"), "viewer"))
    row_v = viewer.locator("tr", has=viewer.locator(f"code[id='{approval}']"))
    row_v.get_by_text("Needs the role superadmin; yours is viewer").wait_for()
    assert row_v.get_by_role("button").count() == 0

    pages = []
    for who in (alice, bob):
        pg = new_context().new_page()
        sign_in(pg, console_gw, *who)
        pages.append(pg)
    a, b = pages
    row_a = a.locator("tr", has=a.locator(f"code[id='{approval}']"))
    row_a.wait_for()
    assert "2 of 2" in row_a.inner_text()
    axe_check(a, "approvals")
    shot(a, shots, "approvals")
    # a cancelled confirmation changes nothing
    row_a.get_by_role("button", name=f"Approve {approval}").click()
    a.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    assert admin.call("GET", f"/approvals/{approval}").json()["votes"] == []
    # and so does Escape (the focus starts on Cancel, never on the decision)
    row_a.get_by_role("button", name=f"Approve {approval}").click()
    assert a.evaluate("() => document.activeElement.textContent") == "Cancel"
    a.keyboard.press("Escape")
    expect(a.get_by_role("dialog")).to_have_count(0)
    assert admin.call("GET", f"/approvals/{approval}").json()["votes"] == []
    row_a.get_by_role("button", name=f"Approve {approval}").click()
    dialog = a.get_by_role("dialog")
    assert approval in dialog.inner_text()
    axe_check(a, "approval confirmation")
    dialog.get_by_role("button", name="Approve").click()
    a.locator("#approval-msg").get_by_text("1 more approval").wait_for()
    row_a.get_by_text("You have voted").wait_for()

    # the requester retries: still held (one approval short)
    p = console_gw.aws(tmp_path, "s3", "rb", f"s3://{bucket}", check=False)
    assert p.returncode != 0 and approval in p.stderr.decode()

    # bob's inbox refreshes on its own (live): one approval still needed
    row_b = b.locator("tr", has=b.locator(f"code[id='{approval}']"))
    row_b.get_by_text("1 of 2").wait_for(timeout=15_000)
    row_b.get_by_role("button", name=f"Approve {approval}").click()
    b.get_by_role("dialog").get_by_role("button", name="Approve").click()
    b.locator("#approval-msg").get_by_text("now approved").wait_for()

    # and now the same request by the same principal goes through, once
    console_gw.aws(tmp_path, "s3", "rb", f"s3://{bucket}")
    assert admin.call("GET", f"/approvals/{approval}").json()["state"] == "consumed"


def test_a_gated_object_delete_in_the_console_shows_its_approval_request(console_gw, admin, new_context):
    bucket = name("vault")
    admin.call(
        "PUT",
        "/quorum/rules/console-delete-object",
        {"action": "s3:DeleteObject", "bucket_pattern": "vault-*", "approvals": 1, "approver_roles": ["superadmin"], "ttl_secs": 600},
        expect=200,
    )
    s3 = s3_client(console_gw)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="docs/report.txt", Body=b"quarterly numbers\n")
    page = new_context().new_page()
    sign_in(page, console_gw, ACCESS_KEY, SECRET_KEY, f"buckets/{bucket}")
    page.get_by_role("link", name="docs/").click()
    page.get_by_role("button", name="Delete docs/report.txt").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    link = page.locator("#approval-link")
    link.wait_for()
    approval = link.inner_text()
    assert APPROVAL_ID.fullmatch(approval)
    assert "pending" in page.locator("#bucket-msg").inner_text()
    assert s3.get_object(Bucket=bucket, Key="docs/report.txt")["Body"].read() == b"quarterly numbers\n"
    link.click()
    page.locator(f"code[id='{approval}']").wait_for()


def test_a_gated_identity_change_shows_its_approval_request(gateway_factory, new_context):
    gw = gateway_factory("console-gated")
    adm = Admin(gw)
    adm.call("POST", "/principals", {"name": "pat", "role": "none", "tenant": "default"}, expect=201)
    adm.call(
        "PUT",
        "/quorum/rules/role-changes",
        {"action": "admin:ChangeRole", "approvals": 1, "approver_roles": ["superadmin"], "ttl_secs": 600},
        expect=200,
    )
    page = new_context().new_page()
    sign_in(page, gw, ACCESS_KEY, SECRET_KEY, "identities")
    page.get_by_label("Role of pat").select_option("manager")
    page.locator("tr", has_text="pat").get_by_role("button", name="Set role").click()
    msg = page.locator("#identities-msg")
    msg.get_by_text("ApprovalRequired").wait_for()
    link = msg.locator("a[data-approval]")
    approval = link.inner_text()
    assert APPROVAL_ID.fullmatch(approval), approval
    assert adm.call("GET", "/principals/pat", expect=200).json()["role"] != "manager"
    link.click()
    page.locator(f"code[id='{approval}']").wait_for()
    assert "admin:ChangeRole" in page.locator("tr", has=page.locator(f"code[id='{approval}']")).inner_text()


def test_upload_a_folder(console_gw, new_context, tmp_path):
    bucket = name("dir")
    s3 = s3_client(console_gw)
    s3.create_bucket(Bucket=bucket)
    folder = tmp_path / "photos"
    (folder / "2024").mkdir(parents=True)
    (folder / "a.txt").write_bytes(b"first")
    (folder / "2024" / "b.txt").write_bytes(b"second")
    page = new_context().new_page()
    sign_in(page, console_gw, ACCESS_KEY, SECRET_KEY, f"buckets/{bucket}")
    page.get_by_role("heading", name=f"{bucket}/").wait_for()
    page.set_input_files("#upload-folder", str(folder))
    expect(page.locator("li.upload .upstate", has_text="done")).to_have_count(2)
    page.get_by_role("link", name="photos/").wait_for()
    got = {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert got == {"photos/a.txt": b"first", "photos/2024/b.txt": b"second"}, got


def test_upload_50_mib_with_progress_pause_resume_then_download(console_gw, new_context, tmp_path, shots):
    bucket = name("up")
    s3 = s3_client(console_gw)
    s3.create_bucket(Bucket=bucket)
    src = tmp_path / "big.bin"
    vg.write_payload(src, 50 * MiB)
    want = sha256_file(src)

    ctx = new_context()
    page = ctx.new_page()
    sign_in(page, console_gw, ACCESS_KEY, SECRET_KEY, f"buckets/{bucket}")
    page.get_by_role("heading", name=f"{bucket}/").wait_for()
    axe_check(page, "bucket")
    # a slow uplink (8 MiB/s) so the progress can be watched, paused and resumed
    cdp = ctx.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 5, "downloadThroughput": -1, "uploadThroughput": 8 * MiB})
    page.set_input_files("#upload-files", str(src))
    row = page.locator("li.upload", has_text="big.bin")
    bar = row.locator("progress")
    seen_values = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(set(seen_values)) < 4:
        v = bar.evaluate("e => e.value")
        if v > 0:
            seen_values.append(v)
        page.wait_for_timeout(150)
    assert len(set(seen_values)) >= 4 and seen_values == sorted(seen_values), (seen_values, row.inner_text())
    assert seen_values[-1] < 50 * MiB, "progress observed before the end"

    row.get_by_role("button", name="Pause").click()
    row.locator(".upstate").get_by_text("paused").wait_for()
    at_pause = bar.evaluate("e => e.value")
    page.wait_for_timeout(1500)
    assert bar.evaluate("e => e.value") == at_pause, "nothing moves while paused"
    assert row.locator(".upstate").inner_text() == "paused"
    row.get_by_role("button", name="Resume").click()
    row.locator(".upstate").get_by_text("done").wait_for(timeout=120_000)
    assert bar.evaluate("e => e.value") == 50 * MiB
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})

    got = tmp_path / "via-s3.bin"
    s3.download_file(bucket, "big.bin", str(got))
    assert sha256_file(got) == want
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == 50 * MiB
    assert head["ETag"].strip('"').endswith("-7"), head["ETag"]  # multipart, 8 MiB parts

    page.get_by_role("button", name="Details of big.bin").wait_for()
    page.get_by_role("button", name="Details of big.bin").click()
    details = page.locator("#object-details")
    details.get_by_text("52428800 bytes").wait_for()
    assert head["ETag"] in details.inner_text()
    shot(page, shots, "buckets")
    with page.expect_download(timeout=120_000) as dl:
        page.get_by_role("button", name="Download big.bin").click()
    out = tmp_path / "via-console.bin"
    dl.value.save_as(str(out))
    assert sha256_file(out) == want

    # a folder-less listing at the top: the bucket list page
    page.get_by_role("link", name="Buckets").first.click()
    page.get_by_role("heading", name="Buckets", exact=True).wait_for()
    page.get_by_role("link", name=bucket).wait_for()
    axe_check(page, "buckets")


def test_cancel_aborts_the_multipart_upload(console_gw, new_context, tmp_path):
    bucket = name("cancel")
    s3 = s3_client(console_gw)
    s3.create_bucket(Bucket=bucket)
    src = tmp_path / "half.bin"
    vg.write_payload(src, 24 * MiB)
    ctx = new_context()
    page = ctx.new_page()
    sign_in(page, console_gw, ACCESS_KEY, SECRET_KEY, f"buckets/{bucket}")
    page.get_by_role("heading", name=f"{bucket}/").wait_for()
    cdp = ctx.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 5, "downloadThroughput": -1, "uploadThroughput": 4 * MiB})
    page.set_input_files("#upload-files", str(src))
    row = page.locator("li.upload", has_text="half.bin")
    bar = row.locator("progress")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and bar.evaluate("e => e.value") < 9 * MiB:
        page.wait_for_timeout(100)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads"), "a multipart upload is under way"
    row.get_by_role("button", name="Cancel").click()
    row.locator(".upstate").get_by_text("cancelled").wait_for()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and s3.list_multipart_uploads(Bucket=bucket).get("Uploads"):
        time.sleep(0.2)
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads"), "the upload was aborted"
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_a_new_key_shows_its_secret_exactly_once(console_gw, admin, new_context, seen, shots):
    kate = name("kate")
    admin.call("POST", "/principals", {"name": kate, "role": "manager", "tenant": "default"}, expect=201)
    page = new_context().new_page()
    sign_in(page, console_gw, ACCESS_KEY, SECRET_KEY, "identities")
    page.get_by_role("heading", name="Identities").wait_for()
    axe_check(page, "identities")
    page.locator("#keys summary").click()
    page.locator("#key-principal").fill(kate)
    page.locator("#create-key").click()
    secret_el = page.locator("#new-secret")
    secret_el.wait_for()
    secret = secret_el.inner_text()
    key_id = page.locator("#new-key-id").inner_text()
    seen.add(secret)
    assert len(secret) >= 30
    page.get_by_role("button", name="Copy secret").click()
    axe_check(page, "new key")
    # the key works with an S3 client
    s3_client(console_gw, key_id, secret).list_buckets()
    page.get_by_role("button", name="Done, I have stored it").click()
    assert secret_el.count() == 0
    assert secret not in page.content()
    page.locator("#keys").get_by_text(key_id).wait_for()
    shot(page, shots, "identities")
    # never again: not in the list, not after signing in anew
    page.reload()
    sign_in(page, console_gw, ACCESS_KEY, SECRET_KEY, "identities")
    page.locator("#keys").get_by_text(key_id).wait_for()
    assert secret not in page.content()
    assert_no_secret_in_browser(page, seen.values)


def test_find_an_event_by_request_id_and_export_verifiable_evidence(console_gw, vaultgate_bin, new_context, tmp_path, shots):
    bucket = name("aud")
    s3 = s3_client(console_gw)
    s3.create_bucket(Bucket=bucket)
    rid = s3.put_object(Bucket=bucket, Key="ledger.txt", Body=b"x")["ResponseMetadata"]["RequestId"]
    assert rid
    page = new_context().new_page()
    sign_in(page, console_gw, ACCESS_KEY, SECRET_KEY, "audit")
    page.get_by_role("heading", name="Audit", exact=True).wait_for()
    page.get_by_role("button", name="Verify the chain now").click()
    page.locator("#chain-status").get_by_text("Chain OK").wait_for()
    page.get_by_label("Request id").fill(rid)
    page.get_by_role("button", name="Search").click()
    results = page.locator("#audit-results")
    expect(results.locator("tbody tr")).to_have_count(1)
    results.locator("code", has_text=rid).wait_for()
    results.get_by_role("button", name=re.compile("Details of event")).click()
    details = page.locator("#audit-details")
    details.get_by_text("PutObject").wait_for()
    assert rid in details.inner_text() and bucket in details.inner_text()
    axe_check(page, "audit")
    shot(page, shots, "audit")
    with page.expect_download() as dl:
        page.get_by_role("button", name="Export evidence for this filter").click()
    bundle = tmp_path / "bundle.json"
    dl.value.save_as(str(bundle))
    page.locator("#export-msg").get_by_text("(checked)").wait_for()
    p = subprocess.run([vaultgate_bin, "evidence", "verify", str(bundle)], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    # a flipped byte is refused
    raw = bytearray(bundle.read_bytes())
    i = next(j for j in range(len(raw) // 2, len(raw)) if chr(raw[j]).isalnum())
    raw[i] = ord("A") if raw[i] != ord("A") else ord("B")
    bad = tmp_path / "bad.json"
    bad.write_bytes(bytes(raw))
    p = subprocess.run([vaultgate_bin, "evidence", "verify", str(bad)], capture_output=True, timeout=60)
    assert p.returncode == 1, p.stdout + p.stderr


def test_overview_shows_health_readiness_and_traffic(console_gw, new_context, shots):
    page = new_context().new_page()
    sign_in(page, console_gw, ACCESS_KEY, SECRET_KEY, "overview")
    page.locator("#health").get_by_text("ready").first.wait_for()
    page.locator("#metrics table").wait_for()
    page.locator("#facts table").wait_for()
    text = page.locator("main").inner_text()
    for want in ("Health", "live", "Readiness", "key provider", "backend", "S3 requests", "S3 bytes in"):
        assert want in text, want
    # key status: the KEK provider and the buckets' current data keys (the upload test's bucket has one)
    page.locator("#key-status table").wait_for()
    assert page.locator("#kek-provider").inner_text() == "file"
    assert page.locator("#key-status tbody tr").count() >= 1
    axe_check(page, "overview")
    shot(page, shots, "overview")


def test_key_operations_in_the_overview(gateway_factory, new_context, shots):
    """Rotate, rewrap, re-encrypt a bucket to completion (progress shown) and retire the old KEK
    from the overview, the retirement held by a quorum rule until a second SuperAdmin approves;
    every object byte-exact through boto3; a viewer sees the actions disabled and is refused."""
    gw = gateway_factory("console-keys")
    adm = Admin(gw)
    s3 = s3_client(gw)
    bucket = name("keys")
    s3.create_bucket(Bucket=bucket)
    objects = {f"obj-{i}": os.urandom(size) for i, size in enumerate([0, 1, 70_000, 300_000, 9 * MiB])}
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    old = next(k["kek_id"] for k in adm.call("GET", "/kek", expect=200).json()["keks"] if k["current"])

    # a viewer: every key action disabled, with the reason; the API refuses it too
    vak, vsk = adm.user("vera-keys", "viewer")
    sak, ssk = adm.user("sam-keys", "superadmin")  # the second approver, from before the request
    vpage = new_context().new_page()
    sign_in(vpage, gw, vak, vsk, "overview")
    for button in ("Rotate KEK", "Rewrap data keys", "Start re-encryption"):
        expect(vpage.get_by_role("button", name=button)).to_be_disabled()
    assert "needs a SuperAdmin of the default tenant" in vpage.locator("#kek-why").inner_text()
    adm.call("POST", "/kek/rotate", {}, expect=403, token=adm.token(vak, vsk))

    page = new_context().new_page()
    sign_in(page, gw, ACCESS_KEY, SECRET_KEY, "overview")
    page.locator("#kek-list table").wait_for()
    msg = page.locator("#key-msg")

    page.get_by_role("button", name="Rotate KEK").click()
    page.get_by_role("dialog").get_by_role("button", name="Rotate").click()
    expect(msg).to_contain_text("Rotated. Current KEK")
    keks = adm.call("GET", "/kek", expect=200).json()["keks"]
    new = next(k["kek_id"] for k in keks if k["current"])
    assert new != old and old in [k["kek_id"] for k in keks]
    assert new in msg.inner_text()

    page.get_by_role("button", name="Rewrap data keys").click()
    expect(msg).to_contain_text(f"Rewrap done. Current KEK {new}: 0 data key(s) re-wrapped")

    # the old KEK still sits in the objects' stream headers: retiring it is refused
    page.get_by_role("button", name=f"Retire KEK {old}").click()
    page.get_by_role("dialog").get_by_role("button", name="Retire").click()
    expect(msg).to_contain_text("Conflict")
    expect(page.locator("#kek-list tbody tr", has_text=old).locator("td").nth(5)).to_have_text(str(len(objects)))

    page.get_by_role("combobox", name="Bucket").fill(bucket)
    page.get_by_role("button", name="Start re-encryption").click()
    page.get_by_role("dialog").get_by_role("button", name="Re-encrypt").click()
    prog = page.locator("#reencrypt-progress")
    expect(prog).to_contain_text(f"Re-encryption of {bucket} to data key version 2 finished:", timeout=180_000)
    assert "5 of 5 object version(s) done (5 re-sealed" in prog.inner_text(), prog.inner_text()
    bar = prog.get_by_role("progressbar", name=f"Re-encryption progress of {bucket}")
    assert bar.get_attribute("value") == bar.get_attribute("max") == "5"
    for key, body in objects.items():
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body, key
    # the KEK table, refreshed when the job finished: no data key and no stream header under the old KEK
    old_row = page.locator("#kek-list tbody tr", has_text=old).locator("td")
    expect(old_row.nth(4)).to_have_text("0")
    expect(old_row.nth(5)).to_have_text("0")
    # and the bucket's current data key: under the gateway's key, version 2, wrapped by the new KEK
    ks_row = page.locator("#key-status tbody tr", has_text=bucket).locator("td")
    expect(ks_row.nth(1)).to_have_text("gateway key")
    expect(ks_row.nth(2)).to_have_text("2")
    expect(ks_row.nth(4)).to_have_text(new)

    # a quorum rule on re-encryption: starting another shows its approval request, nothing starts
    adm.call(
        "PUT",
        "/quorum/rules/reencrypt-holds",
        {"action": "admin:ReencryptBucket", "approvals": 1, "approver_roles": ["superadmin"], "ttl_secs": 600},
        expect=200,
    )
    page.get_by_role("button", name="Start re-encryption").click()
    page.get_by_role("dialog").get_by_role("button", name="Re-encrypt").click()
    msg.locator("#approval-link").wait_for()
    assert "Approval required" in msg.inner_text() and "pending" in msg.inner_text()
    held = msg.locator("#approval-link").inner_text()
    assert APPROVAL_ID.fullmatch(held), held
    assert adm.call("GET", f"/kek/reencrypt/{bucket}", expect=200).json()["target_version"] == 2

    # a quorum rule holds the retirement until another SuperAdmin approves it
    adm.call(
        "PUT",
        "/quorum/rules/retire-keys",
        {"action": "admin:RetireKey", "approvals": 1, "approver_roles": ["superadmin"], "ttl_secs": 600},
        expect=200,
    )
    page.get_by_role("button", name=f"Retire KEK {old}").click()
    page.get_by_role("dialog").get_by_role("button", name="Retire").click()
    link = msg.locator("#approval-link")
    # the retirement's own request, not the re-encryption's shown before
    expect(link).to_have_text(re.compile(rf"^(?!{re.escape(held)}$)apr-[A-Za-z0-9_-]+$"))
    approval = link.inner_text()
    assert APPROVAL_ID.fullmatch(approval), approval
    expect(msg).to_contain_text(f"approval request {approval} is pending")
    assert old in [k["kek_id"] for k in adm.call("GET", "/kek", expect=200).json()["keks"]]
    adm.call("POST", f"/approvals/{approval}/approve", expect=200, token=adm.token(sak, ssk))
    page.get_by_role("button", name=f"Retire KEK {old}").click()
    page.get_by_role("dialog").get_by_role("button", name="Retire").click()
    expect(msg).to_contain_text(f"KEK {old} retired.")
    assert [k["kek_id"] for k in adm.call("GET", "/kek", expect=200).json()["keks"]] == [new]
    expect(page.get_by_role("button", name=f"Retire KEK {old}")).to_have_count(0)
    for key, body in objects.items():
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body, key
    for action in ("admin.RotateKek", "admin.RewrapDataKeys", "admin.ReencryptBucket", "admin.RetireKek"):
        items = adm.call("GET", f"/audit?action={action}&limit=100", expect=200).json()["items"]
        assert items, action
    axe_check(page, "overview with key management")
    shot(page, shots, "overview-keys")


def test_zz_no_secret_or_token_in_the_server_logs(console_gw, log_dir, seen):
    assert seen.values, "the tests recorded the secrets and tokens they handled"
    logs = list(Path(log_dir).glob("console*.log"))
    assert logs
    for f in logs:
        text = f.read_text(errors="replace")
        for v in seen.values:
            assert v not in text, f"a secret or token is in {f}"
