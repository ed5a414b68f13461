//! POST Object (browser form uploads) with the policy document checked as AWS checks it:
//! a SigV4-signed form with `eq`, `starts-with` (the empty prefix too), `content-length-range`,
//! `${filename}` in the key, user metadata, Content-Type, `success_action_status` 201 and
//! `success_action_redirect` is stored byte-exact; every refused form (failed condition, field
//! not in the policy, too small/large, expired or malformed policy, bad operator, bad base64,
//! wrong signature, unknown key, policy without signature, anonymous, malformed body, another
//! bucket's policy) answers its S3 status and code and stores nothing; an SSE-C form's object
//! needs its key to be read; a refusal is audited as PutObject. SQLite, or PostgreSQL with
//! VAULTGATE_TEST_DATABASE_URL.

use crate::common;

use base64::Engine;
use common::*;
use serde_json::{Value, json};

const BUCKET: &str = "forms";

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    aws_lc_rs::hmac::sign(&k, data).as_ref().to_vec()
}

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A form to post: its policy conditions (the SigV4 ones are added), fields, file.
struct Form {
    conditions: Vec<Value>,
    fields: Vec<(String, String)>,
    filename: String,
    file: Vec<u8>,
    expiration: String,
    /// the base64 policy as sent, when not the signed document's
    policy_override: Option<String>,
    /// (access key, secret key) signing it; None: unsigned
    signer: Option<(String, String)>,
}

fn future() -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn form(conditions: Vec<Value>, fields: &[(&str, &str)], file: &[u8]) -> Form {
    Form {
        conditions,
        fields: fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        filename: "hello.txt".into(),
        file: file.to_vec(),
        expiration: future(),
        policy_override: None,
        signer: Some((AK.into(), SK.into())),
    }
}

/// The multipart body and content type of `f`, signed with SigV4 as boto3 signs a form.
fn encode(f: &Form) -> (String, Vec<u8>) {
    let now = time::OffsetDateTime::now_utc();
    let date = format!(
        "{:04}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    );
    let amz_date = format!(
        "{date}T{:02}{:02}{:02}Z",
        now.hour(),
        now.minute(),
        now.second()
    );
    let mut fields = f.fields.clone();
    let mut conditions = f.conditions.clone();
    if let Some((ak, _)) = &f.signer {
        let credential = format!("{ak}/{date}/us-east-1/s3/aws4_request");
        for (k, v) in [
            ("x-amz-algorithm", "AWS4-HMAC-SHA256".to_owned()),
            ("x-amz-credential", credential),
            ("x-amz-date", amz_date),
        ] {
            conditions.push(json!({ k: v }));
            fields.push((k.into(), v));
        }
    }
    let doc = json!({"expiration": f.expiration, "conditions": conditions}).to_string();
    let policy = f
        .policy_override
        .clone()
        .unwrap_or_else(|| b64(doc.as_bytes()));
    fields.push(("policy".into(), policy.clone()));
    if let Some((_, sk)) = &f.signer {
        let mut k = hmac(format!("AWS4{sk}").as_bytes(), date.as_bytes());
        for part in ["us-east-1", "s3", "aws4_request"] {
            k = hmac(&k, part.as_bytes());
        }
        fields.push((
            "x-amz-signature".into(),
            hex::encode(hmac(&k, policy.as_bytes())),
        ));
    }
    let boundary = "vgpostboundaryQ7";
    let mut out = Vec::new();
    for (name, value) in &fields {
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n",
            f.filename
        )
        .as_bytes(),
    );
    out.extend_from_slice(&f.file);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), out)
}

async fn post(g: &TestGateway, bucket: &str, ct: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    raw(
        g.server.s3_addr,
        "POST",
        &format!("/{bucket}"),
        &[("Content-Type", ct)],
        body,
    )
    .await
}

async fn send(g: &TestGateway, f: &Form) -> (u16, String, Vec<u8>) {
    let (ct, body) = encode(f);
    post(g, BUCKET, &ct, &body).await
}

