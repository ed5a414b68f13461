//! Signed evidence bundles: export a selection of audit events with the chain links that tie
//! them together and a manifest (SHA-256 of every file) signed with the gateway's Ed25519
//! evidence key, as one file; and verify such a file offline, with clear failure reasons.
//!
//! Bundle file (docs/AUDIT.md): compact JSON
//! `{"format":"vaultgate-evidence-bundle-v1","files":[{"name":…,"data":<base64>},…]}` holding
//! `manifest.json`, `manifest.sig` (hex Ed25519 signature of the manifest bytes),
//! `events.jsonl` (the selected events, oldest first) and `chain.json` (anchor, optional
//! checkpoint and one link per seq from the first to the last selected event).

mod key;

use std::fmt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

pub use key::{EvidenceKey, KEY_FILE, PublicKey};

use crate::retention::{Checkpoint, latest_checkpoint};
use crate::{
    AuditError, AuditFilter, AuditResult, BundleReason, GENESIS_HASH, Head, Ledger, StoredEvent,
    link_hash, select_ascending, select_range, sha256_hex,
};

/// `format` of the bundle container.
pub const BUNDLE_FORMAT: &str = "vaultgate-evidence-bundle-v1";
/// `format` of the manifest.
pub const MANIFEST_FORMAT: &str = "vaultgate-evidence-manifest-v1";

const MANIFEST: &str = "manifest.json";
const SIGNATURE: &str = "manifest.sig";
const EVENTS: &str = "events.jsonl";
const CHAIN: &str = "chain.json";

/// Limits of one export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportLimits {
    /// most selected events (default 100 000)
    pub max_events: usize,
    /// most chain links between the first and last selected event (default 1 000 000)
    pub max_links: usize,
}

impl Default for ExportLimits {
    fn default() -> ExportLimits {
        ExportLimits {
            max_events: 100_000,
            max_links: 1_000_000,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Container {
    format: String,
    files: Vec<FileEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    name: String,
    data: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`]
    pub format: String,
    /// export time, Unix ms
    pub created_ms: i64,
    /// the selection that was exported
    pub filter: AuditFilter,
    /// number of events in `events.jsonl`
    pub event_count: u64,
    /// first and last selected seq
    pub first_seq: i64,
    /// last selected seq
    pub last_seq: i64,
    /// the ledger head at export time (attested by the signature)
    pub ledger_head: Head,
    /// signer's public key, hex
    pub public_key: String,
    /// every other file with its size and SHA-256
    pub files: Vec<ManifestFile>,
}

/// One file entry of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// file name inside the bundle
    pub name: String,
    /// length in bytes
    pub size: u64,
    /// lower-case hex SHA-256
    pub sha256: String,
}

/// `chain.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainProof {
    /// the event before the first link (seq 0 = genesis)
    pub anchor: Head,
    /// the retention checkpoint when the anchor is one
    pub checkpoint: Option<Checkpoint>,
    /// one link per seq, contiguous, from the first to the last selected event
    pub links: Vec<Link>,
}

/// One chain link: enough to recompute the chain without the event's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// sequence number
    pub seq: i64,
    /// SHA-256 of the event's canonical body
    pub body_sha256: String,
    /// the event's hash
    pub hash: String,
}

/// What a verified bundle holds; `Display` is what `vaultgate evidence verify` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleSummary {
    /// the verified manifest
    pub manifest: Manifest,
    /// the selected events
    pub events: Vec<StoredEvent>,
    /// fingerprint of the signing key
    pub signer: String,
    /// whether the signer was checked against a trusted public key
    pub pinned: bool,
}

impl fmt::Display for BundleSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.manifest;
        writeln!(
            f,
            "evidence bundle OK: {} events (seq {}..={}), exported at {} ms",
            m.event_count, m.first_seq, m.last_seq, m.created_ms
        )?;
        writeln!(
            f,
            "signed by {} {}",
            self.signer,
            if self.pinned {
                "(matches the given public key)"
            } else {
                "(key embedded in the bundle; pass --public-key to pin it)"
            }
        )?;
        writeln!(
            f,
            "ledger head at export: seq {} hash {}",
            m.ledger_head.seq, m.ledger_head.hash
        )?;
        for file in &m.files {
            writeln!(
                f,
                "  {} {} bytes sha256 {}",
                file.name, file.size, file.sha256
            )?;
        }
        Ok(())
    }
}

