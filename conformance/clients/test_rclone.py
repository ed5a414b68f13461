"""rclone against the gateway: copy/sync up and down, check --download, cat --offset/--count,
MD5 verification on upload (ETag = MD5 and the md5chksum metadata of multipart uploads), lsl sizes
and mtimes (x-amz-meta-mtime round-trip).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zlib
from datetime import datetime
from pathlib import Path

from conftest import MiB, list_all, sha256_file, tree_digests, write_payload

# Multipart in rclone from 5 MiB on, in 5 MiB chunks (default cutoff is 200 MiB).
MULTIPART = ["--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M"]
MTIME = 1_000_000_000  # 2001-09-09 01:46:40 UTC


def make_tree(root: Path) -> dict:
    files = {}
    sizes = [0, 1, 1000, 65536, 65537, 250_000, 1 * MiB + 5]
    for i in range(35):
        d = ["", "sub", "sub/deeper", "spaced dir", "ünï"][i % 5]
        rel = (f"{d}/" if d else "") + f"file {i:02d}-é.bin"
        files[rel] = write_payload(root / rel, sizes[i % len(sizes)])
    files["multi/twelve.bin"] = write_payload(root / "multi/twelve.bin", 12 * MiB + 7)
    for rel in files:
        os.utime(root / rel, (MTIME, MTIME + zlib.crc32(rel.encode()) % 100_000))
    return files


def no_errors(log: str) -> None:
    bad = [ln for ln in log.splitlines() if re.search(r"\bERROR\b|corrupt|differ|Failed to", ln)]
    assert not bad, "rclone logged errors:\n" + "\n".join(bad[:30])


def test_copy_sync_check_lsl_roundtrip(gateway, s3, bucket, workdir):
    src = workdir / "src"
    files = make_tree(src)
    remote = f"gw:{bucket}/rc"

    p = gateway.rclone(workdir, "copy", *MULTIPART, "-v", str(src), remote)
    no_errors(p.stderr.decode(errors="replace"))
    assert sorted(list_all(s3, bucket)) == sorted(f"rc/{k}" for k in files)

    # check --download compares the bytes of every file
    gateway.rclone(workdir, "check", "--download", str(src), remote)

    # lsl: sizes and modification times (rclone keeps mtime in x-amz-meta-mtime)
    p = gateway.rclone(workdir, "lsl", remote)
    seen = {}
    for line in p.stdout.decode("utf-8").splitlines():
        m = re.match(r"^\s*(\d+) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.\d+ (.*)$", line)
        assert m, line
        seen[m.group(3)] = int(m.group(1))
    assert seen == {k: (src / k).stat().st_size for k in files}
    p = gateway.rclone(workdir, "lsjson", "-R", "--files-only", remote)
    for entry in json.loads(p.stdout):
        local = (src / entry["Path"]).stat()
        remote_mtime = datetime.fromisoformat(entry["ModTime"]).timestamp()
        assert abs(remote_mtime - local.st_mtime) < 1.0, entry

    # sync: a deleted, a changed and a new file
    gone = "sub/file 01-é.bin"
    (src / gone).unlink()
    del files[gone]
    files["file 00-é.bin"] = write_payload(src / "file 00-é.bin", 4321)
    files["new/added.bin"] = write_payload(src / "new/added.bin", 77_777)
    gateway.rclone(workdir, "sync", *MULTIPART, str(src), remote)
    assert sorted(list_all(s3, bucket)) == sorted(f"rc/{k}" for k in files)
    gateway.rclone(workdir, "check", "--download", str(src), remote)

    # down again with copy, and with sync into a dir holding a stale file
    down = workdir / "down"
    gateway.rclone(workdir, "copy", remote, str(down))
    assert tree_digests(down) == files
    down2 = workdir / "down2"
    write_payload(down2 / "stale.bin", 10)
    gateway.rclone(workdir, "sync", remote, str(down2))
    assert tree_digests(down2) == files


def test_upload_verifies_md5_and_md5sum_matches(gateway, bucket, workdir):
    src = workdir / "md5src"
    files = {
        "single.bin": write_payload(src / "single.bin", 3 * MiB + 1),
        "tiny.bin": write_payload(src / "tiny.bin", 17),
        "empty.bin": write_payload(src / "empty.bin", 0),
        "multi.bin": write_payload(src / "multi.bin", 11 * MiB),
    }
    log = workdir / "rclone.log"
    gateway.rclone(workdir, "copy", *MULTIPART, "-vv", "--log-file", str(log), str(src), f"gw:{bucket}/m")
    text = log.read_text(errors="replace")
    no_errors(text)
    assert text.count("Copied (new)") == len(files), text[-3000:]

    p = gateway.rclone(workdir, "md5sum", f"gw:{bucket}/m")
    sums = {}
    for line in p.stdout.decode("utf-8").splitlines():
        digest, name = line.split("  ", 1)
        sums[name] = digest
    expected = {k: hashlib.md5((src / k).read_bytes()).hexdigest() for k in files}
    assert sums == expected
    # rclone check without --download relies on those hashes
    gateway.rclone(workdir, "check", str(src), f"gw:{bucket}/m")


def test_cat_offset_count(gateway, bucket, workdir):
    src = workdir / "cat"
    write_payload(src / "c.bin", 200_000)
    data = (src / "c.bin").read_bytes()
    gateway.rclone(workdir, "copy", str(src), f"gw:{bucket}/c")
    for offset, count in [(0, 10), (1000, 5000), (65530, 20), (199_990, 10), (150_000, 100_000)]:
        p = gateway.rclone(workdir, "cat", "--offset", str(offset), "--count", str(count), f"gw:{bucket}/c/c.bin")
        assert p.stdout == data[offset : offset + count], (offset, count)
    p = gateway.rclone(workdir, "cat", f"gw:{bucket}/c/c.bin")
    assert p.stdout == data
    out = workdir / "cat.out"
    out.write_bytes(p.stdout)
    assert sha256_file(out) == sha256_file(src / "c.bin")
