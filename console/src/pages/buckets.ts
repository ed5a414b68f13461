// Buckets and objects, through the admin API's S3 routes (/admin/v1/s3…: the signed-in
// principal's own S3 requests, authorised by the S3 listener exactly as for aws cli): list the
// tenant's buckets, browse a bucket by prefix, object details, download, upload files and
// folders with progress (multipart in 8 MiB parts above 8 MiB, with pause/resume and cancel),
// delete (a quorum-gated delete shows the approval request it opened and its state).

import { ApiError, authHeader, errorOf, qs, raw } from "../api";
import type { Ctx } from "../main";
import { gatedNotice } from "./approvals";
import { bytes, confirmDialog, errorNotice, field, h, input, notice, replace, saveBlob, table } from "../dom";

export const PART_SIZE = 8 * 1024 * 1024;

function xml(text: string): Document {
  return new DOMParser().parseFromString(text, "application/xml");
}

function kids(el: Element | Document, name: string): Element[] {
  const root = el instanceof Document ? el.documentElement : el;
  return Array.from(root.children).filter((c) => c.localName === name);
}

function text(el: Element, name: string): string {
  return kids(el, name)[0]?.textContent ?? "";
}

export function s3Path(bucket?: string, params: Record<string, string | undefined> = {}): string {
  return bucket ? `/s3/${encodeURIComponent(bucket)}${qs(params)}` : "/s3";
}

async function s3(method: string, bucket?: string, params: Record<string, string | undefined> = {}, init: RequestInit = {}): Promise<Response> {
  const resp = await raw(method, s3Path(bucket, params), init);
  if (!resp.ok) throw await errorOf(resp);
  return resp;
}

interface Listing {
  prefixes: string[];
  objects: { key: string; size: number; etag: string; modified: string }[];
  next?: string;
}

async function listObjects(bucket: string, prefix: string, token?: string): Promise<Listing> {
  const doc = xml(await (await s3("GET", bucket, { "list-type": "2", prefix: prefix || undefined, delimiter: "/", "continuation-token": token })).text());
  return {
    prefixes: kids(doc, "CommonPrefixes").map((p) => text(p, "Prefix")),
    objects: kids(doc, "Contents").map((c) => ({ key: text(c, "Key"), size: Number(text(c, "Size")), etag: text(c, "ETag"), modified: text(c, "LastModified") })),
    next: text(doc.documentElement, "IsTruncated") === "true" ? text(doc.documentElement, "NextContinuationToken") : undefined,
  };
}

/** One upload: a single PUT up to PART_SIZE, else a multipart upload that can pause and resume. */
class Upload {
  readonly row: HTMLElement;
  private readonly bar: HTMLProgressElement;
  private readonly pct: HTMLElement;
  private readonly state: HTMLElement;
  private readonly pauseBtn: HTMLButtonElement;
  private readonly cancelBtn: HTMLButtonElement;
  private xhr: XMLHttpRequest | null = null;
  private uploadId: string | null = null;
  private parts: string[] = [];
  private done = 0;
  private paused = false;
  private cancelled = false;
  private resumeWait: (() => void) | null = null;
  readonly finished: Promise<boolean>;

  constructor(
    readonly bucket: string,
    readonly key: string,
    readonly file: File,
  ) {
    this.bar = h("progress", { max: String(Math.max(1, file.size)), value: "0", "aria-label": `Upload progress of ${key}` });
    this.pct = h("span", { class: "pct" }, "0%");
    this.state = h("span", { class: "upstate", role: "status" }, "waiting");
    this.pauseBtn = h("button", { type: "button", class: "pause", onclick: () => this.togglePause() }, "Pause");
    this.cancelBtn = h("button", { type: "button", class: "danger cancel", onclick: () => void this.cancel() }, "Cancel");
    this.row = h("li", { class: "upload", "data-key": key }, h("span", { class: "upname" }, `${key} (${bytes(file.size)})`), this.bar, this.pct, this.state, this.pauseBtn, this.cancelBtn);
    if (file.size <= PART_SIZE) this.pauseBtn.hidden = true;
    this.finished = this.run();
  }

  private show(loadedNow: number): void {
    const v = Math.min(this.file.size, this.done + loadedNow);
    this.bar.value = v;
    this.pct.textContent = `${this.file.size ? Math.floor((v * 100) / this.file.size) : 100}%`;
  }

