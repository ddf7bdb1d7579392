//! The inbox: one page of incoming messages under any filters, and the
//! planner that answers each kind of filter from an index (the kept
//! counts, the trigram indexes of texts and of chat JIDs, the narrow text
//! index, the chats' index).

use super::messages::{MESSAGE_COLUMNS, MESSAGE_COLUMNS_M, message_from_row};
use super::{DbResult, Message, limit_offset, read_snapshot};
use crate::status::ReplyStatus;
use rusqlite::{Connection, OptionalExtension, params_from_iter};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};
use totals::Totals;

mod totals;

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
/// measured again. It only steers which trigrams filter the candidates and
/// which plan runs, never which rows match, so a stale value costs time, not
/// correctness.
const TRIGRAM_DF_TTL: Duration = Duration::from_secs(600);
/// Most trigram frequencies remembered (then it starts afresh).
const TRIGRAM_DF_MAX: usize = 8192;

/// The two trigram indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum TrigramIndex {
    /// `messages_fts`: the texts of incoming messages, by seq.
    Messages,
    /// `chats_fts`: the chat JIDs, by `chat_search.id`.
    Chats,
}

impl TrigramIndex {
    fn count_sql(self) -> &'static str {
        match self {
            Self::Messages => "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?1",
            Self::Chats => "SELECT count(*) FROM chats_fts WHERE chats_fts MATCH ?1",
        }
    }
}

/// (database file, index, FTS5 string of one trigram)
type DfKey = (String, TrigramIndex, String);

/// How many indexed rows hold a trigram, and when it was counted, for every
/// worker (each has its own connection to the same file). In-memory
/// databases are not remembered: they have no name to tell them apart.
static TRIGRAM_DF: LazyLock<Mutex<HashMap<DfKey, (i64, Instant)>>> =
    LazyLock::new(Default::default);

/// `"xyz"`: one trigram as an FTS5 string (the index folds its case).
fn fts_string(trigram: &str) -> String {
    format!("\"{}\"", trigram.replace('"', "\"\""))
}

/// How many rows of `index` hold `trigram` (an FTS5 string), remembered.
fn trigram_df(conn: &Connection, index: TrigramIndex, trigram: &str) -> DbResult<i64> {
    let now = Instant::now();
    let key = conn
        .path()
        .filter(|p| !p.is_empty())
        .map(|p| (p.to_string(), index, trigram.to_string()));
    let cache = || TRIGRAM_DF.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(key) = &key
        && let Some((n, at)) = cache().get(key)
        && now.duration_since(*at) < TRIGRAM_DF_TTL
    {
        return Ok(*n);
    }
    let n: i64 = conn
        .prepare_cached(index.count_sql())?
        .query_row([trigram], |r| r.get(0))?;
    if let Some(key) = key {
        let mut cache = cache();
        if cache.len() >= TRIGRAM_DF_MAX {
            cache.clear();
        }
        cache.insert(key, (n, now));
    }
    Ok(n)
}

/// A trigram beyond the rarest joins the candidates' query only if it is in
/// at most this many times as many rows: reading its list then costs at most
/// about a tenth of checking the candidates it might remove.
const EXTRA_TRIGRAM_RATIO: i64 = 8;

/// The rows of a trigram index that may hold a substring.
struct Candidates {
    /// The FTS5 query: the AND of some of the term's trigrams.
    query: String,
    /// At most this many rows (the smallest frequency among them).
    estimate: i64,
}

