//! AWS KMS key provider (aws-sdk-kms): GenerateDataKey / Decrypt / ReEncrypt with an encryption
//! context naming the bucket. Configured by `aws-kms://KEY_ID_OR_ALIAS?region=…&endpoint=…`;
//! other KMS keys named by requests (SSE-KMS) are resolved to their ARN with DescribeKey
//! (cached one minute) and checked enabled and for encryption. Unreachable KMS →
//! `Error::KeyUnavailable`; a KMS refusal → `Error::Kms`; a requested key that is unknown,
//! disabled or denied → `Error::KmsKey` (the client's mistake, a 400/403).

use std::fmt;
use std::sync::RwLock;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::provider::{KeyProvider, ProviderState};
use crate::secret::{DataKeyMaterial, Secret};

/// Prefix of KMS kek ids (followed by the key ARN).
pub const KMS_KEK_PREFIX: &str = "aws-kms:";
/// Encryption-context key naming the bucket.
pub const CONTEXT_BUCKET: &str = "vaultgate:bucket";

/// Parsed `aws-kms://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsUrl {
    /// Key id, ARN or `alias/…`.
    pub key_id: String,
    /// Region (else the standard AWS chain).
    pub region: Option<String>,
    /// Endpoint override (e.g. a local moto).
    pub endpoint: Option<String>,
}

impl KmsUrl {
    /// Parses `aws-kms://KEY_ID_OR_ALIAS?region=…&endpoint=…` (query values percent-decoded).
    pub fn parse(url: &str) -> Result<KmsUrl> {
        let rest = url.strip_prefix("aws-kms://").ok_or_else(|| {
            Error::Config(format!("KMS URL must start with aws-kms:// (got {url:?})"))
        })?;
        let (key, query) = rest.split_once('?').unwrap_or((rest, ""));
        let key_id = urlencoding::decode(key)
            .map_err(|_| Error::Config("KMS key id is not valid UTF-8".into()))?
            .into_owned();
        if key_id.is_empty() {
            return Err(Error::Config("KMS URL names no key".into()));
        }
        let mut out = KmsUrl {
            key_id,
            region: None,
            endpoint: None,
        };
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            if k.is_empty() {
                continue;
            }
            let v = v.into_owned();
            match k.as_ref() {
                "region" if !v.is_empty() => out.region = Some(v),
                "endpoint" if !v.is_empty() => out.endpoint = Some(v),
                _ => {
                    return Err(Error::Config(format!(
                        "unknown or empty KMS URL parameter {k:?}"
                    )));
                }
            }
        }
        Ok(out)
    }
}

/// AWS KMS provider.
pub struct KmsProvider {
    client: aws_sdk_kms::Client,
    url: KmsUrl,
    /// ARN the configured id/alias resolved to (refreshed by `health`), else the configured id.
    resolved: RwLock<String>,
    /// Key ids named by requests → their ARN (one DescribeKey per id per minute).
    named: moka::future::Cache<String, String>,
}

/// How long a requested key id's resolution (and its enabled check) is trusted.
const NAMED_KEY_TTL: Duration = Duration::from_secs(60);

impl fmt::Debug for KmsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsProvider")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn map_err<E, R>(op: &str, e: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    match &e {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("Unknown").to_owned();
            let msg = se.err().message().unwrap_or("").to_owned();
            match code.as_str() {
                "NotFoundException"
                | "KMSInternalException"
                | "DependencyTimeoutException"
                | "KeyUnavailableException"
                | "DisabledException"
                | "KMSInvalidStateException" => {
                    Error::KeyUnavailable(format!("KMS {op}: {code}: {msg}"))
                }
                _ => Error::Kms(format!("KMS {op}: {code}: {msg}")),
            }
        }
        SdkError::ConstructionFailure(_) => {
            Error::Config(format!("KMS {op}: cannot build request: {e}"))
        }
        _ => Error::KeyUnavailable(format!(
            "KMS {op} unreachable: {}",
            aws_smithy_error_chain(&e)
        )),
    }
}

/// The client's error for a KMS refusal `code` about the requested key `key_id`, if it is one.
fn key_refusal(code: &str, key_id: &str) -> Option<Error> {
    let (code, message) = match code {
        "NotFoundException" | "InvalidArnException" => (
            "KMS.NotFoundException",
            format!("The KMS key {key_id} does not exist."),
        ),
        "DisabledException" | "KMSInvalidStateException" => (
            "KMS.DisabledException",
            format!("The KMS key {key_id} is disabled or pending deletion."),
        ),
        "InvalidKeyUsageException" => (
            "KMS.InvalidKeyUsageException",
            format!("The KMS key {key_id} cannot be used for encryption."),
        ),
        "AccessDeniedException" => (
            "AccessDenied",
            format!("Access to the KMS key {key_id} is denied to this gateway."),
        ),
        _ => return None,
    };
    Some(Error::KmsKey { code, message })
}

