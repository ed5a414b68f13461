//! Quorum approvals: rules ("action pattern on bucket pattern needs M approvals
//! from distinct principals holding one of these roles, not the requester,
//! within T"), approval requests, votes, and exactly-once consumption. Stored in
//! the policy database; time is passed in (`now_ms`) so tests control it.
//!
//! Action names are `s3:<Operation>` (e.g. `s3:DeleteBucket`) or `admin:<Name>`
//! (`admin:RetireKey`, `admin:ChangeRole`, `admin:ChangeQuorumRule`, …); patterns
//! may use `*`. Changing or removing a rule is itself the action
//! `admin:ChangeQuorumRule`, gated by the rules in force.
//!
//! Quorum covers the ways around it: every admin action that changes who may do what —
//! creating a principal with a role ([`CREATE_PRINCIPAL`]), re-enabling a principal
//! ([`ENABLE_PRINCIPAL`]), granting or removing a grant ([`GRANT`]), issuing an access key for
//! another principal ([`ISSUE_KEY`]), changing a role or a custom role ([`CHANGE_ROLE`]) — is
//! gated by any rule matching its own name *or* [`CHANGE_ROLE`] (see [`covering_actions`]). So
//! the one rule "admin:ChangeRole needs 2" stops a SuperAdmin from minting the approvers it
//! needs. And approvers are checked against the store when they vote: the principal must
//! exist, be enabled, hold one of the rule's roles *now*, and have held it (and existed) since
//! strictly before the request was opened (`role_since_ms < created_ms`), so principals created
//! or promoted after a request was opened cannot approve it.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::grants::{DEFAULT_TENANT, Identity, glob_match};
use crate::store::{PolicyStore, validate_name};
use crate::{Error, Result, Role, random_bytes};

/// The admin action of changing or removing a quorum rule.
pub const CHANGE_QUORUM_RULE: &str = "admin:ChangeQuorumRule";
/// The admin action of changing roles, custom roles or grants.
pub const CHANGE_ROLE: &str = "admin:ChangeRole";
/// The admin action of retiring a master key (gateway's `vaultgate keys`).
pub const RETIRE_KEY: &str = "admin:RetireKey";
/// The admin action of re-sealing every object of a bucket under a new data key version
/// (gateway's `vaultgate admin kek reencrypt`).
pub const REENCRYPT_BUCKET: &str = "admin:ReencryptBucket";
/// The admin action of creating a principal with a built-in role (also gated by
/// [`CHANGE_ROLE`] rules).
pub const CREATE_PRINCIPAL: &str = "admin:CreatePrincipal";
/// The admin action of re-enabling a disabled principal (also gated by [`CHANGE_ROLE`] rules).
pub const ENABLE_PRINCIPAL: &str = "admin:EnablePrincipal";
/// The admin action of creating or deleting a grant (also gated by [`CHANGE_ROLE`] rules).
pub const GRANT: &str = "admin:Grant";
/// The admin action of issuing an access key for another principal (also gated by
/// [`CHANGE_ROLE`] rules).
pub const ISSUE_KEY: &str = "admin:IssueKey";
/// The admin action of replacing the admin API's token signing secret while the gateway serves
/// (`vaultgate admin kek rotate-admin-secret`).
pub const ROTATE_SIGNING_SECRET: &str = "admin:RotateSigningSecret";
/// The admin action of setting or removing per-principal or per-role rate limits.
pub const SET_LIMITS: &str = "admin:SetLimits";

/// The action names whose rules gate `action`: itself, and [`CHANGE_ROLE`] for every action
/// that changes who may do what.
pub fn covering_actions(action: &str) -> Vec<&str> {
    if matches!(
        action,
        CREATE_PRINCIPAL | ENABLE_PRINCIPAL | GRANT | ISSUE_KEY
    ) {
        vec![action, CHANGE_ROLE]
    } else {
        vec![action]
    }
}

/// A quorum rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuorumRule {
    /// rule name
    pub name: String,
    /// action pattern, e.g. `s3:DeleteBucket`, `s3:Delete*`, `admin:RetireKey`
    pub action: String,
    /// bucket pattern (`*` = any, also matches actions without a bucket)
    #[serde(default = "star")]
    pub bucket_pattern: String,
    /// approvals needed (M >= 1)
    pub approvals: u32,
    /// roles an approver must hold (built-in role names)
    pub approver_roles: Vec<String>,
    /// seconds the request (and, once approved, the approval) stays valid
    pub ttl_secs: u64,
}

