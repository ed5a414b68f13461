//! `ceilingsrv`: the unencrypted ceiling of the side-by-side benchmark (issue 6).
//!
//! Owns a deliberately minimal HTTP/1.1 object server on hyper: `PUT /bucket`
//! makes a directory, `PUT /bucket/key` stores the body as a plain file (decoding
//! `aws-chunked` bodies, which the SDK sends with trailing checksums), and
//! `GET`/`HEAD /bucket/key` serve the file from the page cache with single-range
//! support. No signature check, no MD5, no checksum verification, no crypto, no
//! index: it measures what the client, loopback HTTP and the page cache allow on
//! this machine, so every gateway figure can be read as a fraction of it. It is a
//! benchmark instrument, never a server to deploy (it accepts any request).

use std::convert::Infallible;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Parser;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

type Body = BoxBody<Bytes, std::io::Error>;

#[derive(Parser, Debug)]
#[command(
    name = "ceilingsrv",
    about = "Unencrypted loopback ceiling for bench/run (any request accepted)"
)]
struct Args {
    /// Listen address (keep it on loopback: there is no authentication).
    #[arg(long, default_value = "127.0.0.1:9100")]
    addr: SocketAddr,
    /// Directory holding one sub-directory per bucket.
    #[arg(long)]
    dir: PathBuf,
}

const READ_CHUNK: usize = 256 * 1024;
const MAX_CHUNK_HEADER: usize = 8 * 1024;
static TMP_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn full(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|e| match e {})
            .boxed(),
    );
    *r.status_mut() = status;
    r
}

/// Maps `/bucket[/key…]` to a path under `root`; refuses anything that could escape it.
fn resolve(root: &Path, uri_path: &str) -> Option<(PathBuf, bool)> {
    // `PUT /bucket/` (CreateBucket from the SDKs) names the bucket itself.
    let trimmed = uri_path.trim_start_matches('/');
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let mut out = root.to_path_buf();
    let mut n = 0;
    for comp in trimmed.split('/') {
        if comp.is_empty()
            || comp == "."
            || comp == ".."
            || comp.contains('\\')
            || comp.contains('%')
        {
            return None;
        }
        out.push(comp);
        n += 1;
    }
    (n > 0).then_some((out, n == 1))
}

/// Parses a single `bytes=` range against `size`; Err(()) means 416.
fn parse_range(h: &str, size: u64) -> Result<(u64, u64), ()> {
    let spec = h.strip_prefix("bytes=").ok_or(())?;
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (size.saturating_sub(n), size.checked_sub(1).ok_or(())?)
    } else {
        let s: u64 = a.parse().map_err(|_| ())?;
        let e: u64 = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            b.parse().map_err(|_| ())?
        };
        (s, e.min(size.saturating_sub(1)))
    };
    if start >= size || start > end {
        return Err(());
    }
    Ok((start, end))
}

/// Incremental decoder of `aws-chunked` bodies (`hex[;chunk-signature=…]\r\n data \r\n … 0\r\n trailers`).
#[derive(Default)]
struct ChunkDecoder {
    line: Vec<u8>,
    state: DecState,
}

#[derive(Default, PartialEq, Debug)]
enum DecState {
    #[default]
    Header,
    Data(u64),
    Crlf(u8),
    Trailer,
}

