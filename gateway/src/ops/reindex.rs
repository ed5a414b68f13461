//! `vaultgate reindex`: rebuilds the metadata index from a backend alone. Every stored stream
//! starts with a self-describing header (kind, object id, data key id and its wrapped copy); kind
//! Object streams end with the sealed object metadata, multipart objects have a sealed manifest
//! listing their parts. Reindex lists the backend, opens each header, the metadata of each Object
//! stream and each manifest with the keyring (which falls back to the header's wrapped data key
//! when the fresh index has no `data_keys` row), checks the parts a manifest names
//! (`keys::verify_parts`), and writes buckets, objects and data keys into an empty index.
//!
//! Not in the backend, so not restored: empty buckets, bucket owners, tenants and creation times
//! (buckets get `owner`, the tenant chosen by [`super::bucket_tenant`] and the time of the
//! reindex), access keys, multipart uploads in progress (their
//! parts are reported as orphans). Object tags are restored as written (the `x-amz-tagging`
//! entry of the sealed headers) or as last changed (the newest tag record of the version);
//! bucket tags, lifecycle rules and the versioning / object lock state as last set from the
//! newest bucket record of each setting (an empty bucket that has one comes back too). When two streams claim the same bucket/key (an overwrite whose
//! old stream was not yet collected), the newer `last_modified_ms` wins and the other is reported.

use std::collections::{BTreeMap, BTreeSet};

use futures::TryStreamExt;
use keys::{Header, StreamKind};

use super::{OpsContext, progress_bar, read_bytes};
use crate::backend::{Backend, ObjectInfo};
use crate::error::{Error, Result};
use crate::index::{
    Index, LockMode, NULL_VERSION, ObjectLock, ObjectRecord, SETTING_STATE, StreamRecord,
    TAGGING_HEADER, Versioning,
};
use crate::store::tagging::{
    RECORD_KIND_BUCKET, RECORD_KIND_HEADER, RECORD_KIND_TAGS, RECORD_SETTING_HEADER,
    RECORD_VALUE_HEADER,
};

/// The version id, delete-marker flag and object lock a stream's sealed metadata records
/// (streams written before versioning: the `null` version, no lock).
fn version_of(meta: &keys::ObjectMeta) -> (String, bool, ObjectLock) {
    let retention = match (
        meta.lock_mode.as_deref().and_then(LockMode::parse),
        meta.lock_until_ms,
    ) {
        (Some(m), Some(u)) => Some((m, u)),
        _ => None,
    };
    (
        meta.version_id
            .clone()
            .unwrap_or_else(|| NULL_VERSION.to_owned()),
        meta.delete_marker,
        ObjectLock {
            retention,
            legal_hold: meta.legal_hold,
        },
    )
}

/// Whether a record stream (`lock_record` in its metadata) is a tag record rather than a lock
/// record.
fn is_tag_record(r: &ObjectRecord) -> bool {
    r.headers.get(RECORD_KIND_HEADER).map(String::as_str) == Some(RECORD_KIND_TAGS)
}

/// Whether a record stream is a bucket record (a bucket setting's value).
fn is_bucket_record(r: &ObjectRecord) -> bool {
    r.headers.get(RECORD_KIND_HEADER).map(String::as_str) == Some(RECORD_KIND_BUCKET)
}

/// Applies a bucket's recorded versioning and object lock state (the `state` setting).
async fn apply_state(index: &Index, bucket: &str, json: &str) -> Result<()> {
    let v: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| Error::Integrity(format!("bucket record of {bucket}: {e}")))?;
    match v["versioning"].as_str() {
        Some("Enabled") => index.set_versioning(bucket, Versioning::Enabled).await?,
        Some("Suspended") => index.set_versioning(bucket, Versioning::Suspended).await?,
        _ => {}
    }
    if v["object_lock"].as_bool() == Some(true) {
        let days = |k: &str| v[k].as_u64().and_then(|n| u32::try_from(n).ok());
        let default = v["default_mode"]
            .as_str()
            .and_then(LockMode::parse)
            .map(|mode| crate::index::DefaultRetention {
                mode,
                days: days("default_days"),
                years: days("default_years"),
            });
        index.set_object_lock(bucket, default).await?;
    }
    Ok(())
}

