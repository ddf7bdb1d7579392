//! The inbox: one page of incoming messages under any filters, and the
//! planner that answers each kind of filter from an index (the kept
//! counts, the trigram search index, the chats' index).

use super::messages::{MESSAGE_COLUMNS, MESSAGE_COLUMNS_M, message_from_row};
use super::{DbResult, Message, read_snapshot};
use crate::status::ReplyStatus;
use rusqlite::{Connection, OptionalExtension, params_from_iter};
use std::time::Duration;

/// Filters of an inbox page. `status` None means every status.
#[derive(Debug, Clone, Default)]
pub struct InboxQuery {
    pub status: Option<ReplyStatus>,
    pub search: Option<String>,
    pub phone: Option<String>,
    /// First second included.
    pub from: Option<i64>,
    /// First second excluded.
    pub until: Option<i64>,
    pub page: u32,
    pub limit: u32,
}

/// `%term%` for LIKE, with the term's own `%`, `_` and `\` matched literally.
fn like_pattern(term: &str) -> String {
    let mut p = String::with_capacity(term.len() + 2);
    p.push('%');
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// How long a measured trigram document frequency is used before it is
/// measured again. It only steers which trigrams filter the candidates,
/// never which rows match, so a stale value costs time, not correctness.
const TRIGRAM_DF_TTL: Duration = Duration::from_secs(600);
/// Most trigram frequencies remembered per thread (then it starts afresh).
const TRIGRAM_DF_MAX: usize = 4096;

thread_local! {
    /// Per thread, as every HTTP worker owns its connection: how many indexed
    /// messages hold a trigram (the FTS5 query string), and when it was counted.
    static TRIGRAM_DF: std::cell::RefCell<std::collections::HashMap<String, (i64, std::time::Instant)>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// `"xyz"`: one trigram as an FTS5 string (the index folds its case).
fn fts_string(trigram: &str) -> String {
    format!("\"{}\"", trigram.replace('"', "\"\""))
}

/// How many indexed messages hold `trigram` (an FTS5 string), remembered.
fn trigram_df(conn: &Connection, trigram: &str) -> DbResult<i64> {
    let now = std::time::Instant::now();
    if let Some(n) = TRIGRAM_DF.with(|m| {
        m.borrow()
            .get(trigram)
            .filter(|(_, at)| now.duration_since(*at) < TRIGRAM_DF_TTL)
            .map(|(n, _)| *n)
    }) {
        return Ok(n);
    }
    let n: i64 = conn
        .prepare_cached("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?1")?
        .query_row([trigram], |r| r.get(0))?;
    TRIGRAM_DF.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= TRIGRAM_DF_MAX {
            m.clear();
        }
        m.insert(trigram.to_string(), (n, now));
    });
    Ok(n)
}

/// The FTS5 query whose rows are the candidates for a substring search of
/// `term`: the AND of two of its trigrams. Every row that contains the term
/// contains each of its trigrams (the index folds case at least as widely as
/// LIKE), so any subset of them is a sound filter. Chosen: the rarest one
/// (a trigram such as "der", from "order", is in a quarter of all messages,
/// and reading its list costs milliseconds at 1M), and the rarest from
/// another word of the term (two trigrams of one word mostly find the same
/// rows) or else one that does not overlap it. None when the term is too
/// short to have a trigram.
fn fts_candidates_query(conn: &Connection, term: &str) -> DbResult<Option<String>> {
    let chars: Vec<char> = term.chars().collect();
    // FTS5 query strings end at a NUL; such a term takes the plain LIKE path.
    if chars.len() < 3 || term.contains('\0') {
        return Ok(None);
    }
    // (document frequency, start, word of the trigram or None when it
    // spans whitespace, FTS5 string)
    let mut word = 0;
    let mut trigrams = Vec::with_capacity(chars.len() - 2);
    for (start, w) in chars.windows(3).enumerate() {
        if start > 0 && chars[start - 1].is_whitespace() && !chars[start].is_whitespace() {
            word += 1;
        }
        let in_word = (!w.iter().any(|c| c.is_whitespace())).then_some(word);
        let text = fts_string(&w.iter().collect::<String>());
        trigrams.push((trigram_df(conn, &text)?, start, in_word, text));
    }
    trigrams.sort_unstable();
    let (_, first_start, first_word, first) = &trigrams[0];
    let other_word = trigrams
        .iter()
        .find(|t| t.2.is_some() && first_word.is_some() && t.2 != *first_word);
    let apart = || trigrams.iter().find(|t| t.1.abs_diff(*first_start) >= 3);
    Ok(Some(match other_word.or_else(apart) {
        Some((_, _, _, second)) => format!("{first} {second}"),
        None => first.clone(),
    }))
}