/// The candidates for a substring search of `term` in `index`: the AND of up
/// to three of its trigrams. Every row that contains the term contains each
/// of its trigrams (the index folds case at least as widely as LIKE), so any
/// subset of them is a sound filter. Chosen: the rarest one (a trigram such
/// as "der", from "order", is in a quarter of all messages, and reading its
/// list costs milliseconds at 1M), then the rarest from another word of the
/// term (two trigrams of one word mostly find the same rows) or else one
/// that does not overlap those chosen; each further one only while it is in
/// at most `EXTRA_TRIGRAM_RATIO` times as many rows as the rarest. A longer
/// list costs reading (~15 ns a row at 1M) whether or not it removes any
/// candidate (checking one costs ~1.5 µs), and a trigram next to the rarest
/// one often removes none: in "refund status" the rarest, "d s", is only
/// ever followed by "tatus", so adding "tat" (in half the messages) made the
/// candidates' list cost 16 ms instead of 2 ms at 1M for the same 39,000.
/// None when the term is too short to have a trigram.
fn fts_candidates(
    conn: &Connection,
    index: TrigramIndex,
    term: &str,
) -> DbResult<Option<Candidates>> {
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
        trigrams.push((trigram_df(conn, index, &text)?, start, in_word, text));
    }
    trigrams.sort_unstable();
    let first = &trigrams[0];
    let mut chosen = vec![first];
    let cheap = |t: &&(i64, usize, Option<usize>, String)| {
        t.0 <= first.0.saturating_mul(EXTRA_TRIGRAM_RATIO)
    };
    let apart = |chosen: &[&(i64, usize, Option<usize>, String)]| {
        trigrams
            .iter()
            .filter(cheap)
            .find(|t| chosen.iter().all(|c| t.1.abs_diff(c.1) >= 3))
    };
    let other_word = trigrams
        .iter()
        .filter(cheap)
        .find(|t| t.2.is_some() && first.2.is_some() && t.2 != first.2);
    if let Some(second) = other_word.or_else(|| apart(&chosen)) {
        chosen.push(second);
        if let Some(third) = apart(&chosen) {
            chosen.push(third);
        }
    }
    Ok(Some(Candidates {
        query: chosen
            .iter()
            .map(|t| t.3.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        estimate: first.0,
    }))
}

/// Checking one candidate of the trigram index (a seek in
/// `messages_inbox_text` and the exact LIKE) costs about as much as this many
/// rows of a scan of that index (5 at 100k messages, 9 at 1M, where fewer of
/// the seeks find their page in the cache): with more candidates than the
/// inbox's messages over this, the scan is cheaper.
const CANDIDATE_COST: i64 = 8;

/// How to apply a search.
#[derive(Debug, PartialEq)]
enum SearchPlan {
    /// The trigram index's candidates (the FTS5 `query`), each checked; at
    /// most `estimate` of them.
    Candidates { query: String, estimate: i64 },
    /// Every incoming message's text, in `messages_inbox_text`.
    Scan,
}

fn search_plan(conn: &Connection, term: &str, inbox: i64) -> DbResult<SearchPlan> {
    Ok(match fts_candidates(conn, TrigramIndex::Messages, term)? {
        Some(c) if c.estimate.saturating_mul(CANDIDATE_COST) < inbox => SearchPlan::Candidates {
            query: c.query,
            estimate: c.estimate,
        },
        _ => SearchPlan::Scan,
    })
}

// Every LIKE in the queries of this file (not the tests' plain reference)
// takes its pattern as `(SELECT ?)`, not `?`: with a bare parameter there,
// SQLite compiles the statement again each time it is bound, looking for a
// prefix to seek an index with, which a `%term%` pattern never has (about
// 80,000 instructions a search).

/// The phone filter as a set: messages of the chats whose JID matches (the
/// pattern; for `CHATS_BY_TRIGRAMS` the FTS5 query first). Same rows as
/// `m.phone LIKE ?`, as every message's phone has a `chats` row (and so a
/// `chat_search` row). SQLite reads the subquery once, into a sorted list.
const MATCHING_CHATS: &str =
    "m.phone IN (SELECT phone FROM chats WHERE phone LIKE (SELECT ?) ESCAPE '\\')";
const CHATS_BY_TRIGRAMS: &str = "m.phone IN (SELECT s.phone FROM chats_fts
     CROSS JOIN chat_search s ON s.id = chats_fts.rowid
     WHERE chats_fts MATCH ? AND s.phone LIKE (SELECT ?) ESCAPE '\\')";

/// Reading one chat's entries in `messages_chat_inbox` costs about as much
/// as this many rows of a scan of the inbox.
const CHAT_COST: i64 = 10;

/// How to apply a phone filter.
#[derive(Debug, PartialEq)]
enum PhonePlan {
    /// No matching chat has an incoming message.
    NoChat,
    /// Few chats match: one pass over their entries in
    /// `messages_chat_inbox`, then only the page's rows; costs per matching
    /// chat and message. The chats come from the trigram index of chat JIDs
    /// (this FTS5 query) or, for a pattern under three characters, from a
    /// LIKE over every chat.
    ByChat(Option<String>),
    /// Many match: one pass over the inbox, checking each phone; costs per
    /// message of the inbox.
    Scan,
}