impl ChunkDecoder {
    fn feed(
        &mut self,
        mut data: &[u8],
        out: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<(), String> {
        while !data.is_empty() {
            match self.state {
                DecState::Data(n) => {
                    let k = usize::try_from(n).unwrap_or(usize::MAX).min(data.len());
                    out(&data[..k]).map_err(|e| e.to_string())?;
                    data = &data[k..];
                    let left = n - k as u64;
                    self.state = if left == 0 {
                        DecState::Crlf(2)
                    } else {
                        DecState::Data(left)
                    };
                }
                DecState::Crlf(r) => {
                    let k = usize::from(r).min(data.len());
                    if data[..k].iter().any(|&c| c != b'\r' && c != b'\n') {
                        return Err("chunk data not followed by CRLF".into());
                    }
                    data = &data[k..];
                    let left = r - k as u8;
                    self.state = if left == 0 {
                        DecState::Header
                    } else {
                        DecState::Crlf(left)
                    };
                }
                DecState::Header => match data.iter().position(|&c| c == b'\n') {
                    Some(p) => {
                        self.line.extend_from_slice(&data[..p]);
                        data = &data[p + 1..];
                        let line = std::str::from_utf8(&self.line)
                            .map_err(|_| "chunk header not UTF-8")?;
                        let hex = line
                            .trim_end_matches('\r')
                            .split(';')
                            .next()
                            .unwrap_or("")
                            .trim();
                        let n = u64::from_str_radix(hex, 16)
                            .map_err(|_| format!("bad chunk size {hex:?}"))?;
                        self.line.clear();
                        self.state = if n == 0 {
                            DecState::Trailer
                        } else {
                            DecState::Data(n)
                        };
                    }
                    None => {
                        self.line.extend_from_slice(data);
                        data = &[];
                        if self.line.len() > MAX_CHUNK_HEADER {
                            return Err("chunk header too long".into());
                        }
                    }
                },
                DecState::Trailer => return Ok(()),
            }
        }
        Ok(())
    }

    fn finished(&self) -> bool {
        self.state == DecState::Trailer
    }
}

async fn put(root: &Path, path: &Path, is_bucket: bool, req: Request<Incoming>) -> Response<Body> {
    if is_bucket {
        return match std::fs::create_dir_all(path) {
            Ok(()) => full(StatusCode::OK, ""),
            Err(_) => full(StatusCode::INTERNAL_SERVER_ERROR, "mkdir failed\n"),
        };
    }
    let chunked = req
        .headers()
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("STREAMING-"));
    // The bucket must exist; deeper key prefixes are created on demand.
    let bucket_dir = match path
        .strip_prefix(root)
        .ok()
        .and_then(|rel| rel.components().next())
    {
        Some(first) => root.join(first),
        None => return full(StatusCode::BAD_REQUEST, "bad path\n"),
    };
    if !bucket_dir.is_dir() {
        return full(StatusCode::NOT_FOUND, "no such bucket\n");
    }
    if let Some(parent) = path.parent()
        && std::fs::create_dir_all(parent).is_err()
    {
        return full(StatusCode::INTERNAL_SERVER_ERROR, "mkdir failed\n");
    }
    let seq = TMP_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("ceiling-tmp-{seq}"));
    let mut file = match std::fs::File::create(&tmp) {
        Ok(f) => f,
        Err(_) => return full(StatusCode::INTERNAL_SERVER_ERROR, "create failed\n"),
    };
    let mut dec = ChunkDecoder::default();
    let mut written = 0u64;
    let mut body = req.into_body();
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(_) => {
                let _ = std::fs::remove_file(&tmp);
                return full(StatusCode::BAD_REQUEST, "body read failed\n");
            }
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let res = if chunked {
            dec.feed(&data, &mut |b: &[u8]| {
                written += b.len() as u64;
                file.write_all(b)
            })
        } else {
            written += data.len() as u64;
            file.write_all(&data).map_err(|e| e.to_string())
        };
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
            return full(StatusCode::BAD_REQUEST, "bad body\n");
        }
    }
    if chunked && !dec.finished() {
        let _ = std::fs::remove_file(&tmp);
        return full(StatusCode::BAD_REQUEST, "truncated aws-chunked body\n");
    }
    drop(file);
    if std::fs::rename(&tmp, path).is_err() {
        return full(StatusCode::INTERNAL_SERVER_ERROR, "rename failed\n");
    }
    let mut r = full(StatusCode::OK, "");
    if let Ok(v) = header::HeaderValue::from_str(&format!("\"ceiling-{written:x}\"")) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