fn aws_smithy_error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn arn_of(kek_id: &str) -> Result<&str> {
    kek_id
        .strip_prefix(KMS_KEK_PREFIX)
        .ok_or_else(|| Error::KeyUnavailable(format!("KEK {kek_id} is not an AWS KMS key")))
}

impl KmsProvider {
    /// Builds the client from the URL; static credentials if given, else the standard AWS chain.
    /// Resolves the key's ARN with DescribeKey if the KMS answers (failure is not fatal here).
    pub async fn from_url(url: &str, creds: Option<(String, Secret)>) -> Result<KmsProvider> {
        let url = KmsUrl::parse(url)?;
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(10))
                    .operation_timeout(Duration::from_secs(20))
                    .build(),
            );
        if let Some(r) = &url.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        if let Some(ep) = &url.endpoint {
            loader = loader.endpoint_url(ep.clone());
        }
        if let Some((ak, sk)) = creds {
            loader = loader.credentials_provider(aws_credential_types::Credentials::new(
                ak,
                sk.expose().to_owned(),
                None,
                None,
                "vaultgate-kms-config",
            ));
        }
        let sdk = loader.load().await;
        if sdk.region().is_none() {
            return Err(Error::Config(
                "KMS region unknown: add ?region=… to the KMS URL".into(),
            ));
        }
        let client = aws_sdk_kms::Client::new(&sdk);
        let p = KmsProvider {
            client,
            resolved: RwLock::new(url.key_id.clone()),
            url,
            named: moka::future::Cache::builder()
                .time_to_live(NAMED_KEY_TTL)
                .max_capacity(10_000)
                .build(),
        };
        if let Err(e) = p.health().await {
            tracing::warn!(error = %e, "KMS not reachable at start-up; will retry on use");
        }
        Ok(p)
    }

    fn context(bucket: &str) -> std::collections::HashMap<String, String> {
        std::collections::HashMap::from([(CONTEXT_BUCKET.to_owned(), bucket.to_owned())])
    }
}

#[async_trait]
impl KeyProvider for KmsProvider {
    fn kind(&self) -> &'static str {
        "aws-kms"
    }

    fn current_kek_id(&self) -> String {
        let r = self
            .resolved
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        format!("{KMS_KEK_PREFIX}{}", *r)
    }

    async fn generate_data_key(
        &self,
        bucket: &str,
        kms_key: &str,
    ) -> Result<(DataKeyMaterial, String, Vec<u8>)> {
        let key_id = self.key_or_default(kms_key);
        let out = self
            .client
            .generate_data_key()
            .key_id(key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(Self::context(bucket)))
            .send()
            .await
            .map_err(|e| self.map_named_err(kms_key, "GenerateDataKey", e))?;
        let plain = Zeroizing::new(out.plaintext.map(Blob::into_inner).unwrap_or_default());
        let material = DataKeyMaterial::from_slice(&plain)
            .map_err(|_| Error::Kms("GenerateDataKey returned no 32-byte key".into()))?;
        let wrapped = out
            .ciphertext_blob
            .map(Blob::into_inner)
            .ok_or_else(|| Error::Kms("GenerateDataKey returned no ciphertext".into()))?;
        let arn = out.key_id.unwrap_or_else(|| key_id.to_owned());
        Ok((material, format!("{KMS_KEK_PREFIX}{arn}"), wrapped))
    }

    async fn unwrap(&self, kek_id: &str, wrapped: &[u8], bucket: &str) -> Result<DataKeyMaterial> {
        let arn = arn_of(kek_id)?;
        let out = self
            .client
            .decrypt()
            .key_id(arn)
            .ciphertext_blob(Blob::new(wrapped))
            .set_encryption_context(Some(Self::context(bucket)))
            .send()
            .await
            .map_err(|e| map_err("Decrypt", e))?;
        let plain = Zeroizing::new(out.plaintext.map(Blob::into_inner).unwrap_or_default());
        DataKeyMaterial::from_slice(&plain)
            .map_err(|_| Error::Kms("Decrypt returned no 32-byte key".into()))
    }

    async fn rewrap(
        &self,
        kek_id: &str,
        wrapped: &[u8],
        bucket: &str,
        kms_key: &str,
    ) -> Result<(String, Vec<u8>)> {
        let arn = arn_of(kek_id)?;
        let dest_key = self.key_or_default(kms_key);
        let out = self
            .client
            .re_encrypt()
            .ciphertext_blob(Blob::new(wrapped))
            .source_key_id(arn)
            .set_source_encryption_context(Some(Self::context(bucket)))
            .destination_key_id(dest_key)
            .set_destination_encryption_context(Some(Self::context(bucket)))
            .send()
            .await
            .map_err(|e| map_err("ReEncrypt", e))?;
        let blob = out
            .ciphertext_blob
            .map(Blob::into_inner)
            .ok_or_else(|| Error::Kms("ReEncrypt returned no ciphertext".into()))?;
        let dest = out.key_id.unwrap_or_else(|| dest_key.to_owned());
        Ok((format!("{KMS_KEK_PREFIX}{dest}"), blob))
    }

    fn location(&self) -> String {
        let at = match (&self.url.endpoint, &self.url.region) {
            (Some(e), _) => format!(" at {e}"),
            (None, Some(r)) => format!(" in {r}"),
            (None, None) => String::new(),
        };
        format!("AWS KMS key {}{at}", self.url.key_id)
    }

    async fn probe(&self) -> ProviderState {
        match self.describe().await {
            Ok(()) => ProviderState::Ready,
            Err((true, e)) => ProviderState::Unreachable(e.to_string()),
            Err((false, e)) => ProviderState::Refused(e.to_string()),
        }
    }

    async fn health(&self) -> Result<()> {
        self.describe().await.map_err(|(_, e)| e)
    }

    async fn resolve_key(&self, key_id: &str) -> Result<String> {
        check_key_id(key_id)?;
        let this_id = key_id.to_owned();
        self.named
            .try_get_with(key_id.to_owned(), self.describe_named(this_id))
            .await
            .map_err(|e| e.duplicate())
    }
}

