//! Adversarial tests of the policy library (issue 12), below the admin API: the store and the
//! authorizer refuse the attacks on their own, whatever front end calls them — approvers
//! minted or promoted after a request, oversized access key ids, another tenant's custom
//! roles, secrets at rest in idempotency records, and a flood of failed authentications from
//! distinct addresses.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use policy::store::IdempotentResponse;
use policy::{
    AesGcmSealer, AuthFailures, Authorizer, Error, PolicyStore, QuorumRule, RateLimitConfig,
    RateLimits, Role, now_ms,
};

async fn store() -> PolicyStore {
    let s = PolicyStore::in_memory(Arc::new(AesGcmSealer::random().unwrap()))
        .await
        .unwrap()
        .with_access_cache();
    s.bootstrap(None).await.unwrap();
    s
}

fn rule(name: &str, action: &str, m: u32) -> QuorumRule {
    QuorumRule {
        name: name.into(),
        action: action.into(),
        bucket_pattern: "*".into(),
        approvals: m,
        approver_roles: vec!["superadmin".into()],
        ttl_secs: 600,
    }
}

#[tokio::test]
async fn a_superadmin_cannot_mint_or_promote_its_approvers() {
    let s = store().await;
    let boss = s.identity("admin").await.unwrap().unwrap();
    s.set_quorum_rule(&boss, &rule("del", "s3:DeleteObject", 2), now_ms())
        .await
        .unwrap();
    let t = now_ms();
    let e = s
        .gate(&boss, "s3:DeleteObject", Some("x"), "x/k", "", t)
        .await
        .unwrap_err();
    let Error::ApprovalRequired { approval_id, .. } = e else {
        panic!("{e:?}")
    };
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    // without a ChangeRole rule the store lets it create superadmins, but they cannot vote
    for n in ["sock1", "sock2"] {
        s.create_principal(n, "user", "default", Some(Role::SuperAdmin))
            .await
            .unwrap();
        let id = s.identity(n).await.unwrap().unwrap();
        assert!(matches!(
            s.approve(&approval_id, &id, now_ms()).await,
            Err(Error::Forbidden(_))
        ));
    }
    // an identity that claims a role the store does not give it cannot vote either
    let mut forged = s.identity("sock1").await.unwrap().unwrap();
    forged.principal = "nobody".into();
    assert!(matches!(
        s.approve(&approval_id, &forged, now_ms()).await,
        Err(Error::Forbidden(_))
    ));
    // the ChangeRole rule alone gates every way to mint one
    s.set_quorum_rule(&boss, &rule("roles", "admin:ChangeRole", 2), now_ms())
        .await
        .unwrap();
    for action in [
        policy::quorum::CREATE_PRINCIPAL,
        policy::quorum::ENABLE_PRINCIPAL,
        policy::quorum::GRANT,
        policy::quorum::ISSUE_KEY,
    ] {
        assert!(matches!(
            s.gate(&boss, action, None, "principal/sock3", "", now_ms())
                .await,
            Err(Error::ApprovalRequired { needed: 2, .. })
        ));
    }
}

#[tokio::test]
async fn oversized_and_malformed_key_ids_never_reach_the_database_or_cache() {
    let s = store().await;
    let az = Authorizer::new(
        s.clone(),
        Arc::new(RateLimits::new(RateLimitConfig::default())),
    );
    for id in [
        "A".repeat(1 << 20),
        "B".repeat(129),
        "AK\u{0}X".to_owned(),
        "ÄKEY".to_owned(),
        String::new(),
    ] {
        assert!(az.secret_key(&id).await.unwrap().is_none());
        assert!(s.key_identity(&id, now_ms()).await.unwrap().is_none());
        assert!(matches!(
            s.verify_key_pair(&id, &policy::SecretKey::new("x"), now_ms())
                .await,
            Err(Error::Unauthenticated(_))
        ));
        assert!(matches!(
            s.import_access_key("admin", &id, &policy::SecretKey::new("12345678"), None)
                .await,
            Err(Error::Invalid(_))
        ));
    }
    assert!(policy::store::is_valid_access_key_id(&"C".repeat(128)));
}

#[tokio::test]
async fn another_tenants_custom_role_cannot_be_granted() {
    let s = store().await;
    for t in ["acme", "globex"] {
        s.create_tenant(t).await.unwrap();
    }
    s.create_principal("g", "service", "globex", None)
        .await
        .unwrap();
    s.create_principal("a", "service", "acme", None)
        .await
        .unwrap();
    s.create_role_in("acme", "AcmeWriter", &["PutObject".into()])
        .await
        .unwrap();
    s.create_role("Shared", &["GetObject".into()])
        .await
        .unwrap();
    assert!(matches!(
        s.create_grant("g", "AcmeWriter", "b", "").await,
        Err(Error::NotFound(_))
    ));
    s.create_grant("a", "AcmeWriter", "b", "").await.unwrap();
    s.create_grant("g", "Shared", "b", "").await.unwrap();
    let names =
        |v: Vec<policy::store::CustomRole>| v.into_iter().map(|r| r.name).collect::<Vec<_>>();
    assert_eq!(
        names(s.list_roles_of(Some("globex")).await.unwrap()),
        ["Shared"]
    );
    assert_eq!(
        names(s.list_roles_of(Some("acme")).await.unwrap()),
        ["AcmeWriter", "Shared"]
    );
}

#[tokio::test]
async fn idempotency_records_are_sealed_and_bound_to_their_caller_and_key() {
    let s = store().await;
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let resp = IdempotentResponse {
        request_hash: "h".into(),
        status: 201,
        body: format!("{{\"secret_key\":\"{secret}\"}}"),
    };
    s.idempotency_put("admin", "k1", &resp).await.unwrap();
    let raw: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT body, sealed_body FROM pol_idempotency")
            .fetch_all(s.pool())
            .await
            .unwrap();
    assert_eq!(raw.len(), 1);
    assert!(!raw[0].0.contains(secret));
    assert!(
        !raw[0]
            .1
            .windows(secret.len())
            .any(|w| w == secret.as_bytes())
    );
    assert_eq!(s.idempotency_get("admin", "k1").await.unwrap(), Some(resp));
    // a row moved under another caller does not open
    sqlx::query("UPDATE pol_idempotency SET scope = 'mallory'")
        .execute(s.pool())
        .await
        .unwrap();
    assert!(matches!(
        s.idempotency_get("mallory", "k1").await,
        Err(Error::Seal(_))
    ));
}

#[tokio::test]
async fn a_flood_of_failing_addresses_costs_bounded_memory() {
    let f = AuthFailures::new(60);
    for i in 0..200_000u32 {
        f.record_failure(IpAddr::V4(Ipv4Addr::from(i)));
    }
    assert_eq!(f.failures_total(), 200_000);
    assert!(
        f.tracked_addresses() <= 100_000,
        "{}",
        f.tracked_addresses()
    );
    // IPv6: one /64 is one address, however many hosts it rotates through
    let f = AuthFailures::new(60);
    for i in 0..10_000u32 {
        let ip: IpAddr = format!("2001:db8:aa:bb::{:x}:{:x}", i >> 16, i & 0xffff)
            .parse()
            .unwrap();
        f.record_failure(ip);
    }
    assert_eq!(f.tracked_addresses(), 1);
    assert!(f.check("2001:db8:aa:bb::1".parse().unwrap()).is_err());
}
