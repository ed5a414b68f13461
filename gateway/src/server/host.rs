//! Virtual-hosted-style addressing: which bucket a request's `Host` header names, under the base
//! domains of the `domain` setting (`mybucket.s3.example.com` → `mybucket`).
//!
//! One parser, [`VirtualHosts`], serves both readers so they always agree: s3s (as its
//! [`S3Host`]: the bucket of the operation, the access check and SigV4, which signs the path as
//! sent), and the pipeline (the audit guess, the request log and the range fallback route, which
//! get the bucket through the [`VirtualBucket`] request extension). s3s's own `MultiDomain`
//! checks the configured names, but it reads any other host name as a bucket (a CNAME), which
//! would turn `localhost:9000` into bucket `localhost`: here a Host under none of the base
//! domains, an address, or the base domain itself is path style.

use std::borrow::Cow;

use s3s::S3Result;
use s3s::host::{DomainError, MultiDomain, S3Host, VirtualHost};

/// The bucket a virtual-hosted-style request names in its Host header (a request extension set
/// by the pipeline before s3s runs; absent for path-style requests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualBucket(pub String);

/// The configured base domains (lower case, no port).
#[derive(Debug, Clone)]
pub struct VirtualHosts {
    domains: Vec<String>,
}

impl VirtualHosts {
    /// Base domains as configured: host names (letters, digits, `-`, dot-separated), no port,
    /// none inside another.
    pub fn new(domains: &[&str]) -> Result<VirtualHosts, String> {
        let lower: Vec<String> = domains.iter().map(|d| d.to_ascii_lowercase()).collect();
        if let Some(d) = lower.iter().find(|d| d.contains(':')) {
            return Err(format!(
                "{d:?} has a port; name the host only (the Host header's port is ignored)"
            ));
        }
        MultiDomain::new(&lower).map_err(|e| match e {
            DomainError::InvalidDomain => format!(
                "{:?} is not a host name (letters, digits and '-', separated by dots)",
                lower.join(",")
            ),
            DomainError::OverlappingSubdomains => {
                "one base domain lies inside another; list each once".to_owned()
            }
            DomainError::ZeroDomains => "no base domain given".to_owned(),
        })?;
        Ok(VirtualHosts { domains: lower })
    }

    /// The base domain and the bucket that `host` (a Host header value, perhaps with a port)
    /// names; `None` when it is not a subdomain of a base domain (path style).
    fn split<'a>(&'a self, host: &str) -> Option<(&'a str, String)> {
        if host.starts_with('[') {
            return None; // an IPv6 address
        }
        let name = host
            .rsplit_once(':')
            .map_or(host, |(h, _)| h)
            .to_ascii_lowercase();
        let name = name.strip_suffix('.').unwrap_or(&name);
        self.domains.iter().find_map(|d| {
            let bucket = name.strip_suffix(d.as_str())?.strip_suffix('.')?;
            (!bucket.is_empty()).then(|| (d.as_str(), bucket.to_owned()))
        })
    }

    /// The bucket named by a request's Host header (`None`: path style).
    pub fn bucket_of(&self, headers: &http::HeaderMap, uri: &http::Uri) -> Option<String> {
        let host = headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| uri.authority().map(http::uri::Authority::as_str))?;
        self.split(host).map(|(_, b)| b)
    }
}

impl S3Host for VirtualHosts {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        Ok(match self.split(host) {
            Some((domain, bucket)) => VirtualHost::new(domain).with_bucket(Cow::Owned(bucket)),
            None => VirtualHost::new(host),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_come_from_subdomains_of_a_base_domain_only() {
        let v = VirtualHosts::new(&["s3.example.com", "S3.Local"]).unwrap();
        let b = |h: &str| v.split(h).map(|(_, b)| b);
        assert_eq!(b("bkt.s3.example.com"), Some("bkt".into()));
        assert_eq!(b("bkt.s3.example.com:9000"), Some("bkt".into()));
        assert_eq!(b("Bkt.S3.EXAMPLE.com."), Some("bkt".into()));
        assert_eq!(b("a.b.s3.local"), Some("a.b".into()));
        // the base domain itself, other hosts, addresses: path style
        for h in [
            "s3.example.com",
            "s3.example.com:9000",
            "localhost:9000",
            "127.0.0.1:9000",
            "[::1]:9000",
            "bkt.s3.example.org",
            "xs3.example.com",
            ".s3.example.com",
            "",
        ] {
            assert_eq!(b(h), None, "{h}");
        }
        let root = v.parse_host_header("localhost:9000").unwrap();
        assert_eq!(root.bucket(), None);
        let vh = v.parse_host_header("bkt.s3.local").unwrap();
        assert_eq!((vh.domain(), vh.bucket()), ("s3.local", Some("bkt")));
    }

    #[test]
    fn bad_domains_are_refused() {
        assert!(VirtualHosts::new(&["s3.example.com:9000"]).is_err());
        assert!(VirtualHosts::new(&["bad domain"]).is_err());
        assert!(VirtualHosts::new(&["example.com", "s3.example.com"]).is_err());
        assert!(VirtualHosts::new(&[]).is_err());
    }
}
