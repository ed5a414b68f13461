//! The `vaultgate admin …` command-line client: clap derive types the gateway's
//! `main` nests ([`AdminArgs`]) and [`run`], which talks to the admin API over
//! HTTP (hyper-util's client) and prints human tables or `--format json`.
//! Endpoint and token come from flags, `VAULTGATE_ADMIN_ENDPOINT` /
//! `VAULTGATE_ADMIN_TOKEN`, or the profile file written by `login`
//! (`--profile-file`, `VAULTGATE_ADMIN_PROFILE`, default
//! `$HOME/.config/vaultgate/admin.json`, mode 0600; a group/world-readable
//! profile is refused). `audit search|tail|get` and `evidence export|public-key` read
//! the audit ledger and download signed evidence bundles.

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use clap::{Args, Subcommand, ValueEnum};
use http::{Method, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api;
use crate::error::{ApiError, ErrorBody};

/// Default admin endpoint.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:9001";

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// aligned columns
    Table,
    /// the API's JSON
    Json,
}

/// `vaultgate admin` arguments.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// admin API base URL (http://host:port)
    #[arg(long, env = "VAULTGATE_ADMIN_ENDPOINT", global = true)]
    pub endpoint: Option<String>,
    /// bearer token (default: from the profile file)
    #[arg(
        long,
        env = "VAULTGATE_ADMIN_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// profile file written by `login`
    #[arg(long, env = "VAULTGATE_ADMIN_PROFILE", global = true)]
    pub profile_file: Option<PathBuf>,
    /// output format
    #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
    pub format: Format,
    /// the command
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// Admin commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// exchange an access key pair for a token and save it in the profile file
    Login {
        /// access key id
        #[arg(long, env = "VAULTGATE_ACCESS_KEY")]
        access_key: String,
        /// secret key; prefer --secret-key-stdin or the prompt (other users of the host can
        /// read a command line)
        #[arg(
            long,
            env = "VAULTGATE_SECRET_KEY",
            hide_env_values = true,
            conflicts_with = "secret_key_stdin"
        )]
        secret_key: Option<String>,
        /// read the secret key from the first line of stdin
        #[arg(long)]
        secret_key_stdin: bool,
    },
    /// users and service accounts
    #[command(subcommand)]
    User(UserCommand),
    /// S3 access keys
    #[command(subcommand)]
    Key(KeyCommand),
    /// list or revoke grants (`grant` creates one)
    #[command(subcommand)]
    Grants(GrantsCommand),
    /// custom roles
    #[command(subcommand)]
    Roles(RolesCommand),
    /// grant a role on a bucket (pattern) and key prefix
    Grant {
        /// grantee
        #[arg(long)]
        user: String,
        /// built-in or custom role
        #[arg(long)]
        role: String,
        /// bucket name or pattern
        #[arg(long)]
        bucket: String,
        /// key prefix
        #[arg(long)]
        prefix: Option<String>,
    },
    /// tenants
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// quorum rules
    #[command(subcommand)]
    Quorum(QuorumCommand),
    /// approval requests
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
    /// gateway status
    Status,
    /// renew the saved token before it expires (saved in the profile file)
    Renew,
    /// key-encryption keys of the running gateway: status, rotate, rewrap, retire
    #[command(subcommand)]
    Kek(KekCommand),
    /// the audit ledger (superadmin)
    #[command(subcommand)]
    Audit(AuditCommand),
    /// signed evidence bundles
    #[command(subcommand)]
    Evidence(EvidenceCommand),
}

/// `vaultgate admin kek …` (offline, on a stopped gateway's data dir: `vaultgate keys …`).
#[derive(Debug, Subcommand)]
pub enum KekCommand {
    /// key provider, KEKs, every bucket data key version and the objects under it
    Status,
    /// each bucket's current data key version and the KEK wrapping it (what the console shows)
    Buckets,
    /// new KEK version in the key file, then every data key re-wrapped under it
    Rotate,
    /// re-wrap the data keys not yet under the current KEK (resumable)
    Rewrap,
    /// remove a KEK version nothing depends on (quorum action admin:RetireKey)
    Retire {
        /// KEK id (`local:…`)
        kek_id: String,
        /// retire although stream headers still carry data keys wrapped by it
        #[arg(long)]
        accept_header_copies: bool,
    },
    /// new data key version for a bucket, then every object re-sealed under it by a background
    /// job of the gateway (quorum action admin:ReencryptBucket); resumes an unfinished one
    Reencrypt {
        /// the bucket
        #[arg(long)]
        bucket: String,
        /// at most this many MB (10^6 bytes) of plaintext per second
        #[arg(long, value_name = "MB_PER_SEC")]
        rate: Option<f64>,
        /// at most this many object versions per second
        #[arg(long, value_name = "PER_SEC")]
        rate_objects: Option<f64>,
    },
    /// the state of a bucket's re-encryption (running, re-sealed, skipped, remaining)
    ReencryptStatus {
        /// the bucket
        #[arg(long)]
        bucket: String,
    },
    /// replace the admin token signing secret now (quorum action admin:RotateSigningSecret):
    /// new tokens use the new one at once, tokens signed by the old one work until they expire
    RotateAdminSecret,
}

