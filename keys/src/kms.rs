//! AWS KMS key provider (aws-sdk-kms): GenerateDataKey / Decrypt / ReEncrypt with an encryption
//! context naming the bucket. Configured by `aws-kms://KEY_ID_OR_ALIAS?region=…&endpoint=…`.
//! Unreachable KMS → `Error::KeyUnavailable`; a KMS refusal → `Error::Kms`.

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
}

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

    async fn generate_data_key(&self, bucket: &str) -> Result<(DataKeyMaterial, String, Vec<u8>)> {
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.url.key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(Self::context(bucket)))
            .send()
            .await
            .map_err(|e| map_err("GenerateDataKey", e))?;
        let plain = Zeroizing::new(out.plaintext.map(Blob::into_inner).unwrap_or_default());
        let material = DataKeyMaterial::from_slice(&plain)
            .map_err(|_| Error::Kms("GenerateDataKey returned no 32-byte key".into()))?;
        let wrapped = out
            .ciphertext_blob
            .map(Blob::into_inner)
            .ok_or_else(|| Error::Kms("GenerateDataKey returned no ciphertext".into()))?;
        let arn = out.key_id.unwrap_or_else(|| self.url.key_id.clone());
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
    ) -> Result<(String, Vec<u8>)> {
        let arn = arn_of(kek_id)?;
        let out = self
            .client
            .re_encrypt()
            .ciphertext_blob(Blob::new(wrapped))
            .source_key_id(arn)
            .set_source_encryption_context(Some(Self::context(bucket)))
            .destination_key_id(&self.url.key_id)
            .set_destination_encryption_context(Some(Self::context(bucket)))
            .send()
            .await
            .map_err(|e| map_err("ReEncrypt", e))?;
        let blob = out
            .ciphertext_blob
            .map(Blob::into_inner)
            .ok_or_else(|| Error::Kms("ReEncrypt returned no ciphertext".into()))?;
        let dest = out.key_id.unwrap_or_else(|| self.url.key_id.clone());
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
}

impl KmsProvider {
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
