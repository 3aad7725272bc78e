//! The derived status of an invite, defined once: the order of the stages an open invite moves
//! through, the stage each event moves it to, and expiry (a function of time, never an event
//! alone). The domain (`Invite::status_at`), the projector's SQL, the query API's filters,
//! statistics and responses, and every dialect call these; [`sql`] renders the same definitions
//! as PostgreSQL expressions over the read model's `status`, `open` and `expires_at` columns, so
//! there is no second copy to drift (a test in `tests/` evaluates both sides on every case).

use crate::{DeliveryStatus, EngagementKind, InviteEvent, InviteStatus};
use chrono::{DateTime, Utc};

/// The stages an open invite moves through, in order; `accepted` last, for a multi-use invite
/// that was accepted and is still open. A stage never goes back.
pub const STAGES: [InviteStatus; 9] = [
    InviteStatus::Created,
    InviteStatus::Queued,
    InviteStatus::Sending,
    InviteStatus::Sent,
    InviteStatus::Delivered,
    InviteStatus::Opened,
    InviteStatus::Unfurled,
    InviteStatus::Shared,
    InviteStatus::Accepted,
];

/// 1-based position among [`STAGES`]; 0 for a status that is not a stage (as SQL's
/// `coalesce(array_position(...), 0)`).
fn rank(status: InviteStatus) -> usize {
    STAGES.iter().position(|s| *s == status).map_or(0, |p| p + 1)
}

/// `current` moved up to `stage` when `stage` is further along; otherwise `current`.
pub fn advance(current: InviteStatus, stage: InviteStatus) -> InviteStatus {
    if rank(current) < rank(stage) {
        stage
    } else {
        current
    }
}

/// The stage an event moves an open invite up to, if any (closing events close it instead).
pub fn stage_of(event: &InviteEvent) -> Option<InviteStatus> {
    match event {
        InviteEvent::Sent(_) => Some(InviteStatus::Queued),
        InviteEvent::DeliveryStatusChanged(e) => match e.status {
            DeliveryStatus::Sending => Some(InviteStatus::Sending),
            DeliveryStatus::Sent => Some(InviteStatus::Sent),
            DeliveryStatus::Delivered => Some(InviteStatus::Delivered),
            DeliveryStatus::Opened => Some(InviteStatus::Opened),
            DeliveryStatus::Queued | DeliveryStatus::Bounced | DeliveryStatus::Failed => None,
        },
        InviteEvent::Engaged(e) => Some(match e.kind {
            EngagementKind::View | EngagementKind::Click => InviteStatus::Opened,
            EngagementKind::Share => InviteStatus::Shared,
            EngagementKind::Unfurl => InviteStatus::Unfurled,
        }),
        _ => None,
    }
}

/// Whether an invite reads as expired at `now`: it was expired by an event, or it is still
/// open and its expiry time has come. `stored` is the status its events alone give (the
/// furthest stage, or how it closed), `open` whether it can still be accepted.
pub fn is_expired(stored: InviteStatus, open: bool, expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    stored == InviteStatus::Expired || (open && expires_at.is_some_and(|at| at <= now))
}

/// The status an invite reads as at `now`: [`is_expired`] overrides the stored status.
pub fn status(stored: InviteStatus, open: bool, expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> InviteStatus {
    if is_expired(stored, open, expires_at, now) {
        InviteStatus::Expired
    } else {
        stored
    }
}

/// The same definitions as PostgreSQL expressions. `row` is a table alias with the read model's
/// `status` (text), `open` (boolean) and `expires_at` (timestamptz) columns; `now` an SQL
/// expression for the time (`now()`, or a bound parameter).
pub mod sql {
    use super::STAGES;

    /// [`STAGES`] as a text array literal.
    pub fn stages() -> String {
        let quoted: Vec<String> = STAGES.iter().map(|s| format!("'{}'", s.as_str())).collect();
        format!("ARRAY[{}]", quoted.join(","))
    }

    /// [`super::advance`]: the text expression `current` moved up to `stage` (NULL: unchanged).
    pub fn advance(current: &str, stage: &str) -> String {
        let stages = stages();
        format!(
            "(CASE WHEN coalesce(array_position({stages}, {current}), 0) < array_position({stages}, {stage}) \
             THEN {stage} ELSE {current} END)"
        )
    }

    /// [`super::is_expired`]: a boolean, never NULL.
    pub fn is_expired(row: &str, now: &str) -> String {
        format!("({row}.status = 'expired' OR ({row}.open AND coalesce({row}.expires_at <= {now}, false)))")
    }

    /// [`super::status`]: the status as read, text.
    pub fn status(row: &str, now: &str) -> String {
        format!("(CASE WHEN {} THEN 'expired' ELSE {row}.status END)", is_expired(row, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stages_are_the_open_statuses_in_order_then_accepted() {
        let open: Vec<_> = InviteStatus::ALL.into_iter().filter(InviteStatus::is_open).collect();
        assert_eq!(STAGES[..STAGES.len() - 1], open[..]);
        assert_eq!(STAGES.last(), Some(&InviteStatus::Accepted));
        assert_eq!(
            sql::stages(),
            "ARRAY['created','queued','sending','sent','delivered','opened','unfurled','shared','accepted']"
        );
    }

    #[test]
    fn a_stage_never_goes_back() {
        for (i, a) in STAGES.iter().enumerate() {
            for (j, b) in STAGES.iter().enumerate() {
                assert_eq!(advance(*a, *b), if j > i { *b } else { *a }, "{a:?} then {b:?}");
            }
        }
    }
}