/// A key id as AWS takes it: a key id (UUID or `mrk-…`), a key ARN, `alias/NAME` or an alias
/// ARN; at most 2048 characters of `[A-Za-z0-9:/_-]` (KMS's own pattern), else
/// `KMS.NotFoundException` without asking the KMS.
fn check_key_id(key_id: &str) -> Result<()> {
    let ok = !key_id.is_empty()
        && key_id.len() <= 2048
        && key_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'/' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::KmsKey {
            code: "KMS.NotFoundException",
            message: "The KMS key id is not a valid key id, key ARN or alias.".into(),
        })
    }
}

impl KmsProvider {
    /// `kms_key`, or the configured key when it is empty.
    fn key_or_default<'a>(&'a self, kms_key: &'a str) -> &'a str {
        if kms_key.is_empty() {
            &self.url.key_id
        } else {
            kms_key
        }
    }

    /// [`map_err`], except that a refusal about a requested key (`kms_key` not empty) is the
    /// client's [`Error::KmsKey`].
    fn map_named_err<E, R>(&self, kms_key: &str, op: &str, e: SdkError<E, R>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: fmt::Debug,
    {
        if !kms_key.is_empty()
            && let SdkError::ServiceError(se) = &e
            && let Some(k) = key_refusal(se.err().code().unwrap_or(""), kms_key)
        {
            return k;
        }
        map_err(op, e)
    }

    /// DescribeKey of a key named by a request: its ARN if it is enabled and for encryption.
    async fn describe_named(&self, key_id: String) -> Result<String> {
        let out = self
            .client
            .describe_key()
            .key_id(&key_id)
            .send()
            .await
            .map_err(|e| self.map_named_err(&key_id, "DescribeKey", e))?;
        let meta = out
            .key_metadata
            .ok_or_else(|| Error::Kms("DescribeKey returned no metadata".into()))?;
        let usable_state = meta
            .key_state()
            .is_none_or(|s| *s == aws_sdk_kms::types::KeyState::Enabled);
        if !meta.enabled() || !usable_state {
            return Err(Error::KmsKey {
                code: "KMS.DisabledException",
                message: format!("The KMS key {key_id} is disabled or pending deletion."),
            });
        }
        let for_encryption = meta
            .key_usage()
            .is_none_or(|u| *u == aws_sdk_kms::types::KeyUsageType::EncryptDecrypt)
            && meta
                .key_spec()
                .is_none_or(|s| *s == aws_sdk_kms::types::KeySpec::SymmetricDefault);
        if !for_encryption {
            return Err(Error::KmsKey {
                code: "KMS.InvalidKeyUsageException",
                message: format!("The KMS key {key_id} is not a symmetric encryption key."),
            });
        }
        meta.arn()
            .map(str::to_owned)
            .ok_or_else(|| Error::Kms("DescribeKey returned no key ARN".into()))
    }

    /// DescribeKey on the configured key (refreshing the resolved ARN); the error says whether
    /// the KMS was unreachable (`true`) or answered with a refusal.
    async fn describe(&self) -> std::result::Result<(), (bool, Error)> {
        let out = match self
            .client
            .describe_key()
            .key_id(&self.url.key_id)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let unreachable = !matches!(
                    e,
                    SdkError::ServiceError(_) | SdkError::ConstructionFailure(_)
                );
                return Err((unreachable, map_err("DescribeKey", e)));
            }
        };
        let meta = out
            .key_metadata
            .ok_or_else(|| (false, Error::Kms("DescribeKey returned no metadata".into())))?;
        if !meta.enabled() {
            return Err((
                false,
                Error::KeyUnavailable(format!("KMS key {} is disabled", self.url.key_id)),
            ));
        }
        if let Some(arn) = meta.arn() {
            let mut r = self
                .resolved
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *r = arn.to_owned();
        }
        Ok(())
    }
}