fn star() -> String {
    "*".into()
}

impl QuorumRule {
    /// Checks the rule's fields.
    pub fn validate(&self) -> Result<()> {
        validate_name("rule", &self.name)?;
        if !(self.action.starts_with("s3:") || self.action.starts_with("admin:")) {
            return Err(Error::Invalid(
                "action must start with s3: or admin:".into(),
            ));
        }
        if self.approvals == 0 || self.approvals > 16 {
            return Err(Error::Invalid("approvals must be 1..=16".into()));
        }
        if self.approver_roles.is_empty() {
            return Err(Error::Invalid("approver_roles must not be empty".into()));
        }
        for r in &self.approver_roles {
            Role::parse(r)?;
        }
        if self.ttl_secs == 0 || self.ttl_secs > 30 * 24 * 3600 {
            return Err(Error::Invalid("ttl_secs must be 1..=2592000".into()));
        }
        if self.bucket_pattern.is_empty() {
            return Err(Error::Invalid("bucket_pattern must not be empty".into()));
        }
        Ok(())
    }

    /// Whether the rule covers `action` on `bucket`.
    pub fn matches(&self, action: &str, bucket: Option<&str>) -> bool {
        glob_match(&self.action, action)
            && match bucket {
                Some(b) => glob_match(&self.bucket_pattern, b),
                None => self.bucket_pattern == "*",
            }
    }
}

/// State of an approval request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ApprovalState {
    /// waiting for votes
    Pending,
    /// enough approvals; the request may run once
    Approved,
    /// an approver rejected it
    Rejected,
    /// the approved request ran
    Consumed,
    /// the deadline passed
    Expired,
}

impl ApprovalState {
    fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Rejected => "rejected",
            ApprovalState::Consumed => "consumed",
            ApprovalState::Expired => "expired",
        }
    }
    fn parse(s: &str) -> ApprovalState {
        match s {
            "pending" => ApprovalState::Pending,
            "approved" => ApprovalState::Approved,
            "rejected" => ApprovalState::Rejected,
            "consumed" => ApprovalState::Consumed,
            _ => ApprovalState::Expired,
        }
    }
}

/// One vote on an approval request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Vote {
    /// approver principal
    pub approver: String,
    /// `approve` or `reject`
    pub decision: String,
    /// time (ms since epoch)
    pub at_ms: i64,
}

/// An approval request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Approval {
    /// request id (`apr-…`)
    pub id: String,
    /// the rule that gated the request
    pub rule: String,
    /// requesting principal
    pub requester: String,
    /// requester's tenant
    pub tenant: String,
    /// the gated action
    pub action: String,
    /// the target (`bucket/key`, rule name, …)
    pub resource: String,
    /// approvals needed
    pub needed: u32,
    /// roles an approver must hold
    pub approver_roles: Vec<String>,
    /// state (expiry applied at read time)
    pub state: ApprovalState,
    /// votes so far
    pub votes: Vec<Vote>,
    /// creation time (ms)
    pub created_ms: i64,
    /// deadline for approving and for using the approval (ms)
    pub expires_ms: i64,
}

fn fingerprint(requester: &str, action: &str, resource: &str, detail: &str) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in [requester, action, resource, detail] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    hex::encode(ctx.finish().as_ref())
}

impl PolicyStore {
    /// Every rule, by name.
    pub async fn list_quorum_rules(&self) -> Result<Vec<QuorumRule>> {
        crate::cache::through(
            self.access_cache(),
            |c| &c.rules,
            (),
            || self.load_quorum_rules(),
        )
        .await
    }

    async fn load_quorum_rules(&self) -> Result<Vec<QuorumRule>> {
        let rows = sqlx::query(
            "SELECT name, action, bucket_pattern, approvals, approver_roles, ttl_secs FROM pol_quorum_rules ORDER BY name",
        )
        .fetch_all(self.read_pool())
        .await?;
        rows.iter()
            .map(|r| {
                let roles: String = r.get(4);
                Ok(QuorumRule {
                    name: r.get(0),
                    action: r.get(1),
                    bucket_pattern: r.get(2),
                    approvals: u32::try_from(r.get::<i64, _>(3)).unwrap_or(u32::MAX),
                    approver_roles: serde_json::from_str(&roles)
                        .map_err(|e| Error::Database(format!("corrupt rule: {e}")))?,
                    ttl_secs: u64::try_from(r.get::<i64, _>(5)).unwrap_or(0),
                })
            })
            .collect()
    }

