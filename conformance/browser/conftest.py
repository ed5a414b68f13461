"""Fixtures for the console's browser tests: the gateway helpers of the client suite
(conformance/clients/conftest.py, loaded under another module name), a headless Debian chromium
driven by Playwright, sign-in helpers, axe-core, and a check that no secret reaches the page's
storage, URL or cookies.

Env: VAULTGATE_BIN (the binary), CHROMIUM (default /usr/bin/chromium), AXE_JS (default
console/node_modules/axe-core/axe.min.js), CONSOLE_SCREENSHOTS (directory for the page
screenshots; default the log dir; docs/console to refresh the ones in docs/CONSOLE.md).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import requests

_clients = Path(__file__).resolve().parents[1] / "clients" / "conftest.py"
_spec = importlib.util.spec_from_file_location("vg_clients_conftest", _clients)
vg = importlib.util.module_from_spec(_spec)
sys.modules["vg_clients_conftest"] = vg
_spec.loader.exec_module(vg)

# the client suite's fixtures, shared here
vaultgate_bin = vg.vaultgate_bin
log_dir = vg.log_dir
gateway_factory = vg.gateway_factory

REPO_ROOT = vg.REPO_ROOT
ACCESS_KEY = vg.ACCESS_KEY
SECRET_KEY = vg.SECRET_KEY
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE_JS = Path(os.environ.get("AXE_JS", REPO_ROOT / "console" / "node_modules" / "axe-core" / "axe.min.js"))


class Admin:
    """The admin REST API as the bootstrap SuperAdmin (a fresh token per call: no expiry worries)."""

    def __init__(self, gw: vg.Gateway):
        self.gw = gw

    def token(self, ak: str = ACCESS_KEY, sk: str = SECRET_KEY) -> str:
        r = requests.post(f"{self.gw.admin}/admin/v1/auth/token", json={"access_key": ak, "secret_key": sk}, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["token"]

    def call(self, method: str, path: str, body=None, expect: int | None = None, token: str | None = None):
        r = requests.request(
            method,
            f"{self.gw.admin}/admin/v1{path}",
            json=body,
            headers={"authorization": f"Bearer {token or self.token()}"},
            timeout=30,
        )
        if expect is not None:
            assert r.status_code == expect, f"{method} {path}: {r.status_code} {r.text}"
        return r

    def user(self, name: str, role: str, tenant: str = "default") -> tuple[str, str]:
        """Creates a principal with a role and a key; returns (access key id, secret)."""
        self.call("POST", "/principals", {"name": name, "role": role, "tenant": tenant}, expect=201)
        k = self.call("POST", "/keys", {"principal": name}, expect=201).json()
        return k["access_key_id"], k["secret_key"]


@pytest.fixture(scope="session")
def console_gw(gateway_factory):
    return gateway_factory("console")


@pytest.fixture(scope="session")
def admin(console_gw) -> Admin:
    return Admin(console_gw)


@pytest.fixture(scope="session")
def shots(log_dir) -> Path:
    d = Path(os.environ.get("CONSOLE_SCREENSHOTS") or (log_dir / "console-screenshots"))
    if not d.is_absolute():
        d = REPO_ROOT / d
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} not found: apt-get install -y chromium (conformance/run does)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Seen:
    """Secrets and tokens a test handled, to look for where they must never be."""

    def __init__(self):
        self.values: set[str] = set()

    def add(self, *v: str) -> None:
        self.values.update(x for x in v if x)


@pytest.fixture(scope="session")
def seen() -> Seen:
    return Seen()


@pytest.fixture
def new_context(browser, seen):
    """Fresh browser contexts (own memory, storage, cookies) with axe-core injected (through the
    DevTools protocol, which the page's CSP does not govern); tokens the console receives are
    remembered in `seen`."""
    made = []

    def make():
        ctx = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
        if AXE_JS.is_file():
            ctx.add_init_script(path=str(AXE_JS))

        def on_response(resp):
            if resp.url.endswith(("/admin/v1/auth/token", "/admin/v1/auth/renew")) and resp.status == 200:
                try:
                    seen.add(resp.json().get("token", ""))
                except Exception:  # noqa: BLE001 - a body that is gone is fine here
                    pass

        ctx.on("response", on_response)
        made.append(ctx)
        return ctx

    yield make
    for c in made:
        c.close()


def sign_in(page, gw: vg.Gateway, ak: str, sk: str, path: str = "") -> None:
    page.goto(f"{gw.admin}/console/{path}")
    page.get_by_label("Access key id").fill(ak)
    page.get_by_label("Secret key").fill(sk)
    page.get_by_role("button", name="Sign in").click()
    page.locator("#whoami").wait_for()


def assert_no_secret_in_browser(page, values) -> None:
    """Nothing of `values` in localStorage, sessionStorage, cookies, the URL or the history."""
    dump = page.evaluate(
        """() => JSON.stringify({
            local: Object.entries(localStorage), session: Object.entries(sessionStorage),
            cookie: document.cookie, url: location.href, state: history.state })"""
    )
    cookies = str(page.context.cookies())
    for v in values:
        assert v not in dump, "a secret or token is in the page's storage or URL"
        assert v not in cookies, "a secret or token is in a cookie"
    assert page.evaluate("() => localStorage.length + sessionStorage.length") == 0


def axe_check(page, name: str) -> None:
    """axe-core over the page as shown: no serious or critical violation."""
    if not AXE_JS.is_file():
        pytest.fail(f"axe-core not found at {AXE_JS} (npm ci --prefix console)")
    violations = page.evaluate(
        """async () => {
            const r = await axe.run(document, { resultTypes: ["violations"] });
            return r.violations.filter(v => v.impact === "serious" || v.impact === "critical")
                .map(v => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map(n => n.target.join(" ")).join(", ")}`);
        }"""
    )
    assert not violations, f"axe on {name}:\n" + "\n".join(violations)


def shot(page, shots: Path, name: str) -> None:
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