/// Event selection shared by `audit search|tail` and `evidence export`.
#[derive(Debug, Clone, Default, Args)]
pub struct FilterArgs {
    /// events at or after this time: Unix ms or RFC 3339 (2026-01-31T12:00:00Z)
    #[arg(long)]
    pub from: Option<String>,
    /// events before this time (exclusive): Unix ms or RFC 3339
    #[arg(long)]
    pub to: Option<String>,
    /// exact principal
    #[arg(long)]
    pub principal: Option<String>,
    /// exact tenant
    #[arg(long)]
    pub tenant: Option<String>,
    /// exact action (PutObject, admin.CreateAccessKey, …)
    #[arg(long)]
    pub action: Option<String>,
    /// exact bucket
    #[arg(long)]
    pub bucket: Option<String>,
    /// object key prefix
    #[arg(long)]
    pub prefix: Option<String>,
    /// success, denied or error
    #[arg(long)]
    pub outcome: Option<String>,
    /// s3 or admin
    #[arg(long)]
    pub kind: Option<String>,
    /// exact request id (the `x-amz-request-id` or `x-request-id` of an answer)
    #[arg(long)]
    pub request_id: Option<String>,
    /// exact HTTP status (100..=599)
    #[arg(long)]
    pub status: Option<String>,
}

impl FilterArgs {
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("from", &self.from),
            ("to", &self.to),
            ("principal", &self.principal),
            ("tenant", &self.tenant),
            ("action", &self.action),
            ("bucket", &self.bucket),
            ("prefix", &self.prefix),
            ("outcome", &self.outcome),
            ("kind", &self.kind),
            ("request_id", &self.request_id),
            ("status", &self.status),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .collect()
    }

    /// `k=v&…` with the values percent-encoded (empty when no filter is set).
    pub fn query(&self) -> String {
        self.pairs()
            .into_iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// The JSON body of `POST /evidence/export`.
    pub fn body(&self) -> Value {
        Value::Object(
            self.pairs()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
                .collect(),
        )
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(v: &str) -> String {
    urlencoding::encode(v).into_owned()
}

/// A path with one percent-encoded query parameter, if it is set.
fn with_param(path: &str, name: &str, value: Option<&str>) -> String {
    match value {
        Some(v) => format!("{path}?{name}={}", percent_encode(v)),
        None => path.to_owned(),
    }
}

/// The JSON body of a call: one of the API's own request types.
fn body_of<T: Serialize>(dto: &T) -> Result<Option<Value>, ApiError> {
    serde_json::to_value(dto)
        .map(Some)
        .map_err(|e| local(format!("request body: {e}")))
}

/// `audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// verify the hash chain of the running gateway's ledger (superadmin)
    Verify,
    /// search events, newest first
    Search {
        /// the selection
        #[command(flatten)]
        filter: FilterArgs,
        /// at most this many events
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// the last events, oldest first; -f keeps printing new ones until Ctrl-C
    Tail {
        /// how many events
        #[arg(short = 'n', long = "lines", default_value_t = 10)]
        lines: u32,
        /// follow: poll for new events every second
        #[arg(short = 'f', long)]
        follow: bool,
        /// the selection
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// one event by sequence number
    Get {
        /// sequence number
        seq: i64,
    },
}

/// `evidence …`
#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// export a signed bundle of the selected events and download it
    Export {
        /// the selection
        #[command(flatten)]
        filter: Box<FilterArgs>,
        /// where to write the bundle
        #[arg(long)]
        out: PathBuf,
    },
    /// print the gateway's Ed25519 evidence public key (64 hex; JSON adds the fingerprint)
    PublicKey,
}

/// `user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// create a user or service account
    Create {
        /// name
        name: String,
        /// viewer, manager, superadmin or none
        #[arg(long, default_value = "none")]
        role: String,
        /// tenant (default: yours)
        #[arg(long)]
        tenant: Option<String>,
        /// a service account instead of a user
        #[arg(long)]
        service: bool,
    },
    /// list principals
    List {
        /// only this tenant
        #[arg(long)]
        tenant: Option<String>,
    },
    /// disable a principal
    Disable {
        /// name
        name: String,
    },
    /// re-enable a disabled principal
    Enable {
        /// name
        name: String,
    },
    /// change a principal's built-in role
    SetRole {
        /// name
        name: String,
        /// viewer, manager, superadmin or none
        #[arg(long)]
        role: String,
    },
    /// one principal
    Show {
        /// name
        name: String,
    },
    /// a principal's S3 rate limits: shown without options, set with --reads/--writes,
    /// removed with --clear
    Limits {
        /// name
        name: String,
        /// what to change
        #[command(flatten)]
        change: LimitArgs,
    },
}

/// The options of `user limits` and `roles limits`.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// S3 reads per minute (0: unlimited)
    #[arg(long, conflicts_with = "clear")]
    pub reads: Option<u32>,
    /// S3 writes per minute, deletes included (0: unlimited)
    #[arg(long, conflicts_with = "clear")]
    pub writes: Option<u32>,
    /// remove the override (inherit again)
    #[arg(long)]
    pub clear: bool,
}

/// `grants …`
#[derive(Debug, Subcommand)]
pub enum GrantsCommand {
    /// list grants
    List {
        /// only this principal's
        #[arg(long)]
        user: Option<String>,
    },
    /// revoke a grant by id
    Revoke {
        /// grant id (see `grants list`)
        id: String,
    },
}

/// `roles …`
#[derive(Debug, Subcommand)]
pub enum RolesCommand {
    /// list custom roles
    List,
    /// create a custom role
    Create {
        /// role name
        name: String,
        /// S3 operations it allows, comma-separated (PutObject,GetObject,…)
        #[arg(long, value_delimiter = ',', required = true)]
        actions: Vec<String>,
        /// owning tenant (default: yours)
        #[arg(long)]
        tenant: Option<String>,
    },
    /// delete a custom role
    Delete {
        /// role name
        name: String,
    },
    /// a built-in role's S3 rate limits: shown without options, set with --reads/--writes,
    /// removed with --clear
    Limits {
        /// viewer, manager, superadmin or none
        role: String,
        /// what to change
        #[command(flatten)]
        change: LimitArgs,
    },
}

