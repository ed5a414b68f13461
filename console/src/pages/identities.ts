// Identities: principals (create, disable/enable, change role), access keys (create: the
// secret is shown exactly once, with a copy button; revoke), custom roles, grants, tenants and
// quorum rules. A change that a quorum rule gates shows the approval request it opened.

import { all, call } from "../api";
import type { Ctx } from "../main";
import { confirmDialog, errorNotice, field, h, input, notice, replace, select, table, time } from "../dom";

interface Principal {
  name: string;
  kind: string;
  tenant: string;
  role?: string | null;
  disabled: boolean;
  created_ms?: number;
}
interface AccessKey {
  access_key_id: string;
  principal: string;
  created_ms?: number;
  expires_ms?: number | null;
  revoked: boolean;
}
interface CreatedKey {
  access_key_id: string;
  secret_key: string;
  principal: string;
}
interface CustomRole {
  name: string;
  tenant: string;
  actions: string[];
}
interface Grant {
  id: string | number;
  principal: string;
  role: string;
  bucket: string;
  prefix?: string | null;
}
interface Tenant {
  name: string;
  created_ms?: number;
}
interface Rule {
  name: string;
  action: string;
  bucket_pattern: string;
  approvals: number;
  approver_roles: string[];
  ttl_secs: number;
}

const ROLES: [string, string][] = [
  ["viewer", "viewer"],
  ["manager", "manager"],
  ["superadmin", "superadmin"],
  ["none", "none (grants only)"],
];