const NO_EVENTS: &str = "no events match the filter";
const TOO_MANY_EVENTS: &str = "more than ";
const TOO_MANY_LINKS: &str = "the selected events span ";
const UNVERIFIABLE: &str = "the ledger does not verify over the selection: ";

/// Why [`build_bundle`] refused an export, for callers that answer with different statuses
/// (the admin API: 400 for an empty selection, 413 past [`ExportLimits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportRefusal {
    /// no event matches the filter
    NoEvents,
    /// more events match than [`ExportLimits::max_events`]
    TooManyEvents,
    /// the selection spans more chain links than [`ExportLimits::max_links`]
    TooManyLinks,
    /// the ledger does not verify over the selection (run `vaultgate audit verify`)
    Unverifiable,
}

impl ExportRefusal {
    /// Classifies an error of [`build_bundle`] / [`export_bundle`]; `None` for other errors
    /// (database, I/O, ...).
    pub fn of(err: &AuditError) -> Option<ExportRefusal> {
        let AuditError::Bundle {
            reason: BundleReason::Build,
            detail,
        } = err
        else {
            return None;
        };
        if detail == NO_EVENTS {
            Some(ExportRefusal::NoEvents)
        } else if detail.starts_with(TOO_MANY_EVENTS) {
            Some(ExportRefusal::TooManyEvents)
        } else if detail.starts_with(TOO_MANY_LINKS) {
            Some(ExportRefusal::TooManyLinks)
        } else if detail.starts_with(UNVERIFIABLE) {
            Some(ExportRefusal::Unverifiable)
        } else {
            None
        }
    }
}

fn build_err(detail: impl Into<String>) -> AuditError {
    AuditError::bundle(BundleReason::Build, detail)
}

fn to_json<T: Serialize>(v: &T) -> AuditResult<String> {
    serde_json::to_string(v).map_err(|e| build_err(e.to_string()))
}

/// What a bundle proves, read from one snapshot of the ledger: the selected events, the chain
/// proof from the anchor before the first to the last, and the ledger head at export.
struct Selection {
    events: Vec<StoredEvent>,
    chain: ChainProof,
    head: Head,
}

/// Builds a signed bundle of the events matching `filter` (bytes of the single bundle file).
pub async fn build_bundle(
    ledger: &Ledger,
    key: &EvidenceKey,
    filter: &AuditFilter,
    now_ms: i64,
    limits: ExportLimits,
) -> AuditResult<Vec<u8>> {
    let sel = select(ledger, filter, limits).await?;
    // Refuse to sign evidence that does not verify.
    check_chain(&sel.chain, &sel.events, None)
        .map_err(|e| build_err(format!("{UNVERIFIABLE}{e}")))?;
    pack(&sel, key, filter, now_ms)
}

/// Reads the events matching `filter` and their chain proof in one read transaction, so
/// selection, links and head come from the same snapshot; refused past `limits`.
async fn select(
    ledger: &Ledger,
    filter: &AuditFilter,
    limits: ExportLimits,
) -> AuditResult<Selection> {
    ledger.sync().await;
    let mut tx = ledger
        .read_pool()
        .begin_with(crate::db::Dialect::of(ledger.read_pool()).begin_snapshot())
        .await?;
    let events = select_ascending(&mut tx, filter, limits.max_events).await?;
    if events.len() > limits.max_events {
        return Err(build_err(format!(
            "{TOO_MANY_EVENTS}{} events match; narrow the filter",
            limits.max_events
        )));
    }
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        return Err(build_err(NO_EVENTS));
    };
    let span = usize::try_from(last.seq - first.seq + 1).unwrap_or(usize::MAX);
    if span > limits.max_links {
        return Err(build_err(format!(
            "{TOO_MANY_LINKS}{span} chain links (limit {}); narrow the filter",
            limits.max_links
        )));
    }
    let range = select_range(&mut tx, first.seq, last.seq).await?;
    let head_row: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await?;
    let checkpoint = latest_checkpoint(&mut tx).await?;
    tx.commit().await?;
    let anchor = Head {
        seq: first.seq - 1,
        hash: first.prev_hash.clone(),
    };
    let checkpoint = checkpoint.filter(|c| c.seq == anchor.seq);
    let links = range
        .iter()
        .map(|e| Link {
            seq: e.seq,
            body_sha256: e.body_sha256(),
            hash: e.hash.clone(),
        })
        .collect();
    let (seq, hash) = head_row.unwrap_or((0, GENESIS_HASH.to_owned()));
    Ok(Selection {
        chain: ChainProof {
            anchor,
            checkpoint,
            links,
        },
        events,
        head: Head { seq, hash },
    })
}

