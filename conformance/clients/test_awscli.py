"""aws cli v1 against the gateway: cp (single and 8 MiB-part multipart, parallel ranged downloads
with If-Match), sync of a mixed tree up and back down, s3api get-object --range, ls sizes, rm --recursive.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from conftest import MiB, list_all, md5_file, sha256, sha256_file, tree_digests, write_payload


def multipart_etag(path: Path, part_size: int) -> str:
    md5s = []
    with open(path, "rb") as f:
        while chunk := f.read(part_size):
            md5s.append(hashlib.md5(chunk).digest())
    return f"{hashlib.md5(b''.join(md5s)).hexdigest()}-{len(md5s)}"


def make_tree(root: Path) -> dict:
    """A few hundred files of mixed sizes in nested dirs, names with spaces, unicode and punctuation."""
    sizes = [0, 1, 79, 80, 81, 4096, 65535, 65536, 65537, 131072 + 17, 300_000]
    names = [
        "plain.bin",
        "with space.txt",
        "ünïcødé-名前.dat",
        "plus+sign.bin",
        "percent%20literal.bin",
        "equals=amp&.bin",
        "tilde~bang!.bin",
        "quote'paren(1).bin",
        "Ελληνικά.txt",
        "emoji-📦.bin",
    ]
    dirs = ["", "a", "a/b", "a/b/c d", "日本/語", "x y/z+w", "deep/er/est/dir"]
    files = {}
    n = 0
    for d in dirs:
        for i in range(40):
            name = names[i % len(names)]
            stem, dot, ext = name.partition(".")
            rel = (f"{d}/" if d else "") + f"{stem}-{i:02d}{dot}{ext}"
            size = sizes[(n * 7 + i) % len(sizes)]
            files[rel] = write_payload(root / rel, size)
            n += 1
    # two files above aws cli's 8 MiB multipart threshold, one at exactly a part boundary
    files["big/nine mib.bin"] = write_payload(root / "big/nine mib.bin", 9 * MiB + 123)
    files["big/sixteen.bin"] = write_payload(root / "big/sixteen.bin", 16 * MiB)
    # An hour old, like a real tree: LastModified has whole seconds, so a file written in the same
    # second as its upload would look newer than its copy to the second sync.
    old = time.time() - 3600
    for rel in files:
        os.utime(root / rel, (old, old))
    return files


def test_cp_small_file_roundtrip(gateway, s3, bucket, workdir):
    src = workdir / "small.bin"
    digest = write_payload(src, 1000)
    gateway.aws(workdir, "s3", "cp", str(src), f"s3://{bucket}/dir/small.bin")
    out = workdir / "small.out"
    gateway.aws(workdir, "s3", "cp", f"s3://{bucket}/dir/small.bin", str(out))
    assert sha256_file(out) == digest
    head = s3.head_object(Bucket=bucket, Key="dir/small.bin")
    assert head["ETag"].strip('"') == md5_file(src)
    assert head["ContentLength"] == 1000


def test_cp_100mib_multipart_and_parallel_ranged_download(gateway, s3, bucket, workdir):
    src = workdir / "big.bin"
    digest = write_payload(src, 100 * MiB)
    gateway.aws(workdir, "s3", "cp", str(src), f"s3://{bucket}/big.bin")

    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == 100 * MiB
    # aws cli v1: 8 MiB parts -> 13 parts; the ETag must be S3's multipart form over the plaintext.
    assert head["ETag"].strip('"') == multipart_etag(src, 8 * MiB)
    assert list_all(s3, bucket)["big.bin"] == (100 * MiB, multipart_etag(src, 8 * MiB))

    out = workdir / "big.out"
    p = gateway.aws(workdir, "--debug", "s3", "cp", f"s3://{bucket}/big.bin", str(out))
    assert sha256_file(out) == digest
    log = p.stderr.decode(errors="replace")
    ranged = [ln for ln in log.splitlines() if "OperationModel(name=GetObject)" in ln and "'Range': 'bytes=" in ln]
    assert len(ranged) >= 2, "aws cli did not download in ranged parts"
    assert all("'If-Match'" in ln for ln in ranged), "aws cli ranged GETs carried no If-Match"


def test_sync_tree_up_and_down_ls_and_rm(gateway, s3, bucket, workdir):
    src = workdir / "src"
    files = make_tree(src)
    assert len(files) >= 280

    p = gateway.aws(workdir, "--debug", "s3", "sync", str(src), f"s3://{bucket}/tree/", timeout=900)
    (workdir / "sync-up.debug.log").write_bytes(p.stderr)
    # Every response must parse and none may time out (a stall costs the user 60 s per retry).
    trouble = [
        ln
        for ln in p.stderr.decode(errors="replace").splitlines()
        if "Failed to parse headers" in ln or "retryable exception caught" in ln
    ]
    assert not trouble, f"{len(trouble)} client-side failures/retries, e.g.:\n" + "\n".join(
        t[:300] for t in trouble[:6]
    )
    listed = list_all(s3, bucket)
    assert sorted(listed) == sorted(f"tree/{k}" for k in files)

    # A second sync finds nothing to do: LIST sizes equal local sizes and LastModified is newer.
    again = gateway.aws(workdir, "s3", "sync", str(src), f"s3://{bucket}/tree/")
    assert b"upload:" not in again.stdout, again.stdout.decode(errors="replace")[:2000]

    down = workdir / "down"
    gateway.aws(workdir, "s3", "sync", f"s3://{bucket}/tree/", str(down), timeout=900)
    assert tree_digests(down) == files

    # aws s3 ls sizes == local sizes
    p = gateway.aws(workdir, "s3", "ls", "--recursive", f"s3://{bucket}/tree/")
    ls_sizes = {}
    for line in p.stdout.decode("utf-8").splitlines():
        _date, _time, size, key = line.split(maxsplit=3)
        ls_sizes[key] = int(size)
    expected_sizes = {f"tree/{k}": (src / k).stat().st_size for k in files}
    assert ls_sizes == expected_sizes

    gateway.aws(workdir, "s3", "rm", "--recursive", f"s3://{bucket}/tree/")
    assert list_all(s3, bucket) == {}
    p = gateway.aws(workdir, "s3", "ls", "--recursive", f"s3://{bucket}/", check=False)
    assert p.stdout.strip() == b""


def test_s3api_get_object_range(gateway, bucket, workdir):
    src = workdir / "r.bin"
    size = 3 * 65536 + 999
    write_payload(src, size)
    data = src.read_bytes()
    gateway.aws(workdir, "s3api", "put-object", "--bucket", bucket, "--key", "r.bin", "--body", str(src))
    cases = [
        ("bytes=100-199", 100, 199),
        ("bytes=65530-65545", 65530, 65545),  # crosses a 64 KiB chunk boundary
        ("bytes=0-0", 0, 0),
        (f"bytes={size - 10}-", size - 10, size - 1),
        ("bytes=-500", size - 500, size - 1),
        (f"bytes=5-{size + 100}", 5, size - 1),  # end past EOF is clamped
    ]
    for i, (rng, first, last) in enumerate(cases):
        out = workdir / f"range{i}.out"
        p = gateway.aws(workdir, "s3api", "get-object", "--bucket", bucket, "--key", "r.bin", "--range", rng, str(out))
        meta = json.loads(p.stdout)
        assert out.read_bytes() == data[first : last + 1], rng
        assert sha256(out.read_bytes()) == sha256(data[first : last + 1])
        assert meta["ContentLength"] == last - first + 1, rng
        assert meta["ContentRange"] == f"bytes {first}-{last}/{size}", rng
