// Overview: health (/health), readiness (/ready, per dependency), the gateway's facts
// (/admin/v1/status: version, uptime, backend, key provider, region), the keys (/key-status, and
// for a SuperAdmin of the default tenant the KEKs of /kek with rotate, rewrap, retire and the
// re-encryption of a bucket with its progress), and S3 request, byte and error counts from its
// own Prometheus metrics (/metrics) with rates over the last refresh.

import { call, signedInAs } from "../api";
import type { Ctx } from "../main";
import { gatedNotice } from "./approvals";
import { bytes, confirmDialog, errorNotice, field, h, input, notice, replace, table, time } from "../dom";

interface Status {
  version: string;
  uptime_secs: number;
  principals: number;
  caller: string;
  extra: Record<string, unknown>;
}

interface KeyStatus {
  key_provider: string;
  buckets: { bucket: string; kms_key: string; version: number; versions: number; kek_id: string; rotated_ms: number }[];
}

interface Kek {
  kek_id: string;
  version: number;
  current: boolean;
  held: boolean;
  data_keys: number;
  stream_headers: number;
}

interface KekStatus {
  provider: { kind: string; location: string; state: string; error?: string };
  keks: Kek[];
  data_keys: { bucket: string; version: number; kek_id: string; objects: number; bytes: number }[];
}

interface Rewrap {
  current_kek_id: string;
  total: number;
  rewrapped: number;
  already_current: number;
  failed: [string, string][];
}

interface Reencrypt {
  bucket: string;
  target_version: number;
  finished_ms: number | null;
  resealed: number;
  bytes: number;
  skipped_sse_c: number;
  raced: number;
  failed: number;
  remaining: number;
  errors: [string, string, string][];
  running: boolean;
}

type Sample = { at: number; values: Map<string, number> };

function rewrapText(r: Rewrap): string {
  const failed = r.failed.length ? ` ${r.failed.length} failed (${r.failed.map(([id, why]) => `${id}: ${why}`).join("; ")}); rewrap again to retry.` : "";
  return `Current KEK ${r.current_kek_id}: ${r.rewrapped} data key(s) re-wrapped, ${r.already_current} already under it.${failed}`;
}

function reencryptText(s: Reencrypt): string {
  const done = s.resealed + s.skipped_sse_c + s.raced + s.failed;
  const head = s.running ? `Re-encrypting ${s.bucket} to data key version ${s.target_version}` : `Re-encryption of ${s.bucket} to data key version ${s.target_version} ${s.failed ? "finished with failures" : "finished"}`;
  return `${head}: ${done} of ${done + s.remaining} object version(s) done (${s.resealed} re-sealed, ${bytes(s.bytes)}; ${s.skipped_sse_c} SSE-C skipped; ${s.raced} overwritten meanwhile; ${s.failed} failed).`;
}

/** KEKs with rotate, rewrap and retire, and the re-encryption of a bucket with its progress
 * (polled every second while it runs). Keys are global: only a SuperAdmin of the default tenant
 * may use them; for anyone else the buttons are disabled and say why. */
