//! HTTP routes of the query API.

mod argyle;
mod health;
mod invites;
mod omneo;
mod stats;
mod vortex;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(health::openapi)
        .service(invites::list)
        .service(invites::history)
        .service(invites::detail)
        .service(stats::stats)
        .service(vortex::by_scope)
        .service(vortex::by_target)
        .service(vortex::one)
        .service(omneo::list)
        .service(argyle::list)
        .service(argyle::one);
}
