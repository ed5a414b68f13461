//! The authorization matrix of issue 7 over real SigV4 (aws-sdk-s3) against the in-process
//! gateway: every served S3 operation × every role (Viewer, Manager, SuperAdmin, a custom
//! `BackupWriter` role granted on one bucket and prefix, and the SuperAdmin of another tenant) ×
//! own/other tenant, each request checked for the operation's success or a 403 AccessDenied
//! exactly as the role rule says (the whole table is printed when a cell is wrong). Also:
//! ListBuckets shows only the caller's tenant, revoking a key or disabling a principal refuses the
//! very next request, listings are authorised on their `prefix`, and a batch delete by a prefix
//! grant deletes the keys under its prefix and refuses the others one by one. The matrix
//! buckets have object lock (so versioning Enabled), for the versioning and object lock
//! operations of issue 15.

use crate::common;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier,
    ObjectLockConfiguration, ObjectLockEnabled, ObjectLockLegalHold, ObjectLockLegalHoldStatus,
    ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode, ObjectOwnership,
    OwnershipControls, OwnershipControlsRule, PublicAccessBlockConfiguration,
    VersioningConfiguration,
};
use common::*;
use policy::{Action, Role};

const ACME: &str = "acme";
const GLOBEX: &str = "globex";
const ACME_BUCKET: &str = "acme-data";
const GLOBEX_BUCKET: &str = "globex-data";
/// The custom role of the matrix: writes and deletes, nothing else.
const BACKUP_ACTIONS: [Action; 2] = [Action::PutObject, Action::DeleteObject];
/// The only prefix the BackupWriter grant covers (every matrix key lives under it).
const BACKUP_PREFIX: &str = "bk/";

/// What one request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// the operation's success status
    Allowed,
    /// 403 AccessDenied (for ListBuckets against the other tenant: none of its buckets listed)
    Denied,
    /// anything else: status and code, or what went wrong
    Other(String),
}

impl Outcome {
    fn of<T, E: ProvideErrorMetadata>(
        r: Result<T, SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
        head: bool,
    ) -> Outcome {
        match r {
            Ok(_) => Outcome::Allowed,
            Err(e) => {
                let (status, code) = (status(&e), code(&e));
                // HEAD answers carry no body, so no code: the status alone says it.
                if status == 403 && (code == "AccessDenied" || (head && code.is_empty())) {
                    Outcome::Denied
                } else {
                    Outcome::Other(format!("{status} {code}"))
                }
            }
        }
    }

    fn cell(&self) -> String {
        match self {
            Outcome::Allowed => "ok".into(),
            Outcome::Denied => "DENY".into(),
            Outcome::Other(s) => s.clone(),
        }
    }
}

struct Subject {
    name: &'static str,
    tenant: &'static str,
    role: Option<Role>,
    client: Client,
}

impl Subject {
    /// The rule of issue 7: Viewer reads, Manager writes, SuperAdmin deletes and creates; a
    /// custom role exactly its actions inside its grant; nobody touches another tenant; whoever
    /// holds a role or a grant may list (its own tenant's) buckets.
    fn expected(&self, op: Action, own: bool) -> Outcome {
        let allowed = if op == Action::ListBuckets {
            own
        } else {
            own && match self.role {
                Some(r) => r.allows(op),
                // a batch delete is the same permission as a single one (each key checked)
                None => {
                    BACKUP_ACTIONS.contains(&op)
                        || (op == Action::DeleteObjects
                            && BACKUP_ACTIONS.contains(&Action::DeleteObject))
                }
            }
        };
        if allowed {
            Outcome::Allowed
        } else if op == Action::CreateBucket && !own && self.role.is_some_and(|r| r.allows(op)) {
            // another tenant's name, by a caller who may create buckets: taken (S3's answer;
            // still a refusal of the access check, counted in denied_total)
            Outcome::Other("409 BucketAlreadyExists".into())
        } else {
            Outcome::Denied
        }
    }
}

async fn principal(
    g: &TestGateway,
    name: &'static str,
    tenant: &'static str,
    role: Option<Role>,
) -> Subject {
    let store = g.server.authz.store();
    store
        .create_principal(name, "user", tenant, role)
        .await
        .unwrap();
    let k = store.create_access_key(name, None).await.unwrap();
    Subject {
        name,
        tenant,
        role,
        client: client_for(&g.endpoint, &k.access_key_id, k.secret.expose()),
    }
}

async fn put(c: &Client, bucket: &str, key: &str, body: &'static [u8]) {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from_static(body))
        .send()
        .await
        .unwrap();
}

/// Puts a fixture version (optionally under a GOVERNANCE retention of an hour) and returns
/// its version id (the matrix buckets have object lock, so versioning is Enabled).
async fn put_version(c: &Client, bucket: &str, key: &str, governed: bool) -> String {
    let mut req = c
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from_static(b"fixture version"));
    if governed {
        let until = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
        req = req
            .object_lock_mode(ObjectLockMode::Governance)
            .object_lock_retain_until_date(aws_sdk_s3::primitives::DateTime::from(until));
    }
    req.send()
        .await
        .unwrap()
        .version_id()
        .expect("a version id")
        .to_owned()
}

