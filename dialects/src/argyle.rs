//! The Argyle dialect (`../shared/seeds/`). To be written.
