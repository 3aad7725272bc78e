//! `GET /v1/audit/public-key`: the key auditors verify the log's checkpoints with. Public, so no
//! credential is asked for.

use actix_web::{get, web, HttpResponse};

#[get("/v1/audit/public-key")]
pub async fn public_key(key: web::Data<audit::PublicKey>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "algorithm": "ed25519",
        "public_key": key.to_base64(),
        "key_id": key.key_id(),
    }))
}
