//! HTTP routes of the command API.

mod health;
mod invites;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(health::healthz).service(health::readyz).service(invites::create);
}
