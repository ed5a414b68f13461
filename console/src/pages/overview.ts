// Overview: health (/health), readiness (/ready, per dependency), the gateway's facts
// (/admin/v1/status: version, uptime, backend, key provider, region), and S3 request, byte and
// error counts from its own Prometheus metrics (/metrics) with rates over the last refresh.

import { call } from "../api";
import type { Ctx } from "../main";
import { bytes, errorNotice, h, notice, replace, table, time } from "../dom";

interface Status {
  version: string;
  uptime_secs: number;
  principals: number;
  caller: string;
  extra: Record<string, unknown>;
}

interface KeyStatus {
  key_provider: string;
  buckets: { bucket: string; version: number; versions: number; kek_id: string; rotated_ms: number }[];
}

type Sample = { at: number; values: Map<string, number> };

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

export async function overviewPage(main: HTMLElement, _ctx: Ctx): Promise<() => void> {
  const health = h("div", { id: "health" });
  const facts = h("div", { id: "facts" });
  const metrics = h("div", { id: "metrics" });
  const keys = h("div", { id: "key-status" });
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
    try {
      const ks = await call<KeyStatus>("GET", "/key-status");
      replace(
        keys,
        h("p", {}, "Key-encryption key provider: ", h("strong", { id: "kek-provider" }, ks.key_provider)),
        table(
          "Bucket data keys (current version; older versions still open older objects)",
          ["Bucket", "Version", "Versions", "Wrapped by KEK", "Last rotation"],
          ks.buckets.map((b) => [b.bucket, String(b.version), String(b.versions), h("code", {}, b.kek_id), time(b.rotated_ms)]),
          "No bucket has a data key yet (a bucket gets one with its first object).",
        ),
      );
    } catch (e) {
      replace(keys, errorNotice(e));
    }
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
    h("section", { "aria-labelledby": "keys-h" }, h("h2", { id: "keys-h" }, "Keys"), keys),
    h("section", { "aria-labelledby": "m-h" }, h("h2", { id: "m-h" }, "Traffic"), metrics),
  );
  await refresh();
  const timer = window.setInterval(() => void refresh(), 10000);
  return () => window.clearInterval(timer);
}