function keyManagement(ctx: Ctx, keyStatus: () => Promise<void>): { el: HTMLElement; refresh: () => Promise<void>; stop: () => void } {
  const who = signedInAs();
  const allowed = who?.role === "superadmin" && who.tenant === "default";
  const why = allowed ? null : h("p", { id: "kek-why", class: "hint" }, "Key management needs a SuperAdmin of the default tenant; your role cannot use these actions.");
  const disabledAttrs = allowed ? {} : { disabled: true, "aria-describedby": "kek-why" };
  const msg = h("div", { id: "key-msg", "aria-live": "polite" });
  const list = h("div", { id: "kek-list" });
  const progress = h("div", { id: "reencrypt-progress", "aria-live": "polite" });
  const goApproval = (id: string) => ctx.go(`approvals#${id}`);
  let poll: number | undefined;

  async function act(f: () => Promise<string>): Promise<void> {
    replace(msg, notice("info", "Working…"));
    try {
      replace(msg, notice("ok", await f()));
    } catch (e) {
      replace(msg, await gatedNotice(e, goApproval));
    }
    await Promise.all([refresh(), keyStatus()]);
  }

  async function rotate(): Promise<void> {
    const ok = await confirmDialog("Rotate the key-encryption key?", "A new KEK version is added to the key file and made current, then every data key is re-wrapped under it. Object data is not rewritten; the old version stays until you retire it.", "Rotate");
    if (ok) await act(async () => `Rotated. ${rewrapText(await call<Rewrap>("POST", "/kek/rotate"))}`);
  }

  async function rewrap(): Promise<void> {
    await act(async () => `Rewrap done. ${rewrapText(await call<Rewrap>("POST", "/kek/rewrap"))}`);
  }

  async function retire(k: Kek): Promise<void> {
    const ok = await confirmDialog(`Retire KEK ${k.kek_id}?`, "It is removed from the key file for good. This is refused while it is current, while a data key is wrapped by it, or while stored stream headers carry it (re-encrypt those buckets first).", "Retire", true);
    if (ok) await act(async () => {
      const r = await call<{ kek_id: string }>("POST", `/kek/${encodeURIComponent(k.kek_id)}/retire`, {});
      return `KEK ${r.kek_id} retired.`;
    });
  }

  function show(s: Reencrypt): void {
    const done = s.resealed + s.skipped_sse_c + s.raced + s.failed;
    replace(
      progress,
      h("progress", { max: String(Math.max(1, done + s.remaining)), value: String(s.running ? done : Math.max(1, done + s.remaining)), "aria-label": `Re-encryption progress of ${s.bucket}` }),
      notice(s.failed ? "error" : s.running ? "info" : "ok", reencryptText(s), s.errors.length ? h("ul", {}, s.errors.slice(0, 10).map(([key, version, why]) => h("li", {}, `${key} (${version}): ${why}`))) : null),
    );
  }

  function follow(bucket: string): void {
    window.clearTimeout(poll);
    poll = window.setTimeout(async () => {
      try {
        const s = await call<Reencrypt>("GET", `/kek/reencrypt/${encodeURIComponent(bucket)}`);
        show(s);
        if (s.running) follow(bucket);
        else await Promise.all([refresh(), keyStatus()]);
      } catch (e) {
        replace(progress, errorNotice(e));
      }
    }, 1000);
  }

  const bucket = input("reencrypt_bucket", { required: true, list: "kek-buckets", ...disabledAttrs });
  const rate = input("reencrypt_rate", { inputmode: "decimal", placeholder: "no limit", ...disabledAttrs });
  const buckets = h("datalist", { id: "kek-buckets" });
  const form = h(
    "form",
    {
      class: "inline-form",
      "aria-labelledby": "reencrypt-h",
      onsubmit: async (ev: Event) => {
        ev.preventDefault();
        const b = bucket.value.trim();
        const r = rate.value.trim();
        const ok = await confirmDialog(`Re-encrypt bucket ${b}?`, "The bucket gets a new data key version and every version of every object is re-sealed under it in the background; the gateway keeps serving.", "Re-encrypt");
        if (!ok) return;
        replace(msg);
        try {
          const s = await call<Reencrypt>("POST", "/kek/reencrypt", r ? { bucket: b, rate: Number(r) } : { bucket: b });
          show(s);
          follow(b);
        } catch (e) {
          replace(progress);
          replace(msg, await gatedNotice(e, goApproval));
        }
      },
    },
    field("Bucket", bucket),
    field("Rate limit (MB/s, optional)", rate),
    buckets,
    h("button", { type: "submit", class: "primary", ...disabledAttrs }, "Start re-encryption"),
  );

  async function refresh(): Promise<void> {
    if (!allowed) return;
    try {
      const st = await call<KekStatus>("GET", "/kek");
      replace(buckets, [...new Set(st.data_keys.map((d) => d.bucket).filter((b) => !b.startsWith("__")))].map((b) => h("option", { value: b })));
      replace(
        list,
        h("p", {}, `Provider ${st.provider.kind} (${st.provider.location}): `, h("strong", { id: "kek-state" }, st.provider.state), st.provider.error ? ` — ${st.provider.error}` : ""),
        table(
          "Key-encryption keys (what still depends on each)",
          ["KEK", "Version", "Current", "Held", "Data keys wrapped", "Stream headers", ""],
          st.keks.map((k) => [
            h("code", {}, k.kek_id),
            String(k.version),
            k.current ? "current" : "–",
            k.held ? "yes" : "no",
            String(k.data_keys),
            String(k.stream_headers),
            k.current ? "" : h("button", { type: "button", class: "danger", "aria-label": `Retire KEK ${k.kek_id}`, onclick: () => void retire(k) }, "Retire"),
          ]),
          "No key-encryption key.",
        ),
      );
    } catch (e) {
      replace(list, errorNotice(e));
    }
  }

  const el = h(
    "div",
    { id: "key-management" },
    h("h3", {}, "Key management"),
    why,
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", onclick: () => void rotate(), ...disabledAttrs }, "Rotate KEK"),
      h("button", { type: "button", onclick: () => void rewrap(), ...disabledAttrs }, "Rewrap data keys"),
    ),
    msg,
    list,
    h("h3", { id: "reencrypt-h" }, "Re-encrypt a bucket"),
    form,
    progress,
  );
  return { el, refresh, stop: () => window.clearTimeout(poll) };
}