/// The incoming messages of the chats whose JID matches a pattern, from the
/// kept counts: a LIKE over every chat.
const SHORT_PHONE_TOTAL: &str =
    "SELECT coalesce(sum(incoming), 0) FROM chat_search WHERE phone LIKE (SELECT ?1) ESCAPE '\\'";

/// Picks the cheaper way to filter by the phone `term`. With three or more
/// characters, the trigram index of chat JIDs bounds the matching chats
/// (the rarest trigram's frequency, remembered); for a shorter term the
/// matching chats' kept counts of incoming messages are added up after a
/// LIKE over every chat.
fn phone_plan(conn: &Connection, term: &str, inbox: i64) -> DbResult<PhonePlan> {
    if let Some(c) = fts_candidates(conn, TrigramIndex::Chats, term)? {
        return Ok(if c.estimate.saturating_mul(CHAT_COST) <= inbox {
            PhonePlan::ByChat(Some(c.query))
        } else {
            PhonePlan::Scan
        });
    }
    let matching: i64 = conn
        .prepare_cached(SHORT_PHONE_TOTAL)?
        .query_row([like_pattern(term)], |r| r.get(0))?;
    Ok(if matching == 0 {
        PhonePlan::NoChat
    } else if matching.saturating_mul(10) <= inbox {
        PhonePlan::ByChat(None)
    } else {
        PhonePlan::Scan
    })
}

/// One inbox page (incoming messages, newest first) and the total count.
///
/// All shapes have the same WHERE semantics as the plain query
/// (`direction = 'incoming' AND <filters> ORDER BY created_at DESC, seq DESC`,
/// the search a LIKE, so ASCII letters alone fold case, as in the Node
/// server):
/// - no filter but the status: the page walks `messages_inbox_status` /
///   `messages_inbox_all` and stops after `limit` rows; the total comes from
///   `inbox_counts`;
/// - a search (`search_plan`): when the trigram index bounds the candidates
///   well below the inbox's size, each candidate is checked with the exact
///   LIKE and the other filters in the narrow `messages_inbox_text` index
///   (a CROSS JOIN fixes that join order), so the cost follows the
///   candidates, not the size of the inbox; otherwise (a term in most
///   messages, or under three characters) one pass over that index;
/// - a phone filter matching few chats (`phone_plan`): one pass over those
///   chats' entries in `messages_chat_inbox`;
/// - other filters: one count and one page over the status index.
///
/// The search and by-chat shapes (`inbox_by_pass`) take the page from a
/// newest-first walk that stops at the page's last match and count inside
/// SQLite when matches are dense, or count every match in one pass that
/// keeps only the page's keys when they are sparse.
pub fn inbox(conn: &Connection, q: &InboxQuery) -> DbResult<(Vec<Message>, i64)> {
    let inbox_size = if q.search.is_some() || q.phone.is_some() {
        inbox_count(conn, None)?
    } else {
        0
    };
    let search = match q.search.as_deref() {
        Some(term) => Some(search_plan(conn, term, inbox_size)?),
        None => None,
    };
    let mut clauses = vec!["m.direction = 'incoming'"];
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(SearchPlan::Candidates { query, .. }) = &search {
        clauses.push("messages_fts MATCH ?");
        args.push(query.clone().into());
    }
    if let Some(status) = &q.status {
        clauses.push("m.reply_status = ?");
        args.push(status.as_str().to_string().into());
    }
    if let Some(term) = &q.search {
        clauses.push("m.message LIKE (SELECT ?) ESCAPE '\\'");
        args.push(like_pattern(term).into());
    }
    let mut by_chat = false;
    // The total of a by-chat plan with no other filter: the matching chats'
    // kept counts of incoming messages added up (`chat_search.incoming`).
    let mut kept_total = None;
    let unfiltered = q.status.is_none() && q.from.is_none() && q.until.is_none();
    if let Some(phone) = &q.phone {
        let pattern = like_pattern(phone);
        match phone_plan(conn, phone, inbox_size)? {
            PhonePlan::NoChat => return Ok((Vec::new(), 0)),
            PhonePlan::ByChat(Some(query)) => {
                clauses.push(CHATS_BY_TRIGRAMS);
                args.push(query.clone().into());
                by_chat = true;
                kept_total = unfiltered.then(|| {
                    (
                        "SELECT coalesce(sum(s.incoming), 0) FROM chats_fts
                         CROSS JOIN chat_search s ON s.id = chats_fts.rowid
                         WHERE chats_fts MATCH ?1 AND s.phone LIKE (SELECT ?2) ESCAPE '\\'",
                        vec![query.into(), pattern.clone().into()],
                    )
                });
            }
            PhonePlan::ByChat(None) => {
                clauses.push(MATCHING_CHATS);
                by_chat = true;
                kept_total = unfiltered.then(|| (SHORT_PHONE_TOTAL, vec![pattern.clone().into()]));
            }
            PhonePlan::Scan => clauses.push("m.phone LIKE (SELECT ?) ESCAPE '\\'"),
        }
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
    let pass = |from_sql: &'static str, first: First| Pass {
        from_sql,
        where_sql: &where_sql,
        args: &args,
        first,
        kept_total: None,
    };
    match search {
        Some(SearchPlan::Candidates { estimate, .. }) => {
            let from = "messages_fts CROSS JOIN messages m INDEXED BY messages_inbox_text
                 ON m.seq = messages_fts.rowid";
            return inbox_by_pass(conn, q, &pass(from, First::Walk(Some(estimate))));
        }
        Some(SearchPlan::Scan) => {
            let from = "messages m INDEXED BY messages_inbox_text";
            return inbox_by_pass(conn, q, &pass(from, First::Walk(None)));
        }
        None => {}
    }
    if by_chat {
        // (created_at, seq) of the chats' messages come from the
        // `messages_chat_inbox` index; only the page's rows are read. Named,
        // because with a status filter too the planner (without ANALYZE
        // statistics) would walk every message of that status instead.
        let from = "messages m INDEXED BY messages_chat_inbox";
        let pass = Pass {
            kept_total,
            ..pass(from, First::Count)
        };
        return inbox_by_pass(conn, q, &pass);
    }
    let from_sql = "messages m";
    let filtered = q.phone.is_some() || q.from.is_some() || q.until.is_some();
    let total: i64 = if filtered {
        conn.prepare_cached(&format!(
            "SELECT count(*) FROM {from_sql} WHERE {where_sql}"
        ))?
        .query_row(params_from_iter(args.iter()), |r| r.get(0))?
    } else {
        inbox_count(conn, q.status)?
    };
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS_M} FROM {from_sql} WHERE {where_sql}
             ORDER BY m.created_at DESC, m.seq DESC {}",
            limit_offset(limit, offset)
        ))?
        .query_map(params_from_iter(args.iter()), message_from_row)?
        .collect::<DbResult<Vec<_>>>()?;
    Ok((rows, total))
}

