//! rsvp's query API: serves dashboards from the PostgreSQL read models the projector keeps.

pub mod config;
pub mod cursor;
pub mod params;
pub mod routes;
pub mod startup;

pub use config::Config;
pub use startup::Application;