/// Options of a reindex.
#[derive(Debug, Clone)]
pub struct ReindexOptions {
    /// owner recorded for every recreated bucket
    pub owner: String,
    /// no progress bar
    pub quiet: bool,
}

impl Default for ReindexOptions {
    fn default() -> Self {
        ReindexOptions {
            owner: "admin".into(),
            quiet: false,
        }
    }
}

/// What a reindex found and wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReindexReport {
    /// backend objects listed
    pub scanned: usize,
    /// buckets created
    pub buckets: usize,
    /// objects written (single PUT + multipart)
    pub objects: usize,
    /// of which multipart
    pub multipart: usize,
    /// data keys inserted from stream headers
    pub data_keys: usize,
    /// bucket settings restored from their records (tags, lifecycle rules, versioning state)
    pub bucket_settings: usize,
    /// part streams no manifest references (uploads in progress, crash leftovers): not imported
    pub orphan_parts: Vec<String>,
    /// older streams of a bucket/key a newer stream also claims: not imported
    pub superseded: Vec<String>,
    /// streams that could not be read or authenticated, with the reason: not imported
    pub unreadable: Vec<(String, String)>,
}

impl ReindexReport {
    /// Human summary.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "reindex: {} backend objects scanned; {} buckets, {} objects ({} multipart), {} data keys, {} bucket settings restored; {} orphan parts, {} superseded, {} unreadable",
            self.scanned,
            self.buckets,
            self.objects,
            self.multipart,
            self.data_keys,
            self.bucket_settings,
            self.orphan_parts.len(),
            self.superseded.len(),
            self.unreadable.len()
        );
        for id in &self.orphan_parts {
            s.push_str(&format!("\n  orphan part (not imported): {id}"));
        }
        for id in &self.superseded {
            s.push_str(&format!("\n  superseded stream (not imported): {id}"));
        }
        for (id, why) in &self.unreadable {
            s.push_str(&format!("\n  unreadable (not imported): {id}: {why}"));
        }
        if !self.unreadable.is_empty() || !self.orphan_parts.is_empty() {
            s.push_str(
                "\nwarning: the gateway's start-up sweep deletes backend objects the index does not reference;\n\
                 back up the objects listed above (or fix the key) before starting it",
            );
        }
        s
    }
}

/// Reads and decodes the header of one backend object.
async fn read_header(backend: &dyn Backend, info: &ObjectInfo) -> Result<Header> {
    if info.size < 12 {
        return Err(Error::Integrity("shorter than a header".into()));
    }
    let prefix = read_bytes(backend, &info.id, Some(0..12)).await?;
    let len = Header::encoded_len_from_prefix(&prefix)? as u64;
    if len > info.size {
        return Err(Error::Integrity("shorter than its header".into()));
    }
    let bytes = read_bytes(backend, &info.id, Some(0..len)).await?;
    Ok(Header::decode(&bytes)?)
}

/// The record of a kind Object stream, and whether it is a lock record (PutObjectRetention /
/// PutObjectLegalHold on the version it names) rather than a version.
async fn object_record(
    ctx_backend: &dyn Backend,
    keyring: &keys::Keyring,
    info: &ObjectInfo,
    header: &Header,
) -> Result<(ObjectRecord, bool)> {
    let key = keyring.opening_key(header.bucket(), header).await?;
    if info.size < 4 {
        return Err(Error::Integrity("too short".into()));
    }
    let last4 = read_bytes(ctx_backend, &info.id, Some(info.size - 4..info.size)).await?;
    let tl = keys::format::trailer_len_from_suffix(&last4)?;
    let need = (tl + 4).min(info.size);
    let tail = read_bytes(ctx_backend, &info.id, Some(info.size - need..info.size)).await?;
    let (layout, meta) = keys::read_meta(&key, header, info.size, &tail)?;
    let (version_id, delete_marker, lock) = version_of(&meta);
    let lock_record = meta.lock_record;
    let rec = ObjectRecord {
        bucket: meta.bucket,
        key: meta.key,
        version_id,
        is_latest: true,
        delete_marker,
        lock,
        size: layout.plaintext_len,
        etag: meta.etag.clone(),
        last_modified_ms: meta.last_modified_ms,
        headers: meta.headers,
        user_metadata: meta.user_metadata,
        checksums: meta.checksums,
        data_key_id: header.data_key_id().to_hex(),
        key_version: header.data_key_version(),
        streams: vec![StreamRecord {
            backend_id: info.id.clone(),
            part_number: 0,
            header: header.as_bytes().to_vec(),
            plaintext_len: layout.plaintext_len,
            md5_hex: meta.etag,
            checksums: Default::default(),
            inline: None,
        }],
        manifest_id: None,
    };
    Ok((rec, lock_record))
}

