// Audit: search the ledger (time range, principal, action, bucket, key prefix, outcome, status,
// request id, kind), read one event, run a chain verification, and export an evidence bundle of
// the current filter (downloaded after its SHA-256 is checked).

import { call, raw, errorOf, qs } from "../api";
import type { Page } from "../api";
import type { Ctx } from "../main";
import { bytes, errorNotice, field, h, input, notice, replace, saveBlob, select, time } from "../dom";

interface AuditEvent {
  seq: number;
  time_ms: number;
  request_id: string;
  kind: string;
  principal?: string | null;
  tenant?: string | null;
  action: string;
  bucket?: string | null;
  key?: string | null;
  outcome: string;
  status: number;
  error_code?: string | null;
  bytes_in: number;
  bytes_out: number;
  key_version?: number | null;
  source?: string | null;
  duration_us: number;
  prev_hash: string;
  hash: string;
}

interface ChainStatus {
  ok: boolean;
  events: number;
  first_seq?: number | null;
  last_seq?: number | null;
  head_hash: string;
  anchor: string;
  broken_seq?: number | null;
  issue?: string | null;
  checked_ms: number;
}

interface Exported {
  id: string;
  events: number;
  sha256: string;
  download: string;
}

async function sha256Hex(b: ArrayBuffer): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", b);
  return Array.from(new Uint8Array(d), (x) => x.toString(16).padStart(2, "0")).join("");
}

