// The Vaultgate console: sign-in, then five pages routed on the client side under /console/
// (the gateway answers index.html for every such path). Each page renders into <main> and
// returns a cleanup that stops its timers when the user leaves it.

import { ApiError, endSession, onSessionEnded, signIn, signedIn, signedInAs } from "./api";
import { errorNotice, field, h, input, replace } from "./dom";
import { approvalsPage } from "./pages/approvals";
import { auditPage } from "./pages/audit";
import { bucketsPage } from "./pages/buckets";
import { identitiesPage } from "./pages/identities";
import { overviewPage } from "./pages/overview";

export interface Ctx {
  go: (path: string) => void;
  /** path after /console/, e.g. "buckets/photos" */
  sub: string[];
}

type PageFn = (main: HTMLElement, ctx: Ctx) => Promise<(() => void) | void>;

const PAGES: { path: string; title: string; render: PageFn }[] = [
  { path: "approvals", title: "Approvals", render: approvalsPage },
  { path: "buckets", title: "Buckets", render: bucketsPage },
  { path: "audit", title: "Audit", render: auditPage },
  { path: "identities", title: "Identities", render: identitiesPage },
  { path: "overview", title: "Overview", render: overviewPage },
];

const root = document.getElementById("app")!;
let cleanup: (() => void) | void;
let endedReason = "";

function currentPath(): string[] {
  const p = location.pathname.replace(/^\/console\/?/, "");
  return p.split("/").filter(Boolean).map(decodeURIComponent);
}

function go(path: string): void {
  history.pushState(null, "", `/console/${path}`);
  void render();
}

function signInView(): HTMLElement {
  const ak = input("access_key", { autocomplete: "username", required: true });
  const sk = input("secret_key", { type: "password", autocomplete: "current-password", required: true });
  const msg = h("div", { "aria-live": "polite" });
  if (endedReason) replace(msg, h("div", { class: "notice info", role: "status" }, endedReason));
  const btn = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h(
    "form",
    {
      class: "signin",
      "aria-labelledby": "signin-title",
      onsubmit: async (ev: Event) => {
        ev.preventDefault();
        btn.disabled = true;
        replace(msg);
        try {
          await signIn(ak.value.trim(), sk.value);
          sk.value = "";
          endedReason = "";
          if (currentPath().length === 0) history.replaceState(null, "", "/console/approvals");
          await render();
        } catch (e) {
          sk.value = "";
          const text = e instanceof ApiError && e.info.status === 401 ? "Sign-in failed: the access key or secret is wrong, revoked or expired." : null;
          replace(msg, text ? h("div", { class: "notice error", role: "alert" }, text) : errorNotice(e));
          btn.disabled = false;
          sk.focus();
        }
      },
    },
    h("h1", { id: "signin-title" }, "Sign in to Vaultgate"),
    h("p", {}, "Use an access key of your principal. The session lives only in this tab's memory and ends when the tab closes."),
    field("Access key id", ak),
    field("Secret key", sk),
    btn,
    msg,
  );
  return h("main", { id: "main" }, form);
}

async function render(): Promise<void> {
  if (typeof cleanup === "function") cleanup();
  cleanup = undefined;
  const who = signedIn();
  if (!who) {
    replace(root, signInView());
    (root.querySelector("input") as HTMLInputElement | null)?.focus();
    document.title = "Sign in · Vaultgate console";
    return;
  }
  const sub = currentPath();
  const page = PAGES.find((p) => p.path === sub[0]) ?? PAGES[0];
  const main = h("main", { id: "main", tabindex: "-1" });
  const nav = h(
    "nav",
    { "aria-label": "Console" },
    h(
      "ul",
      {},
      PAGES.map((p) =>
        h(
          "li",
          {},
          h(
            "a",
            {
              href: `/console/${p.path}`,
              "aria-current": p === page ? "page" : undefined,
              onclick: (ev: MouseEvent) => {
                if (ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
                ev.preventDefault();
                go(p.path);
              },
            },
            p.title,
          ),
        ),
      ),
    ),
  );
  const header = h(
    "header",
    {},
    h("a", { class: "skip", href: "#main" }, "Skip to content"),
    h("span", { class: "brand" }, "Vaultgate"),
    nav,
    h(
      "div",
      { class: "who" },
      h("span", {}, "Signed in as ", h("strong", { id: "whoami" }, who), ` (${signedInAs()?.role ?? "grants only"}, tenant ${signedInAs()?.tenant ?? "?"})`),
      h("button", { type: "button", onclick: () => endSession("You signed out.") }, "Sign out"),
    ),
  );
  replace(root, header, main);
  document.title = `${page.title} · Vaultgate console`;
  try {
    cleanup = await page.render(main, { go, sub: sub.slice(1) });
  } catch (e) {
    main.appendChild(errorNotice(e));
  }
  main.focus({ preventScroll: true });
}

onSessionEnded((reason) => {
  endedReason = reason;
  void render();
});
window.addEventListener("popstate", () => void render());
void render();
