"""The admin API's OpenAPI document (issue 7): fetched from a running `vaultgate serve`, validated
with openapi-spec-validator (PyPI), and checked against the routes the admin router serves.

"Every route in the router appears in the document" is checked from two sides:
  * probing the running binary: every documented (method, path) is routed (its answer is not the
    router's "no such route" 404 nor a 405), while undocumented paths and methods are not;
  * reading admin/src/api/mod.rs: the router is built from `routes!(...)` lists of handlers (in
    api/mod.rs or, as `module::handler`, in admin/src/api/module.rs, else admin/src/module.rs), and
    each handler carries the `#[utoipa::path(method, path = ...)]` attribute its route comes from. The
    set of (method, path) of the routed handlers must equal the document's, and the router must
    not add plain axum `.route(...)`s, which would be served without being documented.
Probing alone cannot see a route the document lacks (there is nothing to probe for), and parsing
alone does not prove the binary serves what the source says, hence both.
"""

from __future__ import annotations

import re

import pytest
import requests
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from conftest import ACCESS_KEY, REPO_ROOT, SECRET_KEY

API_DIR = REPO_ROOT / "admin" / "src" / "api"
API_RS = API_DIR / "mod.rs"
METHODS = ("get", "post", "put", "delete", "patch")


def documented(doc: dict) -> set[tuple[str, str]]:
    return {(m.upper(), path) for path, item in doc["paths"].items() for m in METHODS if m in item}


PATH_ATTR = re.compile(
    r"#\[utoipa::path\(\s*(get|post|put|delete|patch)\s*,\s*path\s*=\s*\"([^\"]+)\".*?\)\]\s*"
    r"(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?async\s+fn\s+(\w+)",
    re.S,
)
MACRO_PATH = re.compile(r'macro_rules!\s+(\w+)\s*\{.*?#\[utoipa::path\(\$method, path = "([^"]+)"', re.S)


def module_source(module: str) -> str:
    """The source of a routed handler's module: the router's own file (`api`), one of its family
    files admin/src/api/<module>.rs, or a module of the crate admin/src/<module>.rs (`audit`)."""
    if module == "api":
        return API_RS.read_text()
    family = API_DIR / f"{module}.rs"
    return (family if family.exists() else API_DIR.parent / f"{module}.rs").read_text()


def path_attributes(module: str) -> dict[str, tuple[str, str]]:
    """handler name -> (METHOD, path) from the `#[utoipa::path]` attributes of a module's source."""
    src = module_source(module)
    found = {m.group(3): (m.group(1).upper(), m.group(2)) for m in PATH_ATTR.finditer(src)}
    # handlers a macro writes (`bucket_route!(name, method, …)` in api/s3.rs): the macro's
    # `#[utoipa::path($method, path = "…")` and each invocation's name and method
    for macro, path in MACRO_PATH.findall(src):
        for m in re.finditer(rf"\b{macro}!\(\s*(?:///[^\n]*\n\s*)*(\w+),\s*(\w+),", src):
            found[m.group(1)] = (m.group(2).upper(), path)
    return found


def routed_in_source() -> tuple[set[tuple[str, str]], str]:
    """(method, path) of every handler named in a `routes!(...)` of admin/src/api/mod.rs
    (`module::fn` handlers are looked up by `module_source`), and the source of the functions
    building the router."""
    src = API_RS.read_text()
    handlers = [h.strip() for group in re.findall(r"routes!\(([^)]*)\)", src) for h in group.split(",") if h.strip()]
    assert handlers, "no routes!(...) in admin/src/api/mod.rs"
    attrs: dict[str, dict] = {}
    routed, missing = set(), []
    for h in handlers:
        module, _, name = h.rpartition("::")
        module = module.removeprefix("crate::").removeprefix("super::") or "api"
        if module not in attrs:
            attrs[module] = path_attributes(module)
        if name in attrs[module]:
            routed.add(attrs[module][name])
        else:
            missing.append(h)
    assert not missing, f"routed handlers without #[utoipa::path]: {missing}"
    body = re.search(r"fn documented_routes\(\)[^{]*\{(.*?)\n\}", src, re.S)
    router = re.search(r"pub fn router\([^)]*\)[^{]*\{(.*?)\n\}", src, re.S)
    assert body and router, "router functions not found in admin/src/api/mod.rs"
    return routed, body.group(1) + router.group(1)