/// `key …`
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// issue a key (the secret is shown once)
    Create {
        /// owning principal
        #[arg(long)]
        user: String,
        /// lifetime in seconds
        #[arg(long)]
        expires_in: Option<u64>,
    },
    /// list keys
    List {
        /// only this principal's
        #[arg(long)]
        user: Option<String>,
    },
    /// revoke a key
    Revoke {
        /// access key id
        id: String,
    },
}

/// `tenant …`
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// create a tenant
    Create {
        /// name
        name: String,
    },
    /// list tenants
    List,
}

/// `quorum …`
#[derive(Debug, Subcommand)]
pub enum QuorumCommand {
    /// create or replace a rule
    Set {
        /// rule name
        name: String,
        /// action pattern, e.g. s3:DeleteBucket
        #[arg(long)]
        action: String,
        /// bucket pattern
        #[arg(long, default_value = "*")]
        bucket_pattern: String,
        /// approvals needed
        #[arg(long)]
        approvals: u32,
        /// approver roles, comma-separated
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        /// validity in seconds
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
    /// list rules
    List,
    /// delete a rule
    Delete {
        /// rule name
        name: String,
    },
}

/// `approvals …`
#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// list approval requests
    List {
        /// pending, approved, rejected, consumed, expired
        #[arg(long)]
        state: Option<String>,
    },
    /// approve a request
    Approve {
        /// approval id
        id: String,
    },
    /// reject a request
    Reject {
        /// approval id
        id: String,
    },
    /// one approval request with its votes
    Show {
        /// approval id
        id: String,
    },
    /// ask for approval of an operation ahead of time (the pending or approved request is shown)
    Request {
        /// gated action (s3:DeleteBucket, admin:RetireKey, …)
        #[arg(long)]
        action: String,
        /// bucket, for S3 actions
        #[arg(long)]
        bucket: Option<String>,
        /// object key, for object actions
        #[arg(long)]
        key: Option<String>,
    },
}

/// The profile file's content.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Profile {
    /// admin API base URL
    pub endpoint: Option<String>,
    /// bearer token
    pub token: Option<String>,
}

fn local(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "Client", message)
}

/// The default profile path.
pub fn default_profile_path() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".config").join("vaultgate").join("admin.json")
}

/// Reads a profile; a missing file is an empty profile, a group/world-readable one is refused.
pub fn read_profile(path: &Path) -> Result<Profile, ApiError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Profile::default()),
        Err(e) => return Err(local(format!("profile {}: {e}", path.display()))),
    };
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(local(format!(
            "profile {} is readable by others; chmod 600 it",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| local(format!("profile {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| local(format!("profile {}: {e}", path.display())))
}

/// Writes a profile with mode 0600.
pub fn write_profile(path: &Path, p: &Profile) -> Result<(), ApiError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| local(format!("{}: {e}", dir.display())))?;
    }
    let text = serde_json::to_string_pretty(p).map_err(|e| local(e.to_string()))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| local(format!("{}: {e}", path.display())))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| local(format!("{}: {e}", path.display())))?;
    f.write_all(text.as_bytes())
        .map_err(|e| local(format!("{}: {e}", path.display())))
}

struct Conn {
    endpoint: String,
    token: Option<String>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

/// A raw answer: status, request id, body.
struct Answer {
    status: StatusCode,
    request_id: Option<String>,
    bytes: Bytes,
}

impl Conn {
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Answer, ApiError> {
        let uri = format!("{}/admin/v1{path}", self.endpoint.trim_end_matches('/'));
        let mut b = http::Request::builder().method(method).uri(&uri);
        if let Some(t) = &self.token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let payload = match body {
            Some(v) => {
                b = b.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(&v).map_err(|e| local(e.to_string()))?)
            }
            None => Bytes::new(),
        };
        let req = b
            .body(Full::new(payload))
            .map_err(|e| local(format!("bad request {uri}: {e}")))?;
        let resp = self.client.request(req).await.map_err(|e| {
            ApiError::new(StatusCode::BAD_GATEWAY, "Connection", format!("{uri}: {e}"))
        })?;
        let status = resp.status();
        let request_id = resp
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "Connection", e.to_string()))?
            .to_bytes();
        if status.is_success() {
            return Ok(Answer {
                status,
                request_id,
                bytes,
            });
        }
        if status == StatusCode::UNAUTHORIZED && self.token.is_some() && path != "/auth/token" {
            let (code, reason) = match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(e) => (e.error.code, format!(" ({})", e.error.message)),
                Err(_) => ("Unauthorized".to_owned(), String::new()),
            };
            return Err(ApiError::new(
                status,
                &code,
                format!(
                    "session expired or signed by an old key{reason}: log in again (vaultgate \
                     admin login --access-key ID --secret-key-stdin)"
                ),
            ));
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(e) => {
                let mut a = ApiError::new(status, &e.error.code, e.error.message);
                a.approval_id = e.error.approval_id;
                Err(a)
            }
            Err(_) => Err(ApiError::new(
                status,
                "Http",
                String::from_utf8_lossy(&bytes).into_owned(),
            )),
        }
    }

    /// A call answering JSON, with the answer's request id.
    async fn call_with_id(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(Value, Option<String>), ApiError> {
        let a = self.send(method, path, body).await?;
        if a.bytes.is_empty() || a.status == StatusCode::NO_CONTENT {
            return Ok((Value::Null, a.request_id));
        }
        let v = serde_json::from_slice(&a.bytes).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "Connection",
                format!("bad JSON: {e}"),
            )
        })?;
        Ok((v, a.request_id))
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ApiError> {
        Ok(self.call_with_id(method, path, body).await?.0)
    }

    /// GET every page of a list.
    async fn list_all(&self, path: &str) -> Result<Vec<Value>, ApiError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let p = match &cursor {
                Some(c) => format!("{path}{sep}limit=1000&cursor={c}"),
                None => format!("{path}{sep}limit=1000"),
            };
            let v = self.call(Method::GET, &p, None).await?;
            if let Some(items) = v.get("items").and_then(Value::as_array) {
                out.extend(items.iter().cloned());
            }
            match v.get("next_cursor").and_then(Value::as_str) {
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(out),
            }
        }
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Renders rows of JSON objects as aligned columns. A `*_ms` column (Unix milliseconds) is
/// shown as an RFC 3339 UTC time under its name without the suffix (`expires_ms` → EXPIRES).
pub fn table(columns: &[&str], rows: &[Value]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| match r.get(*c) {
                    Some(Value::Number(n)) if c.ends_with("_ms") => {
                        n.as_i64().map_or_else(|| n.to_string(), format_ms)
                    }
                    v => cell(v.unwrap_or(&Value::Null)),
                })
                .collect()
        })
        .collect();
    let columns: Vec<&str> = columns
        .iter()
        .map(|c| c.strip_suffix("_ms").unwrap_or(c))
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let line = |vals: Vec<String>| {
        let mut l = String::new();
        for (i, v) in vals.iter().enumerate() {
            if i + 1 == vals.len() {
                l.push_str(v);
            } else {
                l.push_str(&format!("{v:<w$}  ", w = widths[i]));
            }
        }
        l.trim_end().to_owned() + "\n"
    };
    out.push_str(&line(columns.iter().map(|c| c.to_uppercase()).collect()));
    for r in cells {
        out.push_str(&line(r));
    }
    out
}