/// The bundle file: the events and the chain proof, a manifest of their sizes and hashes, and
/// the manifest's signature.
fn pack(
    sel: &Selection,
    key: &EvidenceKey,
    filter: &AuditFilter,
    now_ms: i64,
) -> AuditResult<Vec<u8>> {
    let (Some(first), Some(last)) = (sel.events.first(), sel.events.last()) else {
        return Err(build_err(NO_EVENTS));
    };
    let mut events = String::new();
    for e in &sel.events {
        events.push_str(&e.to_json_line());
        events.push('\n');
    }
    let chain_json = to_json(&sel.chain)?;
    let file_entry = |name: &str, data: &[u8]| ManifestFile {
        name: name.to_owned(),
        size: data.len() as u64,
        sha256: sha256_hex(data),
    };
    let manifest = Manifest {
        format: MANIFEST_FORMAT.to_owned(),
        created_ms: now_ms,
        filter: filter.clone(),
        event_count: sel.events.len() as u64,
        first_seq: first.seq,
        last_seq: last.seq,
        ledger_head: sel.head.clone(),
        public_key: key.public_key().to_hex(),
        files: vec![
            file_entry(EVENTS, events.as_bytes()),
            file_entry(CHAIN, chain_json.as_bytes()),
        ],
    };
    let manifest_json = to_json(&manifest)?;
    let signature = hex::encode(key.sign(manifest_json.as_bytes()));
    let container = Container {
        format: BUNDLE_FORMAT.to_owned(),
        files: [
            (MANIFEST, manifest_json.as_bytes()),
            (SIGNATURE, signature.as_bytes()),
            (EVENTS, events.as_bytes()),
            (CHAIN, chain_json.as_bytes()),
        ]
        .into_iter()
        .map(|(name, data)| FileEntry {
            name: name.to_owned(),
            data: B64.encode(data),
        })
        .collect(),
    };
    Ok(to_json(&container)?.into_bytes())
}

/// Builds a bundle and writes it to `path` (via a temporary file and rename).
pub async fn export_bundle(
    ledger: &Ledger,
    key: &EvidenceKey,
    filter: &AuditFilter,
    now_ms: i64,
    limits: ExportLimits,
    path: &Path,
) -> AuditResult<BundleSummary> {
    let bytes = build_bundle(ledger, key, filter, now_ms, limits).await?;
    let summary = verify_bundle_bytes(&bytes, Some(&key.public_key()))?;
    let tmp = path.with_extension("partial");
    tokio::fs::write(&tmp, &bytes)
        .await
        .map_err(|e| AuditError::io(tmp.display(), e))?;
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|e| AuditError::io(path.display(), e))?;
    Ok(summary)
}

/// Verifies a bundle file offline (`vaultgate evidence verify BUNDLE [--public-key K]`).
pub fn verify_bundle(path: &Path, trusted: Option<&PublicKey>) -> AuditResult<BundleSummary> {
    let bytes = std::fs::read(path).map_err(|e| AuditError::io(path.display(), e))?;
    verify_bundle_bytes(&bytes, trusted)
}

fn reject(reason: BundleReason, detail: impl Into<String>) -> AuditError {
    AuditError::bundle(reason, detail)
}

/// The files of a bundle container, by name, decoded.
type Files = Vec<(String, Vec<u8>)>;

/// One file of `files`; a missing one is [`BundleReason::MissingFile`].
fn file<'a>(files: &'a Files, name: &str) -> AuditResult<&'a [u8]> {
    files
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, d)| d.as_slice())
        .ok_or_else(|| reject(BundleReason::MissingFile, format!("{name} is missing")))
}

/// Verifies bundle bytes: container encoding, key pin, signature, every file's size and
/// SHA-256, then the chain links and each event's place in them.
pub fn verify_bundle_bytes(
    bytes: &[u8],
    trusted: Option<&PublicKey>,
) -> AuditResult<BundleSummary> {
    let files = container_files(bytes)?;
    let (manifest, verifier) = signed_manifest(&files, trusted)?;
    check_listed_files(&files, &manifest)?;
    let events = chained_events(&files, &verifier)?;
    check_announced(&manifest, &events)?;
    Ok(BundleSummary {
        signer: verifier.fingerprint(),
        pinned: trusted.is_some(),
        manifest,
        events,
    })
}

