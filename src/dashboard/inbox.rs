//! The inbox page (`/`): status tabs, filters, one row per message, and
//! marking the selected messages.

use super::{
    audit, csrf_field, done, escape, failed, inline_notice, page, query_string, read_form,
    safe_back, seg, time_html, write_pager,
};
use crate::db::{self, InboxQuery};
use crate::error::ApiError;
use crate::ops::{self, Ctx};
use crate::status::ReplyStatus;
use crate::web::{Request, Response};
use std::fmt::Write as _;

const INBOX_TABS: [(&str, &str); 5] = [
    ("unread", "Unread"),
    ("read", "Read"),
    ("replied", "Replied"),
    ("ignored", "Ignored"),
    ("all", "All"),
];

/// `GET /`: the inbox.
pub fn show(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let status = req
        .query("status")
        .filter(|s| INBOX_TABS.iter().any(|(t, _)| t == s))
        .unwrap_or("unread");
    let mut main = String::with_capacity(32 * 1024);
    let q = match ops::messages::inbox_query(Some(status), |name| req.query(name)) {
        Ok(q) => q,
        Err(e) => {
            inline_notice(&mut main, &e.message());
            InboxQuery {
                status: ReplyStatus::parse(status),
                page: 1,
                limit: 50,
                ..InboxQuery::default()
            }
        }
    };
    let (rows, total) = ops::messages::inbox(ctx, &q)?;
    let f = |name: &str| req.query(name).unwrap_or("").trim().to_string();
    let (search, phone, start, end) = (f("search"), f("phone"), f("startDate"), f("endDate"));
    let limit = if req.query("limit").is_some() {
        q.limit.to_string()
    } else {
        String::new()
    };
    let url = |status: &str, page: u32| {
        let page = if page > 1 {
            page.to_string()
        } else {
            String::new()
        };
        format!(
            "/{}",
            query_string(&[
                ("status", if status == "unread" { "" } else { status }),
                ("search", &search),
                ("phone", &phone),
                ("startDate", &start),
                ("endDate", &end),
                ("limit", &limit),
                ("page", &page),
            ])
        )
    };

    main.push_str("<h1>Inbox</h1>");
    // `tabs` and `listing` are what app.js replaces when an event arrives.
    main.push_str("<nav class=\"tabs\" id=\"tabs\" aria-label=\"Status\">");
    for (tab, label) in INBOX_TABS {
        let count = ops::messages::inbox_count(ctx, ReplyStatus::parse(tab))?;
        let current = if tab == status {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(
            main,
            "<a href=\"{}\"{current}>{label} <span class=\"count\">{count}</span></a>",
            escape(&url(tab, 1))
        );
    }
    main.push_str("</nav>");

    let active = [&search, &phone, &start, &end]
        .iter()
        .filter(|v| !v.is_empty())
        .count();
    // Folded on a phone screen unless a filter is set (app.js unfolds it on
    // a wide one), so the messages come first.
    let _ = write!(
        main,
        "<details class=\"fold\" id=\"filters\"{open}><summary>Filters{count}</summary>\
         <form class=\"filters\" method=\"get\" action=\"/\" role=\"search\">\
         <input type=\"hidden\" name=\"status\" value=\"{status}\">\
         <label>Search text <input type=\"search\" name=\"search\" value=\"{}\"></label>\
         <label>Phone <input type=\"text\" name=\"phone\" inputmode=\"tel\" placeholder=\"+15551234567\" value=\"{}\"></label>\
         <label>From <input type=\"date\" name=\"startDate\" value=\"{}\"></label>\
         <label>Until <input type=\"date\" name=\"endDate\" value=\"{}\"></label>\
         <div class=\"actions\"><button type=\"submit\">Filter</button> <a href=\"{}\">Clear</a></div></form></details>",
        escape(&search),
        escape(&phone),
        escape(&start),
        escape(&end),
        escape(&format!("/{}", query_string(&[("status", status)]))),
        open = if active > 0 { " open" } else { "" },
        count = if active > 0 {
            format!(" <span class=\"count\">{active}</span>")
        } else {
            String::new()
        },
    );

    let pages = ops::page_count(total, q.limit);
    let _ = write!(
        main,
        "<div id=\"listing\" data-after=\"{}\">",
        ops::events::last_id(ctx)?
    );
    let _ = write!(
        main,
        "<p class=\"summary\">{total} message{} · page {} of {}</p>",
        if total == 1 { "" } else { "s" },
        q.page,
        pages.max(1)
    );
    if rows.is_empty() {
        main.push_str("<p class=\"empty\">No messages here.</p>");
    } else {
        let back = url(status, q.page);
        let _ = write!(
            main,
            "<form method=\"post\" action=\"/messages/status\">{}\
             <input type=\"hidden\" name=\"back\" value=\"{}\">\
             <div class=\"bulk\"><label class=\"js-only\" hidden><input type=\"checkbox\" id=\"select-all\"> Select all</label>\
             <span class=\"marks\"><span aria-hidden=\"true\">Mark:</span>\
             <button type=\"submit\" name=\"status\" value=\"read\" aria-label=\"Mark selected read\">Read</button>\
             <button type=\"submit\" name=\"status\" value=\"ignored\" aria-label=\"Mark selected ignored\">Ignored</button>\
             <button type=\"submit\" name=\"status\" value=\"unread\" aria-label=\"Mark selected unread\">Unread</button></span></div>\
             <ul class=\"inbox\">",
            csrf_field(ctx),
            escape(&back)
        );
        let groups: Vec<&str> = rows.iter().map(|m| m.phone.as_str()).collect();
        let names = ops::messages::chat_names(ctx, &groups)?;
        for m in &rows {
            write_inbox_row(&mut main, m, names.get(&m.phone).map(String::as_str));
        }
        main.push_str("</ul></form>");
    }
    write_pager(&mut main, q.page, pages, |p| url(status, p));
    main.push_str("</div>");
    Ok(page(ctx, req, "Inbox", "/", &main))
}

/// A phone for people: `+15551234567` for a personal JID, the JID otherwise.
pub(super) fn display_phone(phone: &str) -> String {
    match phone.strip_suffix("@s.whatsapp.net") {
        Some(digits) if digits.bytes().all(|b| b.is_ascii_digit()) => format!("+{digits}"),
        _ => phone.to_string(),
    }
}

pub(super) fn is_group(phone: &str) -> bool {
    phone.ends_with("@g.us")
}

/// Who wrote a message, for people: a name and number; in a group, the
/// group's name (its JID while the name is unknown) and the member.
pub(super) fn sender_name(m: &db::Message, chat_name: Option<&str>) -> String {
    let push_name = m.push_name.as_deref().filter(|n| !n.trim().is_empty());
    if is_group(&m.phone) {
        let member = push_name
            .map(str::to_string)
            .unwrap_or_else(|| display_phone(&m.sender_jid));
        return format!("{} · {member}", chat_name.unwrap_or(&m.phone));
    }
    match push_name {
        Some(name) => format!("{name} · {}", display_phone(&m.phone)),
        None => display_phone(&m.phone),
    }
}

pub(super) fn preview(text: &str, max: usize) -> String {
    let mut p: String = text.chars().take(max).collect();
    if text.chars().nth(max).is_some() {
        p.push('…');
    }
    p
}

fn write_inbox_row(out: &mut String, m: &db::Message, chat_name: Option<&str>) {
    let id = escape(&m.id);
    let text = if m.message.is_empty() {
        m.media_type
            .as_deref()
            .map(|t| format!("[{t}]"))
            .unwrap_or_default()
    } else {
        preview(&m.message, 160)
    };
    let media = m
        .media_type
        .as_deref()
        .map(|t| format!("<span class=\"badge media\">{}</span>", escape(t)))
        .unwrap_or_default();
    let _ = write!(
        out,
        "<li class=\"row st-{st}\"><input type=\"checkbox\" name=\"id\" value=\"{id}\" id=\"sel-{id}\" aria-label=\"Select the message from {from}\">\
         <a class=\"row-link\" href=\"/reply/{href}\"><span class=\"from\" title=\"{from}\">{from}</span>\
         {when}<span class=\"text\">{text}</span></a>\
         <span class=\"badges\">{media}<span class=\"badge st-{st}\">{st}</span></span></li>",
        st = m.reply_status,
        from = escape(&sender_name(m, chat_name)),
        href = escape(&seg(&m.id)),
        when = time_html(m.created_at),
        text = escape(&text),
    );
}

/// `POST /messages/status`: mark the selected messages.
pub fn mark(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    let form = read_form(ctx, req)?;
    let back = safe_back(form.get("back"), "/");
    let Some(status) =
        ReplyStatus::parse(form.text("status")).filter(|s| ReplyStatus::TRIAGE.contains(s))
    else {
        return Ok(failed(&back, "Choose read, ignored or unread"));
    };
    let ids = form.all("id");
    if ids.is_empty() {
        return Ok(failed(&back, "Select at least one message first"));
    }
    if ids.len() > ops::messages::BATCH_MAX {
        return Ok(failed(&back, "Select at most 1000 messages at once"));
    }
    let updated = ops::messages::set_statuses(ctx, &ids, status)?;
    audit(ctx, req, format!("marked {updated} message(s) {status}"));
    Ok(done(
        &back,
        format!(
            "Marked {updated} message{} {status}",
            if updated == 1 { "" } else { "s" }
        ),
    ))
}
