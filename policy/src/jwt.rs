//! Admin API bearer tokens: HS256 with a configured secret
//! (`VAULTGATE_ADMIN_JWT_SECRET`, alias `ADMIN_JWT_SECRET`) and RS256/ES256
//! verified against a JWKS file (`VAULTGATE_ADMIN_JWKS_FILE`). Claims carry
//! subject, tenant and roles; `exp` and `nbf` are enforced with no leeway. The
//! token endpoint issues short-lived HS256 tokens; without a configured secret a
//! random per-process secret is used (tokens then end with the process).
//! [`JwtAuthority::rotate`] replaces the HS256 secret while serving: new tokens are signed with
//! the new one at once, tokens signed by the previous one stay valid until they expire (at
//! most the token lifetime after the rotation), then answer "bad token signature".
//! Algorithms are bound to keys: an HS256 token is checked only with the HMAC
//! secret, an RS256/ES256 token only with a JWKS key of that algorithm, so
//! `none` and HS/RS confusion are refused.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{Error, Result, random_bytes};

/// Default lifetime of issued tokens (seconds).
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 900;

/// The claims of an admin token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// principal name
    pub sub: String,
    /// principal's tenant
    pub tenant: String,
    /// role names (`superadmin`, `manager`, `viewer`)
    #[serde(default)]
    pub roles: Vec<String>,
    /// expiry (seconds since epoch)
    pub exp: u64,
    /// not before (seconds since epoch)
    pub nbf: u64,
    /// issued at (seconds since epoch)
    #[serde(default)]
    pub iat: u64,
    /// the access key id the token was minted with (`POST /admin/v1/auth/token`); absent in
    /// tokens of an external IdP. The admin API refuses the token once that key is revoked or
    /// expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub akid: Option<String>,
}

impl Claims {
    /// Whether the claims include `role` (case-insensitive).
    pub fn has_role(&self, role: crate::Role) -> bool {
        self.roles
            .iter()
            .any(|r| crate::Role::parse(r).ok() == Some(role))
    }
}

struct JwksKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// Replaced HS256 secrets kept for their grace at most (see [`JwtAuthority::rotate`]).
pub const MAX_REPLACED_SECRETS: usize = 8;

/// The HS256 secrets: the current one, and the replaced ones still in their grace, each with
/// the moment (seconds since epoch) after which tokens it signed are no longer accepted.
struct HsSecrets {
    current: Zeroizing<Vec<u8>>,
    previous: Vec<(Zeroizing<Vec<u8>>, u64)>,
}

/// Issues and verifies admin tokens.
pub struct JwtAuthority {
    hs: std::sync::RwLock<HsSecrets>,
    jwks: Vec<JwksKey>,
    ttl_secs: u64,
}

impl std::fmt::Debug for JwtAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "JwtAuthority(hs256 [redacted], {} jwks keys)",
            self.jwks.len()
        )
    }
}

fn now_secs() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

impl JwtAuthority {
    /// An authority with an HS256 secret (`None`: a random one), optional JWKS JSON and token TTL.
    pub fn new(
        hs_secret: Option<&[u8]>,
        jwks_json: Option<&str>,
        ttl_secs: u64,
    ) -> Result<JwtAuthority> {
        let secret = match hs_secret {
            Some(s) if s.len() < 32 => {
                return Err(Error::Config(
                    "the admin JWT secret must be at least 32 bytes".into(),
                ));
            }
            Some(s) => Zeroizing::new(s.to_vec()),
            None => Zeroizing::new(random_bytes::<32>()?.to_vec()),
        };
        let mut jwks = Vec::new();
        if let Some(json) = jwks_json {
            let set: JwkSet =
                serde_json::from_str(json).map_err(|e| Error::Config(format!("JWKS: {e}")))?;
            for jwk in &set.keys {
                let alg = match jwk.common.key_algorithm.map(|a| a.to_string()).as_deref() {
                    Some("RS256") => Algorithm::RS256,
                    Some("ES256") => Algorithm::ES256,
                    other => {
                        return Err(Error::Config(format!(
                            "JWKS key {:?}: alg must be RS256 or ES256, got {other:?}",
                            jwk.common.key_id
                        )));
                    }
                };
                let key = DecodingKey::from_jwk(jwk)
                    .map_err(|e| Error::Config(format!("JWKS key: {e}")))?;
                jwks.push(JwksKey {
                    kid: jwk.common.key_id.clone(),
                    alg,
                    key,
                });
            }
        }
        Ok(JwtAuthority {
            hs: std::sync::RwLock::new(HsSecrets {
                current: secret,
                previous: Vec::new(),
            }),
            jwks,
            ttl_secs: ttl_secs.max(1),
        })
    }

