//! RFC 9457 problem details: the one shape every error response of rsvp takes.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use std::fmt;

/// Base of every problem `type` URI; the last segment is the stable machine-readable code.
pub const TYPE_BASE: &str = "https://rsvp.dev/problems/";

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The stable code, repeated for clients that prefer not to parse the `type` URI.
    pub code: String,
    /// The request field at fault (a JSON pointer-ish dotted path or a parameter name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip)]
    pub retry_after: Option<u64>,
    /// The methods a path takes, sent as `Allow` with a 405.
    #[serde(skip)]
    pub allow: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, title: impl Into<String>) -> Self {
        Self {
            type_uri: format!("{TYPE_BASE}{code}"),
            title: title.into(),
            status: status.as_u16(),
            detail: None,
            code: code.to_owned(),
            field: None,
            retry_after: None,
            allow: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 400 for a malformed request part, naming it.
    pub fn bad_request(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid-request", "the request is invalid")
            .with_field(field)
            .with_detail(detail)
    }

    /// 422 for a well-formed request whose content breaks a rule, naming the field.
    pub fn invalid_field(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-field", "a field is invalid")
            .with_field(field)
            .with_detail(detail)
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "a valid API key is required")
            .with_detail("send the key as `Authorization: Bearer <key>`")
    }

    pub fn forbidden(scope: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "the credential lacks a scope")
            .with_detail(format!("this call needs the `{scope}` scope"))
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", format!("{what} not found"))
    }

    /// An unexpected failure. The cause is logged by the caller and never sent.
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
    }

    /// 429: the caller's key is over its rate limit; come back after `retry_after` seconds.
    pub fn too_many_requests(retry_after: u64) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", "too many requests for this key")
            .with_detail(format!("this key is over its rate limit; retry in {retry_after} s"))
            .with_retry_after(retry_after)
    }

    /// 405 for a known path asked with a method it does not take; `allow` lists those it takes.
    pub fn method_not_allowed(method: &str, allow: &[&str]) -> Self {
        let mut problem =
            Self::new(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "the method is not allowed here")
                .with_detail(format!("this path does not take {method}; it takes {}", allow.join(", ")));
        problem.allow = Some(allow.join(", "));
        problem
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the service cannot take this request now")
            .with_detail(detail)
            .with_retry_after(1)
    }
}

impl Problem {
    /// This problem's status and headers (`Retry-After`, `Allow`) with another body: a dialect
    /// whose clients expect their vendor's error JSON rather than problem+json.
    pub fn response_with(&self, body: &impl Serialize) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut res = HttpResponse::build(status);
        if let Some(secs) = self.retry_after {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if let Some(allow) = &self.allow {
            res.insert_header((header::ALLOW, allow.as_str()));
        }
        res.json(body)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.code)?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if let Some(secs) = self.retry_after {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if let Some(allow) = &self.allow {
            res.insert_header((header::ALLOW, allow.as_str()));
        }
        if self.status == 401 {
            res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        res.body(serde_json::to_string(self).expect("problems always serialize"))
    }
}

/// A problem answered in a dialect's own error format (a vendor's clients read their vendor's
/// error bodies): the problem's status and headers (`Retry-After`, `Allow`), the body `render`
/// makes of it, and for a 401 the `WWW-Authenticate` challenge of the dialect's credential form.
#[derive(Debug)]
pub struct DialectError {
    pub problem: Problem,
    pub render: fn(&Problem) -> serde_json::Value,
    pub challenge: &'static str,
}

impl fmt::Display for DialectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.problem, f)
    }
}

impl ResponseError for DialectError {
    fn status_code(&self) -> StatusCode {
        self.problem.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        if let Some(secs) = self.problem.retry_after {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if let Some(allow) = &self.problem.allow {
            res.insert_header((header::ALLOW, allow.as_str()));
        }
        if self.problem.status == 401 {
            res.insert_header((header::WWW_AUTHENTICATE, self.challenge));
        }
        res.json((self.render)(&self.problem))
    }
}

/// Parses a JSON request body; every error is a 4xx problem naming the failing field by its
/// path (`targets[0].value`). The content type must be JSON.
pub fn parse_json<T: serde::de::DeserializeOwned>(req: &actix_web::HttpRequest, bytes: &[u8]) -> Result<T, Problem> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .is_some_and(|m| m == "application/json" || m.ends_with("+json"));
    if !is_json {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "the body must be JSON",
        )
        .with_field("body")
        .with_detail("send `Content-Type: application/json`"));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = match path.as_str() {
            "." | "" => json_error_field(&inner.to_string()),
            p => p.to_owned(),
        };
        Problem::bad_request(field, inner.to_string())
    })
}

