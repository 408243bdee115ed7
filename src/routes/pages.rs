//! The browser pages: `GET /` (a client of the user stream) and `GET /admin` (the operations
//! dashboard). Plain HTML, one stylesheet and a few ES modules, all compiled into the binary
//! (`include_str!`), so the pages work offline and from any build without a CDN or an asset
//! directory to deploy. Each page learns from the server whether development tokens are on
//! (`auth.dev_tokens`), to offer a "mint" button or ask for a token.
use crate::error::ApiErrorBody;

use super::dev_token::DevTokens;
use actix_web::http::header;
use actix_web::{get, web, HttpRequest, HttpResponse, HttpResponseBuilder};
use actors::event::sample_data;
use actors::EventType;

/// Where the HTML says whether the mint buttons show (`data-dev-tokens`).
const DEV_TOKENS_SLOT: &str = "__DEV_TOKENS__";

/// Where the HTML carries the mint route's page key (`data-dev-key`), empty when not minting.
const DEV_KEY_SLOT: &str = "__DEV_KEY__";

const DEMO_HTML: &str = include_str!("pages/demo.html");
const ADMIN_HTML: &str = include_str!("pages/admin.html");
const CLIENT_JS: &str = include_str!("pages/client.js");

/// `/assets/{name}`: name, content type, body.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("pages/style.css"),
    ),
    (
        "common.js",
        "text/javascript; charset=utf-8",
        include_str!("pages/common.js"),
    ),
    (
        "demo.js",
        "text/javascript; charset=utf-8",
        include_str!("pages/demo.js"),
    ),
    (
        "admin.js",
        "text/javascript; charset=utf-8",
        include_str!("pages/admin.js"),
    ),
];

/// Only this origin's scripts, styles and connections: the pages handle tokens, and nothing
/// they load comes from elsewhere.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// Headers every page and asset carries. `no-cache` (revalidate, no ETag, so: refetch) keeps a
/// browser from pairing a new page with a stale script after an upgrade; the files are small.
fn static_response(content_type: &str) -> HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY));
    response
}

/// The page, told whether it may mint: only a page served to this machine gets the key the
/// mint route asks for (see `dev_token`); anyone else's copy asks for a token.
fn page(html: &str, dev: &DevTokens, req: &HttpRequest) -> HttpResponse {
    let key = dev.page_key_for(req);
    let mode = if key.is_some() { "on" } else { "off" };
    let html = html
        .replace(DEV_TOKENS_SLOT, mode)
        .replace(DEV_KEY_SLOT, key.unwrap_or_default());
    static_response("text/html; charset=utf-8")
        // The page may hold the mint key: no cache may keep it.
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html)
}

/// The client demo: mint or paste a token, watch the user stream.
#[utoipa::path(
    get, path = "/", tag = "pages",
    responses((status = 200, description = "The live events page", content_type = "text/html", body = String))
)]
#[get("/")]
pub async fn demo_page(req: HttpRequest, dev: web::Data<DevTokens>) -> HttpResponse {
    page(DEMO_HTML, &dev, &req)
}

/// The operations dashboard.
#[utoipa::path(
    get, path = "/admin", tag = "pages",
    responses((status = 200, description = "The operations page", content_type = "text/html", body = String))
)]
#[get("/admin")]
pub async fn admin_page(req: HttpRequest, dev: web::Data<DevTokens>) -> HttpResponse {
    page(ADMIN_HTML, &dev, &req)
}

/// A valid `data` for every event type, for the demo's "publish a sample event" form. Built
/// from the same samples the tests use, so the form never offers a payload the router refuses.
#[utoipa::path(
    get, path = "/assets/samples.json", tag = "pages",
    responses((status = 200, description = "A sample `data` of each event type", body = Object))
)]
#[get("/assets/samples.json")]
pub async fn samples() -> HttpResponse {
    let samples: serde_json::Map<String, serde_json::Value> = EventType::ALL
        .iter()
        .map(|t| (t.as_str().to_owned(), sample_data(*t)))
        .collect();
    static_response("application/json").json(samples)
}

/// The browser client: one stream per browser, shared by its tabs (a leader tab holds it and
/// hands its cursor on when it closes). An ES module for any page of the router's origin, the
/// demo page included: `import { SharedStream } from '/client.js'`.
#[utoipa::path(
    get, path = "/client.js", tag = "pages",
    responses((status = 200, description = "The client module", content_type = "text/javascript", body = String))
)]
#[get("/client.js")]
pub async fn client_module() -> HttpResponse {
    static_response("text/javascript; charset=utf-8").body(CLIENT_JS)
}

/// The stylesheet and scripts. An unknown name falls through to the JSON 404 of every route.
#[utoipa::path(
    get, path = "/assets/{name}", tag = "pages",
    params(("name" = String, Path, description = "A script or style sheet of the pages")),
    responses(
        (status = 200, description = "The asset", content_type = "text/plain", body = String),
        (status = 404, description = "Not found", body = ApiErrorBody)
    )
)]
#[get("/assets/{name}")]
pub async fn asset(name: web::Path<String>) -> Result<HttpResponse, crate::error::ApiError> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(n, _, _)| *n == name.as_str())
        .ok_or_else(|| crate::error::ApiError::NotFound("No such asset".to_owned()))?;
    Ok(static_response(content_type).body(*body))
}
