//! What an invitation says when it is delivered: an email's subject, text part and HTML part, and
//! an SMS text, as MiniJinja templates a definition may set (built-in ones otherwise).
//!
//! A template is checked when its definition is saved ([`check`]): it must compile *and* render
//! against a sample invitation within a bounded amount of work, so a bad template is a 422 then,
//! never a failed send later. Rendering is pure: the dispatcher calls [`render_email`] and
//! [`render_sms`] with what the log says about the invite.
//!
//! A template sees the request's `template_variables` by name, and beside them (winning over a
//! variable of the same name, so no request can forge the link): `link`, `inviter_name`,
//! `inviter_email`, `recipient_name`, `target`, `message`, `scope_name`, `expires_at`. The HTML
//! part escapes every value; the subject is one line.

use crate::rejection::Rejection;
use crate::validate;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The templates of a definition; a part left out uses the built-in one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageTemplates {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_html: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_text: Option<String>,
}

/// The longest template, in characters.
pub const MAX_TEMPLATE: usize = 20_000;
/// How much work one render may do (MiniJinja's fuel: about one unit per instruction). A loop
/// over a huge range runs out of it instead of holding the dispatcher.
const FUEL: u64 = 100_000;
/// The most one part may render to, in bytes (the subject: a tenth of it). What a template makes
/// of at most 100 variables of at most 2,000 characters stays far below.
const MAX_OUTPUT: usize = 256 * 1024;

const DEFAULT_SUBJECT: &str =
    "{{ inviter_name or 'Someone' }} invited you{% if scope_name %} to {{ scope_name }}{% endif %}";
const DEFAULT_TEXT: &str = "Hello{% if recipient_name %} {{ recipient_name }}{% endif %},

{{ inviter_name or 'Someone' }} invited you{% if scope_name %} to {{ scope_name }}{% endif %}.
{% if message %}
\"{{ message }}\"
{% endif %}
Open the invitation: {{ link }}
{% if expires_at %}
It expires at {{ expires_at }}.
{% endif %}";
const DEFAULT_HTML: &str = "<!doctype html>
<html><body>
<p>Hello{% if recipient_name %} {{ recipient_name }}{% endif %},</p>
<p>{{ inviter_name or 'Someone' }} invited you{% if scope_name %} to {{ scope_name }}{% endif %}.</p>
{% if message %}<blockquote>{{ message }}</blockquote>{% endif %}
<p><a href=\"{{ link }}\">Open the invitation</a></p>
{% if expires_at %}<p>It expires at {{ expires_at }}.</p>{% endif %}
</body></html>";
const DEFAULT_SMS: &str = "{{ inviter_name or 'Someone' }} invited you: {{ link }}";

/// The parts of a message, each in one place: its request field, the name MiniJinja knows it by
/// (`.html` turns HTML escaping on), where a definition sets it, and its built-in template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    EmailSubject,
    EmailText,
    EmailHtml,
    SmsText,
}

impl Part {
    const ALL: [Part; 4] = [Part::EmailSubject, Part::EmailText, Part::EmailHtml, Part::SmsText];

    fn field(self) -> &'static str {
        match self {
            Self::EmailSubject => "templates.email_subject",
            Self::EmailText => "templates.email_text",
            Self::EmailHtml => "templates.email_html",
            Self::SmsText => "templates.sms_text",
        }
    }

    fn template_name(self) -> &'static str {
        match self {
            Self::EmailSubject => "email_subject",
            Self::EmailText => "email_text",
            Self::EmailHtml => "email_html.html",
            Self::SmsText => "sms_text",
        }
    }

    fn given(self, templates: &MessageTemplates) -> Option<&str> {
        match self {
            Self::EmailSubject => templates.email_subject.as_deref(),
            Self::EmailText => templates.email_text.as_deref(),
            Self::EmailHtml => templates.email_html.as_deref(),
            Self::SmsText => templates.sms_text.as_deref(),
        }
    }

    fn built_in(self) -> &'static str {
        match self {
            Self::EmailSubject => DEFAULT_SUBJECT,
            Self::EmailText => DEFAULT_TEXT,
            Self::EmailHtml => DEFAULT_HTML,
            Self::SmsText => DEFAULT_SMS,
        }
    }

    /// The most it may render to, in bytes.
    fn max_output(self) -> usize {
        if self == Self::EmailSubject {
            MAX_OUTPUT / 10
        } else {
            MAX_OUTPUT
        }
    }
}