async fn manifest_record(
    backend: &dyn Backend,
    keyring: &keys::Keyring,
    info: &ObjectInfo,
    header: &Header,
    parts: &BTreeMap<String, Header>,
) -> Result<ObjectRecord> {
    const MAX_MANIFEST: u64 = 64 << 20;
    if info.size > MAX_MANIFEST {
        return Err(Error::Integrity(format!("manifest of {} bytes", info.size)));
    }
    let key = keyring.opening_key(header.bucket(), header).await?;
    let sealed = read_bytes(backend, &info.id, None).await?;
    let (mheader, meta) = keys::open_manifest(&key, &sealed)?;
    let mut part_headers = Vec::with_capacity(meta.parts.len());
    let mut streams = Vec::with_capacity(meta.parts.len());
    for p in &meta.parts {
        let ph = parts.get(&p.backend_id).ok_or_else(|| {
            Error::Integrity(format!(
                "part {} ({}) is missing from the backend",
                p.part_number, p.backend_id
            ))
        })?;
        part_headers.push((ph.clone(), p.size));
        streams.push(StreamRecord {
            backend_id: p.backend_id.clone(),
            part_number: p.part_number,
            header: ph.as_bytes().to_vec(),
            plaintext_len: p.size,
            md5_hex: p.md5_hex.clone(),
            checksums: p.checksums.clone(),
            inline: None,
        });
    }
    keys::verify_parts(&mheader, &meta, &part_headers)?;
    let (version_id, delete_marker, lock) = version_of(&meta);
    Ok(ObjectRecord {
        bucket: meta.bucket,
        key: meta.key,
        version_id,
        is_latest: true,
        delete_marker,
        lock,
        size: meta.size,
        etag: meta.etag,
        last_modified_ms: meta.last_modified_ms,
        headers: meta.headers,
        user_metadata: meta.user_metadata,
        checksums: meta.checksums,
        data_key_id: header.data_key_id().to_hex(),
        key_version: header.data_key_version(),
        streams,
        manifest_id: Some(info.id.clone()),
    })
}

/// Rebuilds `index` (which must hold no bucket) from `backend`; the buckets belong to the tenant
/// of `opts.owner` (or `default`).
pub async fn reindex(
    index: &Index,
    backend: &dyn Backend,
    keyring: &keys::Keyring,
    opts: &ReindexOptions,
) -> Result<ReindexReport> {
    reindex_into(index, backend, keyring, opts, None).await
}

