//! The invite domain of rsvp, pure: event types, their envelope, and the rules of an
//! invitation's life as functions with no I/O and no clock reads. Time, ids and randomness come
//! in through [`Context`].
//!
//! - [`invite`]: one invitation: `decide(state, command, context)` and `evolve(state, event)`,
//!   with the lifecycle diagram.
//! - [`tenant`]: all invites and definitions of a tenant, and the rules spanning invites.
//! - [`status`]: the canonical status set and the vendors' status vocabularies mapped onto it.
//! - [`event`]: the events, their JSON, and the upcasters that keep old events readable.
//! - [`envelope`]: the metadata around each event and its CloudEvents 1.0 form.
//! - [`personal`]: which fields are personal data and whose, blind indexes, link tokens.
//! - [`chain`]: the hash chains over each stream and each tenant (tamper evidence).
//! - [`rejection`]: why a command is refused, with stable codes.
//! - [`validate`]: what a command's strings, counts and URLs may be, so that every read model
//!   takes every event `decide` produces.

pub mod chain;
pub mod derived;
pub mod envelope;
pub mod event;
pub mod ids;
pub mod invite;
pub mod message;
pub mod personal;
pub mod rejection;
pub mod shard;
pub mod status;
pub mod tenant;
pub mod validate;

pub use envelope::{Actor, ActorKind, DecodeError, Envelope, EventMeta};
pub use event::{
    normalize_target, DefinitionEvent, DefinitionRules, DeliveryMethod, DeliveryStatus, DomainEvent, EngagementKind,
    ErasureReason, InvitationType, InviteCreated, InviteEvent, Inviter, PersonalDataErased, Scope, Target, TargetKind,
};
pub use ids::{DefinitionId, DeliveryId, InviteId, LinkToken, StreamId, TenantId};
pub use invite::{decide, evolve, evolve_owned, Context, CreateInvite, Invite, InviteCommand, InviteState, Lifecycle};
pub use message::MessageTemplates;
pub use personal::Secrets;
pub use rejection::{Rejection, RejectionClass};
pub use shard::shard_of;
pub use status::{InviteStatus, Vendor};
pub use tenant::{Change, Definition, Tenant, TenantCommand};
pub use validate::landing_redirect;