/// The container's files: only the exact encoding the exporter writes is accepted, so no byte
/// can change unnoticed; no name twice.
fn container_files(bytes: &[u8]) -> AuditResult<Files> {
    use BundleReason::*;
    let container: Container = serde_json::from_slice(bytes)
        .map_err(|e| reject(Malformed, format!("not a bundle file: {e}")))?;
    if container.format != BUNDLE_FORMAT {
        return Err(reject(
            Malformed,
            format!("unknown bundle format {:?}", container.format),
        ));
    }
    let canonical = serde_json::to_vec(&container).map_err(|e| reject(Malformed, e.to_string()))?;
    if canonical != bytes {
        return Err(reject(
            Malformed,
            "the bundle is not in its canonical encoding (bytes were changed, added or removed)",
        ));
    }
    let mut files: Files = Vec::with_capacity(container.files.len());
    for entry in &container.files {
        let data = B64
            .decode(&entry.data)
            .map_err(|e| reject(Malformed, format!("{}: bad base64: {e}", entry.name)))?;
        if files.iter().any(|(n, _)| *n == entry.name) {
            return Err(reject(Malformed, format!("{} appears twice", entry.name)));
        }
        files.push((entry.name.clone(), data));
    }
    Ok(files)
}

/// The manifest, once its signature holds under the trusted key (else the key it names), and
/// that key. The signature is checked on the raw manifest bytes before anything in them is
/// trusted.
fn signed_manifest(
    files: &Files,
    trusted: Option<&PublicKey>,
) -> AuditResult<(Manifest, PublicKey)> {
    use BundleReason::*;
    let manifest_bytes = file(files, MANIFEST)?;
    let sig_text = file(files, SIGNATURE)?;
    let parsed: Result<Manifest, String> =
        serde_json::from_slice(manifest_bytes).map_err(|e| format!("{MANIFEST}: {e}"));
    let embedded = parsed
        .as_ref()
        .ok()
        .and_then(|m| PublicKey::parse(&m.public_key).ok());
    let verifier = match (trusted, embedded) {
        (Some(t), _) => *t,
        (None, Some(e)) => e,
        (None, None) => {
            return Err(reject(
                Malformed,
                match &parsed {
                    Err(e) => e.clone(),
                    Ok(_) => "the manifest's public key is malformed".to_owned(),
                },
            ));
        }
    };
    let signature = std::str::from_utf8(sig_text)
        .ok()
        .and_then(|s| hex::decode(s).ok())
        .ok_or_else(|| reject(BadSignature, format!("{SIGNATURE} is not a hex signature")))?;
    if !verifier.verify(manifest_bytes, &signature) {
        if let (Some(t), Some(e)) = (trusted, embedded)
            && *t != e
        {
            return Err(reject(
                WrongKey,
                format!(
                    "the bundle was signed by {} but the given public key is {}",
                    e.fingerprint(),
                    t.fingerprint()
                ),
            ));
        }
        return Err(reject(
            BadSignature,
            format!(
                "the signature in {SIGNATURE} does not match {MANIFEST} under key {}",
                verifier.fingerprint()
            ),
        ));
    }
    let manifest = parsed.map_err(|e| reject(Malformed, e))?;
    if manifest.format != MANIFEST_FORMAT {
        return Err(reject(
            Malformed,
            format!("unknown manifest format {:?}", manifest.format),
        ));
    }
    if let Some(t) = trusted
        && Some(*t) != embedded
    {
        return Err(reject(
            WrongKey,
            format!(
                "the manifest names key {} but the given public key is {}",
                embedded.map_or_else(|| "(malformed)".to_owned(), |e| e.fingerprint()),
                t.fingerprint()
            ),
        ));
    }
    Ok((manifest, verifier))
}

/// Every file the manifest lists has its size and SHA-256, and no other file is present.
fn check_listed_files(files: &Files, manifest: &Manifest) -> AuditResult<()> {
    use BundleReason::*;
    for listed in &manifest.files {
        let data = file(files, &listed.name)?;
        if data.len() as u64 != listed.size || sha256_hex(data) != listed.sha256 {
            return Err(reject(
                FileHashMismatch,
                format!(
                    "{}: {} bytes with SHA-256 {}, the manifest says {} bytes with SHA-256 {}",
                    listed.name,
                    data.len(),
                    sha256_hex(data),
                    listed.size,
                    listed.sha256
                ),
            ));
        }
    }
    for (name, _) in files {
        if name != MANIFEST && name != SIGNATURE && !manifest.files.iter().any(|f| &f.name == name)
        {
            return Err(reject(
                MissingFile,
                format!("{name} is not listed in the manifest"),
            ));
        }
    }
    Ok(())
}