fn tag_set(k: &str, v: &str) -> aws_sdk_s3::types::Tagging {
    aws_sdk_s3::types::Tagging::builder()
        .tag_set(
            aws_sdk_s3::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

/// A lifecycle rule that never fires during the test (ten years).
fn far_lifecycle() -> aws_sdk_s3::types::BucketLifecycleConfiguration {
    use aws_sdk_s3::types::{
        BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
        LifecycleRuleFilter,
    };
    BucketLifecycleConfiguration::builder()
        .rules(
            LifecycleRule::builder()
                .id("matrix")
                .status(ExpirationStatus::Enabled)
                .filter(LifecycleRuleFilter::builder().prefix("never/").build())
                .expiration(LifecycleExpiration::builder().days(3650).build())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

/// A CORS configuration allowing GETs from the tenant's own site.
fn cors_config(tenant: &str) -> aws_sdk_s3::types::CorsConfiguration {
    use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
    CorsConfiguration::builder()
        .cors_rules(
            CorsRule::builder()
                .allowed_methods("GET")
                .allowed_origins(format!("https://{tenant}.example"))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

/// A default encryption of AES256 (what every gateway honours).
fn aes256_default() -> aws_sdk_s3::types::ServerSideEncryptionConfiguration {
    default_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256, None)
}

async fn version_exists(c: &Client, bucket: &str, key: &str, v: &str) -> bool {
    c.head_object()
        .bucket(bucket)
        .key(key)
        .version_id(v)
        .send()
        .await
        .is_ok()
}

async fn create_upload(c: &Client, bucket: &str, key: &str) -> String {
    c.create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_owned()
}

async fn exists(c: &Client, bucket: &str, key: Option<&str>) -> bool {
    match key {
        Some(k) => c.head_object().bucket(bucket).key(k).send().await.is_ok(),
        None => c.head_bucket().bucket(bucket).send().await.is_ok(),
    }
}

async fn bucket_names(c: &Client) -> Result<Vec<String>, String> {
    match c.list_buckets().send().await {
        Ok(out) => Ok(out
            .buckets()
            .iter()
            .filter_map(|b| b.name().map(str::to_owned))
            .collect()),
        Err(e) => Err(format!("{} {}", status(&e), code(&e))),
    }
}

/// Prepares what `op` needs in `bucket` with the bucket owner's client `owner`, runs `op` as
/// `subject`, and checks that a refused destructive request destroyed nothing.
async fn run_cell(
    op: Action,
    subject: &Subject,
    owner: &Client,
    bucket: &str,
    side_tenant: &str,
    own: bool,
) -> Outcome {
    let c = &subject.client;
    let side = if own { "own" } else { "other" };
    let key = format!("{BACKUP_PREFIX}{op}/{}/{side}", subject.name);
    match op {
        Action::ListBuckets => {
            let names = match bucket_names(c).await {
                Ok(n) => n,
                Err(e) => return Outcome::Other(e),
            };
            let prefix = format!("{side_tenant}-");
            let seen = names.iter().filter(|n| n.starts_with(&prefix)).count();
            let foreign: Vec<&String> = names
                .iter()
                .filter(|n| !n.starts_with(&format!("{}-", subject.tenant)))
                .collect();
            if !foreign.is_empty() {
                return Outcome::Other(format!("lists {foreign:?}"));
            }
            match (own, seen) {
                (true, 0) => Outcome::Other("own buckets missing".into()),
                (true, _) => Outcome::Allowed,
                (false, 0) => Outcome::Denied,
                (false, _) => Outcome::Other("other tenant listed".into()),
            }
        }
        Action::CreateBucket => {
            // own tenant: a new name; other tenant: a name that tenant owns
            let name = if own {
                format!("{side_tenant}-cb-{}", subject.name)
            } else {
                bucket.to_owned()
            };
            Outcome::of(c.create_bucket().bucket(name).send().await, false)
        }
        Action::HeadBucket => Outcome::of(c.head_bucket().bucket(bucket).send().await, true),
        Action::DeleteBucket => {
            let name = format!("{side_tenant}-db-{}", subject.name);
            owner.create_bucket().bucket(&name).send().await.unwrap();
            let o = Outcome::of(c.delete_bucket().bucket(&name).send().await, false);
            if o == Outcome::Denied && !exists(owner, &name, None).await {
                return Outcome::Other("denied, yet the bucket is gone".into());
            }
            o
        }
        Action::GetBucketLocation => {
            Outcome::of(c.get_bucket_location().bucket(bucket).send().await, false)
        }
        Action::PutObject => {
            let o = Outcome::of(
                c.put_object()
                    .bucket(bucket)
                    .key(&key)
                    .body(ByteStream::from_static(b"put by subject"))
                    .send()
                    .await,
                false,
            );
            if o == Outcome::Denied && exists(owner, bucket, Some(&key)).await {
                return Outcome::Other("denied, yet the object was stored".into());
            }
            o
        }
        Action::GetObject => {
            put(owner, bucket, &key, b"fixture").await;
            match c.get_object().bucket(bucket).key(&key).send().await {
                Ok(out) => match out.body.collect().await.map(|b| b.into_bytes()) {
                    Ok(b) if &b[..] == b"fixture" => Outcome::Allowed,
                    _ => Outcome::Other("wrong body".into()),
                },
                Err(e) => Outcome::of::<(), _>(Err(e), false),
            }
        }
        Action::HeadObject => {
            put(owner, bucket, &key, b"fixture").await;
            Outcome::of(c.head_object().bucket(bucket).key(&key).send().await, true)
        }
        Action::DeleteObject => {
            put(owner, bucket, &key, b"fixture").await;
            let o = Outcome::of(
                c.delete_object().bucket(bucket).key(&key).send().await,
                false,
            );
            match (&o, exists(owner, bucket, Some(&key)).await) {
                (Outcome::Denied, false) => Outcome::Other("denied, yet deleted".into()),
                (Outcome::Allowed, true) => Outcome::Other("allowed, yet still there".into()),
                _ => o,
            }
        }
        Action::DeleteObjects => {
            put(owner, bucket, &key, b"fixture").await;
            let delete = Delete::builder()
                .objects(ObjectIdentifier::builder().key(&key).build().unwrap())
                .build()
                .unwrap();
            let o = match c
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
            {
                Ok(out) => match (out.deleted(), out.errors()) {
                    (d, []) if d.len() == 1 => Outcome::Allowed,
                    // a per-key refusal inside a 200 answer
                    ([], [e]) if e.code() == Some("AccessDenied") => Outcome::Denied,
                    (d, e) => Outcome::Other(format!("deleted {d:?} errors {e:?}")),
                },
                Err(e) => Outcome::of::<(), _>(Err(e), false),
            };
            match (&o, exists(owner, bucket, Some(&key)).await) {
                (Outcome::Denied, false) => Outcome::Other("denied, yet deleted".into()),
                (Outcome::Allowed, true) => Outcome::Other("allowed, yet still there".into()),
                _ => o,
            }
        }
        Action::CopyObject => {
            let src = format!("{key}.src");
            put(owner, bucket, &src, b"copy source").await;
            Outcome::of(
                c.copy_object()
                    .bucket(bucket)
                    .key(&key)
                    .copy_source(format!("{bucket}/{src}"))
                    .send()
                    .await,
                false,
            )
        }
        Action::ListObjects => Outcome::of(c.list_objects().bucket(bucket).send().await, false),
        Action::ListObjectsV2 => {
            Outcome::of(c.list_objects_v2().bucket(bucket).send().await, false)
        }
        Action::CreateMultipartUpload => Outcome::of(
            c.create_multipart_upload()
                .bucket(bucket)
                .key(&key)
                .send()
                .await,
            false,
        ),
        Action::UploadPart => {
            let id = create_upload(owner, bucket, &key).await;
            Outcome::of(
                c.upload_part()
                    .bucket(bucket)
                    .key(&key)
                    .upload_id(id)
                    .part_number(1)
                    .body(ByteStream::from_static(b"part"))
                    .send()
                    .await,
                false,
            )
        }
        Action::UploadPartCopy => {
            let src = format!("{key}.src");
            put(owner, bucket, &src, b"part source").await;
            let id = create_upload(owner, bucket, &key).await;
            Outcome::of(
                c.upload_part_copy()
                    .bucket(bucket)
                    .key(&key)
                    .upload_id(id)
                    .part_number(1)
                    .copy_source(format!("{bucket}/{src}"))
                    .send()
                    .await,
                false,
            )
        }
        Action::CompleteMultipartUpload => {
            let id = create_upload(owner, bucket, &key).await;
            let part = owner
                .upload_part()
                .bucket(bucket)
                .key(&key)
                .upload_id(&id)
                .part_number(1)
                .body(ByteStream::from_static(b"the only part"))
                .send()
                .await
                .unwrap();
            let done = CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap())
                        .build(),
                )
                .build();
            Outcome::of(
                c.complete_multipart_upload()
                    .bucket(bucket)
                    .key(&key)
                    .upload_id(id)
                    .multipart_upload(done)
                    .send()
                    .await,
                false,
            )
        }
        Action::AbortMultipartUpload => {
            let id = create_upload(owner, bucket, &key).await;
            Outcome::of(
                c.abort_multipart_upload()
                    .bucket(bucket)
                    .key(&key)
                    .upload_id(id)
                    .send()
                    .await,
                false,
            )
        }
        Action::ListParts => {
            let id = create_upload(owner, bucket, &key).await;
            Outcome::of(
                c.list_parts()
                    .bucket(bucket)
                    .key(&key)
                    .upload_id(id)
                    .send()
                    .await,
                false,
            )
        }
        Action::ListMultipartUploads => Outcome::of(
            c.list_multipart_uploads().bucket(bucket).send().await,
            false,
        ),
        Action::GetBucketVersioning => {
            Outcome::of(c.get_bucket_versioning().bucket(bucket).send().await, false)
        }
        Action::PutBucketVersioning => Outcome::of(
            c.put_bucket_versioning()
                .bucket(bucket)
                .versioning_configuration(
                    VersioningConfiguration::builder()
                        .status(BucketVersioningStatus::Enabled)
                        .build(),
                )
                .send()
                .await,
            false,
        ),
        Action::ListBucketVersions => {
            Outcome::of(c.list_object_versions().bucket(bucket).send().await, false)
        }
        Action::GetObjectVersion => {
            let v = put_version(owner, bucket, &key, false).await;
            put(owner, bucket, &key, b"newer").await;
            match c
                .get_object()
                .bucket(bucket)
                .key(&key)
                .version_id(&v)
                .send()
                .await
            {
                Ok(out) => match out.body.collect().await.map(|b| b.into_bytes()) {
                    Ok(b) if &b[..] == b"fixture version" => Outcome::Allowed,
                    _ => Outcome::Other("wrong body".into()),
                },
                Err(e) => Outcome::of::<(), _>(Err(e), false),
            }
        }
        Action::DeleteObjectVersion | Action::BypassGovernanceRetention => {
            let governed = op == Action::BypassGovernanceRetention;
            let v = put_version(owner, bucket, &key, governed).await;
            let o = Outcome::of(
                c.delete_object()
                    .bucket(bucket)
                    .key(&key)
                    .version_id(&v)
                    .bypass_governance_retention(governed)
                    .send()
                    .await,
                false,
            );
            match (&o, version_exists(owner, bucket, &key, &v).await) {
                (Outcome::Denied, false) => Outcome::Other("denied, yet deleted".into()),
                (Outcome::Allowed, true) => Outcome::Other("allowed, yet still there".into()),
                _ => o,
            }
        }
        Action::GetObjectLockConfiguration => Outcome::of(
            c.get_object_lock_configuration()
                .bucket(bucket)
                .send()
                .await,
            false,
        ),
        Action::PutObjectLockConfiguration => Outcome::of(
            c.put_object_lock_configuration()
                .bucket(bucket)
                .object_lock_configuration(
                    ObjectLockConfiguration::builder()
                        .object_lock_enabled(ObjectLockEnabled::Enabled)
                        .build(),
                )
                .send()
                .await,
            false,
        ),
        Action::GetObjectRetention => {
            let v = put_version(owner, bucket, &key, true).await;
            Outcome::of(
                c.get_object_retention()
                    .bucket(bucket)
                    .key(&key)
                    .version_id(v)
                    .send()
                    .await,
                false,
            )
        }
        Action::PutObjectRetention => {
            let v = put_version(owner, bucket, &key, false).await;
            let until = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
            Outcome::of(
                c.put_object_retention()
                    .bucket(bucket)
                    .key(&key)
                    .version_id(v)
                    .retention(
                        ObjectLockRetention::builder()
                            .mode(ObjectLockRetentionMode::Governance)
                            .retain_until_date(aws_sdk_s3::primitives::DateTime::from(until))
                            .build(),
                    )
                    .send()
                    .await,
                false,
            )
        }
        Action::GetObjectLegalHold => {
            let v = put_version(owner, bucket, &key, false).await;
            Outcome::of(
                c.get_object_legal_hold()
                    .bucket(bucket)
                    .key(&key)
                    .version_id(v)
                    .send()
                    .await,
                false,
            )
        }
        Action::PutObjectLegalHold => {
            let v = put_version(owner, bucket, &key, false).await;
            Outcome::of(
                c.put_object_legal_hold()
                    .bucket(bucket)
                    .key(&key)
                    .version_id(v)
                    .legal_hold(
                        ObjectLockLegalHold::builder()
                            .status(ObjectLockLegalHoldStatus::Off)
                            .build(),
                    )
                    .send()
                    .await,
                false,
            )
        }
        Action::GetObjectTagging => {
            let v = put_version(owner, bucket, &key, false).await;
            Outcome::of(
                c.get_object_tagging()
                    .bucket(bucket)
                    .key(&key)
                    .version_id(v)
                    .send()
                    .await,
                false,
            )
        }
        Action::PutObjectTagging => {
            let v = put_version(owner, bucket, &key, false).await;
            Outcome::of(
                c.put_object_tagging()
                    .bucket(bucket)
                    .key(&key)
                    .version_id(v)
                    .tagging(tag_set("matrix", "yes"))
                    .send()
                    .await,
                false,
            )
        }
        Action::DeleteObjectTagging => {
            let v = put_version(owner, bucket, &key, false).await;
            Outcome::of(
                c.delete_object_tagging()
                    .bucket(bucket)
                    .key(&key)
                    .version_id(v)
                    .send()
                    .await,
                false,
            )
        }
        Action::GetBucketTagging => {
            owner
                .put_bucket_tagging()
                .bucket(bucket)
                .tagging(tag_set("team", side_tenant))
                .send()
                .await
                .unwrap();
            Outcome::of(c.get_bucket_tagging().bucket(bucket).send().await, false)
        }
        Action::PutBucketTagging => Outcome::of(
            c.put_bucket_tagging()
                .bucket(bucket)
                .tagging(tag_set("team", side_tenant))
                .send()
                .await,
            false,
        ),
        Action::DeleteBucketTagging => {
            Outcome::of(c.delete_bucket_tagging().bucket(bucket).send().await, false)
        }
        Action::GetBucketLifecycleConfiguration => {
            owner
                .put_bucket_lifecycle_configuration()
                .bucket(bucket)
                .lifecycle_configuration(far_lifecycle())
                .send()
                .await
                .unwrap();
            Outcome::of(
                c.get_bucket_lifecycle_configuration()
                    .bucket(bucket)
                    .send()
                    .await,
                false,
            )
        }
        Action::PutBucketLifecycleConfiguration => Outcome::of(
            c.put_bucket_lifecycle_configuration()
                .bucket(bucket)
                .lifecycle_configuration(far_lifecycle())
                .send()
                .await,
            false,
        ),
        Action::DeleteBucketLifecycle => Outcome::of(
            c.delete_bucket_lifecycle().bucket(bucket).send().await,
            false,
        ),
        Action::GetBucketCors => {
            owner
                .put_bucket_cors()
                .bucket(bucket)
                .cors_configuration(cors_config(side_tenant))
                .send()
                .await
                .unwrap();
            Outcome::of(c.get_bucket_cors().bucket(bucket).send().await, false)
        }
        Action::PutBucketCors => Outcome::of(
            c.put_bucket_cors()
                .bucket(bucket)
                .cors_configuration(cors_config(side_tenant))
                .send()
                .await,
            false,
        ),
        Action::DeleteBucketCors => {
            Outcome::of(c.delete_bucket_cors().bucket(bucket).send().await, false)
        }
        Action::GetEncryptionConfiguration => {
            owner
                .put_bucket_encryption()
                .bucket(bucket)
                .server_side_encryption_configuration(aes256_default())
                .send()
                .await
                .unwrap();
            Outcome::of(c.get_bucket_encryption().bucket(bucket).send().await, false)
        }
        Action::PutEncryptionConfiguration => {
            // PutBucketEncryption, then (when allowed) DeleteBucketEncryption, the same right
            // as on AWS; its refusals: `delete_bucket_encryption_is_a_put_encryption_configuration`
            let put = Outcome::of(
                c.put_bucket_encryption()
                    .bucket(bucket)
                    .server_side_encryption_configuration(aes256_default())
                    .send()
                    .await,
                false,
            );
            if put == Outcome::Allowed {
                let delete = Outcome::of(
                    c.delete_bucket_encryption().bucket(bucket).send().await,
                    false,
                );
                assert_eq!(delete, Outcome::Allowed, "DeleteBucketEncryption");
            }
            put
        }
        Action::GetBucketOwnershipControls => {
            owner
                .put_bucket_ownership_controls()
                .bucket(bucket)
                .ownership_controls(ownership(ObjectOwnership::BucketOwnerEnforced))
                .send()
                .await
                .unwrap();
            Outcome::of(
                c.get_bucket_ownership_controls()
                    .bucket(bucket)
                    .send()
                    .await,
                false,
            )
        }
        Action::PutBucketOwnershipControls => {
            // PutBucketOwnershipControls, then (when allowed) DeleteBucketOwnershipControls, the
            // same right as on AWS
            let put = Outcome::of(
                c.put_bucket_ownership_controls()
                    .bucket(bucket)
                    .ownership_controls(ownership(ObjectOwnership::ObjectWriter))
                    .send()
                    .await,
                false,
            );
            if put == Outcome::Allowed {
                let delete = Outcome::of(
                    c.delete_bucket_ownership_controls()
                        .bucket(bucket)
                        .send()
                        .await,
                    false,
                );
                assert_eq!(delete, Outcome::Allowed, "DeleteBucketOwnershipControls");
            }
            put
        }
        Action::GetBucketPublicAccessBlock => {
            owner
                .put_public_access_block()
                .bucket(bucket)
                .public_access_block_configuration(block_all())
                .send()
                .await
                .unwrap();
            Outcome::of(
                c.get_public_access_block().bucket(bucket).send().await,
                false,
            )
        }
        Action::PutBucketPublicAccessBlock => {
            // PutPublicAccessBlock, then (when allowed) DeletePublicAccessBlock, the same right
            // as on AWS
            let put = Outcome::of(
                c.put_public_access_block()
                    .bucket(bucket)
                    .public_access_block_configuration(block_all())
                    .send()
                    .await,
                false,
            );
            if put == Outcome::Allowed {
                let delete = Outcome::of(
                    c.delete_public_access_block().bucket(bucket).send().await,
                    false,
                );
                assert_eq!(delete, Outcome::Allowed, "DeletePublicAccessBlock");
            }
            put
        }
        Action::GetBucketPolicy => {
            owner
                .put_bucket_policy()
                .bucket(bucket)
                .policy(deny_nothing_policy(bucket))
                .send()
                .await
                .unwrap();
            Outcome::of(c.get_bucket_policy().bucket(bucket).send().await, false)
        }
        Action::PutBucketPolicy => Outcome::of(
            c.put_bucket_policy()
                .bucket(bucket)
                .policy(deny_nothing_policy(bucket))
                .send()
                .await,
            false,
        ),
        Action::DeleteBucketPolicy => {
            owner
                .put_bucket_policy()
                .bucket(bucket)
                .policy(deny_nothing_policy(bucket))
                .send()
                .await
                .unwrap();
            Outcome::of(c.delete_bucket_policy().bucket(bucket).send().await, false)
        }
        Action::GetBucketPolicyStatus => Outcome::of(
            c.get_bucket_policy_status().bucket(bucket).send().await,
            false,
        ),
    }
}

/// A bucket policy whose one Deny names a principal that does not exist (so it refuses
/// nothing of the matrix).
fn deny_nothing_policy(bucket: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Principal":{{"AWS":"arn:aws:iam::nobody:user/none"}},"Action":"s3:*","Resource":["arn:aws:s3:::{bucket}","arn:aws:s3:::{bucket}/*"]}}]}}"#
    )
}

struct World {
    g: TestGateway,
    acme_root: Client,
    globex_root: Client,
    subjects: Vec<Subject>,
}

/// Two tenants with a bucket each (made by each tenant's own root SuperAdmin) and the five
/// subjects of the matrix.
async fn world() -> World {
    let g = start().await;
    let store = g.server.authz.store();
    store.create_tenant(ACME).await.unwrap();
    store.create_tenant(GLOBEX).await.unwrap();
    let acme_root = principal(&g, "acme-root", ACME, Some(Role::SuperAdmin)).await;
    let globex_root = principal(&g, "globex-root", GLOBEX, Some(Role::SuperAdmin)).await;
    acme_root
        .client
        .create_bucket()
        .bucket(ACME_BUCKET)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    globex_root
        .client
        .create_bucket()
        .bucket(GLOBEX_BUCKET)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    store
        .create_role(
            "BackupWriter",
            &["PutObject".into(), "s3:DeleteObject".into()],
        )
        .await
        .unwrap();
    let subjects = vec![
        principal(&g, "viewer", ACME, Some(Role::Viewer)).await,
        principal(&g, "manager", ACME, Some(Role::Manager)).await,
        principal(&g, "superadmin", ACME, Some(Role::SuperAdmin)).await,
        principal(&g, "backup", ACME, None).await,
        principal(&g, "globex-admin", GLOBEX, Some(Role::SuperAdmin)).await,
    ];
    store
        .create_grant("backup", "BackupWriter", ACME_BUCKET, BACKUP_PREFIX)
        .await
        .unwrap();
    World {
        g,
        acme_root: acme_root.client,
        globex_root: globex_root.client,
        subjects,
    }
}

#[tokio::test]
async fn every_operation_by_every_role_in_own_and_other_tenant() {
    let w = world().await;
    let denied_before = w.g.server.authz.denied_total();
    let mut rows = Vec::new();
    let mut wrong = 0;
    let mut denials = 0u64;
    for op in Action::ALL {
        let mut cells = Vec::new();
        for s in &w.subjects {
            for own in [true, false] {
                let side_tenant = if (s.tenant == ACME) == own {
                    ACME
                } else {
                    GLOBEX
                };
                let (owner, bucket) = if side_tenant == ACME {
                    (&w.acme_root, ACME_BUCKET)
                } else {
                    (&w.globex_root, GLOBEX_BUCKET)
                };
                let got = run_cell(op, s, owner, bucket, side_tenant, own).await;
                let want = s.expected(op, own);
                let taken = Outcome::Other("409 BucketAlreadyExists".into());
                if (got == Outcome::Denied || got == taken) && op != Action::ListBuckets {
                    denials += 1;
                }
                let mark = if got == want {
                    ""
                } else {
                    wrong += 1;
                    "!"
                };
                let expect = if got == want {
                    String::new()
                } else {
                    format!("(want {})", want.cell())
                };
                cells.push(format!("{mark}{}{expect}", got.cell()));
            }
        }
        rows.push((op, cells));
    }
    let mut table = format!("{:<24}", "operation");
    for s in &w.subjects {
        table.push_str(&format!("{:<22}{:<22}", format!("{} own", s.name), "other"));
    }
    table.push('\n');
    for (op, cells) in &rows {
        table.push_str(&format!("{:<24}", op.s3_name()));
        for c in cells {
            table.push_str(&format!("{c:<22}"));
        }
        table.push('\n');
    }
    println!("{table}");
    assert_eq!(wrong, 0, "{wrong} wrong decision(s) ('!'):\n{table}");
    // every refusal was counted
    assert_eq!(
        w.g.server.authz.denied_total() - denied_before,
        denials,
        "{table}"
    );
    w.g.stop().await;
}

fn ownership(o: ObjectOwnership) -> OwnershipControls {
    OwnershipControls::builder()
        .rules(
            OwnershipControlsRule::builder()
                .object_ownership(o)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

fn block_all() -> PublicAccessBlockConfiguration {
    PublicAccessBlockConfiguration::builder()
        .block_public_acls(true)
        .ignore_public_acls(true)
        .block_public_policy(true)
        .restrict_public_buckets(true)
        .build()
}

#[tokio::test]
async fn delete_bucket_encryption_is_a_put_encryption_configuration() {
    let w = world().await;
    w.acme_root
        .put_bucket_encryption()
        .bucket(ACME_BUCKET)
        .server_side_encryption_configuration(aes256_default())
        .send()
        .await
        .unwrap();
    for s in &w.subjects {
        let got = Outcome::of(
            s.client
                .delete_bucket_encryption()
                .bucket(ACME_BUCKET)
                .send()
                .await,
            false,
        );
        let want = s.expected(Action::PutEncryptionConfiguration, s.tenant == ACME);
        assert_eq!(got, want, "{}", s.name);
    }
    // the SuperAdmin of acme removed it; every other subject was refused
    let e = w
        .acme_root
        .get_bucket_encryption()
        .bucket(ACME_BUCKET)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ServerSideEncryptionConfigurationNotFoundError");
    w.g.stop().await;
}

#[tokio::test]
async fn deleting_ownership_controls_or_public_access_block_is_a_put() {
    let w = world().await;
    w.acme_root
        .put_bucket_ownership_controls()
        .bucket(ACME_BUCKET)
        .ownership_controls(ownership(ObjectOwnership::BucketOwnerEnforced))
        .send()
        .await
        .unwrap();
    w.acme_root
        .put_public_access_block()
        .bucket(ACME_BUCKET)
        .public_access_block_configuration(block_all())
        .send()
        .await
        .unwrap();
    for s in &w.subjects {
        let got = Outcome::of(
            s.client
                .delete_bucket_ownership_controls()
                .bucket(ACME_BUCKET)
                .send()
                .await,
            false,
        );
        let want = s.expected(Action::PutBucketOwnershipControls, s.tenant == ACME);
        assert_eq!(got, want, "DeleteBucketOwnershipControls by {}", s.name);
        let got = Outcome::of(
            s.client
                .delete_public_access_block()
                .bucket(ACME_BUCKET)
                .send()
                .await,
            false,
        );
        let want = s.expected(Action::PutBucketPublicAccessBlock, s.tenant == ACME);
        assert_eq!(got, want, "DeletePublicAccessBlock by {}", s.name);
    }
    // the SuperAdmin of acme removed both; every other subject was refused
    let e = w
        .acme_root
        .get_bucket_ownership_controls()
        .bucket(ACME_BUCKET)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "OwnershipControlsNotFoundError");
    let e = w
        .acme_root
        .get_public_access_block()
        .bucket(ACME_BUCKET)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchPublicAccessBlockConfiguration");
    w.g.stop().await;
}

#[tokio::test]
async fn list_buckets_shows_exactly_the_callers_tenant() {
    let w = world().await;
    w.acme_root
        .create_bucket()
        .bucket("acme-second")
        .send()
        .await
        .unwrap();
    let acme = vec!["acme-data".to_owned(), "acme-second".to_owned()];
    for s in &w.subjects {
        let want = if s.tenant == ACME {
            acme.clone()
        } else {
            vec![GLOBEX_BUCKET.to_owned()]
        };
        assert_eq!(bucket_names(&s.client).await.unwrap(), want, "{}", s.name);
    }
    // the bootstrap admin of the default tenant sees neither tenant's buckets
    assert_eq!(
        bucket_names(&w.g.client).await.unwrap(),
        Vec::<String>::new()
    );
    w.g.stop().await;
}

#[tokio::test]
async fn revoking_a_key_or_disabling_a_principal_denies_the_very_next_request() {
    let w = world().await;
    let store = w.g.server.authz.store();
    let backup = &w.subjects[3];
    let key = format!("{BACKUP_PREFIX}revoke");
    put(&backup.client, ACME_BUCKET, &key, b"1").await;
    let keys = store.list_access_keys(Some("backup")).await.unwrap();
    assert_eq!(keys.len(), 1);
    store
        .revoke_access_key(&keys[0].access_key_id)
        .await
        .unwrap();
    let e = backup
        .client
        .delete_object()
        .bucket(ACME_BUCKET)
        .key(&key)
        .send()
        .await
        .unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("InvalidAccessKeyId", 403));
    assert!(exists(&w.acme_root, ACME_BUCKET, Some(&key)).await);

    let manager = &w.subjects[1];
    manager
        .client
        .head_bucket()
        .bucket(ACME_BUCKET)
        .send()
        .await
        .unwrap();
    store.set_disabled("manager", true).await.unwrap();
    let e = manager
        .client
        .list_objects_v2()
        .bucket(ACME_BUCKET)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 403, "{e:?}");
    assert_eq!(code(&e), "InvalidAccessKeyId");
    // enabling it again restores the same key
    store.set_disabled("manager", false).await.unwrap();
    manager
        .client
        .list_objects_v2()
        .bucket(ACME_BUCKET)
        .send()
        .await
        .unwrap();
    w.g.stop().await;
}

/// Keys of a ListObjects(V2) answer, or the refusal.
async fn listing(c: &Client, v2: bool, prefix: Option<&str>) -> Outcome {
    if v2 {
        Outcome::of(
            c.list_objects_v2()
                .bucket(ACME_BUCKET)
                .set_prefix(prefix.map(str::to_owned))
                .send()
                .await,
            false,
        )
    } else {
        Outcome::of(
            c.list_objects()
                .bucket(ACME_BUCKET)
                .set_prefix(prefix.map(str::to_owned))
                .send()
                .await,
            false,
        )
    }
}

#[tokio::test]
async fn a_prefix_grant_lists_inside_its_prefix_only() {
    let w = world().await;
    let store = w.g.server.authz.store();
    for k in ["p/a", "p/sub/b", "q/c", "pz"] {
        put(&w.acme_root, ACME_BUCKET, k, b"x").await;
    }
    let lister = principal(&w.g, "lister", ACME, None).await;
    store
        .create_grant("lister", "viewer", ACME_BUCKET, "p/")
        .await
        .unwrap();
    for v2 in [false, true] {
        for (prefix, want) in [
            (Some("p/"), Outcome::Allowed),
            (Some("p/sub/"), Outcome::Allowed),
            (Some("p/a"), Outcome::Allowed),
            (None, Outcome::Denied),
            (Some(""), Outcome::Denied),
            (Some("q/"), Outcome::Denied),
            (Some("p"), Outcome::Denied),
            (Some("pz"), Outcome::Denied),
        ] {
            assert_eq!(
                listing(&lister.client, v2, prefix).await,
                want,
                "v2={v2} prefix={prefix:?}"
            );
        }
    }
    // what the allowed listing returns stays inside the prefix
    let out = lister
        .client
        .list_objects_v2()
        .bucket(ACME_BUCKET)
        .prefix("p/")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["p/a", "p/sub/b"]);
    let out = lister
        .client
        .list_objects()
        .bucket(ACME_BUCKET)
        .prefix("p/")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
    let dirs: Vec<&str> = out
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!((keys, dirs), (vec!["p/a"], vec!["p/sub/"]));
    // the grant reads inside the prefix too, and nothing outside it
    lister
        .client
        .get_object()
        .bucket(ACME_BUCKET)
        .key("p/a")
        .send()
        .await
        .unwrap();
    let e = lister
        .client
        .get_object()
        .bucket(ACME_BUCKET)
        .key("q/c")
        .send()
        .await
        .unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("AccessDenied", 403));
    // multipart listings follow the same rule
    assert_eq!(
        Outcome::of(
            lister
                .client
                .list_multipart_uploads()
                .bucket(ACME_BUCKET)
                .prefix("p/")
                .send()
                .await,
            false
        ),
        Outcome::Allowed
    );
    assert_eq!(
        Outcome::of(
            lister
                .client
                .list_multipart_uploads()
                .bucket(ACME_BUCKET)
                .send()
                .await,
            false
        ),
        Outcome::Denied
    );
    // a whole-bucket role still lists without a prefix
    assert_eq!(
        listing(&w.subjects[0].client, true, None).await,
        Outcome::Allowed
    );
    w.g.stop().await;
}

#[tokio::test]
async fn a_prefix_grant_batch_deletes_inside_its_prefix_only() {
    let w = world().await;
    let backup = &w.subjects[3];
    let (inside, outside) = (format!("{BACKUP_PREFIX}sync/old"), "other/keep".to_owned());
    put(&w.acme_root, ACME_BUCKET, &inside, b"old backup").await;
    put(&w.acme_root, ACME_BUCKET, &outside, b"not the backup's").await;
    let delete = Delete::builder()
        .objects(ObjectIdentifier::builder().key(&inside).build().unwrap())
        .objects(ObjectIdentifier::builder().key(&outside).build().unwrap())
        .build()
        .unwrap();
    let out = backup
        .client
        .delete_objects()
        .bucket(ACME_BUCKET)
        .delete(delete)
        .send()
        .await
        .expect("the batch is admitted");
    let deleted: Vec<&str> = out.deleted().iter().filter_map(|d| d.key()).collect();
    assert_eq!(deleted, [inside.as_str()]);
    let refused: Vec<(&str, &str)> = out
        .errors()
        .iter()
        .map(|e| (e.key().unwrap_or(""), e.code().unwrap_or("")))
        .collect();
    assert_eq!(refused, [(outside.as_str(), "AccessDenied")]);
    assert!(!exists(&w.acme_root, ACME_BUCKET, Some(&inside)).await);
    assert!(exists(&w.acme_root, ACME_BUCKET, Some(&outside)).await);
    // a Manager (no delete at all) is refused the whole batch
    let delete = Delete::builder()
        .objects(ObjectIdentifier::builder().key(&outside).build().unwrap())
        .build()
        .unwrap();
    let e = w.subjects[1]
        .client
        .delete_objects()
        .bucket(ACME_BUCKET)
        .delete(delete)
        .send()
        .await
        .unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("AccessDenied", 403));
    assert!(exists(&w.acme_root, ACME_BUCKET, Some(&outside)).await);
    w.g.stop().await;
}

#[tokio::test]
async fn a_batch_delete_cannot_bypass_a_quorum_rule_on_single_deletes() {
    let w = world().await;
    let store = w.g.server.authz.store();
    let root = store.identity("acme-root").await.unwrap().unwrap();
    store
        .set_quorum_rule(
            &root,
            &policy::QuorumRule {
                name: "guard-deletes".into(),
                action: "s3:DeleteObject".into(),
                bucket_pattern: "acme-*".into(),
                approvals: 1,
                approver_roles: vec!["superadmin".into()],
                ttl_secs: 600,
            },
            policy::now_ms(),
        )
        .await
        .unwrap();
    put(&w.acme_root, ACME_BUCKET, "guarded", b"needs approval").await;
    let delete = Delete::builder()
        .objects(ObjectIdentifier::builder().key("guarded").build().unwrap())
        .build()
        .unwrap();
    let out = w.subjects[2]
        .client
        .delete_objects()
        .bucket(ACME_BUCKET)
        .delete(delete)
        .send()
        .await
        .expect("the batch itself is not gated");
    assert!(out.deleted().is_empty(), "{out:?}");
    let [e] = out.errors() else { panic!("{out:?}") };
    assert_eq!(e.code(), Some("AccessDenied"));
    assert!(
        e.message().unwrap_or("").contains("apr-"),
        "the refusal names the approval request: {e:?}"
    );
    assert!(exists(&w.acme_root, ACME_BUCKET, Some("guarded")).await);
    w.g.stop().await;
}

/// GetObjectAttributes is authorised as GetObject (docs/S3-COMPATIBILITY.md): every subject
/// reads an object's attributes exactly where it may GET it, never in the other tenant, and
/// each refusal is counted.
#[tokio::test]
async fn get_object_attributes_is_authorised_as_get_object() {
    let w = world().await;
    let denied_before = w.g.server.authz.denied_total();
    let mut denials = 0u64;
    let mut wrong = Vec::new();
    for s in &w.subjects {
        for own in [true, false] {
            let side_tenant = if (s.tenant == ACME) == own {
                ACME
            } else {
                GLOBEX
            };
            let (owner, bucket) = if side_tenant == ACME {
                (&w.acme_root, ACME_BUCKET)
            } else {
                (&w.globex_root, GLOBEX_BUCKET)
            };
            let key = format!("{BACKUP_PREFIX}attributes/{}/{own}", s.name);
            put(owner, bucket, &key, b"fixture").await;
            let got = match s
                .client
                .get_object_attributes()
                .bucket(bucket)
                .key(&key)
                .object_attributes(aws_sdk_s3::types::ObjectAttributes::ObjectSize)
                .send()
                .await
            {
                Ok(out) if out.object_size() == Some(7) => Outcome::Allowed,
                Ok(out) => Outcome::Other(format!("size {:?}", out.object_size())),
                Err(e) => Outcome::of::<(), _>(Err(e), false),
            };
            if got == Outcome::Denied {
                denials += 1;
            }
            let want = s.expected(Action::GetObject, own);
            if got != want {
                wrong.push(format!("{} own={own}: {got:?}, want {want:?}", s.name));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // the viewer, manager and superadmin of acme read their own; the backup role cannot read
    // (its role has no GetObject) and nobody reads the other tenant's
    assert_eq!(denials, 6);
    assert_eq!(w.g.server.authz.denied_total() - denied_before, denials);
    w.g.stop().await;
}
