//! The Mailpit harness (`rsvp_tests::Mailpit`) against the real Mailpit, with the SMTP client the
//! dispatcher uses (lettre over tokio, plain SMTP from `smtp://host:port`).
//!
//! What this shows: an email with a text and an HTML part and a Message-ID of its own reads back
//! whole (subject, addresses, both parts, the Message-ID with and without its brackets, every
//! header); the list pages through a mailbox of more than one page and empties; a recipient
//! outside `--smtp-allowed-recipients` is a permanent 550; a chaos trigger is a transient 451
//! until it is cleared, and then the email goes through.

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use rsvp_tests::mailpit::{Chaos, Mailpit, MailpitOptions};
use std::time::Duration;

fn transport(mailpit: &Mailpit) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::from_url(&mailpit.smtp_url()).unwrap().build()
}

fn email(to: &str, subject: &str, message_id: &str) -> lettre::Message {
    lettre::Message::builder()
        .from("rsvp <invites@rsvp.localhost>".parse::<Mailbox>().unwrap())
        .to(to.parse::<Mailbox>().unwrap())
        .subject(subject)
        .message_id(Some(message_id.to_owned()))
        .multipart(MultiPart::alternative_plain_html(
            format!("{subject}\nhttps://rsvp.example/i/abc"),
            format!("<p>{subject}</p><p><a href=\"https://rsvp.example/i/abc\">Accept</a></p>"),
        ))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_email_with_text_html_and_its_own_message_id_reads_back_whole() {
    let mailpit = Mailpit::start_default().await;
    let smtp = transport(&mailpit);
    smtp.send(email("Bob Dylan <bob@example.com>", "Ann invites you – to Ünïcode", "<inv-1.attempt-1@rsvp.localhost>"))
        .await
        .unwrap();

    let list = mailpit.wait_for_count(1, Duration::from_secs(10)).await;
    assert_eq!(list.len(), 1);
    let summary = &list[0];
    assert_eq!(summary.message_id, "inv-1.attempt-1@rsvp.localhost", "the list's Message-ID has no brackets");
    assert_eq!(summary.subject, "Ann invites you – to Ünïcode");
    assert_eq!(summary.to[0].address, "bob@example.com");

    let message = mailpit.message(&summary.id).await;
    assert_eq!(message.id, summary.id);
    assert_eq!(message.subject, "Ann invites you – to Ünïcode", "decoded");
    let from = message.from.as_ref().unwrap();
    assert_eq!((from.name.as_str(), from.address.as_str()), ("rsvp", "invites@rsvp.localhost"));
    assert_eq!(message.to.len(), 1);
    assert_eq!((message.to[0].name.as_str(), message.to[0].address.as_str()), ("Bob Dylan", "bob@example.com"));
    assert_eq!(message.return_path, "invites@rsvp.localhost");
    assert_eq!(
        message.text.replace("\r\n", "\n").trim_end(),
        "Ann invites you – to Ünïcode\nhttps://rsvp.example/i/abc"
    );
    assert_eq!(
        message.html.trim_end(),
        "<p>Ann invites you – to Ünïcode</p><p><a href=\"https://rsvp.example/i/abc\">Accept</a></p>"
    );
    // The message's own field has no brackets; the header is as sent, brackets and all.
    assert_eq!(message.message_id, "inv-1.attempt-1@rsvp.localhost");
    assert_eq!(message.header("Message-ID"), Some("<inv-1.attempt-1@rsvp.localhost>"));
    assert!(message.headers.contains_key("Message-Id"), "Go's canonical name: {:?}", message.headers.keys());
    assert!(message.header("content-type").unwrap().starts_with("multipart/alternative"), "{:?}", message.headers);
    assert!(message.header("Date").is_some() && message.header("Received").is_some(), "{:?}", message.headers);
    assert_eq!(message.header("X-Not-There"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_list_pages_through_the_whole_mailbox_and_empties() {
    let mailpit = Mailpit::start_default().await;
    let smtp = transport(&mailpit);
    let n = 130; // more than one page of the harness's 100
    for i in 0..n {
        smtp.send(email("bob@example.com", &format!("invite {i}"), &format!("<inv-{i}@rsvp.localhost>")))
            .await
            .unwrap();
    }
    let list = mailpit.wait_for_count(n, Duration::from_secs(20)).await;
    assert_eq!(list.len(), n);
    let mut ids: Vec<_> = list.iter().map(|m| m.message_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "every message once");
    assert_eq!(list[0].subject, format!("invite {}", n - 1), "newest first");
    assert_eq!(mailpit.count().await, n);

    mailpit.delete_all().await;
    assert_eq!(mailpit.count().await, 0);
    assert!(mailpit.messages().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recipient_outside_the_allowed_ones_is_refused_permanently() {
    let mailpit = Mailpit::start(MailpitOptions {
        allowed_recipients: Some(r"@example\.com$".into()),
        ..MailpitOptions::default()
    })
    .await;
    let smtp = transport(&mailpit);

    let error = smtp.send(email("eve@example.org", "refused", "<refused@rsvp.localhost>")).await.unwrap_err();
    assert!(error.is_permanent(), "{error:?}");
    assert_eq!(error.status().map(u16::from), Some(550), "{error}");

    smtp.send(email("bob@example.com", "taken", "<taken@rsvp.localhost>")).await.unwrap();
    let list = mailpit.wait_for_count(1, Duration::from_secs(10)).await;
    assert_eq!(list.len(), 1, "only the allowed recipient's");
    assert_eq!(list[0].subject, "taken");
}

#[tokio::test(flavor = "multi_thread")]
async fn chaos_gives_transient_errors_until_it_is_cleared() {
    let mailpit = Mailpit::start(MailpitOptions { chaos: true, ..MailpitOptions::default() }).await;
    let smtp = transport(&mailpit);

    mailpit.set_chaos(&Chaos::every_recipient(451)).await;
    for _ in 0..3 {
        let error = smtp.send(email("bob@example.com", "later", "<later@rsvp.localhost>")).await.unwrap_err();
        assert!(error.is_transient(), "{error:?}");
        assert_eq!(error.status().map(u16::from), Some(451), "{error}");
    }
    mailpit.set_chaos(&Chaos::every_sender(452)).await;
    let error = smtp.send(email("bob@example.com", "later", "<later@rsvp.localhost>")).await.unwrap_err();
    assert!(error.is_transient() && error.status().map(u16::from) == Some(452), "{error:?}");
    assert_eq!(mailpit.count().await, 0);

    mailpit.set_chaos(&Chaos::off()).await;
    smtp.send(email("bob@example.com", "now", "<now@rsvp.localhost>")).await.unwrap();
    let list = mailpit.wait_for_count(1, Duration::from_secs(10)).await;
    assert_eq!(list[0].subject, "now");
}
