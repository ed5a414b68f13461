//! S3 credentials and authorisation: `S3Auth` looks secrets up in the index (sealed at rest,
//! unsealed secrets cached briefly in memory), `S3Access` maps the s3s operation to a
//! `policy::Action` and checks the caller's role. Also creates the bootstrap admin key on first
//! start and records the operation name for metrics/logs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use policy::{Action, Role, SecretKey};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::S3Auth;
use s3s::{S3Result, s3_error};

use crate::error::{Error, Result};
use crate::index::{AccessKeyRecord, Index};
use crate::store::now_ms;

/// Sealing context of access-key secrets (binds a sealed secret to its key id).
pub fn secret_context(access_key_id: &str) -> String {
    format!("vaultgate/access-key/{access_key_id}")
}

/// Per-request slot the access check fills with the operation, read by the request logger.
#[derive(Clone, Debug, Default)]
pub struct OpSlot(Arc<Mutex<Option<OpInfo>>>);

/// What the access check learned about a request.
#[derive(Clone, Debug)]
pub struct OpInfo {
    /// the operation (None: an operation the gateway does not serve)
    pub action: Option<Action>,
    /// caller's access key id
    pub access_key: Option<String>,
}

impl OpSlot {
    pub(crate) fn set(&self, info: OpInfo) {
        if let Ok(mut g) = self.0.lock() {
            *g = Some(info);
        }
    }
    /// The recorded operation, if the request got as far as the access check.
    pub fn get(&self) -> Option<OpInfo> {
        self.0.lock().ok().and_then(|g| g.clone())
    }
}

struct Cached {
    secret: SecretKey,
    role: Role,
    at: Instant,
}

/// Access keys from the index, with a short in-memory cache of unsealed secrets.
#[derive(Clone)]
pub struct Credentials {
    index: Index,
    keyring: keys::envelope::Keyring,
    ttl: Duration,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// A credential store over the index; unsealed secrets live `ttl` in memory.
    pub fn new(index: Index, keyring: keys::envelope::Keyring, ttl: Duration) -> Credentials {
        Credentials {
            index,
            keyring,
            ttl,
            cache: Arc::default(),
        }
    }

    fn cached(&self, id: &str) -> Option<(SecretKey, Role)> {
        let mut g = self.cache.lock().ok()?;
        match g.get(id) {
            Some(c) if c.at.elapsed() < self.ttl => Some((c.secret.clone(), c.role)),
            Some(_) => {
                g.remove(id);
                None
            }
            None => None,
        }
    }

    /// Forgets every cached secret (after a revocation).
    pub fn invalidate(&self) {
        if let Ok(mut g) = self.cache.lock() {
            g.clear();
        }
    }

    /// Secret and role of an enabled access key; None when unknown or disabled.
    pub async fn lookup(&self, id: &str) -> Result<Option<(SecretKey, Role)>> {
        if let Some(hit) = self.cached(id) {
            return Ok(Some(hit));
        }
        let Some(rec) = self.index.get_access_key(id).await? else {
            return Ok(None);
        };
        if rec.disabled {
            return Ok(None);
        }
        let role = Role::parse(&rec.role)
            .map_err(|e| Error::Integrity(format!("access key {id}: {e}")))?;
        let raw = self
            .keyring
            .open_blob(&secret_context(id), &rec.sealed_secret)
            .await?;
        let secret = std::str::from_utf8(&raw).map_err(|_| {
            Error::Integrity(format!("access key {id}: sealed secret is not UTF-8"))
        })?;
        let secret = SecretKey::new(secret);
        if let Ok(mut g) = self.cache.lock() {
            if g.len() > 10_000 {
                g.clear();
            }
            g.insert(
                id.to_owned(),
                Cached {
                    secret: secret.clone(),
                    role,
                    at: Instant::now(),
                },
            );
        }
        Ok(Some((secret, role)))
    }

    /// Stores (or replaces) an access key with its secret sealed.
    pub async fn store(
        &self,
        id: &str,
        secret: &SecretKey,
        principal: &str,
        role: Role,
    ) -> Result<()> {
        let sealed = self
            .keyring
            .seal_blob(&secret_context(id), secret.expose().as_bytes())
            .await?;
        self.index
            .put_access_key(&AccessKeyRecord {
                access_key_id: id.to_owned(),
                sealed_secret: sealed,
                principal: principal.to_owned(),
                role: role.as_str().to_owned(),
                created_ms: now_ms(),
                disabled: false,
            })
            .await?;
        self.invalidate();
        Ok(())
    }
}

/// The bootstrap credential created on first start (shown once).
#[derive(Debug)]
pub struct Bootstrap {
    /// access key id
    pub access_key: String,
    /// secret (printed once, never logged)
    pub secret_key: SecretKey,
}

fn random_access_key_id() -> Result<String> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut raw = [0u8; 18];
    getrandom::fill(&mut raw).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    let mut s = String::from("VG");
    s.extend(
        raw.iter()
            .map(|b| char::from(ALPHABET[usize::from(b & 31)])),
    );
    Ok(s)
}