fn emit(
    out: &mut dyn Write,
    format: Format,
    columns: &[&str],
    value: &Value,
) -> Result<(), ApiError> {
    let text = match format {
        Format::Json => {
            serde_json::to_string_pretty(value).map_err(|e| local(e.to_string()))? + "\n"
        }
        Format::Table => match value {
            Value::Array(rows) => table(columns, rows),
            other => table(columns, std::slice::from_ref(other)),
        },
    };
    out.write_all(text.as_bytes())
        .map_err(|e| local(e.to_string()))
}

const PRINCIPAL_COLS: &[&str] = &["name", "kind", "tenant", "role", "disabled"];
const GRANT_COLS: &[&str] = &["id", "principal", "role", "bucket", "prefix"];
const KEY_COLS: &[&str] = &["access_key_id", "principal", "revoked", "expires_ms"];
const APPROVAL_COLS: &[&str] = &[
    "id",
    "state",
    "requester",
    "action",
    "resource",
    "needed",
    "rule",
    "expires_ms",
];
const RULE_COLS: &[&str] = &[
    "name",
    "action",
    "bucket_pattern",
    "approvals",
    "approver_roles",
    "ttl_secs",
];

const EVENT_COLS: &[&str] = &[
    "seq",
    "time",
    "principal",
    "action",
    "target",
    "outcome",
    "status",
];

/// Unix ms as RFC 3339 UTC (`2026-11-22T08:00:00.123Z`), or the number if out of range.
pub fn format_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// A table row of an event: its fields plus `time` (RFC 3339) and `target` (`bucket/key`).
fn event_row(ev: &Value) -> Value {
    let mut row = ev.clone();
    if let Value::Object(m) = &mut row {
        let time = m.get("time_ms").and_then(Value::as_i64).map(format_ms);
        m.insert("time".into(), time.map_or(Value::Null, Value::String));
        let bucket = m.get("bucket").and_then(Value::as_str);
        let key = m.get("key").and_then(Value::as_str);
        let target = match (bucket, key) {
            (Some(b), Some(k)) => Value::String(format!("{b}/{k}")),
            (Some(b), None) => Value::String(b.to_owned()),
            (None, Some(k)) => Value::String(k.to_owned()),
            (None, None) => Value::Null,
        };
        m.insert("target".into(), target);
    }
    row
}

fn event_table(events: &[Value], header: bool) -> String {
    let rows: Vec<Value> = events.iter().map(event_row).collect();
    let t = table(EVENT_COLS, &rows);
    if header {
        t
    } else {
        t.split_once('\n')
            .map_or(String::new(), |(_, rest)| rest.to_owned())
    }
}

fn seq_of(ev: &Value) -> i64 {
    ev.get("seq").and_then(Value::as_i64).unwrap_or(0)
}

/// One page of `GET /audit`: events (newest first), next cursor, the call's request id.
async fn audit_page(
    conn: &Conn,
    query: &str,
    limit: u32,
    cursor: Option<&str>,
) -> Result<(Vec<Value>, Option<String>, Option<String>), ApiError> {
    let mut path = format!("/audit?limit={limit}");
    if !query.is_empty() {
        path.push('&');
        path.push_str(query);
    }
    if let Some(c) = cursor {
        path.push_str(&format!("&cursor={}", percent_encode(c)));
    }
    let (v, rid) = conn.call_with_id(Method::GET, &path, None).await?;
    let items = v
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let next = v
        .get("next_cursor")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok((items, next, rid))
}

/// Up to `limit` events matching `query`, newest first.
async fn audit_search(conn: &Conn, query: &str, limit: u32) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    while (out.len() as u64) < u64::from(limit) {
        let want = (u64::from(limit) - out.len() as u64).min(1000) as u32;
        let (items, next, _) = audit_page(conn, query, want, cursor.as_deref()).await?;
        out.extend(items);
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    out.truncate(limit as usize);
    Ok(out)
}

/// `user limits` / `roles limits`: shows the override at `path`, sets it, or removes it.
async fn limits(
    conn: &Conn,
    out: &mut dyn Write,
    f: Format,
    path: &str,
    change: LimitArgs,
) -> Result<(), ApiError> {
    const COLS: &[&str] = &["s3_reads_per_min", "s3_writes_per_min"];
    if change.clear {
        conn.call(Method::DELETE, path, None).await?;
        return write_out(out, "limits removed (inherited again)\n");
    }
    if change.reads.is_none() && change.writes.is_none() {
        return emit(out, f, COLS, &conn.call(Method::GET, path, None).await?);
    }
    let body = body_of(&policy::ratelimit::LimitOverride {
        s3_reads_per_min: change.reads,
        s3_writes_per_min: change.writes,
    })?;
    emit(out, f, COLS, &conn.call(Method::PUT, path, body).await?)
}

