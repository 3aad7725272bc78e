//! The derived status (`events::derived`) has one definition, rendered both as Rust and as the
//! SQL the projector and the query API run: here PostgreSQL evaluates the SQL on every case and
//! the answers are compared with the Rust functions'.

use chrono::{DateTime, Duration, TimeZone, Utc};
use events::derived::{self, sql};
use events::InviteStatus;
use rsvp_tests::TestEnv;

#[tokio::test(flavor = "multi_thread")]
async fn the_sql_and_the_rust_derived_status_agree_on_every_stage_and_on_expiry() {
    let env = TestEnv::new().await;
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let times: [Option<DateTime<Utc>>; 4] =
        [None, Some(now - Duration::seconds(1)), Some(now), Some(now + Duration::seconds(1))];

    let read = format!(
        "SELECT {}, {} FROM (VALUES ($1::text, $2::bool, $3::timestamptz)) AS i(status, open, expires_at)",
        sql::status("i", "$4"),
        sql::is_expired("i", "$4")
    );
    let mut cases = 0;
    for stored in InviteStatus::ALL {
        for open in [true, false] {
            for expires_at in times {
                let (status, expired): (String, bool) = sqlx::query_as(&read)
                    .bind(stored.as_str())
                    .bind(open)
                    .bind(expires_at)
                    .bind(now)
                    .fetch_one(&env.pool)
                    .await
                    .unwrap();
                let case = format!("{stored:?}, open {open}, expires {expires_at:?}");
                assert_eq!(status, derived::status(stored, open, expires_at, now).as_str(), "{case}");
                assert_eq!(expired, derived::is_expired(stored, open, expires_at, now), "{case}");
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 13 * 2 * 4);

    // Moving up a stage: every status as the current one, every status (or none) as the stage.
    let advance = format!("SELECT {}", sql::advance("$1::text", "$2::text"));
    for current in InviteStatus::ALL {
        for stage in InviteStatus::ALL.map(Some).into_iter().chain([None]) {
            let moved: String = sqlx::query_scalar(&advance)
                .bind(current.as_str())
                .bind(stage.map(|s| s.as_str()))
                .fetch_one(&env.pool)
                .await
                .unwrap();
            let expected = stage.map_or(current, |stage| derived::advance(current, stage));
            assert_eq!(moved, expected.as_str(), "{current:?} then {stage:?}");
        }
    }
}