/// Ensures an admin access key exists. With fixed credentials, (re)stores them as SuperAdmin;
/// with none configured and an empty key table, generates a key pair and returns it so the caller
/// can print it once.
pub async fn ensure_bootstrap(
    creds: &Credentials,
    index: &Index,
    fixed: Option<(&str, &str)>,
) -> Result<Option<Bootstrap>> {
    if let Some((id, secret)) = fixed {
        let secret = SecretKey::new(secret);
        match creds.lookup(id).await {
            Ok(Some((s, Role::SuperAdmin))) if s == secret => {}
            _ => {
                creds.store(id, &secret, "admin", Role::SuperAdmin).await?;
                tracing::info!(access_key = id, "configured admin access key stored");
            }
        }
        return Ok(None);
    }
    if index.count_access_keys().await? > 0 {
        return Ok(None);
    }
    let id = random_access_key_id()?;
    let mut raw = [0u8; 30];
    getrandom::fill(&mut raw).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    let secret = SecretKey::from_random(&raw);
    creds.store(&id, &secret, "admin", Role::SuperAdmin).await?;
    tracing::info!(access_key = %id, "generated the admin access key (secret printed once on stdout)");
    Ok(Some(Bootstrap {
        access_key: id,
        secret_key: secret,
    }))
}

/// The lines printed once on stdout for a generated bootstrap key.
pub fn bootstrap_instructions(b: &Bootstrap, s3_url: &str, region: &str) -> String {
    let (id, secret) = (&b.access_key, b.secret_key.expose());
    format!(
        "\n=== Vaultgate admin S3 credentials (shown only once; store them now) ===\n\
         access key id:     {id}\n\
         secret access key: {secret}\n\n\
         aws cli:\n\
         \x20 aws configure set aws_access_key_id {id} --profile vaultgate\n\
         \x20 aws configure set aws_secret_access_key '{secret}' --profile vaultgate\n\
         \x20 aws configure set region {region} --profile vaultgate\n\
         \x20 aws --profile vaultgate --endpoint-url {s3_url} s3 ls\n\n\
         rclone:\n\
         \x20 rclone config create vaultgate s3 provider Other endpoint {s3_url} \
         access_key_id {id} secret_access_key '{secret}' region {region} force_path_style true\n\
         \x20 rclone lsd vaultgate:\n\
         =========================================================================\n"
    )
}

/// `s3s::auth::S3Auth` over [`Credentials`].
#[derive(Debug, Clone)]
pub struct IndexAuth(pub Credentials);

#[async_trait::async_trait]
impl S3Auth for IndexAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<s3s::auth::SecretKey> {
        match self.0.lookup(access_key).await {
            Ok(Some((secret, _))) => Ok(s3s::auth::SecretKey::from(secret.expose())),
            Ok(None) => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
            Err(e) => Err(e.into()),
        }
    }
}

/// `s3s::access::S3Access`: role check per operation; fills the request's [`OpSlot`].
#[derive(Debug, Clone)]
pub struct RoleAccess(pub Credentials);

#[async_trait::async_trait]
impl S3Access for RoleAccess {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let action = Action::from_s3_operation(cx.s3_op().name());
        let access_key = cx.credentials().map(|c| c.access_key.clone());
        if let Some(slot) = cx.extensions_mut().get::<OpSlot>() {
            slot.set(OpInfo {
                action,
                access_key: access_key.clone(),
            });
        }
        let Some(id) = access_key else {
            return Err(s3_error!(AccessDenied, "Signature is required"));
        };
        let role = match self.0.lookup(&id).await {
            Ok(Some((_, role))) => role,
            Ok(None) => return Err(s3_error!(InvalidAccessKeyId)),
            Err(e) => return Err(e.into()),
        };
        match action {
            Some(a) if role.allows(a) => Ok(()),
            // operations we do not serve answer NotImplemented (from s3s) for admins
            None if role == Role::SuperAdmin => Ok(()),
            Some(a) => {
                tracing::info!(access_key = %id, role = %role, action = %a, "access denied by role");
                Err(s3_error!(AccessDenied, "Access Denied"))
            }
            None => Err(s3_error!(AccessDenied, "Access Denied")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_look_like_aws_ids() {
        let a = random_access_key_id().unwrap();
        let b = random_access_key_id().unwrap();
        assert_eq!(a.len(), 20);
        assert!(a.starts_with("VG"));
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn instructions_name_endpoint_and_keys() {
        let b = Bootstrap {
            access_key: "VGTEST".into(),
            secret_key: SecretKey::new("s3cr3t/value"),
        };
        let text = bootstrap_instructions(&b, "http://127.0.0.1:9000", "us-east-1");
        assert!(text.contains("aws configure set aws_access_key_id VGTEST"));
        assert!(text.contains("'s3cr3t/value'"));
        assert!(text.contains("rclone config create vaultgate s3"));
        assert!(text.contains("--endpoint-url http://127.0.0.1:9000"));
        assert!(!format!("{b:?}").contains("s3cr3t"));
    }
}