fn write_out(out: &mut dyn Write, text: &str) -> Result<(), ApiError> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| local(e.to_string()))
}

fn print_events(
    out: &mut dyn Write,
    format: Format,
    events: &[Value],
    header: bool,
) -> Result<(), ApiError> {
    let text = match format {
        Format::Table => event_table(events, header),
        Format::Json => events
            .iter()
            .map(|e| e.to_string() + "\n")
            .collect::<String>(),
    };
    write_out(out, &text)
}

/// `audit tail`: the last `lines` events oldest first; with `follow`, then every `interval`
/// the events newer than the last one printed (skipping the events of its own polling calls,
/// recognised by their request ids), until the future is dropped (Ctrl-C).
async fn audit_tail(
    conn: &Conn,
    out: &mut dyn Write,
    format: Format,
    lines: u32,
    follow: bool,
    query: &str,
    interval: std::time::Duration,
) -> Result<(), ApiError> {
    let mut own: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let remember = |own: &mut std::collections::VecDeque<String>, id: Option<String>| {
        if let Some(id) = id {
            own.push_back(id);
            if own.len() > 256 {
                own.pop_front();
            }
        }
    };
    let (mut first, _, rid) = audit_page(conn, query, lines.clamp(1, 1000), None).await?;
    remember(&mut own, rid);
    // the newest event seen, even with -n 0 (then nothing is printed before following)
    let mut last = first.first().map_or(0, seq_of);
    first.truncate(lines as usize);
    first.reverse();
    print_events(out, format, &first, true)?;
    if !follow {
        return Ok(());
    }
    loop {
        tokio::time::sleep(interval).await;
        let mut fresh = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let (items, next, rid) = audit_page(conn, query, 1000, cursor.as_deref()).await?;
            remember(&mut own, rid);
            let done = items.iter().any(|e| seq_of(e) <= last) || next.is_none();
            fresh.extend(items.into_iter().filter(|e| seq_of(e) > last));
            match next {
                Some(c) if !done => cursor = Some(c),
                _ => break,
            }
        }
        if let Some(top) = fresh.first() {
            last = last.max(seq_of(top));
        }
        fresh.retain(|e| {
            e.get("request_id")
                .and_then(Value::as_str)
                .is_none_or(|id| !own.iter().any(|o| o == id))
        });
        fresh.reverse();
        if !fresh.is_empty() {
            print_events(out, format, &fresh, false)?;
        }
    }
}

/// `vaultgate admin kek status`: the provider line, then the KEK and data key tables.
async fn kek_status(conn: &Conn, out: &mut dyn Write, f: Format) -> Result<(), ApiError> {
    let v = conn.call(Method::GET, "/kek", None).await?;
    if f == Format::Json {
        return emit(out, f, &[], &v);
    }
    let p = &v["provider"];
    let mut text = format!(
        "provider: {} ({}), {}\n\n",
        cell(&p["kind"]),
        cell(&p["location"]),
        cell(&p["state"])
    );
    text.push_str(&table(
        &[
            "kek_id",
            "version",
            "current",
            "held",
            "data_keys",
            "stream_headers",
        ],
        v["keks"].as_array().map_or(&[][..], Vec::as_slice),
    ));
    text.push('\n');
    text.push_str(&table(
        &[
            "bucket",
            "version",
            "kek_id",
            "created_ms",
            "objects",
            "bytes",
        ],
        v["data_keys"].as_array().map_or(&[][..], Vec::as_slice),
    ));
    write_out(out, &text)
}

/// `vaultgate admin kek …`.
/// `kek buckets`: each bucket's current data key version under each key (the gateway's own, or
/// the KMS key named by SSE-KMS requests) and the KEK wrapping it.
async fn kek_buckets(conn: &Conn, out: &mut dyn Write, f: Format) -> Result<(), ApiError> {
    let v = conn.call(Method::GET, "/key-status", None).await?;
    let rows = v
        .get("buckets")
        .cloned()
        .unwrap_or(Value::Array(Vec::new()));
    let cols = [
        "bucket",
        "kms_key",
        "version",
        "versions",
        "kek_id",
        "rotated_ms",
    ];
    emit(out, f, &cols, &rows)
}

async fn kek(conn: &Conn, out: &mut dyn Write, f: Format, cmd: KekCommand) -> Result<(), ApiError> {
    const REWRAP_COLS: &[&str] = &[
        "current_kek_id",
        "total",
        "rewrapped",
        "already_current",
        "failed",
    ];
    match cmd {
        KekCommand::Status => kek_status(conn, out, f).await,
        KekCommand::Buckets => kek_buckets(conn, out, f).await,
        KekCommand::Rotate => {
            let v = conn.call(Method::POST, "/kek/rotate", None).await?;
            emit(out, f, REWRAP_COLS, &v)
        }
        KekCommand::Rewrap => {
            let v = conn.call(Method::POST, "/kek/rewrap", None).await?;
            emit(out, f, REWRAP_COLS, &v)
        }
        KekCommand::Retire {
            kek_id,
            accept_header_copies,
        } => {
            let v = conn
                .call(
                    Method::POST,
                    &format!("/kek/{}/retire", urlencoding::encode(&kek_id)),
                    body_of(&api::RetireKek {
                        accept_header_copies,
                    })?,
                )
                .await?;
            emit(out, f, &["kek_id", "stream_headers"], &v)
        }
        KekCommand::Reencrypt {
            bucket,
            rate,
            rate_objects,
        } => {
            let v = conn
                .call(
                    Method::POST,
                    "/kek/reencrypt",
                    body_of(&api::ReencryptBucket {
                        bucket,
                        rate,
                        rate_objects,
                    })?,
                )
                .await?;
            emit(out, f, REENCRYPT_COLS, &v)
        }
        KekCommand::ReencryptStatus { bucket } => {
            let v = conn
                .call(
                    Method::GET,
                    &format!("/kek/reencrypt/{}", urlencoding::encode(&bucket)),
                    None,
                )
                .await?;
            emit(out, f, REENCRYPT_COLS, &v)
        }
        KekCommand::RotateAdminSecret => {
            let v = conn
                .call(Method::POST, "/auth/signing-secret/rotate", None)
                .await?;
            emit(out, f, &["rotated_ms", "previous_accepted_until_ms"], &v)
        }
    }
}