/// What the templates know about the invitation being delivered.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MessageContext {
    /// The public link (`{public url}/i/{token}`).
    pub link: String,
    pub inviter_name: Option<String>,
    pub inviter_email: Option<String>,
    pub recipient_name: Option<String>,
    /// The address it goes to.
    pub target: String,
    pub message: Option<String>,
    /// The name (or id) of the invite's first scope.
    pub scope_name: Option<String>,
    /// RFC 3339.
    pub expires_at: Option<String>,
    pub template_variables: BTreeMap<String, String>,
}

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The environment every template runs in: no loader (no `include`, `extends` or `import`), and of
/// MiniJinja's built-ins only the filters and tests that cannot grow a string beyond a small
/// factor (no `range`, `namespace`, `replace`, `join`, `center`, `indent`...). With the growth
/// operators refused ([`growth_operator`]), the fuel and [`MAX_OUTPUT`], a render is bounded in
/// time and memory whatever the template.
fn environment() -> Environment<'static> {
    use minijinja::{filters, tests};
    let mut env = Environment::empty();
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_fuel(Some(FUEL));
    env.set_auto_escape_callback(|name| if name.ends_with(".html") { AutoEscape::Html } else { AutoEscape::None });
    env.add_filter("upper", filters::upper);
    env.add_filter("lower", filters::lower);
    env.add_filter("title", filters::title);
    env.add_filter("capitalize", filters::capitalize);
    env.add_filter("trim", filters::trim);
    env.add_filter("default", filters::default);
    env.add_filter("d", filters::default);
    env.add_filter("escape", filters::escape);
    env.add_filter("e", filters::escape);
    env.add_filter("safe", filters::safe);
    env.add_filter("length", filters::length);
    env.add_test("defined", tests::is_defined);
    env.add_test("undefined", tests::is_undefined);
    env.add_test("none", tests::is_none);
    env
}

/// The first operator in a template's tags that builds a string from strings (`*` repeats, `~`
/// and `+` join): within its fuel a short template could double a string at every step with them.
/// String literals and text outside the tags do not count.
fn growth_operator(source: &str) -> Option<char> {
    let bytes = source.as_bytes();
    let mut i = 0;
    let mut close: Option<&[u8]> = None;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let rest = &bytes[i..];
        match close {
            None if rest.starts_with(b"{{") => close = Some(b"}}"),
            None if rest.starts_with(b"{%") => close = Some(b"%}"),
            None if rest.starts_with(b"{#") => close = Some(b"#}"),
            None => {}
            Some(end) => {
                if let Some(q) = quote {
                    if rest[0] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if rest[0] == q {
                        quote = None;
                    }
                } else if rest.starts_with(end) {
                    close = None;
                    i += 2;
                    continue;
                } else if end != b"#}" {
                    match rest[0] {
                        b'"' | b'\'' => quote = Some(rest[0]),
                        b'*' | b'~' | b'+' => return Some(rest[0] as char),
                        _ => {}
                    }
                }
            }
        }
        i += if close.is_some() && (rest.starts_with(b"{{") || rest.starts_with(b"{%") || rest.starts_with(b"{#")) {
            2
        } else {
            1
        };
    }
    None
}

