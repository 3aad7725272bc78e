//! The Omneo dialect (`../shared/seeds/`). To be written.