/// The phone filter as a set: messages of the chats whose JID matches.
/// Same rows as `m.phone LIKE ?`, as every message's phone has a `chats` row.
const MATCHING_CHATS: &str = "m.phone IN (SELECT phone FROM chats WHERE phone LIKE ? ESCAPE '\\')";

/// How to apply a phone filter.
#[derive(Debug, PartialEq)]
enum PhonePlan {
    /// No chat matches: no message can.
    NoChat,
    /// Few messages match: one pass over their chats' entries in
    /// `messages_chat_inbox`, then only the page's rows; costs per matching
    /// message.
    ByChat,
    /// Many match: one pass over the inbox, checking each phone; costs per
    /// message of the inbox, about a tenth of a matching one.
    Scan,
}

/// Picks the cheaper way to filter by the phone `pattern` (a LIKE pattern):
/// it counts the matching chats' messages (both directions, an upper bound)
/// in the `messages_chat` index, microseconds per thousand, and compares
/// that with the number of incoming messages.
fn phone_plan(conn: &Connection, pattern: &str) -> DbResult<PhonePlan> {
    let matching: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM messages
             WHERE phone IN (SELECT phone FROM chats WHERE phone LIKE ?1 ESCAPE '\\')",
        )?
        .query_row([pattern], |r| r.get(0))?;
    Ok(if matching == 0 {
        PhonePlan::NoChat
    } else if matching.saturating_mul(10) <= inbox_count(conn, None)? {
        PhonePlan::ByChat
    } else {
        PhonePlan::Scan
    })
}

/// One inbox page (incoming messages, newest first) and the total count.
///
/// Three shapes, all with the same WHERE semantics as the plain query
/// (`direction = 'incoming' AND <filters> ORDER BY created_at DESC, seq DESC`):
/// - no filter but the status: the page walks `messages_inbox_status` /
///   `messages_inbox_all` and stops after `limit` rows; the total comes from
///   `inbox_counts`;
/// - a search of 3+ characters: the trigram index yields the candidate rows
///   (`fts_candidates_query`), each still checked with the exact LIKE and
///   the other filters; the total and the page come from one pass over the
///   candidates (a CROSS JOIN fixes that join order), so the cost follows
///   the candidates and matches, not the size of the inbox;
/// - a phone filter matching few messages (`phone_plan`): the same one
///   pass, over those chats' entries in `messages_chat_inbox`;
/// - other filters: one count and one page over the status index.
pub fn inbox(conn: &Connection, q: &InboxQuery) -> DbResult<(Vec<Message>, i64)> {
    let fts = match q.search.as_deref() {
        Some(term) => fts_candidates_query(conn, term)?,
        None => None,
    };
    let mut clauses = vec!["m.direction = 'incoming'"];
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    let mut by_chat = false;
    if let Some(phrase) = &fts {
        clauses.push("messages_fts MATCH ?");
        args.push(phrase.clone().into());
    }
    if let Some(status) = &q.status {
        clauses.push("m.reply_status = ?");
        args.push(status.as_str().to_string().into());
    }
    if let Some(search) = &q.search {
        clauses.push("m.message LIKE ? ESCAPE '\\'");
        args.push(like_pattern(search).into());
    }
    if let Some(phone) = &q.phone {
        let pattern = like_pattern(phone);
        let plan = phone_plan(conn, &pattern)?;
        by_chat = plan == PhonePlan::ByChat;
        let clause = match plan {
            PhonePlan::NoChat => return Ok((Vec::new(), 0)),
            PhonePlan::ByChat => MATCHING_CHATS,
            PhonePlan::Scan => "m.phone LIKE ? ESCAPE '\\'",
        };
        clauses.push(clause);
        args.push(pattern.into());
    }
    if let Some(from) = q.from {
        clauses.push("m.created_at >= ?");
        args.push(from.into());
    }
    if let Some(until) = q.until {
        clauses.push("m.created_at < ?");
        args.push(until.into());
    }
    let where_sql = clauses.join(" AND ");
    let limit = i64::from(q.limit);
    let offset = i64::from(q.page.saturating_sub(1)) * limit;
    if fts.is_some() {
        let from = "messages_fts CROSS JOIN messages m ON m.seq = messages_fts.rowid";
        return inbox_from_candidates(conn, from, &where_sql, &args, offset, limit);
    }
    if by_chat {
        // (created_at, seq) of the chats' messages come from the
        // `messages_chat_inbox` index; only the page's rows are read. Named,
        // because with a status filter too the planner (without ANALYZE
        // statistics) would walk every message of that status instead.
        let from = "messages m INDEXED BY messages_chat_inbox";
        return inbox_from_candidates(conn, from, &where_sql, &args, offset, limit);
    }
    let from_sql = "messages m";
    let filtered = q.search.is_some() || q.phone.is_some() || q.from.is_some() || q.until.is_some();
    let total: i64 = if filtered {
        conn.prepare_cached(&format!(
            "SELECT count(*) FROM {from_sql} WHERE {where_sql}"
        ))?
        .query_row(params_from_iter(args.iter()), |r| r.get(0))?
    } else {
        inbox_count(conn, q.status)?
    };
    let mut page_args = args;
    page_args.push(limit.into());
    page_args.push(offset.into());
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS_M} FROM {from_sql} WHERE {where_sql}
             ORDER BY m.created_at DESC, m.seq DESC LIMIT ? OFFSET ?"
        ))?
        .query_map(params_from_iter(page_args.iter()), message_from_row)?
        .collect::<DbResult<Vec<_>>>()?;
    Ok((rows, total))
}