/// At most this many entries of the newest-first index are walked for a
/// page (`walk_page`): each costs a row read (~1 µs), so a walk that fails
/// wastes a few milliseconds, and one that succeeds replaces a pass over
/// every match. (Small in tests, so that their few hundred messages take
/// every path.)
const WALK_ROWS: usize = if cfg!(test) { 60 } else { 4000 };

#[cfg(test)]
thread_local! {
    /// How often each way of reading a page ran on this thread.
    static PAGE_PATHS: std::cell::RefCell<HashMap<&'static str, usize>> = Default::default();
}

/// Counts a way of reading a page, for the tests that check each one ran.
fn note_path(_path: &'static str) {
    #[cfg(test)]
    PAGE_PATHS.with(|p| *p.borrow_mut().entry(_path).or_default() += 1);
}

/// What a search or by-chat page tries first.
#[derive(Debug, Clone, Copy, PartialEq)]
enum First {
    /// The newest-first walk, unless this bound on the matches says it
    /// cannot find the page within `WALK_ROWS` (None: no bound).
    Walk(Option<i64>),
    /// The exact count, which tells whether the walk would find the page.
    Count,
}

/// The matches of a search or phone filter as the planner reads them:
/// `SELECT … FROM {from_sql} WHERE {where_sql}` with `args`.
struct Pass<'a> {
    from_sql: &'static str,
    where_sql: &'a str,
    args: &'a [rusqlite::types::Value],
    first: First,
    /// A query (and its arguments) that gives the total from kept counts,
    /// without reading the matches.
    kept_total: Option<(&'static str, Vec<rusqlite::types::Value>)>,
}