/// Columns of `kek reencrypt` and `kek reencrypt-status`.
const REENCRYPT_COLS: &[&str] = &[
    "bucket",
    "target_version",
    "running",
    "resealed",
    "bytes",
    "skipped_sse_c",
    "raced",
    "failed",
    "remaining",
    "finished_ms",
];

/// The secret key of `login`: from stdin (`--secret-key-stdin`), the flag or variable, else a
/// prompt without echo on a terminal.
fn login_secret(given: Option<String>, from_stdin: bool) -> Result<String, ApiError> {
    use std::io::IsTerminal;
    let secret = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| local(format!("reading the secret key from stdin: {e}")))?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else if let Some(s) = given {
        s
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password("secret key: ")
            .map_err(|e| local(format!("reading the secret key: {e}")))?
    } else {
        return Err(local(
            "no secret key: use --secret-key-stdin, the prompt (on a terminal) or VAULTGATE_SECRET_KEY",
        ));
    };
    if secret.is_empty() {
        return Err(local("the secret key is empty"));
    }
    Ok(secret)
}

/// Runs one admin command, writing its output to `out`.
pub async fn run(args: AdminArgs, out: &mut dyn Write) -> Result<(), ApiError> {
    let profile_path = args
        .profile_file
        .clone()
        .unwrap_or_else(default_profile_path);
    let profile = read_profile(&profile_path)?;
    let endpoint = args
        .endpoint
        .clone()
        .or(profile.endpoint.clone())
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
    if !endpoint.starts_with("http://") {
        return Err(local(
            "endpoint must be http://host:port (put TLS in front of the admin listener)",
        ));
    }
    let conn = Conn {
        endpoint: endpoint.clone(),
        token: args.token.clone().or(profile.token.clone()),
        client: Client::builder(TokioExecutor::new()).build_http(),
    };
    let f = args.format;
    match args.command {
        AdminCommand::Login {
            access_key,
            secret_key,
            secret_key_stdin,
        } => {
            let secret_key = login_secret(secret_key, secret_key_stdin)?;
            let body = body_of(&api::TokenRequest {
                access_key,
                secret_key,
            })?;
            let v = conn.call(Method::POST, "/auth/token", body).await?;
            save_session(out, f, &profile_path, &endpoint, &v)
        }
        AdminCommand::Renew => {
            let v = conn.call(Method::POST, "/auth/renew", None).await?;
            save_session(out, f, &profile_path, &endpoint, &v)
        }
        AdminCommand::Grant {
            user,
            role,
            bucket,
            prefix,
        } => {
            let body = body_of(&api::NewGrant {
                principal: user,
                role,
                bucket,
                prefix,
            })?;
            let v = conn.call(Method::POST, "/grants", body).await?;
            emit(out, f, &["id", "principal", "role", "bucket", "prefix"], &v)
        }
        AdminCommand::Kek(cmd) => kek(&conn, out, f, cmd).await,
        AdminCommand::Status => {
            let v = conn.call(Method::GET, "/status", None).await?;
            let cols = ["version", "uptime_secs", "principals", "caller"];
            emit(out, f, &cols, &v)
        }
        AdminCommand::User(cmd) => user_command(&conn, out, f, cmd).await,
        AdminCommand::Grants(cmd) => grants_command(&conn, out, f, cmd).await,
        AdminCommand::Roles(cmd) => roles_command(&conn, out, f, cmd).await,
        AdminCommand::Key(cmd) => key_command(&conn, out, f, cmd).await,
        AdminCommand::Tenant(cmd) => tenant_command(&conn, out, f, cmd).await,
        AdminCommand::Quorum(cmd) => quorum_command(&conn, out, f, cmd).await,
        AdminCommand::Approvals(cmd) => approvals_command(&conn, out, f, cmd).await,
        AdminCommand::Audit(cmd) => audit_command(&conn, out, f, cmd).await,
        AdminCommand::Evidence(cmd) => evidence_command(&conn, out, f, cmd).await,
    }
}

/// `login` / `renew`: saves the answer's token and the endpoint in the profile file and shows
/// where, with the token's lifetime (never the token).
fn save_session(
    out: &mut dyn Write,
    f: Format,
    profile_path: &Path,
    endpoint: &str,
    v: &Value,
) -> Result<(), ApiError> {
    let token = v
        .get("token")
        .and_then(Value::as_str)
        .ok_or_else(|| local("no token in answer"))?;
    write_profile(
        profile_path,
        &Profile {
            endpoint: Some(endpoint.to_owned()),
            token: Some(token.to_owned()),
        },
    )?;
    let shown = json!({"endpoint": endpoint, "profile": profile_path.display().to_string(), "expires_in": v.get("expires_in")});
    emit(out, f, &["endpoint", "profile", "expires_in"], &shown)
}

