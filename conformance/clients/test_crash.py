"""Crash consistency: concurrent boto3 PUTs (single and multipart) while the gateway is SIGKILLed,
then a restart on the same data dir. Every acknowledged PUT must read back intact and no partial
object may be visible.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from conftest import MiB, get_bytes, list_all, make_payload, sha256, small_transfer_config


def put_until_killed(gw, put, keys, workers: int, min_acked: int) -> set:
    """Runs `put(key)` for every key on `workers` threads and SIGKILLs the gateway once at least
    `min_acked` PUTs were acknowledged while others are in flight. Answers the keys acknowledged
    in the end (a PUT that raises is not acknowledged)."""
    lock = threading.Lock()
    started, acked = set(), set()
    killed = threading.Event()

    def upload(key: str) -> None:
        if killed.is_set():
            return
        with lock:
            started.add(key)
        try:
            put(key)
        except Exception:  # noqa: BLE001 - the gateway died under it; not acknowledged
            return
        with lock:
            acked.add(key)

    pool = ThreadPoolExecutor(max_workers=workers)
    futures = [pool.submit(upload, k) for k in keys]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with lock:
            if len(acked) >= min_acked and started - acked:
                break
        time.sleep(0.005)
    with lock:
        in_flight_at_kill = sorted(started - acked)
        acked_before_kill = set(acked)
    gw.kill()
    killed.set()
    for f in futures:
        f.result(timeout=300)
    pool.shutdown()
    assert acked_before_kill, "no PUT was acknowledged before the kill (gateway too slow?)"
    assert in_flight_at_kill, "nothing was in flight when the gateway was killed"
    with lock:
        return set(acked)


def test_sigkill_during_concurrent_puts(gateway_factory, tmp_path):
    gw = gateway_factory("crash")
    s3 = gw.s3()
    bucket = "crash-bucket"
    s3.create_bucket(Bucket=bucket)

    # 40 sources: every 4th is multipart (12 MiB in 5 MiB parts), the others single PUTs.
    sources = {}
    for i in range(40):
        size = 12 * MiB + i if i % 4 == 0 else 64 * 1024 * (i % 9) + 1000 + i
        sources[f"obj-{i:02d}"] = make_payload(size)
    files = {}
    for key, data in sources.items():
        if len(data) > 5 * MiB:
            files[key] = tmp_path / key
            files[key].write_bytes(data)
    digests = {k: sha256(v) for k, v in sources.items()}

    client = gw.s3(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=60)
    cfg = small_transfer_config()

    def put(key: str) -> None:
        if key in files:
            client.upload_file(str(files[key]), bucket, key, Config=cfg)
        else:
            client.put_object(Bucket=bucket, Key=key, Body=sources[key])

    final_acked = put_until_killed(gw, put, list(sources), workers=6, min_acked=6)
    assert len(final_acked) < len(sources), "every PUT finished: the kill did not interrupt anything"

    gw.start()
    s3 = gw.s3()
    listed = list_all(s3, bucket)

    # every acknowledged PUT is there, intact
    for key in sorted(final_acked):
        assert key in listed, f"acknowledged {key} is missing after the crash"
        data = get_bytes(s3, bucket, key)
        assert sha256(data) == digests[key], f"acknowledged {key} reads back corrupted"

    # every visible object is complete and one of the sources
    for key, (size, _etag) in listed.items():
        assert key in sources, f"unexpected object {key!r}"
        data = get_bytes(s3, bucket, key)
        assert len(data) == size == len(sources[key]), f"{key}: partial object visible"
        assert sha256(data) == digests[key], f"{key}: visible object differs from its source"

    # the store still works for new writes after the restart, including multipart
    s3.put_object(Bucket=bucket, Key="after", Body=b"after-crash")
    s3.upload_file(str(files["obj-00"]), bucket, "after-mp", Config=cfg)
    assert get_bytes(s3, bucket, "after") == b"after-crash"
    assert sha256(get_bytes(s3, bucket, "after-mp")) == digests["obj-00"]

    # and it survives a clean restart as well
    gw.restart()
    s3 = gw.s3()
    relisted = list_all(gw.s3(), bucket)
    assert set(relisted) == set(listed) | {"after", "after-mp"}
    for key in listed:
        assert sha256(get_bytes(s3, bucket, key)) == digests[key]


def test_sigkill_during_16_client_small_puts_inline(gateway_factory):
    """Small objects are committed inline (sealed stream in the index row, written back to the
    backend afterwards; docs/OPERATIONS.md). SIGKILL while 16 clients PUT 1-60 KiB objects: every
    acknowledged object reads back intact, nothing partial is visible, the audit chain verifies,
    and after a clean stop the backend alone rebuilds every object (`reindex` on a deleted
    index): what was pending at the kill was written back after the restart."""
    import os
    import subprocess

    gw = gateway_factory("crash-inline")
    s3 = gw.s3()
    bucket = "crash-inline"
    s3.create_bucket(Bucket=bucket)
    sources = {f"s-{i:04d}": make_payload(1024 + (i * 7919) % (59 * 1024)) for i in range(1200)}
    digests = {k: sha256(v) for k, v in sources.items()}

    client = gw.s3(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=60,
                   max_pool_connections=16)

    def put(key: str) -> None:
        client.put_object(Bucket=bucket, Key=key, Body=sources[key])

    final_acked = put_until_killed(gw, put, list(sources), workers=16, min_acked=300)
    assert len(final_acked) >= 300, "too few PUTs acknowledged before the kill"
    assert len(final_acked) < len(sources), "every PUT finished: the kill did not interrupt anything"
    import sqlite3

    db = sqlite3.connect(str(gw.data_dir / "index.db"))
    pending_at_kill = db.execute("SELECT COUNT(*) FROM object_streams WHERE inline_pending = 1").fetchone()[0]
    inline_at_kill = db.execute("SELECT COUNT(*) FROM object_streams WHERE inline_data IS NOT NULL").fetchone()[0]
    db.close()
    print(f"acked {len(final_acked)}, inline {inline_at_kill}, pending write-back at the kill {pending_at_kill}")
    assert inline_at_kill >= len(final_acked), "small PUTs are committed inline"

    gw.start()
    s3 = gw.s3()
    listed = list_all(s3, bucket)
    for key in sorted(final_acked):
        assert key in listed, f"acknowledged {key} is missing after the crash"
    for key, (size, _etag) in listed.items():
        data = get_bytes(s3, bucket, key)
        assert len(data) == size == len(sources[key]), f"{key}: partial object visible"
        assert sha256(data) == digests[key], f"{key}: visible object differs from its source"
    gw.stop()

    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULTGATE_")}
    p = subprocess.run([gw.binary, "audit", "verify", "--data-dir", str(gw.data_dir)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr

    # the backend alone: every visible object was written back
    for suffix in ("", "-wal", "-shm"):
        f = gw.data_dir / f"index.db{suffix}"
        if f.exists():
            f.unlink()
    r = subprocess.run([gw.binary, "reindex", "--quiet"], env=gw.env(), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    gw.start()
    s3 = gw.s3()
    rebuilt = list_all(s3, bucket)
    assert set(rebuilt) == set(listed), set(listed) ^ set(rebuilt)
    for key in rebuilt:
        assert sha256(get_bytes(s3, bucket, key)) == digests[key]