fn body_code(body: &[u8]) -> String {
    let t = String::from_utf8_lossy(body);
    t.split("<Code>")
        .nth(1)
        .and_then(|r| r.split("</Code>").next())
        .unwrap_or("")
        .to_owned()
}

async fn get(g: &TestGateway, key: &str) -> Option<Vec<u8>> {
    match g.client.get_object().bucket(BUCKET).key(key).send().await {
        Ok(o) => Some(o.body.collect().await.unwrap().into_bytes().to_vec()),
        Err(_) => None,
    }
}

async fn gateway() -> TestGateway {
    let g = start().await;
    g.client
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    g.client
        .create_bucket()
        .bucket("elsewhere")
        .send()
        .await
        .unwrap();
    g
}

/// The conditions of the accepted form, which the refusals vary.
fn base_conditions() -> Vec<Value> {
    vec![
        json!({"bucket": BUCKET}),
        json!(["starts-with", "$key", "up/"]),
        json!(["starts-with", "$Content-Type", "text/"]),
        json!(["eq", "$x-amz-meta-owner", "ana"]),
        json!(["starts-with", "$x-amz-meta-note", ""]),
        json!(["starts-with", "$success_action_status", ""]),
        json!(["content-length-range", 1, 1024]),
    ]
}

fn base_fields() -> Vec<(&'static str, &'static str)> {
    vec![
        ("key", "up/${filename}"),
        ("Content-Type", "text/plain"),
        ("X-Amz-Meta-Owner", "ana"),
        ("x-amz-meta-note", "anything at all"),
        ("success_action_status", "201"),
    ]
}

#[tokio::test]
async fn accepted_form_is_stored_with_its_fields() {
    let g = gateway().await;
    let data = b"hello from a browser\r\n--not a boundary\r\n".to_vec();
    let (st, _, body) = send(&g, &form(base_conditions(), &base_fields(), &data)).await;
    let text = String::from_utf8_lossy(&body);
    assert_eq!(st, 201, "{text}");
    assert!(text.contains("<Key>up/hello.txt</Key>"), "{text}");
    assert!(
        text.contains(&format!("<Bucket>{BUCKET}</Bucket>")),
        "{text}"
    );
    assert_eq!(get(&g, "up/hello.txt").await.unwrap(), data);
    let head = g
        .client
        .head_object()
        .bucket(BUCKET)
        .key("up/hello.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("text/plain"));
    let meta = head.metadata().unwrap();
    assert_eq!(meta.get("owner").map(String::as_str), Some("ana"));
    assert_eq!(
        meta.get("note").map(String::as_str),
        Some("anything at all")
    );
    assert_eq!(
        head.e_tag(),
        Some(format!("\"{}\"", md5_hex(&data)).as_str())
    );

    // success_action_redirect: 303 to the URL with bucket, key and ETag
    let mut c = base_conditions();
    c.push(json!([
        "eq",
        "$success_action_redirect",
        "https://app.example/done"
    ]));
    let mut f = base_fields();
    f.push(("success_action_redirect", "https://app.example/done"));
    f[0] = ("key", "up/redirected.txt");
    let (st, head, _) = send(&g, &form(c, &f, b"r")).await;
    assert_eq!(st, 303, "{head}");
    let location = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("location: ")
                .or_else(|| l.strip_prefix("Location: "))
        })
        .unwrap_or_default()
        .to_owned();
    assert!(
        location.starts_with("https://app.example/done?bucket=forms&key=up%2Fredirected.txt&etag="),
        "{location}"
    );
    assert_eq!(get(&g, "up/redirected.txt").await.unwrap(), b"r");
    g.stop().await;
}

/// A case of refusal: the form, the expected status and code.
struct Refused {
    what: &'static str,
    form: Form,
    status: u16,
    code: &'static str,
}