    /// From `VAULTGATE_ADMIN_JWT_SECRET` (alias `ADMIN_JWT_SECRET`),
    /// `VAULTGATE_ADMIN_JWKS_FILE` and `VAULTGATE_ADMIN_TOKEN_TTL_SECS` through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<JwtAuthority> {
        let secret = lookup("VAULTGATE_ADMIN_JWT_SECRET").or_else(|| lookup("ADMIN_JWT_SECRET"));
        let secret = secret.map(|s| Zeroizing::new(s.into_bytes()));
        let jwks = match lookup("VAULTGATE_ADMIN_JWKS_FILE") {
            Some(path) => Some(
                std::fs::read_to_string(&path)
                    .map_err(|e| Error::Config(format!("reading JWKS file {path}: {e}")))?,
            ),
            None => None,
        };
        let ttl = match lookup("VAULTGATE_ADMIN_TOKEN_TTL_SECS") {
            Some(v) => v.parse().map_err(|_| {
                Error::Config("VAULTGATE_ADMIN_TOKEN_TTL_SECS must be a number".into())
            })?,
            None => DEFAULT_TOKEN_TTL_SECS,
        };
        JwtAuthority::new(
            secret.as_deref().map(|s| s.as_slice()),
            jwks.as_deref(),
            ttl,
        )
    }

    fn secrets(&self) -> std::sync::RwLockReadGuard<'_, HsSecrets> {
        self.hs
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces the HS256 secret (at least 32 bytes): tokens are signed with `secret` from now
    /// on; tokens signed by the secret it replaces are accepted until the returned moment
    /// (seconds since epoch: now + the token lifetime, when the last of them expires). Secrets
    /// replaced earlier keep their own grace, but at most [`MAX_REPLACED_SECRETS`] are kept:
    /// more rotations within one token lifetime end the oldest grace early (a bound on what a
    /// token with a bad signature costs to check).
    pub fn rotate(&self, secret: &[u8]) -> Result<u64> {
        if secret.len() < 32 {
            return Err(Error::Config(
                "the admin JWT secret must be at least 32 bytes".into(),
            ));
        }
        let until = now_secs() + self.ttl_secs;
        let mut hs = self
            .hs
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let old = std::mem::replace(&mut hs.current, Zeroizing::new(secret.to_vec()));
        let now = now_secs();
        hs.previous.retain(|(_, end)| now < *end);
        if hs.previous.len() >= MAX_REPLACED_SECRETS {
            hs.previous.remove(0);
        }
        hs.previous.push((old, until));
        Ok(until)
    }

    /// Lifetime of issued tokens (seconds).
    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// Issues an HS256 token valid from now for the configured TTL (no access key claim).
    pub fn issue(&self, sub: &str, tenant: &str, roles: Vec<String>) -> Result<(String, u64)> {
        self.issue_claims(sub, tenant, roles, None)
    }

    /// Issues an HS256 token naming the access key it was minted with (claim `akid`).
    pub fn issue_for_key(
        &self,
        sub: &str,
        tenant: &str,
        roles: Vec<String>,
        access_key_id: &str,
    ) -> Result<(String, u64)> {
        self.issue_claims(sub, tenant, roles, Some(access_key_id.to_owned()))
    }

    fn issue_claims(
        &self,
        sub: &str,
        tenant: &str,
        roles: Vec<String>,
        akid: Option<String>,
    ) -> Result<(String, u64)> {
        let now = now_secs();
        let claims = Claims {
            sub: sub.to_owned(),
            tenant: tenant.to_owned(),
            roles,
            exp: now + self.ttl_secs,
            nbf: now,
            iat: now,
            akid,
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&self.secrets().current),
        )
        .map_err(|e| Error::Config(format!("signing token: {e}")))?;
        Ok((token, self.ttl_secs))
    }

    /// Verifies signature, algorithm, `exp` and `nbf`; `Err(Unauthenticated)` with a reason.
    pub fn verify(&self, token: &str) -> Result<Claims> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            Error::Unauthenticated("malformed token or unsupported algorithm".into())
        })?;
        let (key, alg) = match header.alg {
            Algorithm::HS256 => return self.verify_hs256(token),
            Algorithm::RS256 | Algorithm::ES256 => {
                let found = self.jwks.iter().find(|k| {
                    k.alg == header.alg
                        && match (&header.kid, &k.kid) {
                            (Some(want), Some(have)) => want == have,
                            (Some(_), None) => false,
                            (None, _) => true,
                        }
                });
                match found {
                    Some(k) => (k.key.clone(), k.alg),
                    None => {
                        return Err(Error::Unauthenticated(format!(
                            "no JWKS key for algorithm {:?}",
                            header.alg
                        )));
                    }
                }
            }
            other => {
                return Err(Error::Unauthenticated(format!(
                    "algorithm {other:?} is not accepted"
                )));
            }
        };
        decode(token, &key, alg)
    }

    /// An HS256 token: the current secret, else a replaced one within its grace.
    fn verify_hs256(&self, token: &str) -> Result<Claims> {
        let hs = self.secrets();
        let current = decode(
            token,
            &DecodingKey::from_secret(&hs.current),
            Algorithm::HS256,
        );
        if !matches!(&current, Err(Error::Unauthenticated(m)) if m == BAD_SIGNATURE) {
            return current;
        }
        let now = now_secs();
        hs.previous
            .iter()
            .filter(|(_, until)| now < *until)
            .map(|(secret, _)| decode(token, &DecodingKey::from_secret(secret), Algorithm::HS256))
            .find(|r| !matches!(r, Err(Error::Unauthenticated(m)) if m == BAD_SIGNATURE))
            .unwrap_or(current)
    }
}

