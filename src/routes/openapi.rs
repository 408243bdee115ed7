//! The OpenAPI 3.1 document of the router, generated from the handlers' `#[utoipa::path]`
//! attributes and the request and response types, served at `/api/v1/openapi.json`. The
//! same document tells the fallback route which paths exist, so a known path asked with
//! another method answers 405 with `Allow` rather than 404.

use super::{analytics, audit, changes, dev_token, domain, flows, health, metrics};
use super::{notifications, pages, portfolio, publish, stats, stream};
use actix_web::{get, HttpResponse};
use std::sync::OnceLock;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "nft-event-router",
        description = "NFT domain events to browsers over Server-Sent Events and to Kafka. \
                       Errors share one JSON shape (`ApiErrorBody`).",
    ),
    paths(
        publish::publish_event,
        stream::user_stream,
        stream::operations_stream,
        stream::set_stream_cookie,
        stream::clear_stream_cookie,
        changes::portfolio_changes,
        notifications::list_notifications,
        notifications::mark_read,
        portfolio::portfolio,
        flows::unlock_nft,
        flows::upgrade_nft,
        flows::operation,
        domain::trading_volume,
        domain::award_badge,
        domain::activate_badge,
        stats::sse_stats,
        stats::instances,
        audit::audit_log,
        analytics::analytics,
        dev_token::dev_token,
        health::healthz,
        health::readyz,
        metrics::prometheus_metrics,
        pages::demo_page,
        pages::admin_page,
        pages::samples,
        pages::client_module,
        pages::asset,
        openapi_document,
    ),
    components(schemas(crate::error::ApiErrorBody, actors::Envelope, actors::EventData)),
    modifiers(&Security)
)]
pub struct ApiDoc;

/// The two ways a token is sent: the `Authorization` header, and `access_token` in the
/// stream's query for `EventSource`, which cannot set headers.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "access_token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::new("access_token"))),
        );
    }
}

/// The document as JSON, rendered once. Every string of format `identifier` (user, badge and
/// correlation ids) gets the rule [`actors::event::check_id`] applies, spelled as JSON Schema
/// from the same predicate: 1 to 128 characters, some not white space, none a control or
/// format character.
pub fn document() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        spell_identifiers(&mut doc, &actors::event::id_pattern());
        let schemas = &mut doc["components"]["schemas"];
        close_publish_body(schemas);
        // `data` is untagged: a payload may fit more than one type's schema (an alert and its
        // resolution share one); the envelope's `eventType` says which it is.
        if let Some(one_of) = schemas["EventData"]
            .as_object_mut()
            .and_then(|s| s.remove("oneOf"))
        {
            schemas["EventData"]["anyOf"] = one_of;
        }
        doc.to_string()
    })
}

/// The publish body, one closed object per event type: `TypedData`'s variant (`eventType`
/// and its `data`) with `PublishBody`'s own fields, and nothing else, as the router refuses
/// unknown fields. (A flattened `allOf` cannot say "nothing else".)
fn close_publish_body(schemas: &mut serde_json::Value) {
    use serde_json::{json, Value};
    let own = schemas["PublishBody"]
        .get("allOf")
        .and_then(Value::as_array)
        .and_then(|parts| parts.iter().find(|p| p.get("properties").is_some()))
        .cloned()
        .unwrap_or_else(|| json!({}));
    let Some(variants) = schemas["TypedData"]["oneOf"].as_array().cloned() else {
        return;
    };
    let closed: Vec<Value> = variants
        .into_iter()
        .map(|mut variant| {
            if let (Some(props), Some(extra)) = (
                variant["properties"].as_object_mut(),
                own["properties"].as_object(),
            ) {
                props.extend(extra.clone());
            }
            let mut required: Vec<Value> =
                variant["required"].as_array().cloned().unwrap_or_default();
            required.extend(own["required"].as_array().cloned().unwrap_or_default());
            variant["required"] = Value::Array(required);
            variant["additionalProperties"] = Value::Bool(false);
            variant
        })
        .collect();
    schemas["PublishBody"] = json!({
        "description": "`eventType`, the `data` of that type, `userId` and an optional `correlationId`",
        "oneOf": closed,
    });
}

fn spell_identifiers(value: &mut serde_json::Value, pattern: &str) {
    match value {
        serde_json::Value::Object(map) => {
            if map.get("format").and_then(|f| f.as_str()) == Some("identifier") {
                map.remove("format");
                map.insert("pattern".into(), pattern.into());
                map.insert("minLength".into(), 1.into());
                map.insert("maxLength".into(), actors::event::MAX_ID_LEN.into());
            }
            map.values_mut().for_each(|v| spell_identifiers(v, pattern));
        }
        serde_json::Value::Array(items) => {
            items.iter_mut().for_each(|v| spell_identifiers(v, pattern))
        }
        _ => {}
    }
}

/// The methods the document has for `path` (templated segments match any one segment).
pub fn methods_of(path: &str) -> Vec<&'static str> {
    static PATHS: OnceLock<Vec<(String, Vec<&'static str>)>> = OnceLock::new();
    let paths = PATHS.get_or_init(|| {
        ApiDoc::openapi()
            .paths
            .paths
            .iter()
            .map(|(template, item)| {
                let methods = [
                    ("GET", item.get.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("DELETE", item.delete.is_some()),
                    ("PATCH", item.patch.is_some()),
                ]
                .into_iter()
                .filter_map(|(m, on)| on.then_some(m))
                .collect();
                (template.clone(), methods)
            })
            .collect()
    });
    paths
        .iter()
        .find(|(template, _)| matches_template(template, path))
        .map(|(_, methods)| methods.clone())
        .unwrap_or_default()
}

fn matches_template(template: &str, path: &str) -> bool {
    let (mut t, mut p) = (template.split('/'), path.split('/'));
    loop {
        match (t.next(), p.next()) {
            (None, None) => return true,
            (Some(ts), Some(ps)) if ts.starts_with('{') && ts.ends_with('}') => {
                if ps.is_empty() {
                    return false;
                }
            }
            (Some(ts), Some(ps)) if ts == ps => {}
            _ => return false,
        }
    }
}

/// This document.
#[utoipa::path(
    get, path = "/api/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object))
)]
#[get("/api/v1/openapi.json")]
pub async fn openapi_document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_one_segment_per_parameter() {
        assert!(matches_template(
            "/api/v1/user/operations/{id}",
            "/api/v1/user/operations/x"
        ));
        assert!(!matches_template(
            "/api/v1/user/operations/{id}",
            "/api/v1/user/operations/"
        ));
        assert!(!matches_template(
            "/api/v1/user/operations/{id}",
            "/api/v1/user/operations/x/y"
        ));
        assert!(matches_template("/healthz", "/healthz"));
    }

    #[test]
    fn the_document_is_openapi_3_1_with_every_route() {
        let doc: serde_json::Value = serde_json::from_str(document()).expect("JSON");
        assert!(doc["openapi"].as_str().unwrap_or("").starts_with("3.1"));
        assert_eq!(methods_of("/api/v1/events"), ["POST"]);
        assert_eq!(methods_of("/api/v1/user/badges/b1/activate"), ["POST"]);
        assert!(methods_of("/nowhere").is_empty());
    }
}