  private put(params: Record<string, string>, body: Blob): Promise<XMLHttpRequest> {
    return new Promise((resolve, reject) => {
      const x = new XMLHttpRequest();
      this.xhr = x;
      x.open("PUT", `/admin/v1${s3Path(this.bucket, params)}`);
      x.setRequestHeader("authorization", authHeader());
      if (this.file.type && !params.uploadId) x.setRequestHeader("content-type", this.file.type);
      x.upload.onprogress = (e) => this.show(e.loaded);
      x.onload = () => {
        this.xhr = null;
        if (x.status >= 200 && x.status < 300) resolve(x);
        else void errorOf(new Response(x.responseText, { status: x.status, headers: { "x-request-id": x.getResponseHeader("x-request-id") ?? "" } })).then(reject);
      };
      x.onerror = () => {
        this.xhr = null;
        reject(new Error("network error"));
      };
      x.onabort = () => {
        this.xhr = null;
        reject(new DOMException("aborted", "AbortError"));
      };
      x.send(body);
    });
  }

  private async run(): Promise<boolean> {
    try {
      this.state.textContent = "uploading";
      if (this.file.size <= PART_SIZE) {
        await this.put({ key: this.key }, this.file);
        this.done = this.file.size;
      } else {
        const created = xml(await (await s3("POST", this.bucket, { key: this.key, uploads: "" }, { headers: this.file.type ? { "content-type": this.file.type } : {} })).text());
        this.uploadId = text(created.documentElement, "UploadId");
        const count = Math.ceil(this.file.size / PART_SIZE);
        for (let n = 1; n <= count; ) {
          if (this.cancelled) return false;
          if (this.paused) {
            this.state.textContent = "paused";
            await new Promise<void>((r) => (this.resumeWait = r));
            if (this.cancelled) return false;
            this.state.textContent = "uploading";
          }
          const blob = this.file.slice((n - 1) * PART_SIZE, Math.min(this.file.size, n * PART_SIZE));
          try {
            const x = await this.put({ key: this.key, partNumber: String(n), uploadId: this.uploadId }, blob);
            this.parts[n - 1] = x.getResponseHeader("etag") ?? "";
            this.done += blob.size;
            n++;
          } catch (e) {
            if (e instanceof DOMException && e.name === "AbortError") {
              this.show(0); // the interrupted part is sent again on resume
              continue;
            }
            throw e;
          }
        }
        const body = `<CompleteMultipartUpload>${this.parts.map((etag, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${etag.replace(/&/g, "&amp;").replace(/</g, "&lt;")}</ETag></Part>`).join("")}</CompleteMultipartUpload>`;
        const resp = await s3("POST", this.bucket, { key: this.key, uploadId: this.uploadId }, { body, headers: { "content-type": "application/xml" } });
        // CompleteMultipartUpload may answer 200 with an <Error> body
        const doc = xml(await resp.text());
        if (doc.documentElement.localName === "Error") {
          throw new ApiError({ status: 500, code: text(doc.documentElement, "Code"), message: text(doc.documentElement, "Message") });
        }
      }
      this.show(0);
      this.state.textContent = "done";
      this.pauseBtn.hidden = true;
      this.cancelBtn.hidden = true;
      return true;
    } catch (e) {
      if (this.cancelled) return false;
      this.state.replaceChildren(errorNotice(e));
      this.pauseBtn.hidden = true;
      return false;
    }
  }

  private togglePause(): void {
    this.paused = !this.paused;
    this.pauseBtn.textContent = this.paused ? "Resume" : "Pause";
    if (this.paused) {
      this.xhr?.abort();
      this.state.textContent = "paused";
    } else if (this.resumeWait) {
      const r = this.resumeWait;
      this.resumeWait = null;
      r();
    }
  }

  async cancel(): Promise<void> {
    this.cancelled = true;
    this.xhr?.abort();
    this.resumeWait?.();
    this.pauseBtn.hidden = true;
    this.cancelBtn.hidden = true;
    this.state.textContent = "cancelled";
    if (this.uploadId) {
      try {
        await s3("DELETE", this.bucket, { key: this.key, uploadId: this.uploadId });
      } catch (e) {
        this.state.replaceChildren("cancelled; ", errorNotice(e));
      }
    }
  }
}

export async function bucketsPage(main: HTMLElement, ctx: Ctx): Promise<void> {
  const [bucket, ...rest] = ctx.sub;
  const msg = h("div", { id: "bucket-msg", "aria-live": "polite" });
  const goApproval = (id: string) => ctx.go(`approvals#${id}`);

  const gated = (e: unknown): Promise<HTMLElement> => gatedNotice(e, goApproval);

  if (!bucket) {
    const list = h("div", { id: "bucket-list" });
    const name = input("bucket", { required: true, pattern: "[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]" });
    async function load(): Promise<void> {
      try {
        const doc = xml(await (await s3("GET")).text());
        const buckets = Array.from(doc.getElementsByTagName("Bucket")).map((b) => ({ name: text(b, "Name"), created: text(b, "CreationDate") }));
        replace(
          list,
          table(
            "Buckets of your tenant",
            ["Name", "Created", ""],
            buckets.map((b) => [
              h("a", { href: `/console/buckets/${encodeURIComponent(b.name)}`, onclick: (ev: Event) => { ev.preventDefault(); ctx.go(`buckets/${encodeURIComponent(b.name)}`); } }, b.name),
              b.created,
              h(
                "button",
                {
                  type: "button",
                  class: "danger",
                  "aria-label": `Delete bucket ${b.name}`,
                  onclick: async () => {
                    if (!(await confirmDialog(`Delete bucket ${b.name}?`, "Only an empty bucket can be deleted.", "Delete", true))) return;
                    try {
                      await s3("DELETE", b.name);
                      replace(msg, notice("ok", `Bucket ${b.name} deleted.`));
                    } catch (e) {
                      replace(msg, await gated(e));
                    }
                    await load();
                  },
                },
                "Delete",
              ),
            ]),
            "No buckets yet.",
          ),
        );
      } catch (e) {
        replace(list, errorNotice(e));
      }
    }
    replace(
      main,
      h("h1", {}, "Buckets"),
      msg,
      h(
        "form",
        {
          class: "inline-form",
          "aria-label": "New bucket",
          onsubmit: async (ev: Event) => {
            ev.preventDefault();
            try {
              await s3("PUT", name.value.trim());
              replace(msg, notice("ok", `Bucket ${name.value.trim()} created.`));
              name.value = "";
            } catch (e) {
              replace(msg, await gated(e));
            }
            await load();
          },
        },
        field("New bucket name", name),
        h("button", { type: "submit" }, "Create bucket"),
      ),
      list,
    );
    await load();
    return;
  }

  const prefix = rest.length ? `${rest.join("/")}/` : "";
  const here = (p: string) => `buckets/${encodeURIComponent(bucket)}${p ? "/" + p.split("/").filter(Boolean).map(encodeURIComponent).join("/") : ""}`;
  const listing = h("div", { id: "object-list" });
  const details = h("section", { id: "object-details", "aria-label": "Object details", tabindex: "-1" });
  const uploads = h("ul", { id: "uploads", class: "uploads", "aria-label": "Uploads" });
  let token: string | undefined;
  let shownObjects: Listing["objects"] = [];
  let shownPrefixes: string[] = [];

  async function showDetails(key: string): Promise<void> {
    try {
      let resp = await raw("GET", s3Path(bucket, { key }), { headers: { range: "bytes=0-0", "x-amz-checksum-mode": "ENABLED" } });
      if (resp.status === 416) resp = await raw("GET", s3Path(bucket, { key }), { headers: { "x-amz-checksum-mode": "ENABLED" } });
      if (!resp.ok) throw await errorOf(resp);
      void resp.body?.cancel();
      const hd = resp.headers;
      const range = hd.get("content-range");
      const size = range ? Number(range.split("/")[1]) : Number(hd.get("content-length") ?? "0");
      const rows: [string, string][] = [
        ["Key", key],
        ["Size", `${bytes(size)} (${size} bytes)`],
        ["ETag", hd.get("etag") ?? "–"],
        ["Content type", hd.get("content-type") ?? "–"],
        ["Last modified", hd.get("last-modified") ?? "–"],
        ["Encryption", hd.get("x-amz-server-side-encryption") ?? "–"],
      ];
      hd.forEach((v, k) => {
        if (k.startsWith("x-amz-checksum-") && k !== "x-amz-checksum-type") rows.push([`Checksum ${k.slice(15).toUpperCase()}`, v]);
        if (k.startsWith("x-amz-meta-")) rows.push([`Metadata ${k.slice(11)}`, v]);
        if (k === "x-amz-version-id" || k.startsWith("x-amz-object-lock")) rows.push([k, v]);
      });
      replace(
        details,
        h("h2", {}, "Object details"),
        h("dl", { class: "details" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, h("code", {}, v))])),
        h("p", { class: "hint" }, "Retention, legal hold and versions are shown here once the gateway supports them."),
        h("div", { class: "actions" }, h("button", { type: "button", onclick: () => void download(key) }, "Download"), h("button", { type: "button", class: "danger", onclick: () => void remove(key) }, "Delete")),
      );
      details.focus();
    } catch (e) {
      replace(details, errorNotice(e));
    }
  }

  async function download(key: string): Promise<void> {
    try {
      replace(msg, notice("info", `Downloading ${key}…`));
      const blob = await (await s3("GET", bucket, { key })).blob();
      saveBlob(blob, key.split("/").pop() || "download");
      replace(msg, notice("ok", `Downloaded ${key} (${bytes(blob.size)}).`));
    } catch (e) {
      replace(msg, errorNotice(e));
    }
  }

  async function remove(key: string): Promise<void> {
    if (!(await confirmDialog(`Delete ${key}?`, `The object is removed from ${bucket}.`, "Delete", true))) return;
    try {
      await s3("DELETE", bucket, { key });
      replace(msg, notice("ok", `Deleted ${key}.`));
      replace(details);
    } catch (e) {
      replace(msg, await gated(e));
    }
    await load();
  }

  function render(): void {
    const rows = [
      ...shownPrefixes.map((p) => [
        h("a", { href: `/console/${here(p)}`, class: "folder", onclick: (ev: Event) => { ev.preventDefault(); ctx.go(here(p)); } }, `${p.slice(prefix.length)}`),
        "folder",
        "–",
        "–",
        "",
      ]),
      ...shownObjects.map((o) => [
        h("button", { type: "button", class: "link", "aria-label": `Details of ${o.key}`, onclick: () => void showDetails(o.key) }, o.key.slice(prefix.length)),
        bytes(o.size),
        o.modified,
        o.etag,
        h(
          "span",
          { class: "actions" },
          h("button", { type: "button", "aria-label": `Download ${o.key}`, onclick: () => void download(o.key) }, "Download"),
          h("button", { type: "button", class: "danger", "aria-label": `Delete ${o.key}`, onclick: () => void remove(o.key) }, "Delete"),
        ),
      ]),
    ];
    replace(listing, table(`Objects in ${bucket}/${prefix}`, ["Name", "Size", "Last modified", "ETag", ""], rows, "This folder is empty."), token ? h("button", { type: "button", onclick: () => void load(true) }, "Load more") : null);
  }

  async function load(more = false): Promise<void> {
    try {
      const l = await listObjects(bucket, prefix, more ? token : undefined);
      shownObjects = more ? shownObjects.concat(l.objects) : l.objects;
      shownPrefixes = more ? shownPrefixes.concat(l.prefixes) : l.prefixes;
      token = l.next;
      render();
    } catch (e) {
      replace(listing, errorNotice(e));
    }
  }

  function startUploads(files: FileList | null, folders: boolean): void {
    if (!files) return;
    const started: Upload[] = [];
    for (const f of Array.from(files)) {
      const rel = folders && f.webkitRelativePath ? f.webkitRelativePath : f.name;
      const u = new Upload(bucket, prefix + rel, f);
      uploads.appendChild(u.row);
      started.push(u);
    }
    void Promise.all(started.map((u) => u.finished)).then(() => load());
  }

  const fileInput = h("input", { type: "file", multiple: true, id: "upload-files", onchange: (ev: Event) => { const t = ev.target as HTMLInputElement; startUploads(t.files, false); t.value = ""; } });
  const folderInput = h("input", { type: "file", multiple: true, webkitdirectory: true, id: "upload-folder", onchange: (ev: Event) => { const t = ev.target as HTMLInputElement; startUploads(t.files, true); t.value = ""; } });
  const crumbs: HTMLElement[] = [h("a", { href: "/console/buckets", onclick: (ev: Event) => { ev.preventDefault(); ctx.go("buckets"); } }, "Buckets")];
  const segs = prefix.split("/").filter(Boolean);
  crumbs.push(h("a", { href: `/console/${here("")}`, onclick: (ev: Event) => { ev.preventDefault(); ctx.go(here("")); } }, bucket));
  segs.forEach((s, i) => {
    const p = segs.slice(0, i + 1).join("/");
    crumbs.push(h("a", { href: `/console/${here(p)}`, onclick: (ev: Event) => { ev.preventDefault(); ctx.go(here(p)); } }, s));
  });
  replace(
    main,
    h("nav", { "aria-label": "Breadcrumb", class: "crumbs" }, h("ol", {}, crumbs.map((c) => h("li", {}, c)))),
    h("h1", {}, `${bucket}/${prefix}`),
    msg,
    h("div", { class: "toolbar" }, field("Upload files", fileInput), field("Upload a folder", folderInput), h("button", { type: "button", onclick: () => void load() }, "Refresh")),
    uploads,
    listing,
    details,
  );
  await load();
}
