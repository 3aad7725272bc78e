//! HTTP routes of the query API.

mod health;
mod invites;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(health::healthz).service(invites::list).service(invites::detail);
}
