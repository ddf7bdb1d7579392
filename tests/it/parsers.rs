//! Property tests for everything that parses untrusted input: query strings,
//! percent-escapes, dates, Basic Auth headers, media file names, JSON bodies
//! and Idempotency-Keys. None may panic; each keeps its promise.

use crate::support::*;
use proptest::prelude::*;
use whatsapp_api::{auth, clock, media, web};

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn percent_decoding_never_panics_and_inverts_encoding(raw in ".{0,64}", any_bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let text = String::from_utf8_lossy(&any_bytes).into_owned();
        let _ = web::percent_decode(&text, true);
        let _ = web::parse_query(&text);
        prop_assert_eq!(web::percent_decode(&web::percent_encode(&raw), false), Some(raw.clone()));
        let query = format!("k={}&other=1", web::percent_encode(&raw));
        let pairs = web::parse_query(&query).unwrap();
        prop_assert_eq!(&pairs[0].1, &raw);
    }

    #[test]
    fn dates_parse_only_real_days(text in ".{0,12}", y in 1000i64..3000, m in 1u32..13, d in 1u32..32) {
        let _ = clock::parse_date(&text);
        let _ = clock::parse_datetime(&text);
        let candidate = format!("{y:04}-{m:02}-{d:02}");
        if let Some(secs) = clock::parse_date(&candidate) {
            prop_assert_eq!(&clock::format_datetime(secs)[..10], candidate.as_str());
        } else {
            prop_assert!(d > 28, "{} rejected", candidate);
        }
    }

    #[test]
    fn basic_auth_round_trips(user in "[^:\\x00]{1,20}", password in ".{0,30}", junk in ".{0,40}") {
        let _ = auth::parse_basic_auth(&junk);
        let header = format!("Basic {}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{user}:{password}")));
        prop_assert_eq!(auth::parse_basic_auth(&header), Some((user, password)));
    }

    #[test]
    fn safe_media_names_stay_inside_the_directory(name in ".{0,40}") {
        if media::is_safe_name(&name) {
            let dir = std::path::Path::new("/srv/media");
            let joined = dir.join(&name);
            prop_assert_eq!(joined.parent(), Some(dir));
            prop_assert!(!name.contains('/') && !name.contains('\\') && !name.contains('\0') && name != "..");
        }
    }

    #[test]
    fn constant_time_compare_is_equality(a in proptest::collection::vec(any::<u8>(), 0..40), b in proptest::collection::vec(any::<u8>(), 0..40)) {
        prop_assert_eq!(auth::ct_eq(&a, &b), a == b);
        prop_assert!(auth::ct_eq(&a, &a));
    }
}

/// Random JSON bodies, query strings and headers against a live server: never
/// a 5xx (the simulator is connected and sends succeed, so no 500/503 is
/// legitimate here).
#[test]
fn random_requests_never_get_a_server_error() {
    let s = TestServer::start();
    s.inject("15551234567@s.whatsapp.net", "hello");
    let id = s.newest_id();
    let targets = [
        ("POST", format!("/api/v1/messages/{id}/reply")),
        ("PATCH", format!("/api/v1/messages/{id}/status")),
        ("PATCH", "/api/v1/messages/batch/status".to_string()),
        ("POST", "/api/v1/webhooks".to_string()),
        ("POST", "/api/v1/simulator/messages".to_string()),
        ("POST", "/api/v1/session/pair-code".to_string()),
        ("GET", "/api/v1/inbox/all".to_string()),
        ("GET", "/api/v1/audit-logs".to_string()),
        ("GET", "/api/v1/conversations".to_string()),
    ];
    let json_value = proptest::prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        ".{0,20}".prop_map(serde_json::Value::from),
        proptest::collection::vec(".{0,8}", 0..4).prop_map(serde_json::Value::from),
    ];
    let fields = proptest::collection::btree_map(
        proptest::prop_oneof![
            Just("message".to_string()),
            Just("status".to_string()),
            Just("ids".to_string()),
            Just("url".to_string()),
            Just("events".to_string()),
            Just("from".to_string()),
            Just("text".to_string()),
            Just("phone".to_string()),
            Just("secret".to_string()),
            Just("media_type".to_string()),
            Just("media_base64".to_string()),
            ".{1,8}".prop_map(|s| s)
        ],
        json_value,
        0..6,
    );
    let strategy = (0..targets.len(), fields, ".{0,30}", ".{0,20}");
    let config = ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    runner
        .run(&strategy, |(target, body, query, idem)| {
            let (method, path) = &targets[target];
            let body = serde_json::to_vec(&body).unwrap();
            let enc = web::percent_encode(&query);
            let url = format!("{path}?search={enc}&phone={enc}&page={enc}&limit={enc}&startDate={enc}&action={enc}");
            let mut headers = vec![("X-API-Key", KEY)];
            let idem = idem.replace(['\r', '\n'], "");
            if !idem.is_empty() && idem.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
                headers.push(("Idempotency-Key", idem.as_str()));
            }
            let r = s.request(method, &url, &headers, Some(&body));
            prop_assert!(r.status < 500, "{} {} -> {} {}", method, url, r.status, r.text);
            Ok(())
        })
        .unwrap();
}