export async function identitiesPage(main: HTMLElement, ctx: Ctx): Promise<void> {
  const msg = h("div", { id: "identities-msg", "aria-live": "polite" });
  const sections = {
    principals: h("div"),
    keys: h("div"),
    roles: h("div"),
    grants: h("div"),
    tenants: h("div"),
    rules: h("div"),
  };
  const secretBox = h("div", { id: "secret-box" });

  const goApproval = (id: string) => ctx.go(`approvals#${id}`);
  async function act(label: string, f: () => Promise<unknown>): Promise<void> {
    replace(msg);
    try {
      await f();
      replace(msg, notice("ok", label));
    } catch (e) {
      replace(msg, errorNotice(e, goApproval));
    }
    await load();
  }

  async function load(): Promise<void> {
    const [principals, keys, roles, grants, tenants, rules] = await Promise.allSettled([
      all<Principal>("/principals"),
      all<AccessKey>("/keys"),
      all<CustomRole>("/roles"),
      all<Grant>("/grants"),
      all<Tenant>("/tenants"),
      all<Rule>("/quorum/rules"),
    ]);
    const show = <T>(el: HTMLElement, r: PromiseSettledResult<T[]>, f: (v: T[]) => HTMLElement) => replace(el, r.status === "fulfilled" ? f(r.value) : errorNotice(r.reason));
    show(sections.principals, principals, (v) =>
      table(
        "Principals",
        ["Name", "Kind", "Tenant", "Role", "State", "Created", ""],
        v.map((p) => {
          const role = select("role", ROLES, p.role || "none");
          role.setAttribute("aria-label", `Role of ${p.name}`);
          return [
            p.name,
            p.kind,
            p.tenant,
            h("span", { class: "inline" }, role, h("button", { type: "button", onclick: () => void act(`Role of ${p.name} set to ${role.value}.`, () => call("PUT", `/principals/${encodeURIComponent(p.name)}/role`, { role: role.value })) }, "Set role")),
            p.disabled ? "disabled" : "enabled",
            time(p.created_ms),
            p.disabled
              ? h("button", { type: "button", onclick: () => void act(`${p.name} enabled.`, () => call("POST", `/principals/${encodeURIComponent(p.name)}/enable`)) }, "Enable")
              : h(
                  "button",
                  {
                    type: "button",
                    class: "danger",
                    onclick: async () => {
                      if (await confirmDialog(`Disable ${p.name}?`, "Its keys and sessions stop working at once.", "Disable", true))
                        await act(`${p.name} disabled.`, () => call("POST", `/principals/${encodeURIComponent(p.name)}/disable`));
                    },
                  },
                  "Disable",
                ),
          ];
        }),
      ),
    );
    show(sections.keys, keys, (v) =>
      table(
        "Access keys (secrets are never shown again)",
        ["Access key id", "Principal", "Created", "Expires", "State", ""],
        v.map((k) => [
          h("code", {}, k.access_key_id),
          k.principal,
          time(k.created_ms),
          k.expires_ms ? time(k.expires_ms) : "never",
          k.revoked ? "revoked" : "active",
          k.revoked
            ? "–"
            : h(
                "button",
                {
                  type: "button",
                  class: "danger",
                  "aria-label": `Revoke ${k.access_key_id}`,
                  onclick: async () => {
                    if (await confirmDialog(`Revoke ${k.access_key_id}?`, "Revocation is immediate and permanent.", "Revoke", true))
                      await act(`${k.access_key_id} revoked.`, () => call("POST", `/keys/${encodeURIComponent(k.access_key_id)}/revoke`));
                  },
                },
                "Revoke",
              ),
        ]),
      ),
    );
    show(sections.roles, roles, (v) =>
      table(
        "Custom roles",
        ["Name", "Tenant", "Actions", ""],
        v.map((r) => [
          r.name,
          r.tenant,
          r.actions.join(", "),
          h("button", { type: "button", class: "danger", onclick: async () => { if (await confirmDialog(`Delete role ${r.name}?`, "Only an unused role can be deleted.", "Delete", true)) await act(`Role ${r.name} deleted.`, () => call("DELETE", `/roles/${encodeURIComponent(r.name)}`)); } }, "Delete"),
        ]),
      ),
    );
    show(sections.grants, grants, (v) =>
      table(
        "Grants",
        ["Id", "Principal", "Role", "Bucket", "Prefix", ""],
        v.map((g) => [
          String(g.id),
          g.principal,
          g.role,
          g.bucket,
          g.prefix || "–",
          h("button", { type: "button", class: "danger", onclick: async () => { if (await confirmDialog(`Delete grant ${g.id}?`, `${g.principal} loses ${g.role} on ${g.bucket}.`, "Delete", true)) await act(`Grant ${g.id} deleted.`, () => call("DELETE", `/grants/${encodeURIComponent(String(g.id))}`)); } }, "Delete"),
        ]),
      ),
    );
    show(sections.tenants, tenants, (v) => table("Tenants", ["Name", "Created"], v.map((t) => [t.name, time(t.created_ms)])));
    show(sections.rules, rules, (v) =>
      table(
        "Quorum rules",
        ["Name", "Action", "Bucket pattern", "Approvals", "Approver roles", "TTL", ""],
        v.map((r) => [
          r.name,
          r.action,
          r.bucket_pattern,
          String(r.approvals),
          r.approver_roles.join(", "),
          `${r.ttl_secs} s`,
          h("button", { type: "button", class: "danger", onclick: async () => { if (await confirmDialog(`Delete rule ${r.name}?`, "The actions it gates are no longer held for approval.", "Delete", true)) await act(`Rule ${r.name} deleted.`, () => call("DELETE", `/quorum/rules/${encodeURIComponent(r.name)}`)); } }, "Delete"),
        ]),
        "No quorum rules.",
      ),
    );
  }

  // forms
  const pName = input("name", { required: true });
  const pKind = select("kind", [["user", "user"], ["service", "service account"]]);
  const pTenant = input("tenant", { placeholder: "default" });
  const pRole = select("role", ROLES, "viewer");
  const newPrincipal = h(
    "form",
    { "aria-label": "New principal", onsubmit: (ev: Event) => { ev.preventDefault(); void act(`Principal ${pName.value} created.`, () => call("POST", "/principals", { name: pName.value.trim(), kind: pKind.value, tenant: pTenant.value.trim() || "default", role: pRole.value })); } },
    field("Name", pName),
    field("Kind", pKind),
    field("Tenant", pTenant),
    field("Role", pRole),
    h("button", { type: "submit" }, "Create principal"),
  );

  const kPrincipal = input("principal", { required: true, id: "key-principal" });
  const kExpires = input("expires_in_secs", { inputmode: "numeric", placeholder: "never" });
  const newKey = h(
    "form",
    {
      "aria-label": "New access key",
      onsubmit: async (ev: Event) => {
        ev.preventDefault();
        replace(msg);
        replace(secretBox);
        try {
          const body: Record<string, unknown> = { principal: kPrincipal.value.trim() };
          if (kExpires.value.trim()) body.expires_in_secs = Number(kExpires.value.trim());
          const k = await call<CreatedKey>("POST", "/keys", body);
          showSecret(k);
        } catch (e) {
          replace(msg, errorNotice(e, goApproval));
        }
        await load();
      },
    },
    field("Principal", kPrincipal),
    field("Expires in (seconds)", kExpires, "empty: never"),
    h("button", { type: "submit", id: "create-key" }, "Create access key"),
  );

  function showSecret(k: CreatedKey): void {
    // the secret lives in this element only, until "Done" removes it; it is never stored
    const secret = h("code", { id: "new-secret" }, k.secret_key);
    const copied = h("span", { role: "status", "aria-live": "polite" });
    replace(
      secretBox,
      h(
        "div",
        { class: "notice ok secret", role: "region", "aria-label": "New access key" },
        h("h3", {}, "Access key created — copy the secret now"),
        h("p", {}, "This is the only time the secret is shown. It is not stored in this browser."),
        h("dl", { class: "details" }, h("dt", {}, "Access key id"), h("dd", {}, h("code", { id: "new-key-id" }, k.access_key_id)), h("dt", {}, "Secret key"), h("dd", {}, secret)),
        h(
          "div",
          { class: "actions" },
          h(
            "button",
            {
              type: "button",
              id: "copy-secret",
              onclick: async () => {
                try {
                  await navigator.clipboard.writeText(k.secret_key);
                  copied.textContent = "Copied.";
                } catch {
                  const r = document.createRange();
                  r.selectNodeContents(secret);
                  getSelection()?.removeAllRanges();
                  getSelection()?.addRange(r);
                  copied.textContent = "Selected: press Ctrl+C to copy.";
                }
              },
            },
            "Copy secret",
          ),
          h("button", { type: "button", id: "secret-done", class: "primary", onclick: () => replace(secretBox) }, "Done, I have stored it"),
          copied,
        ),
      ),
    );
    (secretBox.querySelector("#copy-secret") as HTMLButtonElement).focus();
  }

  const rName = input("name", { required: true });
  const rActions = input("actions", { required: true, placeholder: "PutObject, DeleteObject" });
  const newRole = h(
    "form",
    { "aria-label": "New custom role", onsubmit: (ev: Event) => { ev.preventDefault(); void act(`Role ${rName.value} created.`, () => call("POST", "/roles", { name: rName.value.trim(), actions: rActions.value.split(",").map((s) => s.trim()).filter(Boolean) })); } },
    field("Name", rName),
    field("Actions", rActions, "comma separated S3 actions"),
    h("button", { type: "submit" }, "Create role"),
  );

  const gPrincipal = input("principal", { required: true });
  const gRole = input("role", { required: true, placeholder: "viewer, manager, or a custom role" });
  const gBucket = input("bucket", { required: true, placeholder: "name or pattern like finance-*" });
  const gPrefix = input("prefix");
  const newGrant = h(
    "form",
    { "aria-label": "New grant", onsubmit: (ev: Event) => { ev.preventDefault(); void act(`Grant created.`, () => call("POST", "/grants", { principal: gPrincipal.value.trim(), role: gRole.value.trim(), bucket: gBucket.value.trim(), prefix: gPrefix.value || undefined })); } },
    field("Principal", gPrincipal),
    field("Role", gRole),
    field("Bucket", gBucket),
    field("Key prefix", gPrefix),
    h("button", { type: "submit" }, "Grant"),
  );

  const tName = input("name", { required: true });
  const newTenant = h(
    "form",
    { "aria-label": "New tenant", onsubmit: (ev: Event) => { ev.preventDefault(); void act(`Tenant ${tName.value} created.`, () => call("POST", "/tenants", { name: tName.value.trim() })); } },
    field("Name", tName),
    h("button", { type: "submit" }, "Create tenant"),
  );

  const qName = input("name", { required: true });
  const qAction = input("action", { required: true, placeholder: "s3:DeleteBucket" });
  const qPattern = input("bucket_pattern", { placeholder: "*" });
  const qApprovals = input("approvals", { required: true, inputmode: "numeric", value: "2" });
  const qRoles = input("approver_roles", { required: true, value: "superadmin" });
  const qTtl = input("ttl_secs", { required: true, inputmode: "numeric", value: "3600" });
  const newRule = h(
    "form",
    {
      "aria-label": "Quorum rule",
      onsubmit: (ev: Event) => {
        ev.preventDefault();
        void act(`Rule ${qName.value} saved.`, () =>
          call("PUT", `/quorum/rules/${encodeURIComponent(qName.value.trim())}`, {
            action: qAction.value.trim(),
            bucket_pattern: qPattern.value.trim() || undefined,
            approvals: Number(qApprovals.value),
            approver_roles: qRoles.value.split(",").map((s) => s.trim()).filter(Boolean),
            ttl_secs: Number(qTtl.value),
          }),
        );
      },
    },
    field("Name", qName),
    field("Action", qAction),
    field("Bucket pattern", qPattern),
    field("Approvals", qApprovals),
    field("Approver roles", qRoles, "comma separated"),
    field("TTL (seconds)", qTtl),
    h("button", { type: "submit" }, "Save rule"),
  );

  const section = (id: string, title: string, form: HTMLElement | null, list: HTMLElement) =>
    h("section", { "aria-labelledby": `${id}-h`, id }, h("h2", { id: `${id}-h` }, title), form ? h("details", {}, h("summary", {}, `New…`), form) : null, list);
  replace(
    main,
    h("h1", {}, "Identities"),
    msg,
    secretBox,
    section("principals", "Principals", newPrincipal, sections.principals),
    section("keys", "Access keys", newKey, sections.keys),
    section("roles", "Custom roles", newRole, sections.roles),
    section("grants", "Grants", newGrant, sections.grants),
    section("tenants", "Tenants", newTenant, sections.tenants),
    section("rules", "Quorum rules", newRule, sections.rules),
  );
  await load();
}
