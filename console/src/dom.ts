// A small DOM builder (no framework): h("button", {onclick}, "text"). Text is always set as
// text (never as HTML), so nothing the gateway returns is interpreted as markup.

import { ApiError } from "./api";

type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, unknown>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2), v as EventListener);
    } else if (k === "class") {
      el.className = String(v);
    } else if (k === "value" && "value" in el) {
      (el as HTMLInputElement).value = String(v);
    } else if (k === "checked" && el instanceof HTMLInputElement) {
      el.checked = Boolean(v);
    } else if (v === true) {
      el.setAttribute(k, "");
    } else {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

export function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
}

export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** A labelled input (label wraps nothing; `for` names the input's id). */
let idSeq = 0;
export function field(label: string, input: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement, hint?: string): HTMLElement {
  if (!input.id) input.id = `f${++idSeq}`;
  const hintEl = hint ? h("small", { id: `${input.id}-hint`, class: "hint" }, hint) : null;
  if (hintEl) input.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: input.id }, label), input, hintEl);
}

export function input(name: string, attrs: Attrs = {}): HTMLInputElement {
  return h("input", { name, type: "text", autocomplete: "off", spellcheck: "false", ...attrs });
}

export function select(name: string, options: [string, string][], value = ""): HTMLSelectElement {
  return h("select", { name }, options.map(([v, t]) => h("option", { value: v, selected: v === value }, t)));
}

export function time(ms: number | null | undefined): string {
  if (!ms) return "–";
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

export function relative(ms: number): string {
  const d = Math.round((ms - Date.now()) / 1000);
  const a = Math.abs(d);
  const s = a < 90 ? `${a} s` : a < 5400 ? `${Math.round(a / 60)} min` : a < 172800 ? `${Math.round(a / 3600)} h` : `${Math.round(a / 86400)} d`;
  return d >= 0 ? `in ${s}` : `${s} ago`;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const u = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${u[i]}`;
}

/** A status line (role=status) or an alert (role=alert) with the error's code and request id. */
export function notice(kind: "ok" | "error" | "info", ...children: Child[]): HTMLElement {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, ...children);
}

export function errorNotice(e: unknown, onApproval?: (id: string) => void): HTMLElement {
  if (e instanceof ApiError) {
    const i = e.info;
    return notice(
      "error",
      h("strong", {}, i.code),
      `: ${i.message}`,
      i.approvalId
        ? h("span", {}, " — approval request ", onApproval ? h("a", { href: `/console/approvals#${i.approvalId}`, "data-approval": i.approvalId, onclick: (ev: Event) => { ev.preventDefault(); onApproval(i.approvalId!); } }, i.approvalId) : h("code", {}, i.approvalId))
        : null,
      i.requestId ? h("span", { class: "rid" }, ` (request id ${i.requestId})`) : null,
    );
  }
  return notice("error", String(e));
}

/** A modal confirmation (native <dialog>: focus trapped, Escape cancels). */
export function confirmDialog(title: string, body: Child, confirmLabel: string, danger = false): Promise<boolean> {
  return new Promise((resolve) => {
    const titleId = `dlg${++idSeq}`;
    const yes = h("button", { type: "submit", value: "yes", class: danger ? "danger" : "primary" }, confirmLabel);
    const no = h("button", { type: "submit", value: "no" }, "Cancel");
    const dlg = h(
      "dialog",
      { "aria-labelledby": titleId },
      h("form", { method: "dialog" }, h("h2", { id: titleId }, title), h("div", { class: "dlg-body" }, body), h("div", { class: "actions" }, no, yes)),
    );
    document.body.appendChild(dlg);
    dlg.addEventListener("close", () => {
      resolve(dlg.returnValue === "yes");
      dlg.remove();
    });
    dlg.showModal();
    no.focus();
  });
}

export function table(caption: string, head: string[], rows: Child[][], empty = "Nothing to show."): HTMLElement {
  if (rows.length === 0) return h("p", { class: "empty" }, empty);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))),
    ),
  );
}

export function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: name, class: "hidden" });
  document.body.appendChild(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
