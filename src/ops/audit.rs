//! The audit log, as people read it (rows are written by the `audit`
//! thread).

use super::{Ctx, Error};
use crate::db::{self, AuditEntry, AuditQuery};

/// One page of audit rows (id and row), newest first, and how many match.
pub fn logs(ctx: &Ctx, q: &AuditQuery) -> Result<(Vec<(i64, AuditEntry)>, i64), Error> {
    Ok(db::audit_logs(&ctx.db, q)?)
}