/// `user …` against the API.
async fn user_command(
    conn: &Conn,
    out: &mut dyn Write,
    f: Format,
    cmd: UserCommand,
) -> Result<(), ApiError> {
    match cmd {
        UserCommand::Create {
            name,
            role,
            tenant,
            service,
        } => {
            let v = conn
                .call(
                    Method::POST,
                    "/principals",
                    body_of(&api::NewPrincipal {
                        name,
                        kind: Some(if service { "service" } else { "user" }.to_owned()),
                        tenant,
                        role: Some(role),
                    })?,
                )
                .await?;
            emit(out, f, PRINCIPAL_COLS, &v)
        }
        UserCommand::List { tenant } => {
            let path = with_param("/principals", "tenant", tenant.as_deref());
            let rows = conn.list_all(&path).await?;
            emit(out, f, PRINCIPAL_COLS, &Value::Array(rows))
        }
        UserCommand::Enable { name } => {
            let v = conn
                .call(
                    Method::POST,
                    &format!("/principals/{}/enable", percent_encode(&name)),
                    None,
                )
                .await?;
            emit(out, f, PRINCIPAL_COLS, &v)
        }
        UserCommand::SetRole { name, role } => {
            let v = conn
                .call(
                    Method::PUT,
                    &format!("/principals/{}/role", percent_encode(&name)),
                    body_of(&api::RoleChange { role })?,
                )
                .await?;
            emit(out, f, PRINCIPAL_COLS, &v)
        }
        UserCommand::Disable { name } => {
            let v = conn
                .call(Method::POST, &format!("/principals/{name}/disable"), None)
                .await?;
            emit(out, f, PRINCIPAL_COLS, &v)
        }
        UserCommand::Show { name } => {
            let path = format!("/principals/{}", percent_encode(&name));
            emit(
                out,
                f,
                PRINCIPAL_COLS,
                &conn.call(Method::GET, &path, None).await?,
            )
        }
        UserCommand::Limits { name, change } => {
            let path = format!("/principals/{}/limits", percent_encode(&name));
            limits(conn, out, f, &path, change).await
        }
    }
}

/// `grants …` against the API.
async fn grants_command(
    conn: &Conn,
    out: &mut dyn Write,
    f: Format,
    cmd: GrantsCommand,
) -> Result<(), ApiError> {
    match cmd {
        GrantsCommand::List { user } => {
            let path = with_param("/grants", "principal", user.as_deref());
            let rows = conn.list_all(&path).await?;
            emit(out, f, GRANT_COLS, &Value::Array(rows))
        }
        GrantsCommand::Revoke { id } => {
            let v = conn
                .call(
                    Method::DELETE,
                    &format!("/grants/{}", percent_encode(&id)),
                    None,
                )
                .await?;
            if f == Format::Json || !v.is_null() {
                emit(out, f, GRANT_COLS, &v)
            } else {
                write_out(out, &format!("grant {id} revoked\n"))
            }
        }
    }
}

/// `roles …` against the API.
async fn roles_command(
    conn: &Conn,
    out: &mut dyn Write,
    f: Format,
    cmd: RolesCommand,
) -> Result<(), ApiError> {
    match cmd {
        RolesCommand::List => {
            let rows = conn.list_all("/roles").await?;
            emit(out, f, &["name", "tenant", "actions"], &Value::Array(rows))
        }
        RolesCommand::Limits { role, change } => {
            let path = format!("/roles/{}/limits", percent_encode(&role));
            limits(conn, out, f, &path, change).await
        }
        RolesCommand::Create {
            name,
            actions,
            tenant,
        } => {
            let body = body_of(&api::NewRole {
                name,
                actions,
                tenant,
            })?;
            let v = conn.call(Method::POST, "/roles", body).await?;
            emit(out, f, &["name", "tenant", "actions"], &v)
        }
        RolesCommand::Delete { name } => {
            let path = format!("/roles/{}", percent_encode(&name));
            conn.call(Method::DELETE, &path, None).await?;
            write_out(out, &format!("role {name} deleted\n"))
        }
    }
}

/// `key …` against the API.
async fn key_command(
    conn: &Conn,
    out: &mut dyn Write,
    f: Format,
    cmd: KeyCommand,
) -> Result<(), ApiError> {
    match cmd {
        KeyCommand::Create { user, expires_in } => {
            let v = conn
                .call(
                    Method::POST,
                    "/keys",
                    body_of(&api::NewKey {
                        principal: user,
                        expires_in_secs: expires_in,
                    })?,
                )
                .await?;
            emit(
                out,
                f,
                &["access_key_id", "secret_key", "principal", "expires_ms"],
                &v,
            )?;
            if f == Format::Table {
                out.write_all(b"The secret key is shown only once; store it now.\n")
                    .map_err(|e| local(e.to_string()))?;
            }
            Ok(())
        }
        KeyCommand::List { user } => {
            let path = with_param("/keys", "principal", user.as_deref());
            let rows = conn.list_all(&path).await?;
            emit(out, f, KEY_COLS, &Value::Array(rows))
        }
        KeyCommand::Revoke { id } => {
            let v = conn
                .call(Method::POST, &format!("/keys/{id}/revoke"), None)
                .await?;
            emit(out, f, KEY_COLS, &v)
        }
    }
}

/// `tenant …` against the API.
async fn tenant_command(
    conn: &Conn,
    out: &mut dyn Write,
    f: Format,
    cmd: TenantCommand,
) -> Result<(), ApiError> {
    match cmd {
        TenantCommand::Create { name } => {
            let v = conn
                .call(Method::POST, "/tenants", body_of(&api::NewTenant { name })?)
                .await?;
            emit(out, f, &["name", "created_ms"], &v)
        }
        TenantCommand::List => {
            let rows = conn.list_all("/tenants").await?;
            emit(out, f, &["name", "created_ms"], &Value::Array(rows))
        }
    }
}