fn get(path: &Path, head: bool, range: Option<&str>) -> Response<Body> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return full(StatusCode::NOT_FOUND, "no such key\n");
    };
    let Ok(size) = file.metadata().map(|m| m.len()) else {
        return full(StatusCode::INTERNAL_SERVER_ERROR, "stat failed\n");
    };
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, size.saturating_sub(1)),
        Some(h) => match parse_range(h, size) {
            Ok((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e),
            Err(()) => return full(StatusCode::RANGE_NOT_SATISFIABLE, "bad range\n"),
        },
    };
    let len = if size == 0 { 0 } else { end - start + 1 };
    let body: Body = if head || len == 0 {
        Full::new(Bytes::new()).map_err(|e| match e {}).boxed()
    } else {
        if file.seek(SeekFrom::Start(start)).is_err() {
            return full(StatusCode::INTERNAL_SERVER_ERROR, "seek failed\n");
        }
        let stream = futures::stream::unfold((file, len), |(mut file, left)| async move {
            if left == 0 {
                return None;
            }
            let n = usize::try_from(left).unwrap_or(READ_CHUNK).min(READ_CHUNK);
            let mut buf = vec![0u8; n];
            match file.read_exact(&mut buf) {
                Ok(()) => Some((Ok(Frame::data(Bytes::from(buf))), (file, left - n as u64))),
                Err(e) => Some((Err(e), (file, 0))),
            }
        });
        StreamBody::new(stream).boxed()
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(
        header::ACCEPT_RANGES,
        header::HeaderValue::from_static("bytes"),
    );
    if let Ok(v) = header::HeaderValue::from_str(&format!("\"ceiling-{size:x}\"")) {
        h.insert(header::ETAG, v);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = header::HeaderValue::from_str(&format!("bytes {start}-{end}/{size}"))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    r
}

async fn handle(root: Arc<PathBuf>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    if req.uri().path() == "/" {
        return Ok(full(StatusCode::OK, "ceilingsrv\n"));
    }
    let Some((path, is_bucket)) = resolve(&root, req.uri().path()) else {
        return Ok(full(StatusCode::BAD_REQUEST, "bad path\n"));
    };
    let resp = match *req.method() {
        Method::PUT => put(&root, &path, is_bucket, req).await,
        Method::GET | Method::HEAD if !is_bucket => {
            let range = req
                .headers()
                .get(header::RANGE)
                .and_then(|v| v.to_str().ok());
            get(&path, req.method() == Method::HEAD, range)
        }
        _ => full(
            StatusCode::NOT_IMPLEMENTED,
            "not implemented by the ceiling server\n",
        ),
    };
    Ok(resp)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let root = Arc::new(args.dir.canonicalize()?);
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("binding {}", args.addr))?;
    eprintln!(
        "ceilingsrv listening on http://{} serving {}",
        args.addr,
        root.display()
    );
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let root = root.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(root.clone(), req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(input: &[u8], split: usize) -> Result<(Vec<u8>, bool), String> {
        let mut d = ChunkDecoder::default();
        let mut out = Vec::new();
        for piece in input.chunks(split.max(1)) {
            d.feed(piece, &mut |b: &[u8]| {
                out.extend_from_slice(b);
                Ok(())
            })?;
        }
        Ok((out, d.finished()))
    }

    #[test]
    fn aws_chunked_decodes_at_any_split() {
        let body = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n";
        for split in [1, 2, 3, 7, 100] {
            assert_eq!(
                decode(body, split),
                Ok((b"hello world".to_vec(), true)),
                "split {split}"
            );
        }
        let signed = b"3;chunk-signature=abcd\r\nabc\r\n0;chunk-signature=ef01\r\n\r\n";
        assert_eq!(decode(signed, 4), Ok((b"abc".to_vec(), true)));
    }

    #[test]
    fn aws_chunked_rejects_garbage_and_reports_truncation() {
        assert!(decode(b"zz\r\nabc\r\n", 3).is_err());
        assert!(decode(b"3\r\nabcXY0\r\n", 3).is_err());
        let (out, done) = decode(b"5\r\nhel", 2).unwrap_or_default();
        assert_eq!((out.as_slice(), done), (&b"hel"[..], false));
        let long = vec![b'a'; MAX_CHUNK_HEADER + 10];
        assert!(decode(&long, 1000).is_err());
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Ok((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Ok((90, 99)));
        assert_eq!(parse_range("bytes=95-200", 100), Ok((95, 99)));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=5-4", 100), Err(()));
        assert_eq!(parse_range("bytes=-0", 100), Err(()));
        assert_eq!(parse_range("items=0-1", 100), Err(()));
        assert_eq!(parse_range("bytes=0-0", 0), Err(()));
    }

    #[test]
    fn paths_cannot_escape_the_root() {
        let root = Path::new("/srv/c");
        assert_eq!(resolve(root, "/b"), Some((PathBuf::from("/srv/c/b"), true)));
        assert_eq!(
            resolve(root, "/b/"),
            Some((PathBuf::from("/srv/c/b"), true))
        );
        assert_eq!(
            resolve(root, "/b/small/c1/01"),
            Some((PathBuf::from("/srv/c/b/small/c1/01"), false))
        );
        assert_eq!(resolve(root, "/b/../etc/passwd"), None);
        assert_eq!(resolve(root, "/b//x"), None);
        assert_eq!(resolve(root, "/b/%2e%2e/x"), None);
        assert_eq!(resolve(root, "/"), None);
    }
}