fn refusals() -> Vec<Refused> {
    let with_fields = |extra: &[(&'static str, &'static str)]| {
        let mut f = base_fields();
        f.extend_from_slice(extra);
        form(base_conditions(), &f, b"data")
    };
    let with_conditions = |extra: Value| {
        let mut c = base_conditions();
        c.push(extra);
        form(c, &base_fields(), b"data")
    };
    let mut expired = form(base_conditions(), &base_fields(), b"data");
    expired.expiration = "2020-01-01T00:00:00Z".into();
    let mut bad_date = form(base_conditions(), &base_fields(), b"data");
    bad_date.expiration = "2099-01-01 00:00:00+00:00".into();
    let mut not_json = form(base_conditions(), &base_fields(), b"data");
    not_json.policy_override = Some(b64(b"{not json"));
    let mut wrong_sig = form(base_conditions(), &base_fields(), b"data");
    wrong_sig.signer = Some((AK.into(), "not-the-secret-key-at-all-000000000000".into()));
    let mut unknown = form(base_conditions(), &base_fields(), b"data");
    unknown.signer = Some(("VGUNKNOWNKEY00000001".into(), SK.into()));
    let mut unsigned = form(base_conditions(), &base_fields(), b"data");
    unsigned.signer = None;
    let mut too_big = form(base_conditions(), &base_fields(), &[7u8; 1025]);
    too_big.filename = "big.bin".into();
    let mut other_bucket = form(base_conditions(), &base_fields(), b"data");
    other_bucket.conditions[0] = json!({"bucket": "elsewhere"});
    let mut key_prefix = form(base_conditions(), &base_fields(), b"data");
    key_prefix.fields[0].1 = "down/${filename}".into();
    let mut meta_ne = form(base_conditions(), &base_fields(), b"data");
    meta_ne.fields[2].1 = "eve".into();
    let mut ct = form(base_conditions(), &base_fields(), b"data");
    ct.fields[1].1 = "image/png".into();
    vec![
        Refused {
            what: "key outside starts-with",
            form: key_prefix,
            status: 403,
            code: "AccessDenied",
        },
        Refused {
            what: "eq metadata differs",
            form: meta_ne,
            status: 403,
            code: "AccessDenied",
        },
        Refused {
            what: "Content-Type prefix",
            form: ct,
            status: 403,
            code: "AccessDenied",
        },
        Refused {
            what: "field not in policy",
            form: with_fields(&[("x-amz-meta-extra", "1")]),
            status: 403,
            code: "AccessDenied",
        },
        Refused {
            what: "acl not in policy",
            form: with_fields(&[("acl", "private")]),
            status: 403,
            code: "AccessDenied",
        },
        Refused {
            what: "condition on a missing field",
            form: with_conditions(json!(["starts-with", "$x-amz-meta-gone", "x"])),
            status: 403,
            code: "AccessDenied",
        },
        Refused {
            what: "too small",
            form: form(base_conditions(), &base_fields(), b""),
            status: 400,
            code: "EntityTooSmall",
        },
        Refused {
            what: "too large",
            form: too_big,
            status: 400,
            code: "EntityTooLarge",
        },
        Refused {
            what: "expired",
            form: expired,
            status: 403,
            code: "AccessDenied",
        },
        Refused {
            what: "malformed expiration",
            form: bad_date,
            status: 400,
            code: "InvalidPolicyDocument",
        },
        Refused {
            what: "unknown operator",
            form: with_conditions(json!(["like", "$key", "up/"])),
            status: 400,
            code: "InvalidPolicyDocument",
        },
        Refused {
            what: "policy not JSON",
            form: not_json,
            status: 400,
            code: "InvalidPolicyDocument",
        },
        Refused {
            what: "another bucket's policy",
            form: other_bucket,
            status: 403,
            code: "AccessDenied",
        },
        Refused {
            what: "wrong signature",
            form: wrong_sig,
            status: 403,
            code: "SignatureDoesNotMatch",
        },
        Refused {
            what: "unknown access key",
            form: unknown,
            status: 403,
            code: "InvalidAccessKeyId",
        },
        Refused {
            what: "policy without signature",
            form: unsigned,
            status: 400,
            code: "InvalidArgument",
        },
    ]
}

