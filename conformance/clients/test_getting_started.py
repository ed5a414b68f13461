"""A fresh pair of eyes (issue 17): docs/GETTING-STARTED.md, followed literally.

Every fenced `sh` block of the page runs in order, in an empty directory, on default settings:
the first one starts the gateway (with the binary under test in place of `cargo run --release
--bin vaultgate --`, which CI has already built), the others run as one script in a second
"terminal" with `bash -euo pipefail`, so a failing command fails the test. Only three things
are replaced: the placeholders in angle brackets by the credentials the gateway printed on its
first start, and the default ports 9000/9001 by free ones (CI runs other gateways meanwhile).
The tools come from the suite's venv (aws cli, rclone), with their config files isolated.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from conftest import REPO_ROOT, free_port

PAGE = REPO_ROOT / "docs" / "GETTING-STARTED.md"
START = "cargo run --release --bin vaultgate -- serve"


def sh_blocks(text: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^```sh\n(.*?)^```", text, re.S | re.M)]


def test_the_getting_started_page_works_as_written(vaultgate_bin, log_dir, tmp_path):
    blocks = sh_blocks(PAGE.read_text())
    assert len(blocks) >= 4, "the page lost its steps"
    assert blocks[0].strip() == START, f"the first step must start the gateway: {blocks[0]!r}"
    readme = (REPO_ROOT / "README.md").read_text()
    assert START in readme, "README's set-up command and the page's first step differ"

    s3_port, admin_port = free_port(), free_port()
    while admin_port == s3_port:
        admin_port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("VAULTGATE_", "AWS_", "RCLONE_"))
    }
    gw_env = dict(
        env,
        VAULTGATE_S3_ADDR=f"127.0.0.1:{s3_port}",
        VAULTGATE_ADMIN_ADDR=f"127.0.0.1:{admin_port}",
    )
    out_path, log_path = log_dir / "getting-started.stdout", log_dir / "getting-started.log"
    with open(out_path, "wb") as out, open(log_path, "wb") as log:
        gw = subprocess.Popen([vaultgate_bin, "serve"], cwd=tmp_path, env=gw_env, stdout=out, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert gw.poll() is None, f"the gateway exited: {log_path.read_text()[-3000:]}"
            try:
                if requests.get(f"http://127.0.0.1:{admin_port}/ready", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "not ready after 60 s"
            time.sleep(0.2)
        printed = out_path.read_text()
        access = re.search(r"^access key id:\s+(\S+)$", printed, re.M)
        secret = re.search(r"^secret access key:\s+(\S+)$", printed, re.M)
        assert access and secret, f"first start printed no credentials:\n{printed}"

        script = "\n".join(blocks[1:])
        script = script.replace("<printed access key>", access.group(1))
        script = script.replace("<printed secret>", secret.group(1))
        script = script.replace("127.0.0.1:9000", f"127.0.0.1:{s3_port}")
        script = script.replace("127.0.0.1:9001", f"127.0.0.1:{admin_port}")
        assert "<printed" not in script, "a placeholder the test does not know"
        tools = str(Path(sys.executable).parent)
        run_env = dict(
            env,
            PATH=f"{tools}:{env.get('PATH', '')}",
            AWS_CONFIG_FILE="/dev/null",
            AWS_SHARED_CREDENTIALS_FILE="/dev/null",
            AWS_EC2_METADATA_DISABLED="true",
            RCLONE_CONFIG="/dev/null",
        )
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        (log_dir / "getting-started.script.txt").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
        assert proc.returncode == 0, f"a step failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        assert "the same bytes came back" in proc.stdout
    finally:
        if gw.poll() is None:
            gw.send_signal(signal.SIGTERM)
            try:
                gw.wait(20)
            except subprocess.TimeoutExpired:
                gw.kill()
    assert gw.returncode == 0, f"the gateway did not stop cleanly: {log_path.read_text()[-2000:]}"
    # what the page promises about the data dir
    data = tmp_path / "data"
    assert (data / "master.key").stat().st_mode & 0o777 == 0o600
    assert data.stat().st_mode & 0o777 == 0o700
