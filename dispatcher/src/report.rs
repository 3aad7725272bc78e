//! Recording what happened to a delivery, through the one writer: the command API's internal
//! route, with the dispatcher's token. The dispatcher never writes to the log itself.

use events::DeliveryStatus;
use std::time::Duration;
use uuid::Uuid;

pub struct Reporter {
    client: reqwest::Client,
    base: String,
    token: String,
}

#[derive(Debug)]
pub enum ReportError {
    /// The writer refused the step, with the domain's code (`invalid-delivery-transition`,
    /// `invite-revoked`, ...): it will refuse it again.
    Refused { code: String },
    /// The command API could not take it now (down, no lease, the log unavailable): try later.
    Unavailable(String),
}

impl std::fmt::Display for ReportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused { code } => write!(f, "refused ({code})"),
            Self::Unavailable(e) => write!(f, "unavailable: {e}"),
        }
    }
}

impl Reporter {
    pub fn new(base: &str, token: String) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        Ok(Self { client, base: base.trim_end_matches('/').to_owned(), token })
    }

    /// Records `status` for the delivery; `Ok(changed)`: false when it stood there already.
    pub async fn report(
        &self,
        tenant: Uuid,
        delivery: Uuid,
        status: DeliveryStatus,
        detail: Option<&str>,
    ) -> Result<bool, ReportError> {
        let body = serde_json::json!({ "tenant_id": tenant, "status": status, "detail": detail.map(clean_detail) });
        let response = self
            .client
            .post(format!("{}/internal/v1/deliveries/{delivery}/status", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .map_err(|e| ReportError::Unavailable(e.to_string()))?;
        let code = response.status();
        let answer: serde_json::Value = response.json().await.unwrap_or_default();
        match code.as_u16() {
            200 => Ok(answer["changed"].as_bool().unwrap_or(false)),
            409 | 422 => Err(ReportError::Refused { code: answer["code"].as_str().unwrap_or("refused").to_owned() }),
            _ => Err(ReportError::Unavailable(format!("the command API answered {code}: {answer}"))),
        }
    }
}

/// A provider's error as a delivery's detail: text every read model takes (no control character
/// but line breaks and tabs), at most 1000 characters.
pub fn clean_detail(detail: &str) -> String {
    detail.chars().filter(|c| !c.is_control() || matches!(c, '\n' | '\t')).take(1000).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_detail_loses_control_characters_and_is_cut_to_1000_characters() {
        assert_eq!(super::clean_detail("550 5.1.1\r\nno\0 such user\u{7}"), "550 5.1.1\nno such user");
        assert_eq!(super::clean_detail(&"é".repeat(2000)).chars().count(), 1000);
        events::validate::text("detail", &super::clean_detail(&"\u{1}x\r".repeat(3000)), events::validate::MAX_TEXT)
            .unwrap();
    }
}