/// [`reindex`] with the recreated buckets assigned to `tenant` (`None`: the tenant of
/// `opts.owner`, else `default`).
pub async fn reindex_into(
    index: &Index,
    backend: &dyn Backend,
    keyring: &keys::Keyring,
    opts: &ReindexOptions,
    tenant: Option<&str>,
) -> Result<ReindexReport> {
    if !index.is_empty().await? {
        return Err(Error::Config(
            "reindex writes into an empty index; this one already has buckets \
             (move the index file away or point --database-url at a new file)"
                .into(),
        ));
    }
    let policy = super::policy_store(index, keyring).await?;
    let tenant = super::bucket_tenant(&policy, &opts.owner, tenant).await?;
    let mut listed: Vec<ObjectInfo> = backend.list().await?.try_collect().await?;
    listed.sort_by(|a, b| a.id.cmp(&b.id));
    let mut report = ReindexReport {
        scanned: listed.len(),
        ..Default::default()
    };
    let pb = progress_bar(listed.len() as u64 * 2, "reindex", opts.quiet);
    let (headers, parts) = read_headers(backend, listed, &mut report, &pb).await;
    // pass 2: the metadata of objects and manifests, the newest of each claim kept
    let mut scan = Scan::default();
    for (info, header) in &headers {
        let rec = match header.kind() {
            StreamKind::Object => object_record(backend, keyring, info, header).await,
            _ => manifest_record(backend, keyring, info, header, &parts)
                .await
                .map(|r| (r, false)),
        };
        pb.inc(1);
        match rec {
            Ok((r, is_record)) => scan.add(info, header, r, is_record, &mut report),
            Err(e) => report.unreadable.push((info.id.clone(), e.to_string())),
        }
    }
    pb.finish_and_clear();
    report.orphan_parts = scan.orphan_parts(&parts);
    // then the index: data keys, buckets with their settings, versions, record references
    import_data_keys(keyring, &scan.key_headers, &mut report).await?;
    let attach = scan.apply_lock_records(&mut report);
    let attach_tags = scan.apply_tag_records(&mut report);
    scan.write_buckets(index, opts, &tenant, &mut report)
        .await?;
    scan.write_objects(index, &mut report).await?;
    for (bucket, key, version, lock, id) in attach {
        // the lock is already the record's; this only makes the index reference the record
        index
            .set_lock(&bucket, &key, Some(&version), lock, true, Some(&id))
            .await?;
    }
    for (bucket, key, version, tagging, id) in attach_tags {
        index
            .set_object_tags(&bucket, &key, &version, Some(&tagging), &id)
            .await?;
    }
    Ok(report)
}

/// Pass 1: the header of every listed stream; part streams apart (by backend id), the others
/// (objects, manifests) in listing order. Unreadable headers go to the report.
async fn read_headers(
    backend: &dyn Backend,
    listed: Vec<ObjectInfo>,
    report: &mut ReindexReport,
    pb: &indicatif::ProgressBar,
) -> (Vec<(ObjectInfo, Header)>, BTreeMap<String, Header>) {
    let mut headers: Vec<(ObjectInfo, Header)> = Vec::new();
    let mut parts: BTreeMap<String, Header> = BTreeMap::new();
    for info in listed {
        match read_header(backend, &info).await {
            Ok(h) => {
                if h.kind() == StreamKind::Part {
                    parts.insert(info.id.clone(), h);
                } else {
                    headers.push((info, h));
                }
            }
            Err(e) => report.unreadable.push((info.id.clone(), e.to_string())),
        }
        pb.inc(1);
    }
    (headers, parts)
}

/// Inserts the data keys of the scanned headers the key store does not hold yet (the index's
/// copy; the header's wrapped key is the same bytes).
async fn import_data_keys(
    keyring: &keys::Keyring,
    key_headers: &BTreeMap<String, Header>,
    report: &mut ReindexReport,
) -> Result<()> {
    for header in key_headers.values() {
        let mut wk = header.wrapped_data_key();
        wk.kms_key = keyring.kms_key_of_kek(&wk.kek_id);
        if keyring.store().get(&wk.id).await?.is_none() {
            keyring.store().insert(&wk).await?;
            report.data_keys += 1;
        }
    }
    Ok(())
}

/// A version of a key: (bucket, key, version id).
type VersionSlot = (String, String, String);

/// The newest record of a slot: (last_modified_ms, value, backend id of the record).
type Newest<T> = (i64, T, String);

/// Keeps `newer` in `slot` if it is newer than what the slot holds; the loser's backend id goes
/// to `superseded`.
fn keep_newest<K: Ord, T>(
    map: &mut BTreeMap<K, Newest<T>>,
    slot: K,
    newer: Newest<T>,
    superseded: &mut Vec<String>,
) {
    match map.get(&slot) {
        Some(old) if old.0 >= newer.0 => superseded.push(newer.2),
        _ => {
            if let Some(old) = map.insert(slot, newer) {
                superseded.push(old.2);
            }
        }
    }
}

