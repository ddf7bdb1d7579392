use super::*;
use crate::db::testing::*;
use crate::db::*;
use crate::rng::Rng;
use crate::status::*;
use crate::wa::IncomingMessage;
use rusqlite::{Connection, params};

#[test]
fn counts_follow_status_changes() {
    let mut conn = open_memory().unwrap();
    for i in 0..5 {
        store(
            &mut conn,
            &format!("m{i}"),
            &incoming(&format!("W{i}"), "1@s", "x"),
            i,
        )
        .unwrap();
    }
    assert_eq!(inbox_count(&conn, Some(ReplyStatus::Unread)).unwrap(), 5);
    assert!(set_reply_status(&conn, "m0", ReplyStatus::Read).unwrap());
    assert!(!set_reply_status(&conn, "nope", ReplyStatus::Read).unwrap());
    let n = set_reply_status_many(
        &mut conn,
        &["m1".into(), "m2".into(), "zz".into()],
        ReplyStatus::Ignored,
    )
    .unwrap();
    assert_eq!(n, 2);
    assert_eq!(inbox_count(&conn, Some(ReplyStatus::Unread)).unwrap(), 2);
    assert_eq!(inbox_count(&conn, Some(ReplyStatus::Read)).unwrap(), 1);
    assert_eq!(inbox_count(&conn, Some(ReplyStatus::Ignored)).unwrap(), 2);
    assert_eq!(inbox_count(&conn, None).unwrap(), 5);
    let (chats, total) = conversations(&conn, 1, 10).unwrap();
    assert_eq!(total, 1);
    assert_eq!(chats[0].unread, 2);
    assert_eq!(chats[0].last.id, "m4");
}

#[test]
fn inbox_orders_newest_first_with_ties_by_arrival() {
    let mut conn = open_memory().unwrap();
    store(&mut conn, "a", &incoming("1", "1@s", "x"), 100).unwrap();
    store(&mut conn, "b", &incoming("2", "1@s", "x"), 100).unwrap();
    store(&mut conn, "c", &incoming("3", "1@s", "x"), 50).unwrap();
    let q = InboxQuery {
        page: 1,
        limit: 10,
        ..Default::default()
    };
    let (rows, total) = inbox(&conn, &q).unwrap();
    assert_eq!(
        rows.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        ["b", "a", "c"]
    );
    assert_eq!(total, 3);
}