/// The search and by-chat paths of `inbox`, in one read transaction (so the
/// page and the total agree). Where matches are dense, the page comes from
/// a walk of the newest messages that stops at the page's last match
/// (`walk_page`), and the total from one `count(*)` over the pass, run
/// inside SQLite. Where they are sparse (the walk would read too many rows
/// or ran out of them), one pass over the matches counts them and keeps
/// (created_at, seq) of the newest `offset + limit` in a heap
/// (`heap_pass`). Either way only the page's rows are read whole.
fn inbox_by_pass(conn: &Connection, q: &InboxQuery, pass: &Pass) -> DbResult<(Vec<Message>, i64)> {
    let limit = usize::try_from(q.limit).unwrap_or(0);
    let offset = usize::try_from(q.page.saturating_sub(1))
        .unwrap_or(usize::MAX)
        .saturating_mul(limit);
    let keep = offset.saturating_add(limit);
    let tx = read_snapshot(conn)?;
    let totals = Totals::at(&tx, q)?;
    // A total kept from an earlier page of the same filters (`totals`) is
    // as good as a count.
    let kept = totals.kept(&tx, q)?;
    let first = if kept.is_some() {
        First::Count
    } else {
        pass.first
    };
    // Entries the walk's index holds; `need` of them are read to find `keep`
    // matches among `matches`, if they are spread evenly.
    let walked = inbox_count(&tx, q.status)?.max(1);
    let need = |matches: i64| {
        i64::try_from(keep)
            .unwrap_or(i64::MAX)
            .saturating_mul(walked)
            .checked_div(matches)
            .unwrap_or(i64::MAX)
    };
    let worth_walking = |matches: i64| need(matches) <= WALK_ROWS as i64 / 2;
    // A bound on the matches in the whole inbox: those of the status are
    // about the status's share of them.
    let inbox = inbox_count(&tx, None)?.max(1);
    let share = |bound: i64| i128::from(bound) * i128::from(walked) / i128::from(inbox);
    let count = || -> DbResult<i64> {
        if let Some(total) = kept {
            return Ok(total);
        }
        if let Some((sql, args)) = &pass.kept_total {
            note_path("kept total");
            return tx
                .prepare_cached(sql)?
                .query_row(params_from_iter(args.iter()), |r| r.get(0));
        }
        tx.prepare_cached(&format!(
            "SELECT count(*) FROM {} WHERE {}",
            pass.from_sql, pass.where_sql
        ))?
        .query_row(params_from_iter(pass.args.iter()), |r| r.get(0))
    };
    let found = match first {
        First::Walk(bound)
            if bound.is_none_or(|b| worth_walking(i64::try_from(share(b)).unwrap_or(i64::MAX))) =>
        {
            walk_page(&tx, q, keep)?.map(|walk| match walk {
                Walk::Whole(seqs) => {
                    let total = seqs.len() as i64;
                    Ok((seqs, total))
                }
                Walk::Page(seqs) => count().map(|total| (seqs, total)),
            })
        }
        First::Walk(_) => None,
        First::Count => {
            let total = count()?;
            if total == 0 {
                Some(Ok((Vec::new(), 0)))
            } else if worth_walking(total) {
                walk_page(&tx, q, keep)?.map(|walk| match walk {
                    Walk::Whole(seqs) | Walk::Page(seqs) => Ok((seqs, total)),
                })
            } else {
                None
            }
        }
    };
    let (seqs, total) = match found {
        Some(found) => found?,
        None => {
            note_path("heap");
            heap_pass(&tx, pass, keep)?
        }
    };
    totals.keep(total);
    let mut by_seq = tx.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE seq = ?1"
    ))?;
    let rows = seqs
        .iter()
        .skip(offset)
        .take(limit)
        .map(|seq| by_seq.query_row([seq], message_from_row))
        .collect::<DbResult<Vec<_>>>()?;
    drop(by_seq);
    tx.commit()?;
    Ok((rows, total))
}

/// The plain query's filters over `messages m`, each with its arguments in
/// order: `range`, the direction, status and dates (what an index of the
/// inbox can bound), and `checks`, the LIKEs of the search and the phone.
struct PlainFilters {
    range: Vec<&'static str>,
    range_args: Vec<rusqlite::types::Value>,
    checks: Vec<&'static str>,
    check_args: Vec<rusqlite::types::Value>,
}