/// The search and by-chat paths of `inbox`: one pass over the candidates
/// (`from_sql`: the trigram index's rows, or the chats' index entries) that
/// pass every filter collects (created_at, seq) of each match, which gives
/// both the total and, sorted, the page; then only the page's rows are read.
/// (A count query plus a page query would run the index lookup and the LIKE
/// checks twice.) One read transaction, so the page and the total agree.
fn inbox_from_candidates(
    conn: &Connection,
    from_sql: &str,
    where_sql: &str,
    args: &[rusqlite::types::Value],
    offset: i64,
    limit: i64,
) -> DbResult<(Vec<Message>, i64)> {
    let tx = read_snapshot(conn)?;
    let mut matches: Vec<(i64, i64)> = tx
        .prepare_cached(&format!(
            "SELECT m.created_at, m.seq FROM {from_sql} WHERE {where_sql}"
        ))?
        .query_map(params_from_iter(args.iter()), |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<DbResult<_>>()?;
    // ORDER BY created_at DESC, seq DESC.
    matches.sort_unstable_by(|a, b| b.cmp(a));
    let mut by_seq = tx.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE seq = ?1"
    ))?;
    let rows = matches
        .iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(0))
        .map(|(_, seq)| by_seq.query_row([seq], message_from_row))
        .collect::<DbResult<Vec<_>>>()?;
    drop(by_seq);
    tx.commit()?;
    Ok((rows, matches.len() as i64))
}

/// Number of incoming messages with `status` (all of them for None), from the
/// counts the triggers keep.
pub fn inbox_count(conn: &Connection, status: Option<ReplyStatus>) -> DbResult<i64> {
    match status {
        Some(s) => conn
            .prepare_cached("SELECT n FROM inbox_counts WHERE reply_status = ?1")?
            .query_row([s], |r| r.get(0))
            .optional()
            .map(|n| n.unwrap_or(0)),
        None => conn
            .prepare_cached("SELECT coalesce(sum(n), 0) FROM inbox_counts")?
            .query_row([], |r| r.get(0)),
    }
}
#[cfg(test)]
mod tests {
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
        let mut conn = open_memory().unwrap();
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
        for _ in 0..240 {
            let id = format!("m{}", rng.below(800));
            match rng.below(7) {
                0 => {
                    conn.execute("DELETE FROM messages WHERE id = ?1", [&id])
                        .unwrap();
                }
                1 => {
                    set_reply_status(&conn, &id, rng.pick(&statuses)).unwrap();
                }
                2 => {
                    let text = random_text(&mut rng);
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
                    let text = random_text(&mut rng);
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
                            text: random_text(&mut rng),
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
        }
        assert_kept_counts_are_exact(&conn);
        let mut searched_with_hits = 0;
        let mut phone_plans = std::collections::HashMap::new();
        for round in 0..1500 {
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
                    rng.pick(&["1555", "_", "%", "g.us", "2@", "336", "12@S", "7@"])
                        .to_string()
                }),
                from: (rng.below(4) == 0).then(|| 1_700_000_000 + 3600 * rng.below(40) as i64),
                until: (rng.below(4) == 0).then(|| 1_700_000_000 + 3600 * rng.below(40) as i64),
                page: 1 + rng.below(4) as u32,
                limit: 1 + rng.below(20) as u32,
            };
            if let Some(p) = &q.phone {
                let plan = phone_plan(&conn, &like_pattern(p)).unwrap();
                *phone_plans.entry(format!("{plan:?}")).or_insert(0) += 1;
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
        }
        // The trigram path really ran, on queries that find something.
        assert!(searched_with_hits > 100, "{searched_with_hits}");
        // So did each way of filtering by phone.
        for plan in ["NoChat", "ByChat", "Scan"] {
            assert!(phone_plans.get(plan) > Some(&20), "{phone_plans:?}");
        }
    }
}