    /// The strictest rule covering `action` on `bucket` (matching the action or one of its
    /// [`covering_actions`]).
    pub async fn matching_rule(
        &self,
        action: &str,
        bucket: Option<&str>,
    ) -> Result<Option<QuorumRule>> {
        let names = covering_actions(action);
        Ok(self
            .list_quorum_rules()
            .await?
            .into_iter()
            .filter(|r| names.iter().any(|a| r.matches(a, bucket)))
            .max_by_key(|r| (r.approvals, r.ttl_secs)))
    }

    /// Creates or replaces a rule, itself gated as [`CHANGE_QUORUM_RULE`] on the rule name
    /// by the rules in force (`Err(ApprovalRequired)` until approved).
    pub async fn set_quorum_rule(
        &self,
        by: &Identity,
        rule: &QuorumRule,
        now_ms: i64,
    ) -> Result<()> {
        let _changed = self.writing();
        rule.validate()?;
        let detail = serde_json::to_string(rule).map_err(|e| Error::Invalid(e.to_string()))?;
        self.gate(
            by,
            CHANGE_QUORUM_RULE,
            None,
            &rule.name,
            &format!("set {detail}"),
            now_ms,
        )
        .await?;
        let roles = serde_json::to_string(&rule.approver_roles)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        sqlx::query(
            "INSERT INTO pol_quorum_rules (name, action, bucket_pattern, approvals, approver_roles, ttl_secs, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO UPDATE SET action = excluded.action, \
             bucket_pattern = excluded.bucket_pattern, approvals = excluded.approvals, \
             approver_roles = excluded.approver_roles, ttl_secs = excluded.ttl_secs",
        )
        .bind(&rule.name)
        .bind(&rule.action)
        .bind(&rule.bucket_pattern)
        .bind(i64::from(rule.approvals))
        .bind(roles)
        .bind(i64::try_from(rule.ttl_secs).unwrap_or(i64::MAX))
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Removes a rule, gated like [`PolicyStore::set_quorum_rule`].
    pub async fn delete_quorum_rule(&self, by: &Identity, name: &str, now_ms: i64) -> Result<()> {
        let _changed = self.writing();
        if !self
            .list_quorum_rules()
            .await?
            .iter()
            .any(|r| r.name == name)
        {
            return Err(Error::NotFound(format!("quorum rule {name}")));
        }
        self.gate(by, CHANGE_QUORUM_RULE, None, name, "delete", now_ms)
            .await?;
        sqlx::query("DELETE FROM pol_quorum_rules WHERE name = $1")
            .bind(name)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The quorum gate. `Ok(())` when no rule covers the request, or when an
    /// approved request with the same requester/action/resource/detail exists:
    /// it is consumed (exactly once). Otherwise the pending request (created now
    /// if there is none; retries return the same one) is named in
    /// `Err(ApprovalRequired)`.
    pub async fn gate(
        &self,
        requester: &Identity,
        action: &str,
        bucket: Option<&str>,
        resource: &str,
        detail: &str,
        now_ms: i64,
    ) -> Result<()> {
        let Some(rule) = self.matching_rule(action, bucket).await? else {
            return Ok(());
        };
        let fp = fingerprint(&requester.principal, action, resource, detail);
        let row = sqlx::query(
            "SELECT id, state FROM pol_approvals WHERE fingerprint = $1 AND expires_ms > $2 \
             AND state IN ('pending', 'approved') ORDER BY created_ms DESC LIMIT 1",
        )
        .bind(&fp)
        .bind(now_ms)
        .fetch_optional(self.pool())
        .await?;
        if let Some(r) = row {
            let id: String = r.get(0);
            let state: String = r.get(1);
            if state == "approved" {
                let n = sqlx::query(
                    "UPDATE pol_approvals SET state = 'consumed', consumed_ms = $1 WHERE id = $2 AND state = 'approved'",
                )
                .bind(now_ms)
                .bind(&id)
                .execute(self.pool())
                .await?
                .rows_affected();
                if n == 1 {
                    return Ok(());
                }
            } else {
                let needed =
                    sqlx::query_scalar::<_, i64>("SELECT needed FROM pol_approvals WHERE id = $1")
                        .bind(&id)
                        .fetch_one(self.pool())
                        .await?;
                return Err(Error::ApprovalRequired {
                    approval_id: id,
                    rule: rule.name,
                    needed: u32::try_from(needed).unwrap_or(u32::MAX),
                });
            }
        }
        let a = self
            .insert_approval(requester, &rule, action, resource, &fp, now_ms)
            .await?;
        Err(Error::ApprovalRequired {
            approval_id: a,
            rule: rule.name,
            needed: rule.approvals,
        })
    }

    /// Asks for approval ahead of time (admin API `POST /approvals`): returns the
    /// pending or approved request for this exact operation, creating one if needed.
    pub async fn request_approval(
        &self,
        requester: &Identity,
        action: &str,
        bucket: Option<&str>,
        resource: &str,
        detail: &str,
        now_ms: i64,
    ) -> Result<Approval> {
        let Some(rule) = self.matching_rule(action, bucket).await? else {
            return Err(Error::Conflict(format!("no quorum rule covers {action}")));
        };
        let fp = fingerprint(&requester.principal, action, resource, detail);
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT id FROM pol_approvals WHERE fingerprint = $1 AND expires_ms > $2 \
             AND state IN ('pending', 'approved') ORDER BY created_ms DESC LIMIT 1",
        )
        .bind(&fp)
        .bind(now_ms)
        .fetch_optional(self.pool())
        .await?;
        let id = match existing {
            Some(id) => id,
            None => {
                self.insert_approval(requester, &rule, action, resource, &fp, now_ms)
                    .await?
            }
        };
        self.get_approval(&id, now_ms)
            .await?
            .ok_or_else(|| Error::NotFound(format!("approval {id}")))
    }

    async fn insert_approval(
        &self,
        requester: &Identity,
        rule: &QuorumRule,
        action: &str,
        resource: &str,
        fp: &str,
        now_ms: i64,
    ) -> Result<String> {
        let id = format!("apr-{}", hex::encode(random_bytes::<10>()?));
        let ttl_ms = i64::try_from(rule.ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO pol_approvals (id, rule, requester, tenant, action, resource, fingerprint, needed, \
             approver_roles, state, created_ms, expires_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11)",
        )
        .bind(&id)
        .bind(&rule.name)
        .bind(&requester.principal)
        .bind(&requester.tenant)
        .bind(action)
        .bind(resource)
        .bind(fp)
        .bind(i64::from(rule.approvals))
        .bind(serde_json::to_string(&rule.approver_roles).map_err(|e| Error::Invalid(e.to_string()))?)
        .bind(now_ms)
        .bind(now_ms.saturating_add(ttl_ms))
        .execute(self.pool())
        .await?;
        tracing::info!(approval = %id, rule = %rule.name, requester = %requester.principal, action, resource, "approval requested");
        Ok(id)
    }

    fn approval_from_row(r: &sqlx::any::AnyRow, votes: Vec<Vote>, now_ms: i64) -> Result<Approval> {
        let roles: String = r.get("approver_roles");
        let expires_ms: i64 = r.get("expires_ms");
        let mut state = ApprovalState::parse(r.get::<String, _>("state").as_str());
        if matches!(state, ApprovalState::Pending | ApprovalState::Approved) && now_ms >= expires_ms
        {
            state = ApprovalState::Expired;
        }
        Ok(Approval {
            id: r.get("id"),
            rule: r.get("rule"),
            requester: r.get("requester"),
            tenant: r.get("tenant"),
            action: r.get("action"),
            resource: r.get("resource"),
            needed: u32::try_from(r.get::<i64, _>("needed")).unwrap_or(u32::MAX),
            approver_roles: serde_json::from_str(&roles)
                .map_err(|e| Error::Database(format!("corrupt approval: {e}")))?,
            state,
            votes,
            created_ms: r.get("created_ms"),
            expires_ms,
        })
    }

    async fn votes(&self, id: &str) -> Result<Vec<Vote>> {
        let rows = sqlx::query(
            "SELECT approver, decision, at_ms FROM pol_approval_votes WHERE approval_id = $1 ORDER BY at_ms, approver",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| Vote {
                approver: r.get(0),
                decision: r.get(1),
                at_ms: r.get(2),
            })
            .collect())
    }

