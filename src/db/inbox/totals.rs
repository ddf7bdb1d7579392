//! Kept totals of filtered inbox pages.
//!
//! A search or phone filter's total is the costly part of its page: where a
//! term is in many messages, every one of them is read to count it (about
//! 20 ms at 100,000 messages for a pair of common words), while the page
//! itself is found among the newest few hundred. The same filters are asked
//! for again and again: the next page of a search, the dashboard refreshing
//! the page it shows when a message arrives, a script polling. So the total
//! of each filter is kept here, with the point of the database it is true
//! at: the `inbox_changes` number and the newest seq. While that number
//! stays the same the only change to the inbox is new messages after that
//! seq (the triggers in schema.sql bump it on every other change), so the
//! kept total plus the matches among those new messages is exact; when it
//! has moved, the total is counted again in full.

use super::{InboxQuery, note_path, plain_filters};
use crate::db::DbResult;
use crate::status::ReplyStatus;
use rusqlite::{Connection, params_from_iter};
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

/// What a total depends on: the database file and every filter but the page.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Filters {
    db: String,
    status: Option<ReplyStatus>,
    search: Option<String>,
    phone: Option<String>,
    from: Option<i64>,
    until: Option<i64>,
}

/// A total and the point of the database it was true at.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Mark {
    /// `inbox_changes.n`.
    changes: i64,
    /// `inbox_changes.status_n`, for a total with a status filter (None
    /// without: it does not depend on statuses).
    status_changes: Option<i64>,
    /// The newest seq.
    last_seq: i64,
}

impl Mark {
    /// Whether the database at `self` differs from `earlier` only by new
    /// messages after it (or not at all).
    fn follows(&self, earlier: &Mark) -> bool {
        self.changes == earlier.changes
            && self.status_changes == earlier.status_changes
            && self.last_seq >= earlier.last_seq
    }
}

/// Most totals kept (then it starts afresh); each is a few hundred bytes.
const KEPT_MAX: usize = 1024;
/// Filters with a longer search or phone term are not kept, so the kept
/// totals stay under a megabyte whatever is searched.
const TERM_MAX: usize = 256;

/// The kept totals, for every worker (each has its own connection to the
/// same file). In-memory databases are not kept: they have no name to tell
/// them apart.
static KEPT: LazyLock<Mutex<HashMap<Filters, (Mark, i64)>>> = LazyLock::new(Default::default);

fn kept() -> std::sync::MutexGuard<'static, HashMap<Filters, (Mark, i64)>> {
    KEPT.lock().unwrap_or_else(|e| e.into_inner())
}

/// The totals of `q` in the snapshot of one read transaction.
pub(super) struct Totals {
    filters: Option<Filters>,
    mark: Mark,
}

impl Totals {
    /// Reads where the snapshot of `tx` is (run it inside the transaction
    /// that reads the page).
    pub(super) fn at(tx: &Connection, q: &InboxQuery) -> DbResult<Self> {
        let mark = tx
            .prepare_cached(
                "SELECT n, status_n, (SELECT coalesce(max(seq), 0) FROM messages) FROM inbox_changes",
            )?
            .query_row([], |r| {
                Ok(Mark {
                    changes: r.get(0)?,
                    status_changes: q.status.is_some().then(|| r.get(1)).transpose()?,
                    last_seq: r.get(2)?,
                })
            })?;
        let short = |term: &Option<String>| term.as_ref().is_none_or(|t| t.len() <= TERM_MAX);
        let keepable = short(&q.search) && short(&q.phone);
        let db = tx.path().filter(|p| keepable && !p.is_empty());
        let filters = db.map(|db| Filters {
            db: db.to_string(),
            status: q.status,
            search: q.search.clone(),
            phone: q.phone.clone(),
            from: q.from,
            until: q.until,
        });
        Ok(Self { filters, mark })
    }

    /// The exact total from a kept one, if one was kept since the last
    /// change but new messages: that total plus the matches after its seq.
    pub(super) fn kept(&self, tx: &Connection, q: &InboxQuery) -> DbResult<Option<i64>> {
        let Some(filters) = &self.filters else {
            return Ok(None);
        };
        let found = kept().get(filters).copied();
        let Some((mark, total)) = found else {
            return Ok(None);
        };
        if !self.mark.follows(&mark) {
            return Ok(None);
        }
        if mark.last_seq == self.mark.last_seq {
            note_path("total kept");
            return Ok(Some(total));
        }
        note_path("total kept, new messages added");
        let added = count_after(tx, q, mark.last_seq)?;
        Ok(Some(total + added))
    }

    /// Keeps `total` as the total of these filters at this snapshot.
    pub(super) fn keep(&self, total: i64) {
        let Some(filters) = &self.filters else {
            return;
        };
        let mut kept = kept();
        if let Some((mark, _)) = kept.get(filters)
            && mark.follows(&self.mark)
        {
            // A worker with a newer snapshot kept it already.
            return;
        }
        if kept.len() >= KEPT_MAX && !kept.contains_key(filters) {
            kept.clear();
        }
        kept.insert(filters.clone(), (self.mark, total));
    }
}

/// The matches of `q` among the messages after `seq`: the plain query's
/// filters over that range of the table's own order (NOT INDEXED, so that
/// no index of a filter, say the status's, is walked whole instead).
fn count_after(tx: &Connection, q: &InboxQuery, seq: i64) -> DbResult<i64> {
    let (sql, args) = count_after_sql(q, seq);
    tx.prepare_cached(&sql)?
        .query_row(params_from_iter(args), |r| r.get(0))
}

/// `count_after`'s statement and its arguments.
pub(super) fn count_after_sql(q: &InboxQuery, seq: i64) -> (String, Vec<rusqlite::types::Value>) {
    let f = plain_filters(q);
    let clauses: Vec<&str> = ["m.seq > ?"]
        .into_iter()
        .chain(f.range)
        .chain(f.checks)
        .collect();
    let args = [seq.into()]
        .into_iter()
        .chain(f.range_args)
        .chain(f.check_args)
        .collect();
    (
        format!(
            "SELECT count(*) FROM messages m NOT INDEXED WHERE {}",
            clauses.join(" AND ")
        ),
        args,
    )
}
