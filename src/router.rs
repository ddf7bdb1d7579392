//! The route table: every (method, path) the server answers, who may call it,
//! and its handler. It is data rather than a `match` so that the OpenAPI test
//! can walk it in both directions (every route documented, every documented
//! route served). Earlier rows win, so fixed segments come before `:params`.

use crate::error::ApiError;
use crate::ops::Ctx;
use crate::web::{Method, Request, Response};
use crate::{api, dashboard};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, not rate limited.
    Public,
    /// `X-API-Key`, rate limited per key.
    ApiKey,
    /// `X-API-Key` or the dashboard's Basic Auth.
    ApiKeyOrBasic,
    /// The dashboard's Basic Auth.
    Dashboard,
    /// `X-API-Key`, and only with the simulator backend (404 otherwise).
    Simulator,
}

/// A handler: the request and the captured `:params`, in order.
pub type Handler = fn(&mut Ctx, &Request, &[&str]) -> Result<Response, ApiError>;

/// One row of the table.
pub struct Route {
    pub method: Method,
    /// Segments separated by `/`; `:name` captures one segment.
    pub path: &'static str,
    pub access: Access,
    pub handler: Handler,
}

use Access::*;
use Method::*;

const fn r(method: Method, path: &'static str, access: Access, handler: Handler) -> Route {
    Route {
        method,
        path,
        access,
        handler,
    }
}

#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    // ── the v1 contract of the Node server ──────────────────────────────────────────
    r(Get,    "/api/v1/health",                           Public,        api::health),
    r(Get,    "/api/v1/status",                           ApiKey,        api::status),
    r(Get,    "/api/v1/inbox",                            ApiKey,        api::inbox),
    r(Get,    "/api/v1/inbox/:status",                    ApiKey,        api::inbox),
    r(Patch,  "/api/v1/messages/batch/status",            ApiKey,        api::batch_status),
    r(Get,    "/api/v1/messages/:id",                     ApiKey,        api::message),
    r(Post,   "/api/v1/messages/:id/reply",               ApiKey,        api::reply),
    r(Post,   "/api/v1/messages/:id/react",               ApiKey,        api::react),
    r(Patch,  "/api/v1/messages/:id/status",              ApiKey,        api::message_status),
    r(Get,    "/api/v1/webhooks",                         ApiKey,        api::webhooks_list),
    r(Get,    "/media/:file",                             ApiKeyOrBasic, api::media),
    // ── extensions ──────────────────────────────────────────────────────────────────
    r(Get,    "/api/v1/openapi.json",                     Public,        api::openapi),
    r(Get,    "/api/v1/conversations",                    ApiKey,        api::conversations),
    r(Get,    "/api/v1/conversations/:phone/messages",    ApiKey,        api::conversation_messages),
    r(Post,   "/api/v1/conversations/:phone/typing",      ApiKey,        api::typing),
    r(Get,    "/api/v1/qr",                               ApiKey,        api::qr),
    r(Post,   "/api/v1/session/pair-code",                ApiKey,        api::pair_code),
    r(Post,   "/api/v1/session/logout",                   ApiKey,        api::logout),
    r(Post,   "/api/v1/session/pair",                     ApiKey,        api::session_pair),
    r(Post,   "/api/v1/webhooks",                         ApiKey,        api::webhook_create),
    r(Patch,  "/api/v1/webhooks/:id",                     ApiKey,        api::webhook_update),
    r(Delete, "/api/v1/webhooks/:id",                     ApiKey,        api::webhook_delete),
    r(Post,   "/api/v1/webhooks/:id/test",                ApiKey,        api::webhook_test),
    r(Get,    "/api/v1/webhooks/:id/deliveries",          ApiKey,        api::webhook_deliveries),
    r(Post,   "/api/v1/deliveries/:id/redeliver",         ApiKey,        api::redeliver),
    r(Get,    "/api/v1/audit-logs",                       ApiKey,        api::audit_logs),
    r(Get,    "/api/v1/events",                           ApiKeyOrBasic, api::events),
    r(Get,    "/metrics",                                 ApiKeyOrBasic, api::metrics),
    // ── simulator (sandbox) ─────────────────────────────────────────────────────────
    r(Post,   "/api/v1/simulator/messages",               Simulator,     api::sim_inject),
    r(Post,   "/api/v1/simulator/raw",                    Simulator,     api::sim_raw),
    r(Post,   "/api/v1/simulator/connection",             Simulator,     api::sim_connection),
    r(Get,    "/api/v1/simulator/sent",                   Simulator,     api::sim_sent),
    r(Post,   "/api/v1/simulator/fail-sends",             Simulator,     api::sim_fail_sends),
    r(Post,   "/api/v1/simulator/reactions",              Simulator,     api::sim_reaction),
    r(Post,   "/api/v1/simulator/edits",                  Simulator,     api::sim_edit),
    r(Post,   "/api/v1/simulator/revokes",                Simulator,     api::sim_revoke),
    r(Post,   "/api/v1/simulator/receipts",               Simulator,     api::sim_receipt),
    // ── dashboard (HTML) ────────────────────────────────────────────────────────────
    r(Get,    "/assets/:file",                            Public,        dashboard::asset),
    r(Get,    "/favicon.ico",                             Public,        dashboard::favicon),
    r(Get,    "/",                                        Dashboard,     dashboard::inbox::show),
    r(Post,   "/messages/status",                         Dashboard,     dashboard::inbox::mark),
    r(Get,    "/reply/:id",                               Dashboard,     dashboard::conversation::show),
    r(Post,   "/reply/:id",                               Dashboard,     dashboard::conversation::reply),
    r(Post,   "/reply/:id/react",                         Dashboard,     dashboard::conversation::react),
    r(Get,    "/status",                                  Dashboard,     dashboard::pairing::status),
    r(Post,   "/status/logout",                           Dashboard,     dashboard::pairing::logout),
    r(Post,   "/status/repair",                           Dashboard,     dashboard::pairing::repair),
    r(Get,    "/login",                                   Dashboard,     dashboard::pairing::login),
    r(Get,    "/login/qr.svg",                            Dashboard,     dashboard::pairing::login_qr),
    r(Post,   "/login/pair-code",                         Dashboard,     dashboard::pairing::pair_code),
    r(Post,   "/login/start",                             Dashboard,     dashboard::pairing::start_pairing),
    r(Get,    "/webhooks",                                Dashboard,     dashboard::webhooks::list),
    r(Post,   "/webhooks",                                Dashboard,     dashboard::webhooks::create),
    r(Get,    "/webhooks/:id",                            Dashboard,     dashboard::webhooks::show),
    r(Post,   "/webhooks/:id",                            Dashboard,     dashboard::webhooks::update),
    r(Post,   "/webhooks/:id/toggle",                     Dashboard,     dashboard::webhooks::toggle),
    r(Post,   "/webhooks/:id/delete",                     Dashboard,     dashboard::webhooks::delete),
    r(Post,   "/webhooks/:id/test",                       Dashboard,     dashboard::webhooks::test),
    r(Post,   "/webhooks/:id/deliveries/:delivery/redeliver", Dashboard, dashboard::webhooks::redeliver),
    r(Get,    "/settings",                                Dashboard,     dashboard::settings::show),
    r(Post,   "/settings/api-key",                        Dashboard,     dashboard::settings::rotate_api_key),
    r(Get,    "/audit-logs",                              Dashboard,     dashboard::audit::show),
];