/** Sums of the Prometheus series we show, by metric name (labels summed over), plus by status class. */
export function parseMetrics(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([0-9.eE+-]+|NaN|\+Inf)/.exec(line);
    if (!match) continue;
    const name = match[1];
    const v = Number(match[3]);
    if (!Number.isFinite(v)) continue;
    m.set(name, (m.get(name) ?? 0) + v);
    const status = /status="(\d)\d\d"/.exec(match[2] ?? "");
    if (status) m.set(`${name}{${status[1]}xx}`, (m.get(`${name}{${status[1]}xx}`) ?? 0) + v);
  }
  return m;
}

const SHOWN: [string, string, boolean][] = [
  ["vaultgate_s3_requests_total", "S3 requests", false],
  ["vaultgate_s3_requests_total{4xx}", "S3 client errors (4xx)", false],
  ["vaultgate_s3_requests_total{5xx}", "S3 server errors (5xx)", false],
  ["vaultgate_s3_denied_total", "S3 requests denied by policy", false],
  ["vaultgate_s3_throttled_total", "S3 requests throttled", false],
  ["vaultgate_s3_bytes_in_total", "S3 bytes in", true],
  ["vaultgate_s3_bytes_out_total", "S3 bytes out", true],
  ["vaultgate_s3_in_flight_requests", "S3 requests in flight", false],
  ["vaultgate_auth_failures_total", "Failed authentications", false],
  ["vaultgate_audit_failures_total", "Audit events not recorded", false],
];

