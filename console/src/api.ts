// The session and the admin API client. The session is the admin JWT of
// POST /admin/v1/auth/token, held in this module's memory only: never in localStorage,
// sessionStorage, a cookie or the URL. It is renewed (POST /admin/v1/auth/renew) at three
// quarters of its lifetime; a 401 anywhere (revoked key, disabled principal, gateway restarted
// with a new signing secret, expired token) ends the session and shows the sign-in form.

export interface ErrorInfo {
  status: number;
  code: string;
  message: string;
  requestId?: string;
  approvalId?: string;
}

export class ApiError extends Error {
  readonly info: ErrorInfo;
  constructor(info: ErrorInfo) {
    super(`${info.code}: ${info.message}`);
    this.info = info;
  }
}

interface Session {
  token: string;
  expiresAt: number;
  principal: string;
  role: string | null;
  tenant: string;
}

let session: Session | null = null;
let renewTimer: number | undefined;
let onEnded: (reason: string) => void = () => {};

export function onSessionEnded(f: (reason: string) => void): void {
  onEnded = f;
}

export function signedIn(): string | null {
  return session?.principal ?? null;
}

/** The signed-in principal's built-in role (null: grants only) and tenant, as of sign-in. */
export function signedInAs(): { role: string | null; tenant: string } | null {
  return session ? { role: session.role, tenant: session.tenant } : null;
}

export function sessionExpiresAt(): number | null {
  return session?.expiresAt ?? null;
}

function schedule(expiresIn: number): void {
  window.clearTimeout(renewTimer);
  const ms = Math.max(2, expiresIn * 0.75) * 1000;
  renewTimer = window.setTimeout(() => {
    void renew();
  }, ms);
}

export function endSession(reason: string): void {
  window.clearTimeout(renewTimer);
  const had = session !== null;
  session = null;
  if (had) onEnded(reason);
}

async function renew(): Promise<void> {
  if (!session) return;
  if (Date.now() >= session.expiresAt) {
    endSession("Your session expired. Sign in again.");
    return;
  }
  try {
    const r = await call<{ token: string; expires_in: number }>("POST", "/auth/renew");
    if (session) {
      session.token = r.token;
      session.expiresAt = Date.now() + r.expires_in * 1000;
      schedule(r.expires_in);
    }
  } catch (e) {
    if (session && e instanceof ApiError && e.info.status !== 401) {
      // a passing failure (network, 503): try again shortly, while the token still lives
      renewTimer = window.setTimeout(() => void renew(), 5000);
    }
  }
}

export async function signIn(accessKey: string, secretKey: string): Promise<void> {
  const resp = await fetch("/admin/v1/auth/token", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ access_key: accessKey, secret_key: secretKey }),
    credentials: "omit",
    cache: "no-store",
  });
  if (!resp.ok) throw await errorOf(resp);
  const r = (await resp.json()) as { token: string; expires_in: number };
  session = { token: r.token, expiresAt: Date.now() + r.expires_in * 1000, principal: "", role: null, tenant: "" };
  schedule(r.expires_in);
  const st = await call<{ caller: string; caller_role?: string | null; caller_tenant?: string }>("GET", "/status");
  session.principal = st.caller;
  session.role = st.caller_role ?? null;
  session.tenant = st.caller_tenant ?? "";
}

export async function errorOf(resp: Response): Promise<ApiError> {
  const requestId = resp.headers.get("x-request-id") ?? resp.headers.get("x-amz-request-id") ?? undefined;
  const text = await resp.text();
  try {
    const j = JSON.parse(text) as { error?: { code: string; message: string; request_id?: string; approval_id?: string } };
    if (j.error) {
      return new ApiError({
        status: resp.status,
        code: j.error.code,
        message: j.error.message,
        requestId: j.error.request_id ?? requestId,
        approvalId: j.error.approval_id,
      });
    }
  } catch {
    // not JSON: an S3 XML error or plain text
  }
  const doc = new DOMParser().parseFromString(text, "application/xml");
  const code = doc.querySelector("Error > Code")?.textContent;
  if (code) {
    const message = doc.querySelector("Error > Message")?.textContent ?? "";
    const m = /apr-[A-Za-z0-9_-]+/.exec(message);
    return new ApiError({
      status: resp.status,
      code,
      message,
      requestId: doc.querySelector("Error > RequestId")?.textContent ?? requestId,
      approvalId: m?.[0],
    });
  }
  return new ApiError({ status: resp.status, code: `HTTP${resp.status}`, message: text.slice(0, 200) || resp.statusText, requestId });
}

/** Authorization header of the current session (for XHR uploads). */
export function authHeader(): string {
  if (!session) throw new ApiError({ status: 401, code: "Unauthorized", message: "not signed in" });
  return `Bearer ${session.token}`;
}

/** A raw call under /admin/v1 (or an absolute same-origin path) with the session's token. */
export async function raw(method: string, path: string, init: RequestInit = {}): Promise<Response> {
  if (!session) throw new ApiError({ status: 401, code: "Unauthorized", message: "not signed in" });
  if (Date.now() >= session.expiresAt) {
    endSession("Your session expired. Sign in again.");
    throw new ApiError({ status: 401, code: "Unauthorized", message: "session expired" });
  }
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${session.token}`);
  const url = path.startsWith("/admin/") ? path : `/admin/v1${path}`;
  const resp = await fetch(url, { ...init, method, headers, credentials: "omit", cache: "no-store" });
  if (resp.status === 401) {
    const e = await errorOf(resp);
    endSession(`Your session ended (${e.info.message}). Sign in again.`);
    throw e;
  }
  return resp;
}

/** A JSON call under /admin/v1. */
export async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = {};
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { "content-type": "application/json" };
  }
  const resp = await raw(method, path, init);
  if (!resp.ok) throw await errorOf(resp);
  if (resp.status === 204) return undefined as T;
  return (await resp.json()) as T;
}

export function qs(params: Record<string, string | undefined>): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) u.set(k, v);
  const s = u.toString();
  return s ? `?${s}` : "";
}

export interface Page<T> {
  items: T[];
  next_cursor?: string | null;
}

/** Every page of a list. */
export async function all<T>(path: string, params: Record<string, string | undefined> = {}): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 50; i++) {
    const p = await call<Page<T>>("GET", path + qs({ ...params, limit: "1000", cursor }));
    out.push(...p.items);
    if (!p.next_cursor) break;
    cursor = p.next_cursor;
  }
  return out;
}
