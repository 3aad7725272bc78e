//! The dialects rsvp speaks besides its own API: three vendors' invitation APIs (the seed
//! documents), so that their existing clients work unchanged. Each module holds a dialect's
//! request and response types and pure functions mapping them to and from the native commands
//! and read models; the services' handlers do the I/O and call these. No dialect has events or
//! rules of its own: the rules live in `events`.

pub mod argyle;
pub mod omneo;
pub mod vortex;
