//! The ways a delivery travels: email over SMTP (lettre) and SMS through an HTTP provider. Both
//! say whether a failure is permanent (the address is refused: `bounced`) or may pass (tried
//! again later, `failed` once the tries run out).

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// Why a send did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The receiving side refused it for good (an SMTP 5xx, an invalid number).
    Permanent(String),
    /// It may work later (a 4xx, a refused connection, a timeout).
    Transient(String),
    /// It cannot be sent as it stands, whatever the address (a template that fails on this
    /// invite's data, no SMS provider): `failed` at once, never called a bounce.
    Unsendable(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Permanent(e) => write!(f, "refused: {e}"),
            Self::Transient(e) => write!(f, "failed for now: {e}"),
            Self::Unsendable(e) => write!(f, "cannot be sent: {e}"),
        }
    }
}

/// One email to send.
pub struct Email<'a> {
    /// The delivery id: the Message-ID, so a send repeated after a crash is the same message.
    pub id: uuid::Uuid,
    pub to: &'a str,
    pub to_name: Option<&'a str>,
    pub reply_to: Option<&'a str>,
    pub rendered: &'a events::message::RenderedEmail,
}

pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The domain of Message-IDs: the sender's.
    domain: String,
}

impl Smtp {
    pub fn new(url: &str, from: &str) -> anyhow::Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| anyhow::anyhow!("RSVP_SMTP_URL is not an SMTP URL: {e}"))?
            .timeout(Some(Duration::from_secs(20)))
            .build();
        let from: Mailbox = from.parse().map_err(|e| anyhow::anyhow!("RSVP_MAIL_FROM is not an address: {e}"))?;
        let domain = from.email.domain().to_owned();
        Ok(Self { transport, from, domain })
    }

    /// The Message-ID of a delivery: `<{delivery id}@{sender's domain}>`.
    pub fn message_id(&self, id: uuid::Uuid) -> String {
        format!("<{id}@{}>", self.domain)
    }

    pub async fn send(&self, email: &Email<'_>) -> Result<(), SendError> {
        let to = email
            .to
            .parse::<lettre::Address>()
            .map_err(|e| SendError::Permanent(format!("the address {:?} cannot take email: {e}", email.to)))?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(email.to_name.map(str::to_owned), to))
            .subject(email.rendered.subject.clone())
            .message_id(Some(self.message_id(email.id)));
        if let Some(reply_to) = email.reply_to.and_then(|r| r.parse::<Mailbox>().ok()) {
            builder = builder.reply_to(reply_to);
        }
        let message = builder
            .multipart(MultiPart::alternative_plain_html(email.rendered.text.clone(), email.rendered.html.clone()))
            .map_err(|e| SendError::Permanent(format!("the message cannot be built: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
            Err(e) => Err(SendError::Transient(e.to_string())),
        }
    }
}

/// An SMS provider over HTTP: `POST {url}` with `{"id", "to", "text"}` (JSON) and the bearer
/// token; any 2xx is sent; 400, 404, 410 and 422 are permanent refusals (a number it cannot
/// reach); anything else (408, 429, 5xx, no answer) may pass and is tried again.
pub struct HttpSms {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl HttpSms {
    pub fn new(url: String, token: Option<String>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { client, url, token })
    }

    pub async fn send(&self, id: uuid::Uuid, to: &str, text: &str) -> Result<(), SendError> {
        let mut request = self.client.post(&self.url).json(&serde_json::json!({ "id": id, "to": to, "text": text }));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        // Never the URL (it may hold the provider's credentials) nor the provider's answer (it
        // may quote the message, link and all): what kind of failure, and the status.
        let response =
            request.send().await.map_err(|e| SendError::Transient(format!("the SMS provider: {}", e.without_url())))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let error = format!("the SMS provider answered {status}");
        match status.as_u16() {
            400 | 404 | 410 | 422 => Err(SendError::Permanent(error)),
            _ => Err(SendError::Transient(error)),
        }
    }
}
