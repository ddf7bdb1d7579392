//! The audit log (`/audit-logs`): filter by action and dates, page through.

use super::{escape, inline_notice, page, query_string, write_pager};
use crate::error::ApiError;
use crate::ops::{self, Ctx};
use crate::web::{Request, Response};
use crate::{clock, db};
use std::fmt::Write as _;

/// `GET /audit-logs`: filter and page through the audit log.
pub fn show(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let f = |name: &str| req.query(name).unwrap_or("").trim().to_string();
    let (action, start, end) = (f("action"), f("startDate"), f("endDate"));
    let mut main = String::from("<h1>Audit log</h1>");
    let mut date = |text: &str, name: &str| -> Option<i64> {
        if text.is_empty() {
            return None;
        }
        let d = clock::parse_date(text);
        if d.is_none() {
            inline_notice(&mut main, &format!("{name}: expected a date as YYYY-MM-DD"));
        }
        d
    };
    let from = date(&start, "From");
    let until = date(&end, "Until").map(|d| d + 86_400);
    let q = db::AuditQuery {
        action: (!action.is_empty()).then(|| action.clone()),
        from,
        until,
        page: ops::page_number(req.query("page")),
        limit: 50,
    };
    let (rows, total) = ops::audit::logs(ctx, &q)?;
    main.push_str(
        "<form class=\"filters\" method=\"get\" action=\"/audit-logs\">\
         <label>Action <select name=\"action\"><option value=\"\">All actions</option>",
    );
    let known = crate::audit::ACTIONS.iter().any(|(a, _)| *a == action);
    let other = (!known && !action.is_empty()).then_some((action.as_str(), action.as_str()));
    for (value, label) in crate::audit::ACTIONS.iter().copied().chain(other) {
        let _ = write!(
            main,
            "<option value=\"{}\"{}>{}</option>",
            escape(value),
            if value == action { " selected" } else { "" },
            escape(label)
        );
    }
    let _ = write!(
        main,
        "</select></label><label>From <input type=\"date\" name=\"startDate\" value=\"{}\"></label>\
         <label>Until <input type=\"date\" name=\"endDate\" value=\"{}\"></label>\
         <div class=\"actions\"><button type=\"submit\">Filter</button> <a href=\"/audit-logs\">Clear</a></div></form>\
         <p class=\"summary\">{total} entr{}</p>",
        escape(&start),
        escape(&end),
        if total == 1 { "y" } else { "ies" }
    );
    if rows.is_empty() {
        main.push_str("<p class=\"empty\">Nothing logged for these filters.</p>");
    } else {
        main.push_str(
            "<div class=\"scroll\"><table class=\"log\"><thead><tr><th scope=\"col\">Time (UTC)</th><th scope=\"col\">Action</th>\
             <th scope=\"col\">Status</th><th scope=\"col\">IP</th><th scope=\"col\">Request</th><th scope=\"col\">ms</th>\
             <th scope=\"col\">Details</th></tr></thead><tbody>",
        );
        for (_, e) in &rows {
            let _ = write!(
                main,
                "<tr><td data-label=\"Time (UTC)\">{}</td><td data-label=\"Action\">{}</td>\
                 <td data-label=\"Status\">{}</td><td data-label=\"IP\">{}</td>\
                 <td data-label=\"Request\">{} {}</td><td data-label=\"ms\">{}</td><td data-label=\"Details\">{}</td></tr>",
                clock::format_datetime(e.created_at),
                escape(&e.action),
                e.status.map(|s| s.to_string()).unwrap_or_default(),
                escape(e.ip.as_deref().unwrap_or("")),
                escape(e.method.as_deref().unwrap_or("")),
                escape(e.path.as_deref().unwrap_or("")),
                e.duration_us
                    .map(|us| format!("{:.1}", us as f64 / 1000.0))
                    .unwrap_or_default(),
                escape(e.details.as_deref().unwrap_or("")),
            );
        }
        main.push_str("</tbody></table></div>");
    }
    write_pager(&mut main, q.page, ops::page_count(total, q.limit), |p| {
        format!(
            "/audit-logs{}",
            query_string(&[
                ("action", &action),
                ("startDate", &start),
                ("endDate", &end),
                ("page", &p.to_string()),
            ])
        )
    });
    Ok(page(ctx, req, "Audit log", "/audit-logs", &main))
}