/// What a lookup found.
pub enum Found<'a> {
    Route(&'static Route, Vec<&'a str>),
    /// The path exists with other methods (405); these are allowed.
    WrongMethod(Vec<&'static str>),
    Nothing,
}

/// Matches `segments` against a template; returns the captured params.
fn captures<'a>(template: &str, segments: &[&'a str]) -> Option<Vec<&'a str>> {
    let mut params = Vec::new();
    let mut parts = template.split('/').filter(|s| !s.is_empty());
    for segment in segments {
        let part = parts.next()?;
        if part.starts_with(':') {
            if segment.is_empty() {
                return None;
            }
            params.push(*segment);
        } else if part != *segment {
            return None;
        }
    }
    parts.next().is_none().then_some(params)
}

/// Finds the route for a request.
pub fn find<'a>(method: Method, segments: &[&'a str]) -> Found<'a> {
    let mut allowed = Vec::new();
    for route in ROUTES {
        if let Some(params) = captures(route.path, segments) {
            if route.method == method {
                return Found::Route(route, params);
            }
            allowed.push(route.method.as_str());
        }
    }
    if allowed.is_empty() {
        Found::Nothing
    } else {
        Found::WrongMethod(allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_of(method: Method, path: &str) -> Option<&'static str> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        match find(method, &segments) {
            Found::Route(r, _) => Some(r.path),
            _ => None,
        }
    }

    #[test]
    fn fixed_segments_win_over_params() {
        assert_eq!(
            path_of(Patch, "/api/v1/messages/batch/status"),
            Some("/api/v1/messages/batch/status")
        );
        assert_eq!(
            path_of(Patch, "/api/v1/messages/abc/status"),
            Some("/api/v1/messages/:id/status")
        );
        assert_eq!(path_of(Get, "/api/v1/inbox"), Some("/api/v1/inbox"));
        assert_eq!(
            path_of(Get, "/api/v1/inbox/read"),
            Some("/api/v1/inbox/:status")
        );
    }

    #[test]
    fn wrong_method_and_unknown_paths() {
        let seg = ["api", "v1", "health"];
        assert!(matches!(find(Post, &seg), Found::WrongMethod(allowed) if allowed == ["GET"]));
        assert!(matches!(find(Get, &["api", "v1", "nope"]), Found::Nothing));
        assert!(matches!(
            find(Get, &["api", "v1", "health", "x"]),
            Found::Nothing
        ));
    }

    #[test]
    fn captures_params_in_order() {
        match find(
            Get,
            &["api", "v1", "conversations", "1@s.whatsapp.net", "messages"],
        ) {
            Found::Route(_, params) => assert_eq!(params, ["1@s.whatsapp.net"]),
            _ => panic!("no route"),
        }
    }
}
