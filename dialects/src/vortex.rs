//! The Vortex dialect (`../shared/seeds/`). To be written.