fn plain_filters(q: &InboxQuery) -> PlainFilters {
    let mut f = PlainFilters {
        range: vec!["m.direction = 'incoming'"],
        range_args: Vec::new(),
        checks: Vec::new(),
        check_args: Vec::new(),
    };
    if let Some(status) = q.status {
        f.range.push("m.reply_status = ?");
        f.range_args.push(status.as_str().to_string().into());
    }
    if let Some(from) = q.from {
        f.range.push("m.created_at >= ?");
        f.range_args.push(from.into());
    }
    if let Some(until) = q.until {
        f.range.push("m.created_at < ?");
        f.range_args.push(until.into());
    }
    if let Some(term) = &q.search {
        f.checks.push("m.message LIKE (SELECT ?) ESCAPE '\\'");
        f.check_args.push(like_pattern(term).into());
    }
    if let Some(phone) = &q.phone {
        f.checks.push("m.phone LIKE (SELECT ?) ESCAPE '\\'");
        f.check_args.push(like_pattern(phone).into());
    }
    f
}

/// What `walk_page` found: the seqs of the newest matches, newest first.
enum Walk {
    /// The first `keep` matches; there may be more.
    Page(Vec<i64>),
    /// Every match (the walk reached the oldest message with fewer).
    Whole(Vec<i64>),
}

/// The newest `keep` matches of `q` by walking the inbox newest first
/// (`messages_inbox_all`, or `messages_inbox_status` for a status; the date
/// range bounds the walk) and checking each message with the plain query's
/// LIKEs, so it reads the page's rows and the ones between them and no
/// index of the text. None when `WALK_ROWS` entries did not hold them: the
/// matches are too sparse for this plan.
fn walk_page(conn: &Connection, q: &InboxQuery, keep: usize) -> DbResult<Option<Walk>> {
    let filters = plain_filters(q);
    let index = match q.status {
        Some(_) => "messages_inbox_status",
        None => "messages_inbox_all",
    };
    let check = if filters.checks.is_empty() {
        "1".to_string()
    } else {
        filters.checks.join(" AND ")
    };
    let range = filters.range.join(" AND ");
    // The checks come first in the statement's text, so their arguments do.
    let args = filters.check_args.iter().chain(&filters.range_args);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT m.seq, {check} FROM messages m INDEXED BY {index} WHERE {range}
         ORDER BY m.created_at DESC, m.seq DESC"
    ))?;
    let mut rows = stmt.query(params_from_iter(args))?;
    let mut seqs = Vec::with_capacity(keep.min(WALK_ROWS));
    let mut walked = 0;
    while seqs.len() < keep {
        let Some(row) = rows.next()? else {
            note_path("walk to the end");
            return Ok(Some(Walk::Whole(seqs)));
        };
        if row.get::<_, bool>(1)? {
            seqs.push(row.get(0)?);
        }
        walked += 1;
        if walked >= WALK_ROWS && seqs.len() < keep {
            note_path("walk missed");
            return Ok(None);
        }
    }
    note_path("walk");
    Ok(Some(Walk::Page(seqs)))
}

/// One pass over the matches that counts them and keeps (created_at, seq)
/// of the newest `keep`: the seqs newest first, and the total. (A count
/// query plus a page query would run the index lookups and the LIKE checks
/// twice; keeping every match would hold memory in proportion to them.)
fn heap_pass(conn: &Connection, pass: &Pass, keep: usize) -> DbResult<(Vec<i64>, i64)> {
    // The newest `keep` matches, the oldest of them on top.
    let mut newest: BinaryHeap<Reverse<(i64, i64)>> = BinaryHeap::new();
    let mut total = 0;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT m.created_at, m.seq FROM {} WHERE {}",
        pass.from_sql, pass.where_sql
    ))?;
    let mut rows = stmt.query(params_from_iter(pass.args.iter()))?;
    while let Some(row) = rows.next()? {
        total += 1;
        let key: (i64, i64) = (row.get(0)?, row.get(1)?);
        if newest.len() < keep {
            newest.push(Reverse(key));
        } else if let Some(mut oldest) = newest.peek_mut()
            && key > oldest.0
        {
            *oldest = Reverse(key);
        }
    }
    // ORDER BY created_at DESC, seq DESC.
    let mut page: Vec<(i64, i64)> = newest.into_iter().map(|Reverse(k)| k).collect();
    page.sort_unstable_by(|a, b| b.cmp(a));
    Ok((page.into_iter().map(|(_, seq)| seq).collect(), total))
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
mod tests;
