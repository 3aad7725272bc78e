//! Query parameters, parsed by hand: repeated parameters (`status=a&status=b`) and comma lists
//! both count, and every bad or unknown parameter is a 400 naming it. A parameter given is a
//! value: empty values and control characters (a NUL cannot even reach PostgreSQL) are 400s,
//! never read as "no filter" or passed on to the database.

use chrono::{DateTime, Utc};
use events::{InviteStatus, TargetKind};
use service_kit::Problem;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The raw pairs of a query string.
pub struct Pairs(Vec<(String, String)>);

/// `X-Min-Version: <n>` (read-your-writes), when given: the version the command API answered.
pub fn min_version_header(req: &actix_web::HttpRequest) -> Result<Option<u64>, Problem> {
    req.headers()
        .get("x-min-version")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|h| service_kit::whole::parse_u64(h.trim()))
                .ok_or_else(|| Problem::bad_request("X-Min-Version", "must be a whole number from 0 to 2^53 - 1"))
        })
        .transpose()
}

impl Pairs {
    pub fn parse(query: &str) -> Result<Self, Problem> {
        actix_web::web::Query::<Vec<(String, String)>>::from_query(query)
            .map(|q| Self(q.into_inner()))
            .map_err(|e| Problem::bad_request("query", e.to_string()))
    }

    /// Refuses any parameter not in `known`.
    pub fn only(&self, known: &[&str]) -> Result<(), Problem> {
        match self.0.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            Some((k, _)) => Err(Problem::bad_request(k.clone(), "unknown parameter")),
            None => Ok(()),
        }
    }

    /// Every value of a list parameter, repeated or comma-separated; an empty item is a 400.
    pub fn all(&self, name: &str) -> Result<Vec<&str>, Problem> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(|v| checked(name, v.trim_matches(' ')))
            .collect()
    }

    pub fn one(&self, name: &str) -> Result<Option<&str>, Problem> {
        let mut values = self.0.iter().filter(|(k, _)| k == name);
        let first = values.next().map(|(_, v)| v.as_str());
        if values.next().is_some() {
            return Err(Problem::bad_request(name, "give it once"));
        }
        first.map(|v| checked(name, v)).transpose()
    }

    pub fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, Problem> {
        self.one(name)?
            .map(|v| {
                DateTime::parse_from_rfc3339(v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| Problem::bad_request(name, "must be an RFC 3339 time"))
            })
            .transpose()
    }

    pub fn uuid(&self, name: &str) -> Result<Option<Uuid>, Problem> {
        self.one(name)?
            .map(|v| Uuid::parse_str(v).map_err(|_| Problem::bad_request(name, "must be a UUID")))
            .transpose()
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, Problem> {
        self.one(name)?
            .map(|v| match v {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(Problem::bad_request(name, "must be true or false")),
            })
            .transpose()
    }

    pub fn number(&self, name: &str) -> Result<Option<u64>, Problem> {
        self.one(name)?
            .map(|v| {
                service_kit::whole::parse_u64(v)
                    .ok_or_else(|| Problem::bad_request(name, "must be a whole number from 0 to 2^53 - 1"))
            })
            .transpose()
    }

    /// Fingerprint of everything but `cursor`: a cursor is valid only for the query it came from.
    pub fn fingerprint(&self) -> u64 {
        let mut pairs: Vec<&(String, String)> = self.0.iter().filter(|(k, _)| k != "cursor").collect();
        pairs.sort();
        // SHA-256, not `DefaultHasher`: instances built by other compilers must agree on it.
        let mut h = Sha256::new();
        for (k, v) in pairs {
            for part in [k, v] {
                h.update((part.len() as u64).to_le_bytes());
                h.update(part.as_bytes());
            }
        }
        u64::from_le_bytes(h.finalize()[..8].try_into().expect("a SHA-256 digest has 32 bytes"))
    }

    pub fn without(&self, name: &str) -> Vec<(String, String)> {
        self.0.iter().filter(|(k, _)| k != name).cloned().collect()
    }
}

/// A parameter's value as given: not empty, no control characters.
fn checked<'a>(name: &str, value: &'a str) -> Result<&'a str, Problem> {
    if value.is_empty() {
        return Err(Problem::bad_request(name, "must not be empty (leave the parameter out instead)"));
    }
    if value.chars().any(char::is_control) {
        return Err(Problem::bad_request(name, "must not contain control characters"));
    }
    Ok(value)
}