/// An `io::Write` that takes at most `left` bytes and refuses the rest.
struct Bounded {
    out: Vec<u8>,
    left: usize,
    overflowed: bool,
}

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() > self.left {
            self.overflowed = true;
            return Err(std::io::Error::other("the message is too long"));
        }
        self.left -= buf.len();
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn values(ctx: &MessageContext) -> Value {
    let mut map: BTreeMap<String, Value> =
        ctx.template_variables.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
    let opt = |v: &Option<String>| v.as_deref().map_or(Value::from(()), Value::from);
    map.insert("link".into(), Value::from(ctx.link.as_str()));
    map.insert("inviter_name".into(), opt(&ctx.inviter_name));
    map.insert("inviter_email".into(), opt(&ctx.inviter_email));
    map.insert("recipient_name".into(), opt(&ctx.recipient_name));
    map.insert("target".into(), Value::from(ctx.target.as_str()));
    map.insert("message".into(), opt(&ctx.message));
    map.insert("scope_name".into(), opt(&ctx.scope_name));
    map.insert("expires_at".into(), opt(&ctx.expires_at));
    Value::from(map)
}

fn render_part(templates: Option<&MessageTemplates>, part: Part, ctx: &Value) -> Result<String, String> {
    let source = templates.and_then(|t| part.given(t)).unwrap_or_else(|| part.built_in());
    if let Some(op) = growth_operator(source) {
        return Err(format!("the operator `{op}` is not taken in a message template"));
    }
    let mut env = environment();
    env.add_template(part.template_name(), source).map_err(|e| e.to_string())?;
    let template = env.get_template(part.template_name()).map_err(|e| e.to_string())?;
    let limit = part.max_output();
    let mut out = Bounded { out: Vec::new(), left: limit, overflowed: false };
    if let Err(e) = template.render_captured_to(ctx, &mut out) {
        return Err(if out.overflowed { format!("it renders to more than {limit} bytes") } else { e.to_string() });
    }
    String::from_utf8(out.out).map_err(|e| e.to_string())
}

/// Renders an email from a definition's templates (or the built-in ones). The subject is one
/// line: line breaks a template or a value brings in become spaces.
pub fn render_email(templates: Option<&MessageTemplates>, ctx: &MessageContext) -> Result<RenderedEmail, String> {
    let values = values(ctx);
    let subject = render_part(templates, Part::EmailSubject, &values)?;
    let subject = subject.split(|c: char| c.is_control()).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ");
    Ok(RenderedEmail {
        subject: subject.trim().to_owned(),
        text: render_part(templates, Part::EmailText, &values)?,
        html: render_part(templates, Part::EmailHtml, &values)?,
    })
}

/// Renders the SMS text.
pub fn render_sms(templates: Option<&MessageTemplates>, ctx: &MessageContext) -> Result<String, String> {
    render_part(templates, Part::SmsText, &values(ctx)).map(|s| s.trim().to_owned())
}

/// A sample invitation every template must render against when saved (with and without its
/// optional parts).
fn sample() -> MessageContext {
    MessageContext {
        link: "https://rsvp.example/i/sample-token".into(),
        inviter_name: Some("Ann".into()),
        inviter_email: Some("ann@example.com".into()),
        recipient_name: Some("Bob".into()),
        target: "bob@example.com".into(),
        message: Some("Join us".into()),
        scope_name: Some("Acme".into()),
        expires_at: Some("2030-01-01T00:00:00Z".into()),
        template_variables: BTreeMap::new(),
    }
}

