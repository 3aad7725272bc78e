//! Personal data in events: which fields hold it, whose it is, and the keyed values that stand
//! in for it wherever a rule must match on it. The one place that says so; sealing (encryption),
//! the key store and erasure are built on it elsewhere, and all go through [`for_each`].
//!
//! - A **subject** is whose data a field is: an email address or phone number (named by its
//!   blind index, never by its value), or, for an invite with no such target, the invite itself.
//!   Each subject has its own data key; destroying it erases every field sealed under it.
//! - Every target that is an email address or a phone number carries its **blind index**: an
//!   HMAC of its normalized value under a server secret. Rules that match on a target (accept by
//!   target, `accepted_elsewhere`, list filters) compare blind indexes, never values.
//! - What is personal: targets' values and names, recipient names, the inviter's name and email,
//!   the message, reply-to addresses, template variables, the metadata values the client marks
//!   personal (`personal_metadata`), a delivery's
//!   target and provider detail, an accepted target, and the reason given for a decline, revoke
//!   or expiry. What is not: ids the client chose (inviter id, scope ids, internal user ids),
//!   definitions, times, statuses and counts: lists and counts stay whole after an erasure.
//! - The public link token is never in an event: it is derived from a server secret and the
//!   invite id ([`Secrets::link_token`]), so it can be checked and sent again without a record.

use crate::event::{InviteCreated, InviteEvent, TargetKind};
use crate::ids::{InviteId, LinkToken};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use uuid::Uuid;

/// Every sealed value starts with this; a command's strings may not (see [`crate::validate`]).
pub const SEALED_PREFIX: &str = "rsvp-sealed:";
/// What a sealed value reads as once its subject's key is destroyed.
pub const ERASED: &str = "[erased]";

/// Whether a string is a sealed value.
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(SEALED_PREFIX)
}

/// The server secrets the domain computes with: the blind-index key and the link-token key.
/// Pure functions of their inputs; they come in through [`crate::Context`] like the time does.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    index_key: [u8; 32],
    link_key: [u8; 32],
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secrets(..)")
    }
}

type HmacSha256 = Hmac<Sha256>;

impl Secrets {
    pub fn new(index_key: [u8; 32], link_key: [u8; 32]) -> Self {
        Self { index_key, link_key }
    }

    /// The secrets as one tenant's rules use them: its blind indexes are its own (the same
    /// address has unrelated indexes in two tenants); link tokens stay global, since a link
    /// names its invite alone.
    pub fn for_tenant(&self, tenant: crate::TenantId) -> Secrets {
        let mut mac = HmacSha256::new_from_slice(&self.index_key).expect("any key length");
        mac.update(b"rsvp-tenant-index-v1");
        mac.update(tenant.as_uuid().as_bytes());
        Secrets { index_key: mac.finalize().into_bytes().into(), link_key: self.link_key }
    }

