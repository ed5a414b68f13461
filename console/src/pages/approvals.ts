// Approvals inbox: pending requests (or another state), who asked what on which target, how
// many approvals are still needed and when the request expires; approve or reject after a
// confirmation. The caller's own requests are shown as not approvable. Refreshes every 5 s.

import { ApiError, all, call, signedIn, signedInAs } from "../api";
import type { Ctx } from "../main";
import { confirmDialog, errorNotice, h, notice, relative, replace, select, table, time } from "../dom";

export interface Vote {
  approver: string;
  decision: string;
  at_ms: number;
}

export interface Approval {
  id: string;
  rule: string;
  requester: string;
  tenant: string;
  action: string;
  resource: string;
  needed: number;
  approver_roles: string[];
  state: string;
  votes: Vote[];
  created_ms: number;
  expires_ms: number;
}

export function stillNeeded(a: Approval): number {
  return Math.max(0, a.needed - a.votes.filter((v) => v.decision === "approve").length);
}

async function approvalState(id: string): Promise<string> {
  try {
    const a = await call<Approval>("GET", `/approvals/${encodeURIComponent(id)}`);
    return a.state === "pending" ? `pending, ${stillNeeded(a)} more approval(s) needed, expires ${time(a.expires_ms)}` : a.state;
  } catch {
    return "state unknown";
  }
}

/** The answer to show for a failed change: a quorum rule's hold (the approval request it opened,
 * with its state and a link to it, id `approval-link`), or the error. */
export async function gatedNotice(e: unknown, goApproval: (id: string) => void): Promise<HTMLElement> {
  if (e instanceof ApiError && e.info.approvalId) {
    const id = e.info.approvalId;
    return notice(
      "info",
      h("strong", {}, "Approval required. "),
      "A quorum rule holds this change; approval request ",
      h("a", { href: `/console/approvals#${id}`, id: "approval-link", onclick: (ev: Event) => { ev.preventDefault(); goApproval(id); } }, id),
      ` is ${await approvalState(id)}. Once approved, do the same again.`,
    );
  }
  return errorNotice(e, goApproval);
}

export async function approvalsPage(main: HTMLElement, ctx: Ctx): Promise<() => void> {
  const me = signedIn();
  const myRole = signedInAs()?.role ?? null;
  const state = select(
    "state",
    [
      ["pending", "Pending"],
      ["approved", "Approved"],
      ["rejected", "Rejected"],
      ["consumed", "Consumed"],
      ["expired", "Expired"],
      ["", "All"],
    ],
    "pending",
  );
  state.id = "approval-state";
  const list = h("div", { id: "approval-list" });
  const msg = h("div", { id: "approval-msg" });
  const updated = h("p", { class: "updated", role: "status", "aria-live": "polite" });
  const focusId = location.hash.slice(1);

  async function vote(a: Approval, decision: "approve" | "reject"): Promise<void> {
    const ok = await confirmDialog(
      decision === "approve" ? "Approve this request?" : "Reject this request?",
      h(
        "dl",
        {},
        h("dt", {}, "Request"),
        h("dd", {}, h("code", {}, a.id)),
        h("dt", {}, "Requested by"),
        h("dd", {}, a.requester),
        h("dt", {}, "Action"),
        h("dd", {}, a.action),
        h("dt", {}, "Target"),
        h("dd", {}, a.resource || "–"),
      ),
      decision === "approve" ? "Approve" : "Reject",
      decision === "reject",
    );
    if (!ok) return;
    try {
      const r = await call<Approval>("POST", `/approvals/${encodeURIComponent(a.id)}/${decision}`);
      replace(msg, notice("ok", `${decision === "approve" ? "Approved" : "Rejected"} ${r.id}: now ${r.state}${r.state === "pending" ? `, ${stillNeeded(r)} more approval(s) needed` : ""}.`));
    } catch (e) {
      replace(msg, errorNotice(e));
    }
    await refresh();
  }

  async function refresh(): Promise<void> {
    try {
      const items = await all<Approval>("/approvals", { state: state.value || undefined });
      items.sort((x, y) => y.created_ms - x.created_ms);
      const rows = items.map((a) => {
        const own = a.requester === me;
        const open = a.state === "pending";
        const eligible = myRole !== null && a.approver_roles.includes(myRole);
        const voted = a.votes.some((v) => v.approver === me);
        const actions = !open
          ? h("span", {}, "–")
          : own
            ? h("span", { class: "own" }, "Your own request: another approver must decide")
            : voted
              ? h("span", { class: "own" }, "You have voted")
              : !eligible
                ? h("span", { class: "own" }, `Needs the role ${a.approver_roles.join(" or ")}; yours is ${myRole ?? "none (grants only)"}`)
                : h(
                "span",
                { class: "actions" },
                h("button", { type: "button", class: "primary", "data-action": "approve", "data-id": a.id, "aria-label": `Approve ${a.id}`, onclick: () => void vote(a, "approve") }, "Approve"),
                h("button", { type: "button", class: "danger", "data-action": "reject", "data-id": a.id, "aria-label": `Reject ${a.id}`, onclick: () => void vote(a, "reject") }, "Reject"),
              );
        const votes = a.votes.length ? a.votes.map((v) => `${v.approver} (${v.decision})`).join(", ") : "none yet";
        return [
          h("code", { id: a.id, class: a.id === focusId ? "focus" : undefined }, a.id),
          a.requester,
          a.action,
          a.resource || "–",
          h("span", { class: `state ${a.state}` }, a.state),
          open ? `${stillNeeded(a)} of ${a.needed}` : String(a.needed),
          a.approver_roles.join(", "),
          votes,
          h("span", { title: time(a.expires_ms) }, open ? relative(a.expires_ms) : time(a.expires_ms)),
          actions,
        ];
      });
      replace(
        list,
        table(
          "Approval requests",
          ["Id", "Requested by", "Action", "Target", "State", "Approvals still needed", "Approver roles", "Votes", "Expires", "Decision"],
          rows,
          state.value === "pending" ? "No pending requests." : "No requests.",
        ),
      );
      updated.textContent = `Updated ${new Date().toLocaleTimeString()} (refreshes every 5 s)`;
    } catch (e) {
      replace(list, errorNotice(e));
    }
  }

  state.addEventListener("change", () => void refresh());
  replace(
    main,
    h("h1", {}, "Approvals"),
    h("p", {}, "Requests that a quorum rule holds until enough approvers agree. You cannot approve your own request."),
    h("div", { class: "toolbar" }, h("label", { for: state.id }, "Show"), state, h("button", { type: "button", onclick: () => void refresh() }, "Refresh")),
    msg,
    list,
    updated,
  );
  void ctx;
  await refresh();
  const timer = window.setInterval(() => {
    if (!document.querySelector("dialog[open]")) void refresh();
  }, 5000);
  return () => window.clearInterval(timer);
}