#[tokio::test]
async fn refused_forms_answer_s3_codes_and_store_nothing() {
    let g = gateway().await;
    for r in refusals() {
        let (st, _, body) = send(&g, &r.form).await;
        assert_eq!(
            (st, body_code(&body).as_str()),
            (r.status, r.code),
            "{}: {}",
            r.what,
            String::from_utf8_lossy(&body)
        );
    }
    // anonymous: no policy, no signature
    let anon = form(vec![], &[("key", "up/anon.txt")], b"data");
    let mut anon = anon;
    anon.signer = None;
    anon.policy_override = Some(String::new());
    let (ct, body) = {
        let (ct, body) = encode(&anon);
        // drop the empty policy field: a form with no policy at all
        let text = String::from_utf8_lossy(&body).replace(
            "--vgpostboundaryQ7\r\nContent-Disposition: form-data; name=\"policy\"\r\n\r\n\r\n",
            "",
        );
        (ct, text.into_bytes())
    };
    let (st, _, resp) = post(&g, BUCKET, &ct, &body).await;
    assert_eq!((st, body_code(&resp).as_str()), (403, "AccessDenied"));
    // a body that is not multipart/form-data as announced
    let (st, _, resp) = post(&g, BUCKET, "multipart/form-data; boundary=zz", b"junk").await;
    assert_eq!(
        (st, body_code(&resp).as_str()),
        (400, "MalformedPOSTRequest")
    );

    let listed = g
        .client
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(0), "{:?}", listed.contents());

    // a condition failure is one audited refusal of PutObject naming the key
    let events = audit_events(&g).await;
    let refused: Vec<_> = events
        .iter()
        .filter(|e| e.action == "PutObject" && e.key.as_deref() == Some("down/hello.txt"))
        .collect();
    assert_eq!(
        refused.len(),
        1,
        "{:?}",
        events
            .iter()
            .map(|e| (&e.action, &e.key, e.status, &e.error_code, &e.principal))
            .collect::<Vec<_>>()
    );
    assert_eq!(refused[0].status, 403);
    assert_eq!(refused[0].error_code.as_deref(), Some("AccessDenied"));
    assert_eq!(refused[0].principal.as_deref(), Some("admin"));
    g.stop().await;
}

#[tokio::test]
async fn sse_c_form_needs_its_key_to_be_read() {
    let g = gateway().await;
    let key = [0x42u8; 32];
    let key_b64 = b64(&key);
    let key_md5 = {
        use md5::Digest;
        b64(&md5::Md5::digest(key))
    };
    let mut c = base_conditions();
    for f in [
        "$x-amz-server-side-encryption-customer-algorithm",
        "$x-amz-server-side-encryption-customer-key",
        "$x-amz-server-side-encryption-customer-key-md5",
    ] {
        c.push(json!(["starts-with", f, ""]));
    }
    let mut fields = base_fields();
    fields[0] = ("key", "up/secret.txt");
    fields.push(("x-amz-server-side-encryption-customer-algorithm", "AES256"));
    fields.push(("x-amz-server-side-encryption-customer-key", &key_b64));
    fields.push(("x-amz-server-side-encryption-customer-key-md5", &key_md5));
    let (st, _, body) = send(&g, &form(c, &fields, b"for my eyes")).await;
    assert_eq!(st, 201, "{}", String::from_utf8_lossy(&body));
    let plain = g
        .client
        .get_object()
        .bucket(BUCKET)
        .key("up/secret.txt")
        .send()
        .await;
    assert_eq!(status(&plain.unwrap_err()), 400);
    let o = g
        .client
        .get_object()
        .bucket(BUCKET)
        .key("up/secret.txt")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key_b64)
        .sse_customer_key_md5(&key_md5)
        .send()
        .await
        .unwrap();
    assert_eq!(
        o.body.collect().await.unwrap().into_bytes().as_ref(),
        b"for my eyes"
    );

    // SSE fields the policy does not name are refused as AWS refuses them
    let mut fields = base_fields();
    fields.push(("x-amz-server-side-encryption", "AES256"));
    let (st, _, body) = send(&g, &form(base_conditions(), &fields, b"x")).await;
    assert_eq!((st, body_code(&body).as_str()), (403, "AccessDenied"));
    g.stop().await;
}
