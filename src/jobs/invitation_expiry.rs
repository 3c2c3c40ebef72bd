//! Invitation expiry (`INVITATION_EXPIRY_CRON`, hourly by default): pending invitations whose
//! `expiresAt` has passed become `expired`; each change is published as `invitation-update`,
//! and the organization's admins are sent `notification:new`.
//!
//! The status change is a conditional update (`WHERE status = 'pending'`), so of several
//! runs racing for one invitation (instances of a cluster) exactly one publishes it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::directory::{self, InvitationStatus};
use crate::invitations::{self, InvitationUpdate};
use crate::metrics::Metrics;
use crate::notifications::{self, Recipient};
use crate::publication::Source;
use crate::publish::Publisher;

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExpiryReport {
    pub expired: Vec<String>,
    pub admins_notified: usize,
}

/// Expires every pending invitation whose `expiresAt` is before `now`.
pub async fn run_once(
    db: &DatabaseConnection,
    publisher: &Publisher,
    now: DateTime<Utc>,
) -> Result<ExpiryReport, sea_orm::DbErr> {
    let mut report = ExpiryReport::default();
    for invitation in directory::pending_invitations_expired_before(db, now).await? {
        if !directory::mark_invitation_expired(db, &invitation.id, now).await? {
            continue; // another run got it first
        }
        let update = InvitationUpdate {
            invitation_id: invitation.id.clone(),
            status: InvitationStatus::Expired,
            used_at: invitation.used_at,
            revoked_at: invitation.revoked_at,
            expires_at: invitation.expires_at,
        };
        if let Err(e) = invitations::publish(publisher, &update, Source::Job).await {
            // The status change is committed and was delivered; only its history entry is missing.
            tracing::warn!(error = %e, invitation = %invitation.id, "expiry not recorded in history");
        }
        if let Some(org) = &invitation.organization_id {
            for admin in directory::organization_admins(db, org).await? {
                let notification = json!({
                    "id": uuid::Uuid::now_v7().to_string(),
                    "type": "invitation_expired",
                    "title": "Invitation expired",
                    "message": format!("The invitation for {} has expired", invitation.email.as_deref().unwrap_or("a vendor")),
                    "data": {"invitationId": invitation.id, "organizationId": org},
                    "createdAt": now.to_rfc3339(),
                });
                if notifications::notify(publisher, &Recipient::User(admin.id.clone()), notification, Source::Job)
                    .await
                    .is_ok()
                {
                    report.admins_notified += 1;
                }
            }
        }
        report.expired.push(invitation.id);
    }
    Ok(report)
}

/// Runs at every tick of the configured schedule until `shutdown`.
pub async fn schedule(
    db: DatabaseConnection,
    publisher: Publisher,
    metrics: Arc<Metrics>,
    cron: croner::Cron,
    shutdown: CancellationToken,
) {
    loop {
        let now = Utc::now();
        let Ok(next) = cron.find_next_occurrence(&now, false) else {
            tracing::error!("invitation expiry: the schedule has no next occurrence; job stopped");
            return;
        };
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        // One instance of a cluster runs each tick.
        if !publisher.claim(&format!("invitation-expiry:{}", next.timestamp()), Duration::from_secs(3600)).await {
            continue;
        }
        let result = run_once(&db, &publisher, Utc::now()).await;
        metrics.job_ran("invitation_expiry", result.is_ok());
        match result {
            Ok(report) => tracing::info!(
                expired = report.expired.len(),
                admins_notified = report.admins_notified,
                "invitation expiry ran"
            ),
            Err(e) => tracing::error!(error = %e, "invitation expiry failed"),
        }
    }
}
