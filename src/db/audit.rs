//! The audit log: rows written in batches, read by filters, pruned.

use super::DbResult;
use rusqlite::{Connection, Transaction, params, params_from_iter};

/// One audit row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditEntry {
    pub action: String,
    pub method: Option<String>,
    pub path: Option<String>,
    pub status: Option<u16>,
    pub ip: Option<String>,
    pub duration_us: Option<i64>,
    pub details: Option<String>,
    pub created_at: i64,
}

/// Writes a batch of audit rows in one transaction.
pub fn insert_audit_batch(conn: &mut Connection, entries: &[AuditEntry]) -> DbResult<()> {
    let tx = conn.transaction()?;
    for e in entries {
        insert_audit(&tx, e)?;
    }
    tx.commit()
}

/// Writes one audit row inside the caller's transaction.
pub fn insert_audit(tx: &Transaction<'_>, e: &AuditEntry) -> DbResult<()> {
    tx.prepare_cached(
        "INSERT INTO audit_logs (action, method, path, status, ip_address, duration_us, details, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        e.action,
        e.method,
        e.path,
        e.status,
        e.ip,
        e.duration_us,
        e.details,
        e.created_at
    ])?;
    Ok(())
}

/// Filters of an audit log page.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub action: Option<String>,
    pub from: Option<i64>,
    pub until: Option<i64>,
    pub page: u32,
    pub limit: u32,
}

/// One page of the audit log (newest first) and the filtered total.
pub fn audit_logs(conn: &Connection, q: &AuditQuery) -> DbResult<(Vec<(i64, AuditEntry)>, i64)> {
    let mut clauses = vec!["1 = 1"];
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(a) = &q.action {
        clauses.push("action = ?");
        args.push(a.clone().into());
    }
    if let Some(from) = q.from {
        clauses.push("created_at >= ?");
        args.push(from.into());
    }
    if let Some(until) = q.until {
        clauses.push("created_at < ?");
        args.push(until.into());
    }
    let where_sql = clauses.join(" AND ");
    let total: i64 = conn
        .prepare_cached(&format!(
            "SELECT count(*) FROM audit_logs WHERE {where_sql}"
        ))?
        .query_row(params_from_iter(args.iter()), |r| r.get(0))?;
    let rows = conn
        .prepare_cached(&format!(
            "SELECT id, action, method, path, status, ip_address, duration_us, details, created_at
             FROM audit_logs WHERE {where_sql} ORDER BY id DESC {}",
            super::limit_offset(q.limit.into(), super::page_offset(q.page, q.limit))
        ))?
        .query_map(params_from_iter(args.iter()), |r| {
            Ok((
                r.get(0)?,
                AuditEntry {
                    action: r.get(1)?,
                    method: r.get(2)?,
                    path: r.get(3)?,
                    status: r.get(4)?,
                    ip: r.get(5)?,
                    duration_us: r.get(6)?,
                    details: r.get(7)?,
                    created_at: r.get(8)?,
                },
            ))
        })?
        .collect::<DbResult<Vec<_>>>()?;
    Ok((rows, total))
}

/// Deletes audit rows older than `before` (Unix seconds).
pub fn prune_audit(conn: &Connection, before: i64) -> DbResult<usize> {
    conn.prepare_cached("DELETE FROM audit_logs WHERE created_at < ?1")?
        .execute([before])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::*;

    #[test]
    fn audit_batches_and_pages() {
        let mut conn = open_memory().unwrap();
        let entries: Vec<_> = (0..30)
            .map(|i| AuditEntry {
                action: if i % 2 == 0 {
                    "api_request"
                } else {
                    "auth_failed"
                }
                .into(),
                created_at: i,
                ..Default::default()
            })
            .collect();
        insert_audit_batch(&mut conn, &entries).unwrap();
        let q = AuditQuery {
            action: Some("auth_failed".into()),
            page: 2,
            limit: 10,
            ..Default::default()
        };
        let (rows, total) = audit_logs(&conn, &q).unwrap();
        assert_eq!(total, 15);
        assert_eq!(rows.len(), 5);
        assert_eq!(prune_audit(&conn, 10).unwrap(), 10);
    }
}
