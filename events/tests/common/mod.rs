//! Given / when / then over the tenant aggregate, with a fixed clock and fresh ids.
#![allow(dead_code)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use events::*;
use uuid::Uuid;

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap()
}

pub fn ctx_at(now: DateTime<Utc>) -> Context {
    Context { now, secrets: secrets(), new_delivery_id: DeliveryId::from_uuid(Uuid::new_v4()), rules: None }
}

/// The server secrets every test world uses.
pub fn secrets() -> Secrets {
    Secrets::new([3; 32], [5; 32])
}

pub fn ctx() -> Context {
    ctx_at(t0())
}

pub fn later(days: i64) -> DateTime<Utc> {
    t0() + Duration::days(days)
}

pub fn email(value: &str) -> Target {
    Target { kind: TargetKind::Email, value: value.into(), name: None, index: None }
}

pub fn scope(id: &str) -> Scope {
    Scope { kind: "workspace".into(), id: id.into(), name: None }
}

pub fn create_for(target: &str) -> CreateInvite {
    CreateInvite {
        inviter: Some(Inviter { id: "ann".into(), name: Some("Ann".into()), email: None, email_index: None }),
        targets: vec![email(target)],
        ..CreateInvite::default()
    }
}

/// A tenant built from events, and the commands under test.
#[derive(Default)]
pub struct World {
    pub tenant: Tenant,
}

impl World {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decides and applies; panics on rejection (a "given" step).
    pub fn given(&mut self, command: TenantCommand) -> Vec<Change> {
        self.given_at(command, t0())
    }

    pub fn given_at(&mut self, command: TenantCommand, now: DateTime<Utc>) -> Vec<Change> {
        let changes = self.tenant.decide(&command, &ctx_at(now)).unwrap_or_else(|e| panic!("given {command:?}: {e}"));
        for c in &changes {
            self.tenant.apply(c.stream, &c.event);
        }
        changes
    }

    pub fn when(&self, command: TenantCommand) -> Result<Vec<Change>, Rejection> {
        self.tenant.decide(&command, &ctx())
    }

    pub fn when_at(&self, command: TenantCommand, now: DateTime<Utc>) -> Result<Vec<Change>, Rejection> {
        self.tenant.decide(&command, &ctx_at(now))
    }

    pub fn create(&mut self, c: CreateInvite) -> InviteId {
        let id = InviteId::from_uuid(Uuid::now_v7());
        self.given(TenantCommand::Invite { invite_id: id, command: InviteCommand::Create(Box::new(c)) });
        id
    }

    pub fn invite(&self, id: InviteId) -> &Invite {
        self.tenant.invite(id).expect("the invite exists")
    }
}

pub fn on(invite_id: InviteId, command: InviteCommand) -> TenantCommand {
    TenantCommand::Invite { invite_id, command }
}

pub fn event_types(changes: &[Change]) -> Vec<&'static str> {
    changes.iter().map(|c| c.event.event_type()).collect()
}