/// The filters shared by the list and the statistics.
#[derive(Debug, Default)]
pub struct Filters {
    pub statuses: Vec<InviteStatus>,
    /// A target as the read model matches it: an address's blind index, an id normalized.
    pub target: Option<String>,
    /// A reply-to address's blind index.
    pub reply_to: Option<String>,
    pub inviter: Option<String>,
    /// Each alone or both: invites with a scope of that type, with that id, or that scope.
    pub scope_type: Option<String>,
    pub scope_id: Option<String>,
    pub definition: Option<Uuid>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    pub expired: Option<bool>,
}

pub const FILTERS: [&str; 10] = [
    "status",
    "target",
    "reply_to",
    "inviter",
    "scope_type",
    "scope_id",
    "definition",
    "created_after",
    "created_before",
    "expired",
];

impl Filters {
    pub fn parse(p: &Pairs, secrets: &events::Secrets) -> Result<Self, Problem> {
        let statuses = p
            .all("status")?
            .into_iter()
            .map(|s| {
                InviteStatus::parse(s).ok_or_else(|| Problem::bad_request("status", format!("unknown status {s:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let target = p.one("target")?.map(|t| {
            let kind = if t.contains('@') {
                TargetKind::Email
            } else if t.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c)) {
                TargetKind::Phone
            } else {
                TargetKind::Internal
            };
            secrets.match_key(kind, t)
        });
        Ok(Self {
            statuses,
            target,
            reply_to: p.one("reply_to")?.map(|r| secrets.blind_index(TargetKind::Email, r)),
            inviter: p.one("inviter")?.map(str::to_owned),
            scope_type: p.one("scope_type")?.map(str::to_owned),
            scope_id: p.one("scope_id")?.map(str::to_owned),
            definition: p.uuid("definition")?,
            created_after: p.time("created_after")?,
            created_before: p.time("created_before")?,
            expired: p.bool("expired")?,
        })
    }

    /// Appends ` AND ...` conditions on table alias `i`.
    pub fn push_sql(&self, q: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>) {
        // Expiry is a function of time: an open invite past its expiry counts as expired.
        let expired_sql = events::derived::sql::is_expired("i", "now()");
        let expired_sql = expired_sql.as_str();
        if !self.statuses.is_empty() {
            let others: Vec<String> =
                self.statuses.iter().filter(|s| **s != InviteStatus::Expired).map(|s| s.as_str().to_owned()).collect();
            let expired = self.statuses.contains(&InviteStatus::Expired);
            // One status is an equality, so `invites_tenant_status` yields the page in order; with
            // `= ANY` PostgreSQL sorts every match, or its generic plan walks the created-at index
            // past the others (measured: 0.05 ms against 10-15 ms for a rare status in 200,000).
            match others.as_slice() {
                [one] => q.push(" AND ((i.status = ").push_bind(one.clone()),
                _ => q.push(" AND ((i.status = ANY(").push_bind(others).push(")"),
            };
            q.push(format!(" AND NOT {expired_sql})"));
            if expired {
                q.push(format!(" OR {expired_sql}"));
            }
            q.push(")");
        }
        if let Some(t) = &self.target {
            q.push(" AND EXISTS (SELECT 1 FROM invite_targets t WHERE t.invite_id = i.invite_id AND t.tenant_id = i.tenant_id AND t.normalized = ")
                .push_bind(t.clone())
                .push(")");
        }
        if let Some(r) = &self.reply_to {
            q.push(" AND EXISTS (SELECT 1 FROM invite_reply_to r WHERE r.invite_id = i.invite_id AND r.tenant_id = i.tenant_id AND r.address = ")
                .push_bind(r.clone())
                .push(")");
        }
        if self.scope_type.is_some() || self.scope_id.is_some() {
            q.push(" AND EXISTS (SELECT 1 FROM invite_scopes s WHERE s.invite_id = i.invite_id AND s.tenant_id = i.tenant_id");
            if let Some(kind) = &self.scope_type {
                q.push(" AND s.scope_type = ").push_bind(kind.clone());
            }
            if let Some(id) = &self.scope_id {
                q.push(" AND s.scope_id = ").push_bind(id.clone());
            }
            q.push(")");
        }
        if let Some(inviter) = &self.inviter {
            q.push(" AND i.inviter_id = ").push_bind(inviter.clone());
        }
        if let Some(d) = self.definition {
            q.push(" AND i.definition_id = ").push_bind(d);
        }
        if let Some(t) = self.created_after {
            q.push(" AND i.created_at >= ").push_bind(t);
        }
        if let Some(t) = self.created_before {
            q.push(" AND i.created_at < ").push_bind(t);
        }
        match self.expired {
            Some(true) => {
                q.push(format!(" AND {expired_sql}"));
            }
            Some(false) => {
                q.push(format!(" AND NOT {expired_sql}"));
            }
            None => {}
        }
    }
}
