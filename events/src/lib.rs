//! The invite domain of rsvp, pure: event types, their envelope, and the rules of an
//! invitation's life as functions (`decide`, `evolve`) with no I/O and no clock reads.
//! Time and ids come in through [`Context`].

pub mod envelope;
pub mod event;
pub mod ids;
pub mod invite;

pub use envelope::{Actor, ActorKind, DecodeError, Envelope, EventMeta};
pub use event::{InvitationType, InviteCreated, InviteEvent, Inviter, Scope, Target, TargetKind};
pub use ids::{DefinitionId, InviteId, LinkToken, TenantId};
pub use invite::{decide, evolve, Command, Context, CreateInvite, InviteState, InviteStatus, Rejection};