    /// One approval request.
    pub async fn get_approval(&self, id: &str, now_ms: i64) -> Result<Option<Approval>> {
        let row = sqlx::query("SELECT * FROM pol_approvals WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        match row {
            None => Ok(None),
            Some(r) => {
                let votes = self.votes(id).await?;
                Ok(Some(Self::approval_from_row(&r, votes, now_ms)?))
            }
        }
    }

    /// Approval requests, newest first, optionally of one tenant and/or state.
    pub async fn list_approvals(
        &self,
        tenant: Option<&str>,
        state: Option<ApprovalState>,
        now_ms: i64,
    ) -> Result<Vec<Approval>> {
        let rows = sqlx::query(
            "SELECT * FROM pol_approvals WHERE ($1 IS NULL OR tenant = $1) ORDER BY created_ms DESC, id",
        )
        .bind(tenant)
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            let id: String = r.get("id");
            let a = Self::approval_from_row(r, self.votes(&id).await?, now_ms)?;
            if state.is_none_or(|s| s == a.state) {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// Records `approver`'s approval; the request becomes approved at M distinct approvals.
    pub async fn approve(&self, id: &str, approver: &Identity, now_ms: i64) -> Result<Approval> {
        self.vote(id, approver, "approve", now_ms).await
    }

    /// Records `approver`'s rejection; the request becomes rejected.
    pub async fn reject(&self, id: &str, approver: &Identity, now_ms: i64) -> Result<Approval> {
        self.vote(id, approver, "reject", now_ms).await
    }

    /// Records `approver`'s `decision` (`approve` / `reject`) on the pending request `id` and
    /// decides the request when the decision settles it.
    async fn vote(
        &self,
        id: &str,
        approver: &Identity,
        decision: &str,
        now_ms: i64,
    ) -> Result<Approval> {
        let a = self
            .get_approval(id, now_ms)
            .await?
            .ok_or_else(|| Error::NotFound(format!("approval {id}")))?;
        match a.state {
            ApprovalState::Pending => {}
            ApprovalState::Expired => return Err(Error::Expired(id.to_owned())),
            s => return Err(Error::Conflict(format!("approval {id} is {}", s.as_str()))),
        }
        self.check_approver(&a, approver).await?;
        let mut tx = self.pool().begin().await?;
        let ins = sqlx::query(
            "INSERT INTO pol_approval_votes (approval_id, approver, decision, at_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(&approver.principal)
        .bind(decision)
        .bind(now_ms)
        .execute(&mut *tx)
        .await;
        match ins {
            Ok(_) => {}
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                return Err(Error::Conflict(format!(
                    "{} has already voted on {id}",
                    approver.principal
                )));
            }
            Err(e) => return Err(e.into()),
        }
        if decision == "reject" {
            sqlx::query("UPDATE pol_approvals SET state = 'rejected', decided_ms = $1 WHERE id = $2 AND state = 'pending'")
                .bind(now_ms)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        } else {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pol_approval_votes WHERE approval_id = $1 AND decision = 'approve'",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            if n >= i64::from(a.needed) {
                sqlx::query("UPDATE pol_approvals SET state = 'approved', decided_ms = $1 WHERE id = $2 AND state = 'pending'")
                    .bind(now_ms)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        tracing::info!(approval = %id, approver = %approver.principal, decision, "approval vote");
        self.get_approval(id, now_ms)
            .await?
            .ok_or_else(|| Error::NotFound(format!("approval {id}")))
    }

    /// Who may vote on `a`: not its requester; an enabled principal of its tenant (or of the
    /// default tenant) that has held, since before the request was opened, one of its approver
    /// roles.
    async fn check_approver(&self, a: &Approval, approver: &Identity) -> Result<()> {
        if approver.principal == a.requester {
            return Err(Error::Forbidden(
                "the requester cannot approve its own request".into(),
            ));
        }
        // the approver as the store knows it now, not as the caller's credentials describe it
        let rec = self
            .get_principal(&approver.principal)
            .await?
            .filter(|p| !p.disabled)
            .ok_or_else(|| Error::Forbidden("approver is not an enabled principal".into()))?;
        if rec.tenant != a.tenant && rec.tenant != DEFAULT_TENANT {
            return Err(Error::Forbidden("approver is in another tenant".into()));
        }
        if rec.created_ms >= a.created_ms || rec.role_since_ms >= a.created_ms {
            return Err(Error::Forbidden(
                "approver must have held its role since before the request was opened".into(),
            ));
        }
        let holds = rec.builtin_role().is_some_and(|r| {
            a.approver_roles
                .iter()
                .any(|n| Role::parse(n).ok() == Some(r))
        });
        if !holds {
            return Err(Error::Forbidden(format!(
                "approver must hold one of the roles {}",
                a.approver_roles.join(", ")
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::sealer::AesGcmSealer;

    fn who(name: &str, role: Role) -> Identity {
        Identity {
            principal: name.into(),
            tenant: DEFAULT_TENANT.into(),
            role: Some(role),
            access_key_id: String::new(),
        }
    }

    async fn setup() -> PolicyStore {
        // with the access cache, as the gateway serves: rule changes must still act at once
        let s = PolicyStore::in_memory(Arc::new(AesGcmSealer::random().unwrap()))
            .await
            .unwrap()
            .with_access_cache();
        s.bootstrap(None).await.unwrap();
        // approvers are checked against the store: they exist, with their role, before any
        // request of these tests is opened (the tests' clock starts a minute from now)
        for (name, role) in [
            ("req", Role::SuperAdmin),
            ("a1", Role::SuperAdmin),
            ("a2", Role::SuperAdmin),
            ("mgr", Role::Manager),
        ] {
            s.create_principal(name, "user", DEFAULT_TENANT, Some(role))
                .await
                .unwrap();
        }
        s
    }

    fn start() -> i64 {
        crate::now_ms() + 60_000
    }

    fn rule(name: &str, action: &str, bucket: &str, m: u32) -> QuorumRule {
        QuorumRule {
            name: name.into(),
            action: action.into(),
            bucket_pattern: bucket.into(),
            approvals: m,
            approver_roles: vec!["superadmin".into()],
            ttl_secs: 60,
        }
    }

    fn approval_id(e: Error) -> String {
        match e {
            Error::ApprovalRequired { approval_id, .. } => approval_id,
            other => panic!("expected ApprovalRequired, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn full_flow_self_duplicate_exactly_once() {
        let s = setup().await;
        let (req, a1, a2, mgr) = (
            who("req", Role::SuperAdmin),
            who("a1", Role::SuperAdmin),
            who("a2", Role::SuperAdmin),
            who("mgr", Role::Manager),
        );
        let t = start();
        s.set_quorum_rule(&req, &rule("fin", "s3:DeleteObject", "finance-*", 2), t)
            .await
            .unwrap();
        // Not covered: other bucket, other action.
        s.gate(&req, "s3:DeleteObject", Some("hr"), "hr/x", "", t)
            .await
            .unwrap();
        s.gate(
            &req,
            "s3:PutObject",
            Some("finance-1"),
            "finance-1/x",
            "",
            t,
        )
        .await
        .unwrap();
        // Covered: AccessDenied naming the request; idempotent on retry.
        let id = approval_id(
            s.gate(
                &req,
                "s3:DeleteObject",
                Some("finance-1"),
                "finance-1/x",
                "",
                t,
            )
            .await
            .unwrap_err(),
        );
        let again = approval_id(
            s.gate(
                &req,
                "s3:DeleteObject",
                Some("finance-1"),
                "finance-1/x",
                "",
                t + 5,
            )
            .await
            .unwrap_err(),
        );
        assert_eq!(id, again);
        // A different key is a different request.
        let other = approval_id(
            s.gate(
                &req,
                "s3:DeleteObject",
                Some("finance-1"),
                "finance-1/y",
                "",
                t,
            )
            .await
            .unwrap_err(),
        );
        assert_ne!(id, other);
        // The requester cannot approve; a Manager does not hold the role.
        assert!(matches!(
            s.approve(&id, &req, t + 1).await,
            Err(Error::Forbidden(_))
        ));
        assert!(matches!(
            s.approve(&id, &mgr, t + 1).await,
            Err(Error::Forbidden(_))
        ));
        let a = s.approve(&id, &a1, t + 2).await.unwrap();
        assert_eq!(a.state, ApprovalState::Pending);
        // A duplicate approval does not count twice.
        assert!(matches!(
            s.approve(&id, &a1, t + 3).await,
            Err(Error::Conflict(_))
        ));
        assert_eq!(
            approval_id(
                s.gate(
                    &req,
                    "s3:DeleteObject",
                    Some("finance-1"),
                    "finance-1/x",
                    "",
                    t + 3
                )
                .await
                .unwrap_err()
            ),
            id
        );
        let a = s.approve(&id, &a2, t + 4).await.unwrap();
        assert_eq!(a.state, ApprovalState::Approved);
        assert_eq!(a.votes.len(), 2);
        // Another principal's identical request is not covered by this approval.
        assert!(
            s.gate(
                &a1,
                "s3:DeleteObject",
                Some("finance-1"),
                "finance-1/x",
                "",
                t + 5
            )
            .await
            .is_err()
        );
        // Exactly once.
        s.gate(
            &req,
            "s3:DeleteObject",
            Some("finance-1"),
            "finance-1/x",
            "",
            t + 5,
        )
        .await
        .unwrap();
        let next = approval_id(
            s.gate(
                &req,
                "s3:DeleteObject",
                Some("finance-1"),
                "finance-1/x",
                "",
                t + 6,
            )
            .await
            .unwrap_err(),
        );
        assert_ne!(next, id);
        assert_eq!(
            s.get_approval(&id, t + 6).await.unwrap().unwrap().state,
            ApprovalState::Consumed
        );
        assert!(matches!(
            s.approve(&id, &mgr, t + 6).await,
            Err(Error::Conflict(_))
        ));
    }

    #[tokio::test]
    async fn expired_requests_and_approvals() {
        let s = setup().await;
        let (req, a1) = (who("req", Role::SuperAdmin), who("a1", Role::SuperAdmin));
        let t = start();
        s.set_quorum_rule(&req, &rule("db", "s3:DeleteBucket", "*", 1), t)
            .await
            .unwrap();
        let id = approval_id(
            s.gate(&req, "s3:DeleteBucket", Some("b"), "b", "", t)
                .await
                .unwrap_err(),
        );
        // Approving after T fails.
        assert!(matches!(
            s.approve(&id, &a1, t + 60_000).await,
            Err(Error::Expired(_))
        ));
        assert_eq!(
            s.get_approval(&id, t + 60_000)
                .await
                .unwrap()
                .unwrap()
                .state,
            ApprovalState::Expired
        );
        // An approval that was granted but not used before T does not let the request through.
        let id2 = approval_id(
            s.gate(&req, "s3:DeleteBucket", Some("b"), "b", "", t + 61_000)
                .await
                .unwrap_err(),
        );
        assert_ne!(id, id2);
        s.approve(&id2, &a1, t + 62_000).await.unwrap();
        let id3 = approval_id(
            s.gate(
                &req,
                "s3:DeleteBucket",
                Some("b"),
                "b",
                "",
                t + 61_000 + 60_000,
            )
            .await
            .unwrap_err(),
        );
        assert_ne!(id3, id2);
        // Rejection is final for that request.
        let r = s.reject(&id3, &a1, t + 130_000).await.unwrap();
        assert_eq!(r.state, ApprovalState::Rejected);
        let list = s
            .list_approvals(None, Some(ApprovalState::Rejected), t + 130_000)
            .await
            .unwrap();
        assert_eq!(list.len(), 1);
        assert!(matches!(
            s.approve("apr-none", &a1, t).await,
            Err(Error::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn rule_change_is_gated_by_current_rules() {
        let s = setup().await;
        let (req, a1) = (who("req", Role::SuperAdmin), who("a1", Role::SuperAdmin));
        let t = start();
        // The first rule on rule changes is not gated (nothing covers it yet).
        s.set_quorum_rule(&req, &rule("guard", CHANGE_QUORUM_RULE, "*", 1), t)
            .await
            .unwrap();
        // Now weakening or removing it needs approval.
        let weaker = QuorumRule {
            approvals: 1,
            ttl_secs: 5,
            ..rule("guard", CHANGE_QUORUM_RULE, "*", 1)
        };
        let id = approval_id(s.set_quorum_rule(&req, &weaker, t + 1).await.unwrap_err());
        let del = approval_id(
            s.delete_quorum_rule(&req, "guard", t + 1)
                .await
                .unwrap_err(),
        );
        assert_ne!(id, del);
        assert_eq!(s.list_quorum_rules().await.unwrap()[0].ttl_secs, 60);
        s.approve(&id, &a1, t + 2).await.unwrap();
        // Approved change applies once; a different change still needs its own approval.
        s.set_quorum_rule(&req, &weaker, t + 3).await.unwrap();
        assert_eq!(s.list_quorum_rules().await.unwrap()[0].ttl_secs, 5);
        let other = QuorumRule {
            ttl_secs: 7,
            ..weaker.clone()
        };
        assert!(matches!(
            s.set_quorum_rule(&req, &other, t + 4).await,
            Err(Error::ApprovalRequired { .. })
        ));
        assert!(matches!(
            s.delete_quorum_rule(&req, "nope", t).await,
            Err(Error::NotFound(_))
        ));
        // Validation.
        let bad = QuorumRule {
            approvals: 0,
            ..rule("x", "s3:DeleteBucket", "*", 1)
        };
        assert!(matches!(
            s.set_quorum_rule(&req, &bad, t).await,
            Err(Error::Invalid(_))
        ));
        let bad = QuorumRule {
            action: "DeleteBucket".into(),
            ..rule("x", "s3:DeleteBucket", "*", 1)
        };
        assert!(matches!(
            s.set_quorum_rule(&req, &bad, t).await,
            Err(Error::Invalid(_))
        ));
        let bad = QuorumRule {
            approver_roles: vec!["root".into()],
            ..rule("x", "s3:DeleteBucket", "*", 1)
        };
        assert!(matches!(
            s.set_quorum_rule(&req, &bad, t).await,
            Err(Error::UnknownRole(_))
        ));
    }

    #[tokio::test]
    async fn approvers_must_predate_the_request_with_their_role() {
        let s = setup().await;
        let req = who("req", Role::SuperAdmin);
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let t = crate::now_ms();
        s.set_quorum_rule(&req, &rule("fin", "s3:DeleteObject", "*", 1), t)
            .await
            .unwrap();
        let id = approval_id(
            s.gate(&req, "s3:DeleteObject", Some("b"), "b/k", "", t)
                .await
                .unwrap_err(),
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        // created after the request was opened, with the right role: refused
        s.create_principal("late", "user", DEFAULT_TENANT, Some(Role::SuperAdmin))
            .await
            .unwrap();
        let late = who("late", Role::SuperAdmin);
        let e = s.approve(&id, &late, t + 10).await.unwrap_err();
        assert!(
            matches!(&e, Error::Forbidden(m) if m.contains("before the request")),
            "{e:?}"
        );
        // existed before, but promoted after: refused; its claimed role does not matter
        s.set_role("mgr", Some(Role::SuperAdmin)).await.unwrap();
        let e = s.approve(&id, &who("mgr", Role::SuperAdmin), t + 10).await;
        assert!(matches!(e, Err(Error::Forbidden(_))), "{e:?}");
        // an identity the store does not know, and a disabled principal: refused
        let e = s
            .approve(&id, &who("ghost", Role::SuperAdmin), t + 10)
            .await;
        assert!(matches!(e, Err(Error::Forbidden(_))), "{e:?}");
        s.set_disabled("a2", true).await.unwrap();
        let e = s.approve(&id, &who("a2", Role::SuperAdmin), t + 10).await;
        assert!(matches!(e, Err(Error::Forbidden(_))), "{e:?}");
        // a1 held superadmin since before: accepted
        let a = s
            .approve(&id, &who("a1", Role::SuperAdmin), t + 10)
            .await
            .unwrap();
        assert_eq!(a.state, ApprovalState::Approved);
        // a no-op role change keeps role_since
        let before = s.get_principal("a1").await.unwrap().unwrap().role_since_ms;
        s.set_role("a1", Some(Role::SuperAdmin)).await.unwrap();
        assert_eq!(
            s.get_principal("a1").await.unwrap().unwrap().role_since_ms,
            before
        );
    }

    #[tokio::test]
    async fn change_role_rules_gate_every_privilege_change() {
        let s = setup().await;
        let req = who("req", Role::SuperAdmin);
        let t = start();
        for a in [CREATE_PRINCIPAL, ENABLE_PRINCIPAL, GRANT, ISSUE_KEY] {
            s.gate(&req, a, None, "x", "", t).await.unwrap();
        }
        s.set_quorum_rule(&req, &rule("roles", CHANGE_ROLE, "*", 2), t)
            .await
            .unwrap();
        for a in [
            CREATE_PRINCIPAL,
            ENABLE_PRINCIPAL,
            GRANT,
            ISSUE_KEY,
            CHANGE_ROLE,
        ] {
            let e = s.gate(&req, a, None, "x", "", t).await.unwrap_err();
            assert!(
                matches!(e, Error::ApprovalRequired { needed: 2, .. }),
                "{a}: {e:?}"
            );
        }
        // actions of their own are not covered by a ChangeRole rule
        s.gate(&req, SET_LIMITS, None, "x", "", t).await.unwrap();
        s.gate(&req, "s3:DeleteObject", Some("b"), "b/k", "", t)
            .await
            .unwrap();
    }
}