/// The events, each in its place in the chain proof.
fn chained_events(files: &Files, verifier: &PublicKey) -> AuditResult<Vec<StoredEvent>> {
    use BundleReason::*;
    let chain: ChainProof = serde_json::from_slice(file(files, CHAIN)?)
        .map_err(|e| reject(Malformed, format!("{CHAIN}: {e}")))?;
    let text = std::str::from_utf8(file(files, EVENTS)?)
        .map_err(|_| reject(Malformed, format!("{EVENTS} is not UTF-8")))?;
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let e: StoredEvent = serde_json::from_str(line)
            .map_err(|e| reject(Malformed, format!("{EVENTS} line {}: {e}", i + 1)))?;
        events.push(e);
    }
    check_chain(&chain, &events, Some(verifier)).map_err(|d| reject(ChainBroken, d))?;
    Ok(events)
}

/// The manifest announces exactly the events the bundle holds, within the ledger's head.
fn check_announced(manifest: &Manifest, events: &[StoredEvent]) -> AuditResult<()> {
    use BundleReason::*;
    let (first, last) = match (events.first(), events.last()) {
        (Some(f), Some(l)) => (f.seq, l.seq),
        _ => return Err(reject(ChainBroken, "the bundle holds no events")),
    };
    if manifest.event_count != events.len() as u64
        || manifest.first_seq != first
        || manifest.last_seq != last
    {
        return Err(reject(
            ChainBroken,
            format!(
                "the manifest announces {} events seq {}..={}, {EVENTS} holds {} events seq {first}..={last}",
                manifest.event_count,
                manifest.first_seq,
                manifest.last_seq,
                events.len()
            ),
        ));
    }
    if manifest.ledger_head.seq < last {
        return Err(reject(
            ChainBroken,
            format!(
                "the ledger head at export (seq {}) precedes the last event (seq {last})",
                manifest.ledger_head.seq
            ),
        ));
    }
    Ok(())
}

/// Recomputes the links from the anchor and checks each event against its link.
fn check_chain(
    chain: &ChainProof,
    events: &[StoredEvent],
    signer: Option<&PublicKey>,
) -> Result<(), String> {
    let anchor = &chain.anchor;
    match &chain.checkpoint {
        Some(cp) => {
            if cp.seq != anchor.seq || cp.hash != anchor.hash {
                return Err(format!(
                    "the checkpoint (seq {}) is not the anchor (seq {})",
                    cp.seq, anchor.seq
                ));
            }
            if let Some(k) = signer {
                cp.check_signature(Some(k))
                    .map_err(|r| format!("checkpoint after seq {}: {r}", cp.seq))?;
            }
        }
        None if anchor.seq == 0 && anchor.hash != GENESIS_HASH => {
            return Err("seq 0 anchor is not the genesis hash".into());
        }
        None => {}
    }
    let mut prev = anchor.hash.clone();
    let mut seq = anchor.seq;
    for link in &chain.links {
        seq += 1;
        if link.seq != seq {
            return Err(format!(
                "link for seq {seq} expected, found seq {}",
                link.seq
            ));
        }
        let computed = link_hash(link.seq, &prev, &link.body_sha256);
        if computed != link.hash {
            return Err(format!(
                "link seq {} does not hash to its stated hash",
                link.seq
            ));
        }
        prev = computed;
    }
    // Links are contiguous from anchor.seq + 1 (checked above): index them by seq.
    let link_at = |s: i64| {
        usize::try_from(s - anchor.seq - 1)
            .ok()
            .and_then(|i| chain.links.get(i))
    };
    let mut last_seq = anchor.seq;
    for e in events {
        if e.seq <= last_seq {
            return Err(format!("event seq {} is out of order or repeated", e.seq));
        }
        last_seq = e.seq;
        let Some(link) = link_at(e.seq) else {
            return Err(format!("event seq {} has no chain link", e.seq));
        };
        let prev_of_link = if e.seq == anchor.seq + 1 {
            anchor.hash.as_str()
        } else {
            link_at(e.seq - 1).map_or("", |l| l.hash.as_str())
        };
        if e.prev_hash != prev_of_link {
            return Err(format!(
                "event seq {} does not link to its predecessor in the chain",
                e.seq
            ));
        }
        if e.body_sha256() != link.body_sha256 || e.hash != link.hash || e.computed_hash() != e.hash
        {
            return Err(format!(
                "event seq {} does not match its chain link (content changed)",
                e.seq
            ));
        }
    }
    Ok(())
}
