//! `GET /v1/stats`: counts by status and the funnel created → sent → delivered → viewed →
//! clicked → accepted, with the list's filters and a time range, bucketed by day or hour.

use crate::params::{Filters, Pairs, FILTERS};
use crate::startup::AppState;
use actix_web::{route, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use service_kit::{Authenticated, Problem, Scope};
use sqlx::{Postgres, QueryBuilder, Row};

/// The funnel's stages, as columns of [`FUNNEL`].
const STAGES: [&str; 6] = ["created", "sent", "delivered", "viewed", "clicked", "accepted"];

const FUNNEL: &str = "count(*) AS created, count(first_sent_at) AS sent, count(delivered_at) AS delivered, \
    count(viewed_at) AS viewed, count(clicked_at) AS clicked, count(accepted_at) AS accepted";

fn funnel(row: &sqlx::postgres::PgRow) -> Value {
    let n = |c: &str| row.get::<i64, _>(c);
    json!({
        "created": n("created"), "sent": n("sent"), "delivered": n("delivered"),
        "viewed": n("viewed"), "clicked": n("clicked"), "accepted": n("accepted"),
    })
}

#[route("/v1/stats", method = "GET", method = "HEAD")]
pub async fn stats(req: HttpRequest, auth: Authenticated, state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    auth.require(Scope::InvitesRead)?;
    let pairs = Pairs::parse(req.query_string())?;
    let mut known = FILTERS.to_vec();
    known.extend(["from", "to", "bucket"]);
    pairs.only(&known)?;
    let mut filters = Filters::parse(&pairs, &state.secrets.for_tenant(auth.tenant_id))?;
    // `from`/`to` are the time range on creation, as in the list's created_after/before.
    filters.created_after = pairs.time("from")?.or(filters.created_after);
    filters.created_before = pairs.time("to")?.or(filters.created_before);
    let bucket = match pairs.one("bucket")? {
        None | Some("day") => "day",
        Some("hour") => "hour",
        Some(_) => return Err(Problem::bad_request("bucket", "day or hour")),
    };
    // One statement, one scan: grouped by status and, separately, by bucket (GROUPING SETS); the
    // funnel's totals are the buckets' sums. Statuses as read: an open invite past its expiry
    // counts as expired.
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT s, bucket, GROUPING(s) = 1 AS is_bucket, {FUNNEL} FROM (SELECT {status} AS s, \
         date_trunc('{bucket}', i.created_at, 'UTC') AS bucket, i.first_sent_at, i.delivered_at, i.viewed_at, \
         i.clicked_at, i.accepted_at FROM invites i WHERE i.tenant_id = ",
        status = events::derived::sql::status("i", "now()")
    ));
    q.push_bind(*auth.tenant_id.as_uuid());
    if let Some(inviter) = &auth.inviter_id {
        q.push(" AND i.inviter_id = ").push_bind(inviter.clone());
    }
    filters.push_sql(&mut q);
    q.push(") i GROUP BY GROUPING SETS ((s), (bucket)) ORDER BY 3, 1, 2");
    let rows = q.build().fetch_all(&state.pool).await.map_err(|e| {
        tracing::error!(error = ?e, "stats query failed");
        Problem::internal()
    })?;
    let (bucket_rows, status_rows): (Vec<_>, Vec<_>) = rows.iter().partition(|r| r.get::<bool, _>("is_bucket"));
    let by_status: serde_json::Map<String, Value> =
        status_rows.iter().map(|r| (r.get::<String, _>("s"), json!(r.get::<i64, _>("created")))).collect();
    let mut totals = [0i64; 6];
    let buckets: Vec<Value> = bucket_rows
        .iter()
        .map(|r| {
            for (total, column) in totals.iter_mut().zip(STAGES) {
                *total += r.get::<i64, _>(column);
            }
            let mut b = funnel(r);
            b["start"] = json!(r.get::<DateTime<Utc>, _>("bucket"));
            b
        })
        .collect();
    let totals: serde_json::Map<String, Value> =
        STAGES.iter().zip(totals).map(|(c, n)| (c.to_string(), json!(n))).collect();
    Ok(HttpResponse::Ok().json(json!({
        "by_status": by_status,
        "funnel": totals,
        "bucket": bucket,
        "buckets": buckets,
    })))
}