const BAD_SIGNATURE: &str = "bad token signature";

/// Checks signature, `exp` and `nbf` (no leeway) with `key`.
fn decode(token: &str, key: &DecodingKey, alg: Algorithm) -> Result<Claims> {
    let mut v = Validation::new(alg);
    v.leeway = 0;
    v.validate_exp = true;
    v.validate_nbf = true;
    v.set_required_spec_claims(&["exp", "nbf", "sub"]);
    jsonwebtoken::decode::<Claims>(token, key, &v)
        .map(|d| d.claims)
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            Error::Unauthenticated(
                match e.kind() {
                    ErrorKind::ExpiredSignature => "token expired",
                    ErrorKind::ImmatureSignature => "token not yet valid",
                    ErrorKind::InvalidSignature => BAD_SIGNATURE,
                    ErrorKind::InvalidAlgorithm => "wrong token algorithm",
                    ErrorKind::MissingRequiredClaim(_) => "token lacks a required claim",
                    _ => "invalid token",
                }
                .into(),
            )
        })
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use jsonwebtoken::jwk::Jwk;

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test";

    fn claims(exp_off: i64, nbf_off: i64) -> Claims {
        let now = now_secs() as i64;
        Claims {
            sub: "alice".into(),
            tenant: "default".into(),
            roles: vec!["superadmin".into()],
            exp: (now + exp_off) as u64,
            nbf: (now + nbf_off) as u64,
            iat: now as u64,
            akid: None,
        }
    }

    fn err_text(r: Result<Claims>) -> String {
        match r {
            Err(Error::Unauthenticated(m)) => m,
            other => panic!("expected Unauthenticated, got {other:?}"),
        }
    }

    fn ec_keys(kid: &str) -> (EncodingKey, String, Vec<u8>) {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let enc = EncodingKey::from_ec_der(pkcs8.as_ref());
        let mut jwk = Jwk::from_encoding_key(&enc, Algorithm::ES256).unwrap();
        jwk.common.key_id = Some(kid.into());
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let public = pair.public_key().as_ref().to_vec();
        (
            enc,
            serde_json::json!({ "keys": [jwk] }).to_string(),
            public,
        )
    }

    #[test]
    fn a_rotation_signs_with_the_new_secret_and_keeps_the_previous_for_its_grace() {
        let a = JwtAuthority::new(Some(SECRET), None, 60).unwrap();
        let (old, _) = a.issue("alice", "default", vec![]).unwrap();
        let before = now_secs();
        let until = a.rotate(b"second-secret-second-secret-012345").unwrap();
        assert!(until >= before + 60 && until <= now_secs() + 60, "{until}");
        let (new, _) = a.issue("bob", "default", vec![]).unwrap();
        assert_eq!(a.verify(&old).unwrap().sub, "alice", "old token in grace");
        assert_eq!(a.verify(&new).unwrap().sub, "bob");
        // the new token is signed by the new secret only
        let first = JwtAuthority::new(Some(SECRET), None, 60).unwrap();
        assert_eq!(err_text(first.verify(&new)), "bad token signature");
        // a second rotation keeps both replaced secrets in their grace; a short one is refused
        a.rotate(b"third-secret-third-secret-third-012").unwrap();
        assert_eq!(a.verify(&old).unwrap().sub, "alice");
        assert_eq!(a.verify(&new).unwrap().sub, "bob");
        assert!(matches!(a.rotate(b"short"), Err(Error::Config(_))));
        // more rotations than MAX_REPLACED_SECRETS within the grace end the oldest one's
        for i in 0..MAX_REPLACED_SECRETS - 1 {
            a.rotate(format!("rotation-{i}-secret-rotation-secret-0123").as_bytes())
                .unwrap();
        }
        assert_eq!(
            a.verify(&new).unwrap().sub,
            "bob",
            "8 replaced secrets kept"
        );
        a.rotate(b"one-more-secret-one-more-secret-0123").unwrap();
        assert_eq!(err_text(a.verify(&new)), "bad token signature");
        // past its grace a replaced secret no longer verifies (a 1 s lifetime)
        let short = JwtAuthority::new(Some(SECRET), None, 1).unwrap();
        let (t, _) = short.issue("carol", "default", vec![]).unwrap();
        short.rotate(b"second-secret-second-secret-012345").unwrap();
        assert_eq!(short.verify(&t).unwrap().sub, "carol");
        std::thread::sleep(std::time::Duration::from_millis(2100));
        // (the signature is checked before the expiry: "log in again", not "expired")
        assert_eq!(err_text(short.verify(&t)), "bad token signature");
    }

    #[test]
    fn hs256_issue_verify_and_rejections() {
        let a = JwtAuthority::new(Some(SECRET), None, 60).unwrap();
        let (t, ttl) = a
            .issue("alice", "default", vec!["superadmin".into()])
            .unwrap();
        assert_eq!(ttl, 60);
        let c = a.verify(&t).unwrap();
        assert_eq!(c.sub, "alice");
        assert_eq!(c.akid, None);
        let (tk, _) = a
            .issue_for_key("alice", "default", vec![], "VGKEY123")
            .unwrap();
        assert_eq!(a.verify(&tk).unwrap().akid.as_deref(), Some("VGKEY123"));
        assert!(c.has_role(crate::Role::SuperAdmin));
        assert!(!c.has_role(crate::Role::Viewer));
        // Bad signature: another secret; a flipped signature byte.
        let other =
            JwtAuthority::new(Some(b"another-secret-another-secret-0123"), None, 60).unwrap();
        assert_eq!(err_text(other.verify(&t)), "bad token signature");
        let mut bad = t.clone();
        let last = bad.pop().unwrap();
        bad.push(if last == 'A' { 'B' } else { 'A' });
        assert!(a.verify(&bad).is_err());
        // Expired and not yet valid.
        let enc = EncodingKey::from_secret(SECRET);
        let hs = Header::new(Algorithm::HS256);
        let expired = jsonwebtoken::encode(&hs, &claims(-5, -100), &enc).unwrap();
        assert_eq!(err_text(a.verify(&expired)), "token expired");
        let early = jsonwebtoken::encode(&hs, &claims(600, 300), &enc).unwrap();
        assert_eq!(err_text(a.verify(&early)), "token not yet valid");
        // HS384 is not accepted even with the right secret.
        let hs384 =
            jsonwebtoken::encode(&Header::new(Algorithm::HS384), &claims(60, 0), &enc).unwrap();
        assert!(err_text(a.verify(&hs384)).contains("not accepted"));
        // Garbage and missing claims.
        assert!(a.verify("not.a.token").is_err());
        assert!(a.verify("").is_err());
        let no_nbf = jsonwebtoken::encode(
            &hs,
            &serde_json::json!({"sub": "x", "tenant": "t", "exp": now_secs() + 60}),
            &enc,
        )
        .unwrap();
        assert!(a.verify(&no_nbf).is_err());
        // Short secrets are refused at configuration time.
        assert!(matches!(
            JwtAuthority::new(Some(b"short"), None, 60),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn alg_none_is_refused() {
        let a = JwtAuthority::new(Some(SECRET), None, 60).unwrap();
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let head = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = b64.encode(serde_json::to_vec(&claims(60, 0)).unwrap());
        for tok in [format!("{head}.{body}."), format!("{head}.{body}")] {
            assert!(a.verify(&tok).is_err(), "{tok}");
        }
        let head = b64.encode(br#"{"alg":"None","typ":"JWT"}"#);
        assert!(a.verify(&format!("{head}.{body}.")).is_err());
    }

    #[test]
    fn es256_via_jwks_and_algorithm_confusion() {
        let (enc, jwks, public) = ec_keys("k1");
        let a = JwtAuthority::new(Some(SECRET), Some(&jwks), 60).unwrap();
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some("k1".into());
        let t = jsonwebtoken::encode(&h, &claims(60, 0), &enc).unwrap();
        assert_eq!(a.verify(&t).unwrap().sub, "alice");
        // Unknown kid.
        h.kid = Some("k2".into());
        let t2 = jsonwebtoken::encode(&h, &claims(60, 0), &enc).unwrap();
        assert!(err_text(a.verify(&t2)).contains("no JWKS key"));
        // Expired ES256.
        h.kid = Some("k1".into());
        let t3 = jsonwebtoken::encode(&h, &claims(-1, -100), &enc).unwrap();
        assert_eq!(err_text(a.verify(&t3)), "token expired");
        // HS/RS confusion: an HS256 token whose HMAC key is the public key is refused.
        let forged = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(60, 0),
            &EncodingKey::from_secret(&public),
        )
        .unwrap();
        assert_eq!(err_text(a.verify(&forged)), "bad token signature");
        // RS256 claimed with no RS256 key configured.
        let mut rs = Header::new(Algorithm::RS256);
        rs.kid = Some("k1".into());
        let fake = format!(
            "{}.{}",
            t.split('.')
                .nth(1)
                .map(|_| {
                    use base64::Engine as _;
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(serde_json::to_vec(&rs).unwrap())
                })
                .unwrap(),
            t.split_once('.').unwrap().1
        );
        assert!(err_text(a.verify(&fake)).contains("no JWKS key"));
        // An authority without that JWKS refuses the ES256 token.
        let plain = JwtAuthority::new(Some(SECRET), None, 60).unwrap();
        assert!(plain.verify(&t).is_err());
        // A JWKS with an unsupported alg is a configuration error.
        assert!(matches!(
            JwtAuthority::new(
                None,
                Some(r#"{"keys":[{"kty":"oct","k":"AAAA","alg":"HS256"}]}"#),
                60
            ),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            JwtAuthority::new(None, Some("{"), 60),
            Err(Error::Config(_))
        ));
    }

    /// A throw-away RSA key generated for this test only (never used elsewhere).
    const RSA_TEST_KEY: &str = include_str!("testdata/jwt_rs256_test_key.pem");

    #[test]
    fn rs256_via_jwks_and_hs_rs_confusion() {
        let enc = EncodingKey::from_rsa_pem(RSA_TEST_KEY.as_bytes()).unwrap();
        let mut jwk = Jwk::from_encoding_key(&enc, Algorithm::RS256).unwrap();
        jwk.common.key_id = Some("rsa1".into());
        let jwks = serde_json::json!({ "keys": [jwk] }).to_string();
        let a = JwtAuthority::new(Some(SECRET), Some(&jwks), 60).unwrap();
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some("rsa1".into());
        let t = jsonwebtoken::encode(&h, &claims(60, 0), &enc).unwrap();
        assert_eq!(a.verify(&t).unwrap().sub, "alice");
        let t = jsonwebtoken::encode(&h, &claims(-1, -60), &enc).unwrap();
        assert_eq!(err_text(a.verify(&t)), "token expired");
        let t = jsonwebtoken::encode(&h, &claims(600, 300), &enc).unwrap();
        assert_eq!(err_text(a.verify(&t)), "token not yet valid");
        // The classic confusion: HS256 keyed with the RSA public key material from the JWKS.
        let n = match &jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::RSA(p) => p.n.clone(),
            other => panic!("{other:?}"),
        };
        for key in [n.as_bytes().to_vec(), jwks.as_bytes().to_vec()] {
            let forged = jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims(60, 0),
                &EncodingKey::from_secret(&key),
            )
            .unwrap();
            assert_eq!(err_text(a.verify(&forged)), "bad token signature");
        }
        // An RS256 token presented as ES256 finds no key.
        let mut es = Header::new(Algorithm::ES256);
        es.kid = Some("rsa1".into());
        let t = jsonwebtoken::encode(&h, &claims(60, 0), &enc).unwrap();
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (_, rest) = t.split_once('.').unwrap();
        let relabeled = format!("{}.{rest}", b64.encode(serde_json::to_vec(&es).unwrap()));
        assert!(err_text(a.verify(&relabeled)).contains("no JWKS key"));
    }

    #[test]
    fn from_lookup_accepts_the_alias() {
        let a = JwtAuthority::from_lookup(|k| {
            (k == "ADMIN_JWT_SECRET").then(|| String::from_utf8(SECRET.to_vec()).unwrap())
        })
        .unwrap();
        let (t, _) = a.issue("bob", "default", vec![]).unwrap();
        let b = JwtAuthority::new(Some(SECRET), None, 60).unwrap();
        assert_eq!(b.verify(&t).unwrap().sub, "bob");
        assert!(matches!(
            JwtAuthority::from_lookup(
                |k| (k == "VAULTGATE_ADMIN_JWKS_FILE").then(|| "/nonexistent/jwks.json".into())
            ),
            Err(Error::Config(_))
        ));
    }
}