@pytest.fixture(scope="module")
def admin_api(gateway):
    r = requests.post(
        f"{gateway.admin}/admin/v1/auth/token",
        json={"access_key": ACCESS_KEY, "secret_key": SECRET_KEY},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return gateway.admin, r.json()["token"]


@pytest.fixture(scope="module")
def document(admin_api) -> dict:
    base, _ = admin_api
    r = requests.get(f"{base}/admin/v1/openapi.json", timeout=30)  # public: no token
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


def test_document_validates(document):
    assert document["openapi"].startswith("3."), document.get("openapi")
    validate(document)  # raises on any violation of the OpenAPI 3 schema
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_validator_rejects_a_broken_document(document):
    broken = dict(document)
    broken["paths"] = {"/admin/v1/x": {"get": {"responses": {"200": {"description": "ok", "content": 7}}}}}
    with pytest.raises(OpenAPIValidationError):
        validate(broken)


def probe(base: str, token: str, method: str, path: str) -> requests.Response:
    concrete = re.sub(r"\{[^}]+\}", "probe-x", path)
    body = {} if method in ("POST", "PUT") else None  # empty bodies: refused, nothing created
    return requests.request(
        method, f"{base}{concrete}", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def is_route_miss(r: requests.Response) -> bool:
    if r.status_code == 405:
        return True
    if r.status_code != 404:
        return False
    try:
        return r.json()["error"]["message"] == "no such route"
    except (ValueError, KeyError, TypeError):
        return True


def test_every_documented_operation_is_served(admin_api, document):
    base, token = admin_api
    ops = documented(document)
    assert len(ops) >= 25, sorted(ops)
    for method, path in sorted(ops):
        r = probe(base, token, method, path)
        assert not is_route_miss(r), f"{method} {path} is documented but not routed: {r.status_code} {r.text[:200]}"
        # a routed handler answers, even if only with its own refusal (503 for a feature this
        # gateway was started without); a 500 would be a crash of the handler
        assert r.status_code != 500, f"{method} {path}: {r.status_code} {r.text[:200]}"
        if r.status_code >= 400:
            err = r.json()["error"]
            assert err["code"] and err["message"] and err["request_id"], r.text


def test_undocumented_paths_and_methods_are_not_served(admin_api, document):
    base, token = admin_api
    ops = documented(document)
    for method, path in [
        ("GET", "/admin/v1/nope"),
        ("GET", "/admin/v1/principals/a/b/c"),
        ("POST", "/admin/v1/keys/probe-x/unrevoke"),
        ("GET", "/admin/v2/principals"),
    ]:
        assert (method, path) not in ops
        r = probe(base, token, method, path)
        assert r.status_code == 404 and r.json()["error"]["message"] == "no such route", (method, path, r.text)
    for method, path in [("DELETE", "/admin/v1/principals"), ("PUT", "/admin/v1/keys")]:
        assert (method, path) not in ops
        r = probe(base, token, method, path)
        assert r.status_code == 405, (method, path, r.status_code, r.text)


def test_every_route_of_the_router_source_is_documented(document):
    in_source, router_src = routed_in_source()
    assert ".route(" not in router_src, "a plain axum route bypasses the OpenAPI document"
    ops = documented(document)
    assert in_source - ops == set(), f"routed but not documented: {sorted(in_source - ops)}"
    assert ops - in_source == set(), f"documented but not routed: {sorted(ops - in_source)}"