    /// The blind index of an address: the same for every spelling that matches (case of an
    /// email, punctuation of a phone number), different per kind, unguessable without the key.
    pub fn blind_index(&self, kind: TargetKind, value: &str) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.index_key).expect("any key length");
        mac.update(kind.as_str().as_bytes());
        mac.update(&[0]);
        mac.update(crate::event::normalize_target(kind, value).as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// What a target of this kind and value is matched on: the blind index of an address, the
    /// normalized value of an id ([`crate::Target::match_key`] of the target it names).
    pub fn match_key(&self, kind: TargetKind, value: &str) -> String {
        match kind {
            TargetKind::Email | TargetKind::Phone => self.blind_index(kind, value),
            TargetKind::Internal | TargetKind::Share => crate::event::normalize_target(kind, value),
        }
    }

    fn link_mac(&self, invite: InviteId) -> [u8; 16] {
        let mut mac = HmacSha256::new_from_slice(&self.link_key).expect("any key length");
        mac.update(b"rsvp-link-v1");
        mac.update(invite.as_uuid().as_bytes());
        let full = mac.finalize().into_bytes();
        full[..16].try_into().expect("16 of 32 bytes")
    }

    /// The invite's public link token: its id and a 128-bit MAC of it, URL-safe (43 characters).
    pub fn link_token(&self, invite: InviteId) -> LinkToken {
        let mut bytes = [0u8; 32];
        bytes[..16].copy_from_slice(invite.as_uuid().as_bytes());
        bytes[16..].copy_from_slice(&self.link_mac(invite));
        LinkToken::new(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The invite a derived token names, if its MAC holds (compared in constant time).
    pub fn invite_of_token(&self, token: &str) -> Option<InviteId> {
        use subtle::ConstantTimeEq;
        if token.len() != 43 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        let id = InviteId::from_uuid(Uuid::from_slice(&bytes[..16]).ok()?);
        bool::from(self.link_mac(id).ct_eq(&bytes[16..])).then_some(id)
    }
}

/// An invite's link token: derived, or, for an invite created before tokens left the log, the
/// one its event carries.
pub fn link_token_of(id: InviteId, created: &InviteCreated, secrets: &Secrets) -> LinkToken {
    created.token.clone().unwrap_or_else(|| secrets.link_token(id))
}

/// Whose a personal field is: the key it is sealed under.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// An email address or phone number, by its blind index.
    Address(String),
    /// An invite with no address among its targets.
    Invite(InviteId),
}

impl Subject {
    /// How the key store names it.
    pub fn key(&self) -> String {
        match self {
            Self::Address(index) => format!("a:{index}"),
            Self::Invite(id) => format!("i:{id}"),
        }
    }
}

/// A personal field, to read or replace.
pub enum Field<'a> {
    Text(&'a mut String),
    /// A metadata value: any JSON.
    Json(&'a mut serde_json::Value),
}

/// Whose the invite-wide fields (message, variables, metadata, ...) are: the first target that
/// is an address, else the inviter's email, else the invite.
pub fn primary_subject(id: InviteId, created: &InviteCreated) -> Subject {
    created
        .targets
        .iter()
        .find_map(|t| t.index.clone())
        .or_else(|| created.inviter.email_index.clone())
        .map_or(Subject::Invite(id), Subject::Address)
}

/// Every subject whose key holds some of the invite's data.
pub fn subjects_of(id: InviteId, created: &InviteCreated) -> Vec<Subject> {
    let mut all: Vec<Subject> = created.targets.iter().filter_map(|t| t.index.clone().map(Subject::Address)).collect();
    all.extend(created.inviter.email_index.clone().map(Subject::Address));
    all.push(primary_subject(id, created));
    all.sort();
    all.dedup();
    all
}

/// Calls `f` with every personal field of an invite's event and its subject. `created` is the
/// invite's creation (ignored for the creation itself, which names its own subjects).
pub fn for_each(
    id: InviteId,
    created: Option<&InviteCreated>,
    event: &mut InviteEvent,
    f: &mut dyn FnMut(&Subject, Field<'_>),
) {
    let primary = match (&*event, created) {
        (InviteEvent::Created(c), _) => primary_subject(id, c),
        (_, Some(c)) => primary_subject(id, c),
        (_, None) => Subject::Invite(id),
    };
    let of = |index: &Option<String>| index.clone().map_or_else(|| primary.clone(), Subject::Address);
    let text = |f: &mut dyn FnMut(&Subject, Field<'_>), subject: &Subject, value: &mut Option<String>| {
        if let Some(v) = value {
            f(subject, Field::Text(v));
        }
    };
    match event {
        InviteEvent::Created(c) => {
            let c = &mut **c;
            let target_subjects: Vec<Subject> = c.targets.iter().map(|t| of(&t.index)).collect();
            for (t, subject) in c.targets.iter_mut().zip(&target_subjects) {
                if t.index.is_some() {
                    f(subject, Field::Text(&mut t.value));
                }
                text(f, subject, &mut t.name);
            }
            for (i, name) in c.recipient_names.iter_mut().enumerate() {
                f(target_subjects.get(i).unwrap_or(&primary), Field::Text(name));
            }
            let inviter = of(&c.inviter.email_index);
            text(f, &inviter, &mut c.inviter.name);
            text(f, &inviter, &mut c.inviter.email);
            text(f, &primary, &mut c.message);
            // A reply-to address is an address like a target: its own subject, so erasing it
            // erases it (the invite's first address's key held it, and kept it, before).
            for (i, address) in c.reply_to.iter_mut().enumerate() {
                let subject = c.reply_to_index.get(i).cloned().map_or_else(|| primary.clone(), Subject::Address);
                f(&subject, Field::Text(address));
            }
            for value in c.template_variables.values_mut() {
                f(&primary, Field::Text(value));
            }
            for (key, value) in c.metadata.iter_mut() {
                if c.personal_metadata.contains(key) {
                    f(&primary, Field::Json(value));
                }
            }
        }
        InviteEvent::Sent(s) => f(&of(&s.target_index), Field::Text(&mut s.target)),
        InviteEvent::Accepted(a) => {
            if a.target_index.is_some() {
                text(f, &of(&a.target_index), &mut a.target);
            }
        }
        InviteEvent::DeliveryStatusChanged(d) => text(f, &primary, &mut d.detail),
        InviteEvent::Declined(c) | InviteEvent::Revoked(c) | InviteEvent::Expired(c) => {
            text(f, &primary, &mut c.reason)
        }
        InviteEvent::Engaged(_) | InviteEvent::AcceptedElsewhere(_) | InviteEvent::PersonalDataErased(_) => {}
    }
}

/// Whether an invite created before blind indexes lacks some (see [`index_legacy`]).
pub fn needs_index(event: &InviteEvent) -> bool {
    let InviteEvent::Created(c) = event else { return false };
    c.targets.iter().any(|t| t.index.is_none() && matches!(t.kind, TargetKind::Email | TargetKind::Phone))
        || (c.inviter.email_index.is_none() && c.inviter.email.is_some())
        || (c.reply_to_index.is_empty() && !c.reply_to.is_empty())
}

/// Gives the addresses of an invite created before blind indexes their index, with its tenant's
/// [`Secrets::for_tenant`] (the writer and `rsvp-reseal` call it on what they read, so old and
/// new invites match alike; the read models of such invites match once `rsvp-reseal` copied them).
pub fn index_legacy(event: &mut InviteEvent, secrets: &Secrets) {
    let InviteEvent::Created(c) = event else { return };
    for t in &mut c.targets {
        if t.index.is_none() && matches!(t.kind, TargetKind::Email | TargetKind::Phone) && !is_sealed(&t.value) {
            t.index = Some(secrets.blind_index(t.kind, &t.value));
        }
    }
    if let (None, Some(email)) = (&c.inviter.email_index, &c.inviter.email) {
        if !is_sealed(email) {
            c.inviter.email_index = Some(secrets.blind_index(TargetKind::Email, email));
        }
    }
    if c.reply_to_index.is_empty() && !c.reply_to.is_empty() && !c.reply_to.iter().any(|a| is_sealed(a)) {
        c.reply_to_index = c.reply_to.iter().map(|a| secrets.blind_index(TargetKind::Email, a)).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{InvitationType, Inviter, Target};

    fn secrets() -> Secrets {
        Secrets::new([7; 32], [9; 32])
    }

    #[test]
    fn a_blind_index_matches_every_spelling_of_an_address_and_differs_per_key_and_kind() {
        let s = secrets();
        let a = s.blind_index(TargetKind::Email, " Ada@Example.COM ");
        assert_eq!(a, s.blind_index(TargetKind::Email, "ada@example.com"));
        assert_ne!(a, Secrets::new([8; 32], [9; 32]).blind_index(TargetKind::Email, "ada@example.com"));
        assert_ne!(a, s.blind_index(TargetKind::Email, "bob@example.com"));
        assert!(!a.contains("ada"));
        let p = s.blind_index(TargetKind::Phone, "+1 (555) 010-9999");
        assert_eq!(p, s.blind_index(TargetKind::Phone, "+15550109999"));
    }

    #[test]
    fn a_link_token_names_its_invite_and_any_change_to_it_is_refused() {
        let s = secrets();
        let id = InviteId::from_uuid(Uuid::now_v7());
        let token = s.link_token(id);
        assert_eq!(token.as_str().len(), 43);
        assert_eq!(s.invite_of_token(token.as_str()), Some(id));
        assert_eq!(Secrets::new([7; 32], [1; 32]).invite_of_token(token.as_str()), None, "another server's key");
        let mut forged = token.as_str().as_bytes().to_vec();
        forged[40] = if forged[40] == b'A' { b'B' } else { b'A' };
        assert_eq!(s.invite_of_token(std::str::from_utf8(&forged).unwrap()), None);
        let other = InviteId::from_uuid(Uuid::now_v7());
        let mut swapped = URL_SAFE_NO_PAD.decode(token.as_str()).unwrap();
        swapped[..16].copy_from_slice(other.as_uuid().as_bytes());
        assert_eq!(s.invite_of_token(&URL_SAFE_NO_PAD.encode(swapped)), None, "another invite's id");
        assert_eq!(s.invite_of_token("short"), None);
    }

    fn created(s: &Secrets) -> InviteCreated {
        let target = |kind, value: &str, name: Option<&str>| Target {
            kind,
            value: value.into(),
            name: name.map(Into::into),
            index: matches!(kind, TargetKind::Email | TargetKind::Phone).then(|| s.blind_index(kind, value)),
        };
        InviteCreated {
            inviter: Inviter {
                id: "u1".into(),
                name: Some("Alice".into()),
                email: Some("alice@example.com".into()),
                email_index: Some(s.blind_index(TargetKind::Email, "alice@example.com")),
            },
            targets: vec![
                target(TargetKind::Internal, "user-9", Some("Nine")),
                target(TargetKind::Email, "bob@example.com", Some("Bob")),
                target(TargetKind::Phone, "+15550100", None),
            ],
            recipient_names: vec!["N".into(), "B".into(), "P".into(), "extra".into()],
            message: Some("hi".into()),
            invitation_type: InvitationType::SingleUse,
            expires_at: None,
            scopes: vec![],
            reply_to: vec!["help@example.com".into()],
            reply_to_index: vec![s.blind_index(TargetKind::Email, "help@example.com")],
            metadata: [("plan".to_owned(), serde_json::json!({"n": 1})), ("flow".to_owned(), serde_json::json!("f-1"))]
                .into(),
            personal_metadata: vec!["plan".into()],
            template_variables: [("x".to_owned(), "y".to_owned())].into(),
            widget_id: None,
            flow_id: None,
            template_id: None,
            landing_url: None,
            definition_id: None,
            token: None,
            source: None,
            subtype: None,
        }
    }

    #[test]
    fn every_personal_field_is_named_with_its_subject_and_ids_are_not() {
        let s = secrets();
        let id = InviteId::from_uuid(Uuid::now_v7());
        let mut event = InviteEvent::Created(Box::new(created(&s)));
        let mut seen = Vec::new();
        for_each(id, None, &mut event, &mut |subject, field| {
            let value = match field {
                Field::Text(t) => t.clone(),
                Field::Json(v) => v.to_string(),
            };
            seen.push((subject.clone(), value));
        });
        let bob = Subject::Address(s.blind_index(TargetKind::Email, "bob@example.com"));
        let phone = Subject::Address(s.blind_index(TargetKind::Phone, "+15550100"));
        let alice = Subject::Address(s.blind_index(TargetKind::Email, "alice@example.com"));
        let of = |v: &str| seen.iter().find(|(_, x)| x == v).map(|(s, _)| s.clone());
        assert_eq!(of("bob@example.com"), Some(bob.clone()));
        assert_eq!(of("Bob"), Some(bob.clone()));
        assert_eq!(of("B"), Some(bob.clone()), "a recipient name goes with its target");
        assert_eq!(of("+15550100"), Some(phone.clone()));
        assert_eq!(of("P"), Some(phone));
        assert_eq!(of("Alice"), Some(alice.clone()));
        assert_eq!(of("alice@example.com"), Some(alice));
        // The invite-wide fields go with the first address among the targets.
        for v in ["hi", "y", "{\"n\":1}", "extra", "Nine", "N"] {
            assert_eq!(of(v), Some(bob.clone()), "{v}");
        }
        // A reply-to address is its own subject, as an address among the targets is.
        let help = Subject::Address(s.blind_index(TargetKind::Email, "help@example.com"));
        assert_eq!(of("help@example.com"), Some(help));
        assert_eq!(of("user-9"), None, "an internal user id is the client's id, not personal data");
        assert_eq!(of("\"f-1\""), None, "metadata not marked personal");
        assert_eq!(of("u1"), None);
    }

    #[test]
    fn an_invite_without_an_address_is_its_own_subject() {
        let s = secrets();
        let id = InviteId::from_uuid(Uuid::now_v7());
        let mut c = created(&s);
        c.targets.truncate(1);
        c.inviter.email = None;
        c.inviter.email_index = None;
        assert_eq!(primary_subject(id, &c), Subject::Invite(id));
        assert_eq!(subjects_of(id, &c), vec![Subject::Invite(id)]);
    }

    #[test]
    fn legacy_addresses_get_their_index_and_sealed_ones_are_left_alone() {
        let s = secrets();
        let mut c = created(&s);
        for t in &mut c.targets {
            t.index = None;
        }
        c.inviter.email_index = None;
        c.reply_to_index.clear();
        c.targets[2].value = format!("{SEALED_PREFIX}v1:x:y");
        let mut event = InviteEvent::Created(Box::new(c));
        index_legacy(&mut event, &s);
        let InviteEvent::Created(c) = event else { unreachable!() };
        assert_eq!(c.targets[0].index, None, "internal");
        assert_eq!(c.targets[1].index, Some(s.blind_index(TargetKind::Email, "bob@example.com")));
        assert_eq!(c.targets[2].index, None, "sealed: no value to index");
        assert_eq!(c.inviter.email_index, Some(s.blind_index(TargetKind::Email, "alice@example.com")));
        assert_eq!(c.reply_to_index, vec![s.blind_index(TargetKind::Email, "help@example.com")]);
    }
}