/// A JSON request body (see [`parse_json`]) together with its raw bytes (for fingerprints).
/// The size limit comes from `web::PayloadConfig` (413 past it).
pub struct JsonBody<T>(pub T, pub actix_web::web::Bytes);

impl<T: serde::de::DeserializeOwned + 'static> actix_web::FromRequest for JsonBody<T> {
    type Error = actix_web::Error;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &actix_web::HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let bytes = actix_web::web::Bytes::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let bytes = bytes.await.map_err(|e| {
                let too_large = e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE;
                actix_web::Error::from(if too_large {
                    Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "the request body is too large")
                        .with_field("body")
                } else {
                    Problem::bad_request("body", e.to_string())
                })
            })?;
            let value = if bytes.is_empty() {
                // An empty body reads as `{}`: commands whose fields are all optional need none.
                parse_json_or_empty::<T>(&req, &bytes)?
            } else {
                parse_json(&req, &bytes)?
            };
            Ok(JsonBody(value, bytes))
        })
    }
}

fn parse_json_or_empty<T: serde::de::DeserializeOwned>(
    _req: &actix_web::HttpRequest,
    _bytes: &[u8],
) -> Result<T, Problem> {
    let de = &mut serde_json::Deserializer::from_slice(b"{}");
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.into_inner();
        Problem::bad_request(json_error_field(&inner.to_string()), format!("a JSON body is required: {inner}"))
    })
}

pub fn query_config() -> actix_web::web::QueryConfig {
    actix_web::web::QueryConfig::default().error_handler(|err, _req| {
        let text = err.to_string();
        Problem::bad_request(json_error_field(&text), text).into()
    })
}

pub fn path_config() -> actix_web::web::PathConfig {
    actix_web::web::PathConfig::default()
        .error_handler(|err, _req| Problem::bad_request("path", err.to_string()).into())
}

/// Pulls the field name out of serde's messages ("missing field `targets`", "unknown field `x`").
fn json_error_field(message: &str) -> String {
    message.split('`').nth(1).filter(|f| !f.is_empty() && !f.contains(' ')).unwrap_or("body").to_owned()
}

/// The paths an OpenAPI document declares and the methods each takes: what tells a 405 (a known
/// path, another method) from a 404 (no such path) when no route matched. The document is the
/// list, so a path cannot be served without being documented and still answer 405 correctly.
pub struct DocumentedRoutes(Vec<(actix_web::dev::ResourceDef, Vec<&'static str>)>);

impl DocumentedRoutes {
    /// Reads `paths` of an OpenAPI document; panics on a document that is not JSON (it is
    /// compiled in, and a test serves it).
    pub fn from_openapi(document: &str) -> Self {
        const METHODS: [&str; 8] = ["GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"];
        let document: serde_json::Value = serde_json::from_str(document).expect("the OpenAPI document is JSON");
        let paths = document["paths"].as_object().expect("the OpenAPI document has paths");
        let routes = paths
            .iter()
            .map(|(path, item)| {
                let methods =
                    METHODS.into_iter().filter(|m| item.get(m.to_ascii_lowercase()).is_some()).collect::<Vec<_>>();
                (actix_web::dev::ResourceDef::new(path.as_str()), methods)
            })
            .collect();
        Self(routes)
    }

    /// The methods `path` takes, in a stable order; empty for an unknown path.
    pub fn allowed(&self, path: &str) -> Vec<&'static str> {
        let mut methods: Vec<&'static str> =
            self.0.iter().filter(|(def, _)| def.is_match(path)).flat_map(|(_, m)| m.iter().copied()).collect();
        methods.sort_unstable();
        methods.dedup();
        methods
    }

    /// The answer when no route matched: 405 with `Allow` for a documented path, else 404.
    pub fn fallback(&self, req: &actix_web::HttpRequest) -> Problem {
        match self.allowed(req.path()).as_slice() {
            [] => Problem::not_found("route"),
            allow => Problem::method_not_allowed(req.method().as_str(), allow),
        }
    }
}