export async function auditPage(main: HTMLElement, _ctx: Ctx): Promise<void> {
  const f = {
    from: input("from", { type: "datetime-local", step: "1" }),
    to: input("to", { type: "datetime-local", step: "1" }),
    principal: input("principal"),
    action: input("action", { placeholder: "PutObject, admin.CreateAccessKey, …" }),
    bucket: input("bucket"),
    prefix: input("prefix"),
    outcome: select("outcome", [["", "any"], ["success", "success"], ["denied", "denied"], ["error", "error"]]),
    status: input("status", { inputmode: "numeric", pattern: "[0-9]{3}" }),
    request_id: input("request_id"),
    kind: select("kind", [["", "any"], ["s3", "S3"], ["admin", "admin"]]),
  };
  const results = h("div", { id: "audit-results" });
  const details = h("section", { id: "audit-details", "aria-label": "Event details" });
  const chain = h("div", { id: "chain-status" });
  const exportMsg = h("div", { id: "export-msg" });
  let cursor: string | null | undefined;
  let shown: AuditEvent[] = [];

  function filter(): Record<string, string | undefined> {
    const t = (v: string) => (v ? new Date(v).toISOString() : undefined);
    return {
      from: t(f.from.value),
      to: t(f.to.value),
      principal: f.principal.value.trim() || undefined,
      action: f.action.value.trim() || undefined,
      bucket: f.bucket.value.trim() || undefined,
      prefix: f.prefix.value || undefined,
      outcome: f.outcome.value || undefined,
      status: f.status.value.trim() || undefined,
      request_id: f.request_id.value.trim() || undefined,
      kind: f.kind.value || undefined,
    };
  }

  function show(e: AuditEvent): void {
    const rows: [string, string][] = [
      ["Seq", String(e.seq)],
      ["Time", time(e.time_ms)],
      ["Request id", e.request_id],
      ["Kind", e.kind],
      ["Principal", e.principal ?? "–"],
      ["Tenant", e.tenant ?? "–"],
      ["Action", e.action],
      ["Bucket", e.bucket ?? "–"],
      ["Key", e.key ?? "–"],
      ["Outcome", e.outcome],
      ["Status", String(e.status)],
      ["Error code", e.error_code ?? "–"],
      ["Bytes in / out", `${e.bytes_in} / ${e.bytes_out}`],
      ["Key version", e.key_version != null ? String(e.key_version) : "–"],
      ["Source", e.source ?? "–"],
      ["Duration", `${(e.duration_us / 1000).toFixed(1)} ms`],
      ["Previous hash", e.prev_hash],
      ["Hash", e.hash],
    ];
    replace(details, h("h2", {}, `Event ${e.seq}`), h("dl", { class: "details" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, h("code", {}, v))])));
    details.focus();
  }

  function renderRows(): void {
    if (shown.length === 0) {
      replace(results, h("p", { class: "empty" }, "No events match."));
      return;
    }
    const body = h(
      "tbody",
      {},
      shown.map((e) =>
        h(
          "tr",
          {},
          h("td", {}, String(e.seq)),
          h("td", {}, time(e.time_ms)),
          h("td", {}, e.principal ?? "–"),
          h("td", {}, e.action),
          h("td", {}, [e.bucket, e.key].filter(Boolean).join("/") || "–"),
          h("td", {}, h("span", { class: `outcome ${e.outcome}` }, e.outcome)),
          h("td", {}, String(e.status)),
          h("td", {}, h("code", {}, e.request_id)),
          h("td", {}, h("button", { type: "button", "aria-label": `Details of event ${e.seq}`, onclick: () => show(e) }, "Details")),
        ),
      ),
    );
    replace(
      results,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          {},
          h("caption", {}, `Audit events (${shown.length}${cursor ? ", more available" : ""})`),
          h("thead", {}, h("tr", {}, ["Seq", "Time", "Principal", "Action", "Target", "Outcome", "Status", "Request id", ""].map((c) => h("th", { scope: "col" }, c)))),
          body,
        ),
      ),
      cursor ? h("button", { type: "button", onclick: () => void search(true) }, "Load more") : null,
    );
  }

  async function search(more = false): Promise<void> {
    try {
      const p = await call<Page<AuditEvent>>("GET", `/audit${qs({ ...filter(), limit: "100", cursor: more ? cursor ?? undefined : undefined })}`);
      shown = more ? shown.concat(p.items) : p.items;
      cursor = p.next_cursor;
      renderRows();
    } catch (e) {
      replace(results, errorNotice(e));
    }
  }

  async function verify(): Promise<void> {
    replace(chain, notice("info", "Verifying the chain…"));
    try {
      const r = await call<ChainStatus>("GET", "/audit/verify");
      replace(
        chain,
        r.ok
          ? notice("ok", h("strong", {}, "Chain OK"), `: ${r.events} events verified (seq ${r.first_seq ?? "–"}..${r.last_seq ?? "–"}) from ${r.anchor}, at ${time(r.checked_ms)}.`)
          : notice("error", h("strong", {}, `Chain BROKEN at seq ${r.broken_seq}`), `: ${r.issue ?? ""} (${r.events} events verified before it).`),
      );
    } catch (e) {
      replace(chain, errorNotice(e));
    }
  }

  async function exportBundle(): Promise<void> {
    replace(exportMsg, notice("info", "Exporting…"));
    try {
      const body: Record<string, string> = {};
      for (const [k, v] of Object.entries(filter())) if (v !== undefined && k !== "limit") body[k] = v;
      const b = await call<Exported>("POST", "/evidence/export", body);
      const resp = await raw("GET", b.download);
      if (!resp.ok) throw await errorOf(resp);
      const buf = await resp.arrayBuffer();
      const hash = await sha256Hex(buf);
      if (hash !== b.sha256) throw new Error(`the downloaded bundle's SHA-256 ${hash} differs from the export's ${b.sha256}`);
      saveBlob(new Blob([buf], { type: "application/json" }), `evidence-${b.id}.json`);
      replace(
        exportMsg,
        notice("ok", `Evidence bundle ${b.id}: ${b.events} events, ${bytes(buf.byteLength)}, SHA-256 ${b.sha256} (checked). Saved as evidence-${b.id}.json; check it offline with `, h("code", {}, `vaultgate evidence verify evidence-${b.id}.json`), "."),
      );
    } catch (e) {
      replace(exportMsg, errorNotice(e));
    }
  }

  const form = h(
    "form",
    {
      class: "filters",
      "aria-label": "Audit filters",
      onsubmit: (ev: Event) => {
        ev.preventDefault();
        void search();
      },
    },
    field("From", f.from),
    field("To", f.to),
    field("Principal", f.principal),
    field("Action", f.action),
    field("Bucket", f.bucket),
    field("Key prefix", f.prefix),
    field("Outcome", f.outcome),
    field("Status", f.status),
    field("Request id", f.request_id),
    field("Kind", f.kind),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Search"), h("button", { type: "button", id: "export", onclick: () => void exportBundle() }, "Export evidence for this filter")),
  );
  details.setAttribute("tabindex", "-1");
  replace(
    main,
    h("h1", {}, "Audit"),
    h("section", { "aria-labelledby": "chain-h" }, h("h2", { id: "chain-h" }, "Chain status"), h("button", { type: "button", id: "verify", onclick: () => void verify() }, "Verify the chain now"), chain),
    h("section", { "aria-labelledby": "search-h" }, h("h2", { id: "search-h" }, "Search"), form, exportMsg, results),
    details,
  );
  await search();
}
