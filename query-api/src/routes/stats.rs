//! `GET /v1/stats`: counts by status and the funnel created → sent → delivered → viewed →
//! clicked → accepted, with the list's filters and a time range, bucketed by day or hour.

use crate::params::{Filters, Pairs, FILTERS};
use crate::startup::AppState;
use actix_web::{get, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use service_kit::{Authenticated, Problem, Scope};
use sqlx::{Postgres, QueryBuilder, Row};

const FUNNEL: &str = "count(*) AS created, count(i.first_sent_at) AS sent, count(i.delivered_at) AS delivered, \
    count(i.viewed_at) AS viewed, count(i.clicked_at) AS clicked, count(i.accepted_at) AS accepted";

fn funnel(row: &sqlx::postgres::PgRow) -> Value {
    let n = |c: &str| row.get::<i64, _>(c);
    json!({
        "created": n("created"), "sent": n("sent"), "delivered": n("delivered"),
        "viewed": n("viewed"), "clicked": n("clicked"), "accepted": n("accepted"),
    })
}

#[get("/v1/stats")]
pub async fn stats(req: HttpRequest, auth: Authenticated, state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    auth.require(Scope::InvitesRead)?;
    let pairs = Pairs::parse(req.query_string())?;
    let mut known = FILTERS.to_vec();
    known.extend(["from", "to", "bucket"]);
    pairs.only(&known)?;
    let mut filters = Filters::parse(&pairs)?;
    // `from`/`to` are the time range on creation, as in the list's created_after/before.
    filters.created_after = pairs.time("from")?.or(filters.created_after);
    filters.created_before = pairs.time("to")?.or(filters.created_before);
    let bucket = match pairs.one("bucket")? {
        None | Some("day") => "day",
        Some("hour") => "hour",
        Some(_) => return Err(Problem::bad_request("bucket", "day or hour")),
    };
    let scoped = |select: &str| {
        let mut q: QueryBuilder<Postgres> =
            QueryBuilder::new(format!("SELECT {select} FROM invites i WHERE i.tenant_id = "));
        q.push_bind(*auth.tenant_id.as_uuid());
        if let Some(inviter) = &auth.inviter_id {
            q.push(" AND i.inviter_id = ").push_bind(inviter.clone());
        }
        filters.push_sql(&mut q);
        q
    };
    let internal = |e: sqlx::Error| {
        tracing::error!(error = ?e, "stats query failed");
        Problem::internal()
    };
    // Statuses as read: an open invite past its expiry counts as expired.
    let mut q = scoped(
        "CASE WHEN i.open AND coalesce(i.expires_at <= now(), false) THEN 'expired' ELSE i.status END AS s, count(*) AS n",
    );
    q.push(" GROUP BY 1 ORDER BY 1");
    let by_status: serde_json::Map<String, Value> = q
        .build()
        .fetch_all(&state.pool)
        .await
        .map_err(internal)?
        .iter()
        .map(|r| (r.get::<String, _>("s"), json!(r.get::<i64, _>("n"))))
        .collect();
    let totals = scoped(FUNNEL).build().fetch_one(&state.pool).await.map_err(internal)?;
    let mut q = scoped(&format!("date_trunc('{bucket}', i.created_at, 'UTC') AS bucket, {FUNNEL}"));
    q.push(" GROUP BY 1 ORDER BY 1");
    let buckets: Vec<Value> = q
        .build()
        .fetch_all(&state.pool)
        .await
        .map_err(internal)?
        .iter()
        .map(|r| {
            let mut b = funnel(r);
            b["start"] = json!(r.get::<DateTime<Utc>, _>("bucket"));
            b
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "by_status": by_status,
        "funnel": funnel(&totals),
        "bucket": bucket,
        "buckets": buckets,
    })))
}