/// Pass 2's findings: the newest stream of each version, the newest lock / tag record of each
/// version, the newest record of each bucket setting, and one header per data key they use.
#[derive(Default)]
struct Scan {
    /// the newest stream of each version
    records: BTreeMap<VersionSlot, ObjectRecord>,
    /// one header per data key id
    key_headers: BTreeMap<String, Header>,
    /// the newest lock record of each version
    lock_records: BTreeMap<VersionSlot, Newest<ObjectLock>>,
    /// the newest tag record of each version (the tag set)
    tag_records: BTreeMap<VersionSlot, Newest<String>>,
    /// the newest record of each (bucket, setting) (the value)
    bucket_records: BTreeMap<(String, String), Newest<String>>,
}

impl Scan {
    /// Files the record a stream holds (`is_record`: a lock / tag / bucket record rather than a
    /// version); the older of two claims on one slot goes to `report.superseded`.
    fn add(
        &mut self,
        info: &ObjectInfo,
        header: &Header,
        r: ObjectRecord,
        is_record: bool,
        report: &mut ReindexReport,
    ) {
        self.key_headers
            .entry(header.data_key_id().to_hex())
            .or_insert_with(|| header.clone());
        let superseded = &mut report.superseded;
        if is_record && is_bucket_record(&r) {
            let setting = |h: &str| r.headers.get(h).cloned().unwrap_or_default();
            let (name, value) = (setting(RECORD_SETTING_HEADER), setting(RECORD_VALUE_HEADER));
            let newer = (r.last_modified_ms, value, info.id.clone());
            keep_newest(
                &mut self.bucket_records,
                (r.bucket, name),
                newer,
                superseded,
            );
        } else if is_record && is_tag_record(&r) {
            let tagging = r.headers.get(TAGGING_HEADER).cloned().unwrap_or_default();
            let newer = (r.last_modified_ms, tagging, info.id.clone());
            let slot = (r.bucket, r.key, r.version_id);
            keep_newest(&mut self.tag_records, slot, newer, superseded);
        } else if is_record {
            let newer = (r.last_modified_ms, r.lock, info.id.clone());
            let slot = (r.bucket, r.key, r.version_id);
            keep_newest(&mut self.lock_records, slot, newer, superseded);
        } else {
            self.add_version(info, r, superseded);
        }
    }

    /// Keeps the newer of two streams of one version; the older one's stream (its manifest for
    /// a multipart object) goes to `superseded`.
    fn add_version(&mut self, info: &ObjectInfo, rec: ObjectRecord, superseded: &mut Vec<String>) {
        let slot = (rec.bucket.clone(), rec.key.clone(), rec.version_id.clone());
        match self.records.get(&slot) {
            Some(old) if old.last_modified_ms >= rec.last_modified_ms => {
                superseded.push(info.id.clone());
            }
            _ => {
                if let Some(old) = self.records.insert(slot, rec) {
                    superseded.extend(
                        old.manifest_id
                            .clone()
                            .or(old.streams.first().map(|s| s.backend_id.clone())),
                    );
                }
            }
        }
    }

    /// The part streams no kept manifest references.
    fn orphan_parts(&self, parts: &BTreeMap<String, Header>) -> Vec<String> {
        let mut used_parts: BTreeSet<String> = BTreeSet::new();
        for rec in self.records.values() {
            if rec.manifest_id.is_some() {
                used_parts.extend(rec.streams.iter().map(|s| s.backend_id.clone()));
            }
        }
        parts
            .keys()
            .filter(|id| !used_parts.contains(*id))
            .cloned()
            .collect()
    }

    /// Lock records: a version gets the lock as last changed, not as written (a record whose
    /// version is gone is not imported). Returns the records to reference once written.
    fn apply_lock_records(
        &mut self,
        report: &mut ReindexReport,
    ) -> Vec<(String, String, String, ObjectLock, String)> {
        let mut attach = Vec::new();
        for ((bucket, key, version), (_, lock, id)) in std::mem::take(&mut self.lock_records) {
            match self
                .records
                .get_mut(&(bucket.clone(), key.clone(), version.clone()))
            {
                Some(rec) if !rec.delete_marker => {
                    rec.lock = lock;
                    attach.push((bucket, key, version, lock, id));
                }
                _ => report.superseded.push(id),
            }
        }
        attach
    }