/// `quorum …` against the API.
async fn quorum_command(
    conn: &Conn,
    out: &mut dyn Write,
    f: Format,
    cmd: QuorumCommand,
) -> Result<(), ApiError> {
    match cmd {
        QuorumCommand::Set {
            name,
            action,
            bucket_pattern,
            approvals,
            roles,
            ttl,
        } => {
            let v = conn
                .call(
                    Method::PUT,
                    &format!("/quorum/rules/{name}"),
                    body_of(&api::RuleBody {
                        action,
                        bucket_pattern: Some(bucket_pattern),
                        approvals,
                        approver_roles: roles,
                        ttl_secs: ttl,
                    })?,
                )
                .await?;
            emit(out, f, RULE_COLS, &v)
        }
        QuorumCommand::List => {
            let rows = conn.list_all("/quorum/rules").await?;
            emit(out, f, RULE_COLS, &Value::Array(rows))
        }
        QuorumCommand::Delete { name } => {
            let path = format!("/quorum/rules/{}", percent_encode(&name));
            conn.call(Method::DELETE, &path, None).await?;
            write_out(out, &format!("quorum rule {name} deleted\n"))
        }
    }
}

/// `approvals …` against the API.
async fn approvals_command(
    conn: &Conn,
    out: &mut dyn Write,
    f: Format,
    cmd: ApprovalsCommand,
) -> Result<(), ApiError> {
    match cmd {
        ApprovalsCommand::List { state } => {
            let path = with_param("/approvals", "state", state.as_deref());
            let rows = conn.list_all(&path).await?;
            emit(out, f, APPROVAL_COLS, &Value::Array(rows))
        }
        ApprovalsCommand::Approve { id } => {
            let v = conn
                .call(Method::POST, &format!("/approvals/{id}/approve"), None)
                .await?;
            emit(out, f, APPROVAL_COLS, &v)
        }
        ApprovalsCommand::Show { id } => {
            let path = format!("/approvals/{}", percent_encode(&id));
            emit(
                out,
                f,
                APPROVAL_COLS,
                &conn.call(Method::GET, &path, None).await?,
            )
        }
        ApprovalsCommand::Request {
            action,
            bucket,
            key,
        } => {
            let body = body_of(&api::NewApproval {
                action,
                bucket,
                key,
            })?;
            let v = conn.call(Method::POST, "/approvals", body).await?;
            emit(out, f, APPROVAL_COLS, &v)
        }
        ApprovalsCommand::Reject { id } => {
            let v = conn
                .call(Method::POST, &format!("/approvals/{id}/reject"), None)
                .await?;
            emit(out, f, APPROVAL_COLS, &v)
        }
    }
}

/// `audit …` against the API.
async fn audit_command(
    conn: &Conn,
    out: &mut dyn Write,
    f: Format,
    cmd: AuditCommand,
) -> Result<(), ApiError> {
    match cmd {
        AuditCommand::Verify => {
            let v = conn.call(Method::GET, "/audit/verify", None).await?;
            emit(
                out,
                f,
                &["ok", "events", "first_seq", "last_seq", "issue"],
                &v,
            )
        }
        AuditCommand::Search { filter, limit } => {
            if !(1..=100_000).contains(&limit) {
                return Err(local("--limit must be 1..=100000"));
            }
            let events = audit_search(conn, &filter.query(), limit).await?;
            match f {
                Format::Json => emit(out, f, EVENT_COLS, &Value::Array(events)),
                Format::Table => write_out(out, &event_table(&events, true)),
            }
        }
        AuditCommand::Tail {
            lines,
            follow,
            filter,
        } => {
            audit_tail(
                conn,
                out,
                f,
                lines,
                follow,
                &filter.query(),
                std::time::Duration::from_secs(1),
            )
            .await
        }
        AuditCommand::Get { seq } => {
            let v = conn
                .call(Method::GET, &format!("/audit/{seq}"), None)
                .await?;
            match f {
                Format::Json => emit(out, f, EVENT_COLS, &v),
                Format::Table => write_out(out, &event_table(std::slice::from_ref(&v), true)),
            }
        }
    }
}

/// `evidence …` against the API.
async fn evidence_command(
    conn: &Conn,
    out: &mut dyn Write,
    f: Format,
    cmd: EvidenceCommand,
) -> Result<(), ApiError> {
    match cmd {
        EvidenceCommand::Export { filter, out: file } => {
            let v = conn
                .call(Method::POST, "/evidence/export", Some(filter.body()))
                .await?;
            let id = v
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| local("no bundle id in answer"))?;
            let sha = v.get("sha256").and_then(Value::as_str).unwrap_or_default();
            let a = conn
                .send(Method::GET, &format!("/evidence/{id}"), None)
                .await?;
            let got = hex::encode(
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &a.bytes).as_ref(),
            );
            if got != sha {
                return Err(local(format!(
                    "downloaded bundle {id} has SHA-256 {got}, the export answered {sha}"
                )));
            }
            let tmp = file.with_extension("partial");
            std::fs::write(&tmp, &a.bytes)
                .and_then(|()| std::fs::rename(&tmp, &file))
                .map_err(|e| local(format!("{}: {e}", file.display())))?;
            let shown = json!({"id": id, "events": v.get("events"), "sha256": sha, "out": file.display().to_string()});
            emit(out, f, &["id", "events", "sha256", "out"], &shown)
        }
        EvidenceCommand::PublicKey => {
            let v = conn.call(Method::GET, "/evidence/public-key", None).await?;
            match f {
                Format::Json => emit(out, f, &[], &v),
                Format::Table => {
                    let hex = v
                        .get("public_key")
                        .and_then(Value::as_str)
                        .ok_or_else(|| local("no public_key in answer"))?;
                    write_out(out, &format!("{hex}\n"))
                }
            }
        }
    }
}
