//! The dashboard: server-rendered HTML pages and the static assets they use,
//! embedded in the binary.

use crate::error::ApiError;
use crate::http::{Ctx, Request, Response};

/// Static files: name, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/app.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../assets/favicon.svg"),
    ),
];

/// Cache headers for assets: a day, then revalidated by a new deploy's version query.
const ASSET_CACHE: &str = "public, max-age=86400";

pub fn asset(_: &mut Ctx, _: &Request, params: &[&str]) -> Result<Response, ApiError> {
    let (_, content_type, bytes) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == params[0])
        .ok_or_else(|| ApiError::NotFound("Asset not found".into()))?;
    Ok(
        Response::bytes(200, content_type, bytes.to_vec())
            .with_header("Cache-Control", ASSET_CACHE),
    )
}

pub fn favicon(ctx: &mut Ctx, req: &Request, _: &[&str]) -> Result<Response, ApiError> {
    asset(ctx, req, &["favicon.svg"])
}