/// Checks a definition's templates: text a read model can hold, at most [`MAX_TEMPLATE`]
/// characters each, MiniJinja that compiles and renders a sample invitation within its fuel.
/// A refusal names the field (`templates.email_html`) and says what is wrong.
pub fn check(templates: &MessageTemplates) -> Result<(), Rejection> {
    // A full invitation, and one with nothing optional: both branches of the usual `if`s.
    let full = values(&sample());
    let bare = values(&MessageContext { link: sample().link, target: sample().target, ..MessageContext::default() });
    for part in Part::ALL {
        let Some(source) = part.given(templates) else { continue };
        validate::text(part.field(), source, MAX_TEMPLATE)?;
        for sample in [&full, &bare] {
            render_part(Some(templates), part, sample)
                .map_err(|e| Rejection::invalid(part.field(), format!("is not a template that renders: {e}")))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> MessageContext {
        MessageContext {
            link: "https://rsvp.example/i/tok".into(),
            inviter_name: Some("Ann <admin>".into()),
            target: "bob@example.com".into(),
            message: Some("<script>alert(1)</script>".into()),
            template_variables: BTreeMap::from([
                ("company".to_owned(), "Acme & Co".to_owned()),
                ("link".to_owned(), "https://evil.example".to_owned()),
            ]),
            ..MessageContext::default()
        }
    }

    #[test]
    fn the_built_in_templates_carry_the_link_the_inviter_and_the_message() {
        let email = render_email(None, &ctx()).unwrap();
        assert_eq!(email.subject, "Ann <admin> invited you");
        assert!(email.text.contains("https://rsvp.example/i/tok"), "{}", email.text);
        assert!(email.text.contains("<script>alert(1)</script>"), "text is not escaped: {}", email.text);
        // MiniJinja escapes `/` too (`&#x2f;`), which an HTML reader decodes back.
        assert!(email.html.replace("&#x2f;", "/").contains("href=\"https://rsvp.example/i/tok\""), "{}", email.html);
        assert!(email.html.contains("&lt;script&gt;"), "html escapes values: {}", email.html);
        assert!(!email.html.contains("<script>"), "{}", email.html);
        assert_eq!(render_sms(None, &ctx()).unwrap(), "Ann <admin> invited you: https://rsvp.example/i/tok");
    }

    #[test]
    fn text_and_string_literals_may_hold_the_refused_operators() {
        let templates = MessageTemplates {
            email_text: Some("1 + 1 ~ 2 * 3 {{ '+~*' }} {# a * b #} {{ \"it's\" | upper }}".into()),
            ..MessageTemplates::default()
        };
        check(&templates).unwrap();
        assert_eq!(render_email(Some(&templates), &ctx()).unwrap().text, "1 + 1 ~ 2 * 3 +~*  IT'S");
    }

    #[test]
    fn loops_stop_at_the_fuel_and_output_stops_at_its_limit() {
        // 2,000 characters of message, looped over by character: within the fuel each time,
        // but 2,000 x 2,000 characters would be 4 MB: refused at the output limit.
        let mut big = ctx();
        big.message = Some("m".repeat(2000));
        let nested = MessageTemplates {
            email_text: Some("{% for a in message %}{{ message }}{% endfor %}".into()),
            ..MessageTemplates::default()
        };
        let refused = render_email(Some(&nested), &big).unwrap_err();
        assert!(refused.contains("more than") || refused.contains("fuel"), "{refused}");
    }

    #[test]
    fn a_definition_s_templates_see_the_variables_but_never_a_forged_link() {
        let templates = MessageTemplates {
            email_subject: Some("Join {{ company }}\r\nBcc: x@evil.example".into()),
            email_text: Some("{{ company }}: {{ link }}".into()),
            ..MessageTemplates::default()
        };
        check(&templates).unwrap();
        let email = render_email(Some(&templates), &ctx()).unwrap();
        assert_eq!(email.subject, "Join Acme & Co Bcc: x@evil.example", "one line");
        assert_eq!(email.text, "Acme & Co: https://rsvp.example/i/tok");
        assert!(email.html.contains("Open the invitation"), "the HTML part falls back to the built-in one");
    }

    #[test]
    fn a_template_that_does_not_compile_or_render_is_refused_naming_its_field() {
        let cases = [
            (MessageTemplates { email_text: Some("{% if %}".into()), ..Default::default() }, "templates.email_text"),
            (
                MessageTemplates { email_html: Some("{{ link | no_such_filter }}".into()), ..Default::default() },
                "templates.email_html",
            ),
            (
                MessageTemplates {
                    sms_text: Some(
                        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}".into(),
                    ),
                    ..Default::default()
                },
                "templates.sms_text",
            ),
            (MessageTemplates { email_subject: Some("a\0b".into()), ..Default::default() }, "templates.email_subject"),
            (
                MessageTemplates { email_text: Some("x".repeat(MAX_TEMPLATE + 1)), ..Default::default() },
                "templates.email_text",
            ),
        ];
        for (templates, field) in cases {
            let refusal = check(&templates).expect_err(field);
            assert_eq!(refusal.field(), Some(field), "{refusal}");
        }
    }
}
