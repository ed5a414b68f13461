"""s3cmd with its defaults: nothing but --host, --host-bucket and the keys (and --no-ssl, the test
gateway speaks plain HTTP). s3cmd signs with its default bucket location `US` as the SigV4 region;
the gateway checks that signature and serves the request (docs/SECURITY.md, "Legacy region
names"). put/get/ls/del round-trip byte-exact, and a wrong secret is still refused.
"""

from __future__ import annotations

from conftest import ACCESS_KEY, SECRET_KEY, run, sha256_file, tool, unique_bucket, write_payload


def s3cmd(gateway, workdir, *args, secret=SECRET_KEY, check=True):
    cfg = workdir / "empty.s3cfg"
    cfg.write_text("")
    host = f"127.0.0.1:{gateway.s3_port}"
    cmd = [
        tool("s3cmd"),
        "-c",
        str(cfg),
        f"--access_key={ACCESS_KEY}",
        f"--secret_key={secret}",
        f"--host={host}",
        f"--host-bucket={host}",
        "--no-ssl",
        *args,
    ]
    return run(cmd, gateway.cli_env(workdir), 300, check, gateway)


def test_s3cmd_defaults_put_get_ls_del(gateway, workdir):
    b = unique_bucket("s3cmd")
    s3cmd(gateway, workdir, "mb", f"s3://{b}")
    src = workdir / "src.bin"
    digest = write_payload(src, 300_000)
    s3cmd(gateway, workdir, "put", str(src), f"s3://{b}/dir/obj.bin")
    ls = s3cmd(gateway, workdir, "ls", f"s3://{b}/dir/").stdout.decode()
    assert f"s3://{b}/dir/obj.bin" in ls and " 300000 " in ls, ls
    dst = workdir / "dst.bin"
    s3cmd(gateway, workdir, "get", "--force", f"s3://{b}/dir/obj.bin", str(dst))
    assert sha256_file(dst) == digest
    s3cmd(gateway, workdir, "del", f"s3://{b}/dir/obj.bin")
    assert f"s3://{b}/dir/obj.bin" not in s3cmd(gateway, workdir, "ls", f"s3://{b}/dir/").stdout.decode()
    s3cmd(gateway, workdir, "rb", f"s3://{b}")


def test_s3cmd_legacy_region_with_a_wrong_secret_is_refused(gateway, workdir):
    p = s3cmd(gateway, workdir, "ls", secret="wrong-secret-0123456789abcdef", check=False)
    assert p.returncode != 0
    err = p.stderr.decode(errors="replace")
    assert "SignatureDoesNotMatch" in err or "403" in err, err
