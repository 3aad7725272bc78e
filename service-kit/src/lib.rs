//! Glue shared by rsvp's services. Nothing here knows about invites: the domain lives in
//! `events`, the services in their own crates.

pub mod api_keys;
pub mod auth;
pub mod credential;
pub mod db;
pub mod edge;
pub mod health;
pub mod kafka;
pub mod metrics;
pub mod omneo;
pub mod problem;
pub mod reshard;
pub mod secrets;
pub mod telemetry;
pub mod vault;
pub mod webhooks;
pub mod whole;

pub use auth::{Authenticated, Authenticator, Scope};
pub use problem::Problem;
