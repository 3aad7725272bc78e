//! `GET /v1/me/invites`: the Omneo dialect's list (`dialects::omneo`), the calling inviter's
//! invites and quota, from the same read models as the native API.

use crate::startup::AppState;
use actix_web::{route, web, HttpRequest, HttpResponse};
use dialects::omneo::{self, Error};
use service_kit::Scope;

#[route("/v1/me/invites", method = "GET", method = "HEAD")]
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let (auth, inviter) = match service_kit::omneo::authenticate(&req).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if let Err(problem) = auth.require(Scope::InvitesRead) {
        return service_kit::omneo::respond_problem(problem);
    }
    let now = chrono::Utc::now();
    let read = async {
        let invites = service_kit::omneo::invites(&state.pool, auth.tenant_id, &inviter, None).await?;
        let definitions = service_kit::omneo::definitions(&state.pool, auth.tenant_id, &inviter).await?;
        Ok::<_, sqlx::Error>((invites, definitions))
    };
    match read.await {
        Ok((invites, definitions)) => {
            let invites: Vec<_> = invites.into_iter().map(|(facts, _)| facts).collect();
            HttpResponse::Ok().json(omneo::list(&invites, &definitions, now))
        }
        Err(e) => {
            tracing::error!(error = ?e, "omneo list failed");
            service_kit::omneo::respond(Error::message(503, "The invites cannot be read right now."))
        }
    }
}