    /// Tag records: a version gets the tags as last changed (PutObjectTagging /
    /// DeleteObjectTagging), not as written. Returns the records to reference once written.
    fn apply_tag_records(
        &mut self,
        report: &mut ReindexReport,
    ) -> Vec<(String, String, String, String, String)> {
        let mut attach_tags = Vec::new();
        for ((bucket, key, version), (_, tagging, id)) in std::mem::take(&mut self.tag_records) {
            match self
                .records
                .get_mut(&(bucket.clone(), key.clone(), version.clone()))
            {
                Some(rec) if !rec.delete_marker => {
                    if tagging.is_empty() {
                        rec.headers.remove(TAGGING_HEADER);
                    } else {
                        rec.headers
                            .insert(TAGGING_HEADER.to_owned(), tagging.clone());
                    }
                    attach_tags.push((bucket, key, version, tagging, id));
                }
                _ => report.superseded.push(id),
            }
        }
        attach_tags
    }

    /// Creates every bucket a version or a bucket record names, with its versioning / object
    /// lock state, then writes the bucket settings (tags, lifecycle rules, state), each
    /// referencing its record.
    async fn write_buckets(
        &self,
        index: &Index,
        opts: &ReindexOptions,
        tenant: &str,
        report: &mut ReindexReport,
    ) -> Result<()> {
        let buckets: BTreeSet<&str> = self
            .records
            .keys()
            .map(|(b, _, _)| b.as_str())
            .chain(self.bucket_records.keys().map(|(b, _)| b.as_str()))
            .collect();
        for b in &buckets {
            index
                .create_bucket_in_tenant(b, &opts.owner, tenant, false)
                .await?;
            report.buckets += 1;
            // versioning and object lock are bucket settings the backend does not hold: a bucket
            // with versions gets versioning Enabled, one with locked versions object lock as
            // well (no default retention), so that nothing a lock protects becomes deletable
            let of_bucket = || self.records.values().filter(|r| r.bucket == *b);
            if of_bucket().any(|r| r.version_id != NULL_VERSION || r.delete_marker) {
                index.set_versioning(b, Versioning::Enabled).await?;
                if of_bucket().any(|r| r.lock != ObjectLock::default()) {
                    index.set_object_lock(b, None).await?;
                }
            }
            // the state as last set, where a bucket record has it (Suspended, default retention)
            let state = ((*b).to_owned(), SETTING_STATE.to_owned());
            if let Some((_, json, _)) = self.bucket_records.get(&state) {
                apply_state(index, b, json).await?;
            }
        }
        for ((bucket, name), (_, value, id)) in &self.bucket_records {
            index
                .set_bucket_setting(bucket, name, Some(value), Some(id))
                .await?;
            report.bucket_settings += 1;
        }
        Ok(())
    }

    /// Writes the versions, those of a key oldest first so that the newest ends up the latest.
    async fn write_objects(&self, index: &Index, report: &mut ReindexReport) -> Result<()> {
        let mut ordered: Vec<&ObjectRecord> = self.records.values().collect();
        ordered.sort_by(|a, b| {
            (&a.bucket, &a.key, a.last_modified_ms, &a.version_id).cmp(&(
                &b.bucket,
                &b.key,
                b.last_modified_ms,
                &b.version_id,
            ))
        });
        for rec in ordered {
            index.put_object(rec).await?;
            report.objects += 1;
            if rec.manifest_id.is_some() {
                report.multipart += 1;
            }
        }
        Ok(())
    }
}

/// `vaultgate reindex` with the configured index, backend and key.
pub async fn run(ctx: &OpsContext, opts: &ReindexOptions) -> Result<ReindexReport> {
    run_into(ctx, opts, None).await
}

/// `vaultgate reindex --tenant T`: [`run`] with the buckets assigned to `tenant`.
pub async fn run_into(
    ctx: &OpsContext,
    opts: &ReindexOptions,
    tenant: Option<&str>,
) -> Result<ReindexReport> {
    reindex_into(&ctx.index, ctx.backend.as_ref(), &ctx.keyring, opts, tenant).await
}