export async function overviewPage(main: HTMLElement, ctx: Ctx): Promise<() => void> {
  const health = h("div", { id: "health" });
  const facts = h("div", { id: "facts" });
  const metrics = h("div", { id: "metrics" });
  const keys = h("div", { id: "key-status" });

  async function showKeyStatus(): Promise<void> {
    try {
      const ks = await call<KeyStatus>("GET", "/key-status");
      replace(
        keys,
        h("p", {}, "Key-encryption key provider: ", h("strong", { id: "kek-provider" }, ks.key_provider)),
        table(
          "Bucket data keys (current version; older versions still open older objects)",
          ["Bucket", "KMS key (SSE-KMS)", "Version", "Versions", "Wrapped by KEK", "Last rotation"],
          ks.buckets.map((b) => [b.bucket, b.kms_key ? h("code", {}, b.kms_key) : "gateway key", String(b.version), String(b.versions), h("code", {}, b.kek_id), time(b.rotated_ms)]),
          "No bucket has a data key yet (a bucket gets one with its first object).",
        ),
      );
    } catch (e) {
      replace(keys, errorNotice(e));
    }
  }
  const manage = keyManagement(ctx, showKeyStatus);
  let last: Sample | null = null;

  async function refresh(): Promise<void> {
    try {
      const [live, ready] = await Promise.all([fetch("/health", { cache: "no-store" }), fetch("/ready", { cache: "no-store" })]);
      const readyBody = await ready.text();
      let detail: unknown = readyBody;
      try {
        detail = JSON.parse(readyBody);
      } catch {
        // plain text
      }
      const obj = detail && typeof detail === "object" ? ((detail as { checks?: unknown }).checks ?? detail) : null;
      const checks = obj && typeof obj === "object" ? Object.entries(obj as Record<string, unknown>).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : String(v)}`) : [String(detail)];
      replace(
        health,
        notice(live.ok ? "ok" : "error", h("strong", {}, "Health: "), live.ok ? "live" : `HTTP ${live.status}`),
        notice(ready.ok ? "ok" : "error", h("strong", {}, "Readiness: "), ready.ok ? "ready" : `not ready (HTTP ${ready.status})`, h("ul", {}, checks.map((c) => h("li", {}, c)))),
      );
    } catch (e) {
      replace(health, errorNotice(e));
    }
    try {
      const st = await call<Status>("GET", "/status");
      const extra = Object.entries(st.extra).map(([k, v]) => [k.replace(/_/g, " "), String(v)]);
      replace(facts, table("Gateway", ["Fact", "Value"], [["version", st.version], ["uptime", `${Math.round(st.uptime_secs / 60)} min`], ["principals", String(st.principals)], ...extra]));
    } catch (e) {
      replace(facts, errorNotice(e));
    }
    await showKeyStatus();
    await manage.refresh();
    try {
      const resp = await fetch("/metrics", { cache: "no-store" });
      const now: Sample = { at: Date.now(), values: parseMetrics(await resp.text()) };
      const rows = SHOWN.map(([name, label, isBytes]) => {
        const v = now.values.get(name) ?? 0;
        const prev = last?.values.get(name);
        const secs = last ? (now.at - last.at) / 1000 : 0;
        const rate = prev !== undefined && secs > 0 && !name.includes("in_flight") ? (v - prev) / secs : null;
        return [label, isBytes ? bytes(v) : String(Math.round(v)), rate === null ? "–" : isBytes ? `${bytes(Math.max(0, rate))}/s` : `${Math.max(0, rate).toFixed(2)}/s`];
      });
      replace(metrics, table("Gateway metrics (since start; rate over the last refresh)", ["Metric", "Total", "Rate"], rows));
      last = now;
    } catch (e) {
      replace(metrics, errorNotice(e));
    }
  }

  replace(
    main,
    h("h1", {}, "Overview"),
    h("section", { "aria-labelledby": "ov-h" }, h("h2", { id: "ov-h" }, "Health"), health),
    h("section", { "aria-labelledby": "facts-h" }, h("h2", { id: "facts-h" }, "Gateway"), facts),
    h("section", { "aria-labelledby": "keys-h" }, h("h2", { id: "keys-h" }, "Keys"), keys, manage.el),
    h("section", { "aria-labelledby": "m-h" }, h("h2", { id: "m-h" }, "Traffic"), metrics),
  );
  await refresh();
  const timer = window.setInterval(() => void refresh(), 10000);
  return () => {
    window.clearInterval(timer);
    manage.stop();
  };
}