#[test]
fn search_treats_like_metacharacters_literally() {
    let mut conn = open_memory().unwrap();
    store(&mut conn, "a", &incoming("1", "1@s", "100% sure"), 1).unwrap();
    store(&mut conn, "b", &incoming("2", "1@s", "100 percent"), 2).unwrap();
    store(&mut conn, "c", &incoming("3", "1@s", "a_b"), 3).unwrap();
    store(&mut conn, "d", &incoming("4", "1@s", "axb HELLO"), 4).unwrap();
    let find = |term: &str| {
        let q = InboxQuery {
            search: Some(term.into()),
            page: 1,
            limit: 10,
            ..Default::default()
        };
        inbox(&conn, &q)
            .unwrap()
            .0
            .into_iter()
            .map(|m| m.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(find("0%"), ["a"]);
    assert_eq!(find("a_b"), ["c"]);
    assert_eq!(find("hello"), ["d"]);
    assert_eq!(find("'; DROP TABLE messages; --"), Vec::<String>::new());
}

/// The search folds the case of ASCII letters only, as SQLite's LIKE
/// (and so the Node server) does, on every plan: the trigram index, which
/// folds other letters too (É and é, the Kelvin sign and k), only
/// proposes candidates.
#[test]
fn search_folds_ascii_case_only_on_every_plan() {
    let mut conn = open_memory().unwrap();
    store(&mut conn, "a", &incoming("1", "1@s", "CAFé au lait"), 1).unwrap();
    store(&mut conn, "b", &incoming("2", "1@s", "CAFÉ au lait"), 2).unwrap();
    store(
        &mut conn,
        "c",
        &incoming("3", "1@s", "\u{212A}elvin scale"),
        3,
    )
    .unwrap();
    store(&mut conn, "d", &incoming("4", "1@s", "kelvin scale"), 4).unwrap();
    let find = |conn: &Connection, term: &str| {
        let q = InboxQuery {
            search: Some(term.into()),
            page: 1,
            limit: 10,
            ..Default::default()
        };
        let mut ids: Vec<String> = inbox(conn, &q)
            .unwrap()
            .0
            .into_iter()
            .map(|m| m.id)
            .collect();
        ids.sort();
        ids
    };
    // First each term is in most messages (the scan), then, among many
    // others, the trigram index's candidates are checked.
    for (round, plan) in ["Scan", "Candidates"].into_iter().enumerate() {
        if round == 1 {
            for i in 0..40 {
                store(
                    &mut conn,
                    &format!("f{i}"),
                    &incoming(&format!("F{i}"), "1@s", "other words"),
                    9,
                )
                .unwrap();
            }
        }
        let size = inbox_count(&conn, None).unwrap();
        for term in ["café", "CAFÉ", "kelvin", "\u{212A}ELVIN"] {
            let chosen = match search_plan(&conn, term, size).unwrap() {
                SearchPlan::Candidates { .. } => "Candidates",
                SearchPlan::Scan => "Scan",
            };
            assert_eq!(chosen, plan, "{term}");
        }
        assert_eq!(find(&conn, "café"), ["a"]);
        assert_eq!(find(&conn, "CAFÉ"), ["b"]);
        assert_eq!(find(&conn, "kelvin"), ["d"]);
        assert_eq!(find(&conn, "\u{212A}ELVIN"), ["c"]);
    }
    // The index itself folds wider: the LIKE decides.
    let indexed: i64 = conn
        .query_row(
            "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH '\"café\"'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexed, 2);
}

/// Text pieces with the cases that matter: ASCII case, LIKE's `%`, `_`
/// and `\`, quotes, non-ASCII letters whose case LIKE does not fold (but
/// the trigram index does), the Kelvin sign and dotted I (which fold to
/// ASCII letters), emoji.
const PIECES: [&str; 26] = [
    "a",
    "B",
    "order",
    "Order",
    "ORDER",
    " ",
    " ",
    "%",
    "_",
    "\\",
    "\"",
    "'",
    "x%y",
    "a_b",
    "é",
    "É",
    "ß",
    "ç",
    "Ç",
    "😀",
    "\u{212A}",
    "k",
    "\u{130}",
    "i",
    "Ünïcödé",
    "42",
];

/// A database in a file of its own (kept totals are kept per file; an
/// in-memory database has no name to keep them under), and its directory,
/// which the test removes.
fn file_db() -> (std::path::PathBuf, Connection) {
    let dir = std::env::temp_dir().join(format!("wa-inbox-{}", crate::auth::uuid_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let conn = connect(&dir.join("app.db")).unwrap();
    migrate(&conn).unwrap();
    (dir, conn)
}

/// `n` incoming messages that say "refund", one a second, and the search
/// for them.
fn refunds(conn: &mut Connection, n: i64) -> InboxQuery {
    for i in 1..=n {
        store(
            conn,
            &format!("m{i}"),
            &incoming(&format!("w{i}"), "1@s", "refund"),
            i,
        );
    }
    InboxQuery {
        search: Some("refund".into()),
        page: 1,
        limit: 2,
        ..Default::default()
    }
}

fn random_text(rng: &mut Rng) -> String {
    (0..rng.below(9)).map(|_| rng.pick(&PIECES)).collect()
}

/// The plain query every fast path must agree with: no trigram index,
/// no kept counts, a full count.
fn reference_inbox(conn: &Connection, q: &InboxQuery) -> (Vec<String>, i64) {
    let mut sql = String::from("SELECT id FROM messages WHERE direction = 'incoming'");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(s) = q.status {
        sql.push_str(" AND reply_status = ?");
        args.push(s.as_str().to_string().into());
    }
    if let Some(t) = &q.search {
        sql.push_str(" AND message LIKE ? ESCAPE '\\'");
        args.push(like_pattern(t).into());
    }
    if let Some(p) = &q.phone {
        sql.push_str(" AND phone LIKE ? ESCAPE '\\'");
        args.push(like_pattern(p).into());
    }
    if let Some(f) = q.from {
        sql.push_str(" AND created_at >= ?");
        args.push(f.into());
    }
    if let Some(u) = q.until {
        sql.push_str(" AND created_at < ?");
        args.push(u.into());
    }
    sql.push_str(" ORDER BY created_at DESC, seq DESC");
    let all: Vec<String> = conn
        .prepare(&sql)
        .unwrap()
        .query_map(params_from_iter(args.iter()), |r| r.get(0))
        .unwrap()
        .collect::<DbResult<_>>()
        .unwrap();
    let total = all.len() as i64;
    let start = ((q.page as usize - 1) * q.limit as usize).min(all.len());
    let end = (start + q.limit as usize).min(all.len());
    (all[start..end].to_vec(), total)
}

#[test]
fn inbox_fast_paths_match_the_plain_query() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    // A file, so that totals are kept.
    let (dir, mut conn) = file_db();
    let phones = [
        "15551@s.whatsapp.net",
        "15552@s.whatsapp.net",
        "1555_3@s",
        "12036%@g.us",
        "4479@s",
    ];
    let statuses = ReplyStatus::TRIAGE;
    let mut texts = Vec::new();
    let tx = conn.transaction().unwrap();
    for i in 0..800 {
        let text = random_text(&mut rng);
        let incoming = rng.below(5) > 0;
        insert_message_row(
            &tx,
            &NewMessage {
                id: &format!("m{i}"),
                wa_id: Some(&format!("w{i}")),
                direction: if incoming {
                    Direction::Incoming
                } else {
                    Direction::Outgoing
                },
                // One chat with few messages, for the phone filter's
                // by-chat plan.
                phone: if rng.below(40) == 0 {
                    "33612@s.whatsapp.net"
                } else {
                    rng.pick(&phones)
                },
                message: &text,
                reply_status: if incoming {
                    rng.pick(&statuses)
                } else {
                    ReplyStatus::Sent
                },
                // Few distinct seconds, so ties are common.
                created_at: 1_700_000_000 + 3600 * rng.below(40) as i64,
                ..Default::default()
            },
        )
        .unwrap();
        texts.push(text);
    }
    tx.commit().unwrap();
    // The triggers must follow later changes too: deletes, status changes,
    // edits; and so must the received-message paths: new messages from
    // LID chats, LIDs mapped to numbers (merging chats), our own messages
    // from the phone, placeholders filled in.
    let lids = ["77001@lid", "77002@lid", "77003@lid"];
    let numbers = ["77001@s.whatsapp.net", "15551@s.whatsapp.net", "4479@s"];
    let mut received = 0;
    let mut change = |conn: &mut Connection, rng: &mut Rng, texts: &mut Vec<String>| {
        let id = format!("m{}", rng.below(800));
        match rng.below(7) {
            0 => {
                conn.execute("DELETE FROM messages WHERE id = ?1", [&id])
                    .unwrap();
            }
            1 => {
                set_reply_status(conn, &id, rng.pick(&statuses)).unwrap();
            }
            2 => {
                let text = random_text(rng);
                conn.execute(
                    "UPDATE messages SET message = ?2 WHERE id = ?1",
                    params![id, text],
                )
                .unwrap();
                texts.push(text);
            }
            3 | 4 => {
                received += 1;
                let chat = if rng.below(2) == 0 {
                    rng.pick(&lids)
                } else {
                    rng.pick(&phones)
                };
                let text = random_text(rng);
                let placeholder = rng.below(4) == 0;
                let m = IncomingMessage {
                    wa_id: format!("r{received}"),
                    chat: chat.into(),
                    sender: chat.into(),
                    text: text.clone(),
                    from_me: rng.below(4) == 0,
                    placeholder: placeholder.then_some(crate::wa::Placeholder::Undecryptable),
                    timestamp: Some(1_700_000_000 + 3600 * rng.below(40) as i64),
                    ..Default::default()
                };
                let tx = conn.transaction().unwrap();
                store_received(&tx, &format!("r{received}"), &m, 1_800_000_000).unwrap();
                if placeholder && rng.below(2) == 0 {
                    let filled = IncomingMessage {
                        placeholder: None,
                        text: random_text(rng),
                        ..m
                    };
                    let again = store_received(&tx, "unused", &filled, 1_800_000_000).unwrap();
                    assert!(matches!(again, Received::Filled(_)), "{again:?}");
                    texts.push(filled.text);
                }
                tx.commit().unwrap();
                texts.push(text);
            }
            5 => {
                let tx = conn.transaction().unwrap();
                learn_lid(&tx, rng.pick(&lids), rng.pick(&numbers), 1_800_000_000).unwrap();
                tx.commit().unwrap();
            }
            _ => {}
        }
    };
    for _ in 0..240 {
        change(&mut conn, &mut rng, &mut texts);
    }
    assert_kept_counts_are_exact(&conn);
    let mut searched_with_hits = 0;
    let mut search_plans = std::collections::HashMap::new();
    let mut phone_plans = std::collections::HashMap::new();
    let mut asked: Vec<InboxQuery> = Vec::new();
    let mut added = 0;
    for round in 0..3000 {
        // Changes between the pages too, so that kept totals meet every
        // kind of change (and new messages alone, which they add up).
        if rng.below(4) == 0 {
            change(&mut conn, &mut rng, &mut texts);
        }
        // Often the filters of a recent page again, another page of them,
        // sometimes after new messages that match them (which a kept total
        // must add).
        if asked.len() > 8 && rng.below(3) == 0 {
            let q = InboxQuery {
                page: 1 + rng.below(4) as u32,
                ..asked[asked.len() - 1 - rng.below(8)].clone()
            };
            if rng.below(2) == 0 {
                let phone = phones
                    .iter()
                    .find(|p| {
                        q.phone.as_ref().is_none_or(|f| {
                            p.to_ascii_lowercase().contains(&f.to_ascii_lowercase())
                        })
                    })
                    .unwrap_or(&phones[0]);
                let text = format!(
                    "{}{}",
                    random_text(&mut rng),
                    q.search.as_deref().unwrap_or("")
                );
                let tx = conn.transaction().unwrap();
                for _ in 0..1 + rng.below(3) {
                    added += 1;
                    insert_message_row(
                        &tx,
                        &NewMessage {
                            id: &format!("new{added}"),
                            direction: Direction::Incoming,
                            phone,
                            message: &text,
                            reply_status: q.status.unwrap_or(ReplyStatus::Unread),
                            created_at: q.from.unwrap_or(1_700_000_000),
                            ..Default::default()
                        },
                    )
                    .unwrap();
                }
                tx.commit().unwrap();
                texts.push(text);
            }
            let (rows, total) = inbox(&conn, &q).unwrap();
            let ids: Vec<String> = rows.into_iter().map(|m| m.id).collect();
            assert_eq!(
                (ids, total),
                reference_inbox(&conn, &q),
                "round {round}, again: {q:?}"
            );
            continue;
        }
        // Mostly substrings of stored texts (so there are hits), with
        // their ASCII case flipped at random; sometimes random pieces.
        let search = match rng.below(6) {
            0 => None,
            1 => Some(random_text(&mut rng)),
            _ => {
                let t: Vec<char> = texts[rng.below(texts.len())].chars().collect();
                let a = rng.below(t.len() + 1);
                let b = (a + 1 + rng.below(6)).min(t.len());
                let flip = rng.below(2) == 0;
                Some(
                    t[a..b]
                        .iter()
                        .map(|c| {
                            if flip {
                                c.to_ascii_uppercase()
                            } else {
                                c.to_ascii_lowercase()
                            }
                        })
                        .collect(),
                )
            }
        }
        .filter(|s: &String| !s.trim().is_empty());
        let q = InboxQuery {
            status: (rng.below(3) > 0).then(|| rng.pick(&statuses)),
            search,
            phone: (rng.below(3) == 0).then(|| {
                rng.pick(&["1555", "_", "%", "g.us", "2@", "336", "12@S", "7@", "61"])
                    .to_string()
            }),
            from: (rng.below(4) == 0).then(|| 1_700_000_000 + 3600 * rng.below(40) as i64),
            until: (rng.below(4) == 0).then(|| 1_700_000_000 + 3600 * rng.below(40) as i64),
            page: 1 + rng.below(4) as u32,
            limit: 1 + rng.below(20) as u32,
        };
        let size = inbox_count(&conn, None).unwrap();
        if let Some(p) = &q.phone {
            let plan = match phone_plan(&conn, p, size).unwrap() {
                PhonePlan::ByChat(Some(_)) => "ByChat(trigrams)",
                PhonePlan::ByChat(None) => "ByChat(like)",
                PhonePlan::NoChat => "NoChat",
                PhonePlan::Scan => "Scan",
            };
            *phone_plans.entry(plan).or_insert(0) += 1;
        }
        if let Some(t) = &q.search {
            let plan = match search_plan(&conn, t, size).unwrap() {
                SearchPlan::Candidates { .. } => "Candidates",
                SearchPlan::Scan => "Scan",
            };
            *search_plans.entry(plan).or_insert(0) += 1;
        }
        let (rows, total) = inbox(&conn, &q).unwrap();
        let ids: Vec<String> = rows.into_iter().map(|m| m.id).collect();
        assert_eq!(
            (ids, total),
            reference_inbox(&conn, &q),
            "round {round}: {q:?}"
        );
        if total > 0 && q.search.as_deref().is_some_and(|t| t.chars().count() >= 3) {
            searched_with_hits += 1;
        }
        asked.push(q);
    }
    // The trigram path really ran, on queries that find something.
    assert!(searched_with_hits > 100, "{searched_with_hits}");
    // So did each way of searching and of filtering by phone.
    for plan in ["Candidates", "Scan"] {
        assert!(search_plans.get(plan) > Some(&20), "{search_plans:?}");
    }
    for plan in ["NoChat", "ByChat(trigrams)", "ByChat(like)", "Scan"] {
        assert!(phone_plans.get(plan) > Some(&20), "{phone_plans:?}");
    }
    // And each way of reading the page of a search or by-chat plan.
    let paths = PAGE_PATHS.with(|p| p.borrow().clone());
    for path in [
        "walk",
        "walk to the end",
        "walk missed",
        "heap",
        "kept total",
        "total kept",
        "total kept, new messages added",
    ] {
        assert!(paths.get(path) > Some(&20), "{paths:?}");
    }
    drop(conn);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A message written under a seq below the newest (by hand, or a tool that
/// fills a gap) is not among the "new messages after the kept seq": the
/// kept totals must be counted again, not added to.
#[test]
fn a_kept_total_is_counted_again_after_an_insert_below_the_newest_seq() {
    let (dir, mut conn) = file_db();
    let q = refunds(&mut conn, 5);
    conn.execute("DELETE FROM messages WHERE id = 'm3'", [])
        .unwrap();
    assert_eq!(inbox(&conn, &q).unwrap().1, 4);
    assert_eq!(inbox(&conn, &q).unwrap().1, 4);
    conn.execute(
        "INSERT INTO messages (seq, id, direction, phone, sender_jid, message, reply_status, created_at)
         VALUES (3, 'again', 'incoming', '1@s', '1@s', 'refund', 'unread', 3)",
        [],
    )
    .unwrap();
    assert_eq!(inbox(&conn, &q).unwrap().1, 5);
    assert_eq!(reference_inbox(&conn, &q).1, 5);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A total with no status filter does not depend on statuses: marking a
/// message read keeps it (only new messages are added), while the unread
/// total is counted again.
#[test]
fn a_status_change_keeps_totals_without_a_status_filter() {
    let (dir, mut conn) = file_db();
    let all = refunds(&mut conn, 5);
    let unread = InboxQuery {
        status: Some(ReplyStatus::Unread),
        ..all.clone()
    };
    let kept = || PAGE_PATHS.with(|p| p.borrow().get("total kept").copied().unwrap_or(0));
    assert_eq!(inbox(&conn, &all).unwrap().1, 5);
    assert_eq!(inbox(&conn, &unread).unwrap().1, 5);
    assert!(set_reply_status(&conn, "m2", ReplyStatus::Read).unwrap());
    let before = kept();
    assert_eq!(inbox(&conn, &all).unwrap().1, 5);
    assert_eq!(kept(), before + 1);
    assert_eq!(inbox(&conn, &unread).unwrap().1, 4);
    assert_eq!(kept(), before + 1);
    assert_eq!(inbox(&conn, &unread).unwrap().1, 4);
    assert_eq!(kept(), before + 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Totals of very long terms are not kept: what is kept stays small
/// whatever clients search for.
#[test]
fn a_long_search_term_keeps_no_total() {
    let (dir, mut conn) = file_db();
    let long = "refund ".repeat(40);
    store(&mut conn, "m1", &incoming("w1", "1@s", &long), 1);
    let kept = || PAGE_PATHS.with(|p| p.borrow().get("total kept").copied().unwrap_or(0));
    let search = |term: &str| InboxQuery {
        search: Some(term.into()),
        page: 1,
        limit: 2,
        ..Default::default()
    };
    let before = kept();
    for _ in 0..2 {
        assert_eq!(inbox(&conn, &search(long.trim_end())).unwrap().1, 1);
    }
    assert_eq!(kept(), before);
    for _ in 0..2 {
        assert_eq!(inbox(&conn, &search("refund refund")).unwrap().1, 1);
    }
    assert_eq!(kept(), before + 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// New messages are added to a kept total by reading them alone: the count
/// runs over the range of seqs after the kept one, not over the inbox
/// (which its NOT INDEXED would do without the rowid range).
#[test]
fn a_kept_total_reads_only_the_new_messages() {
    let (dir, mut conn) = file_db();
    let q = refunds(&mut conn, 2000);
    assert_eq!(inbox(&conn, &q).unwrap().1, 2000);
    store(&mut conn, "new", &incoming("wnew", "1@s", "refund"), 3000);
    assert_eq!(inbox(&conn, &q).unwrap().1, 2001);
    let steps = conn
        .prepare_cached(&totals::count_after_sql(&q, 2000).0)
        .unwrap()
        .get_status(rusqlite::StatementStatus::VmStep);
    assert!(steps > 0 && steps < 200, "{steps} steps to add one message");
    std::fs::remove_dir_all(&dir).unwrap();
}
