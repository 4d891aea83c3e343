//! The OpenAPI document of `/api/v1`, generated from the handlers and the `vvtv-api` types, served at
//! `/api/v1/openapi.json` and kept in `docs/openapi.json` (a test fails when that copy is stale).

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "VVTV control API", description = "Drive a running VVTV station (what vvtvctl uses)."),
    paths(
        super::status::status,
        super::status::queue,
        super::schedule::detail,
        super::super::guide::epg_json,
        super::status::events,
        super::rules::show,
        super::rules::set,
        super::library::assets,
        super::library::set_emergency,
        super::jobs::ingest,
        super::jobs::jobs,
        super::jobs::job,
        super::plans::discover,
        super::plans::plans,
        super::plans::approve,
        super::channels::streaming_status,
        super::channels::emergency,
        super::channels::sign_url,
        super::audience::report,
        super::viewer::channels,
        super::viewer::now,
        super::playback::beacon,
    ),
    modifiers(&BearerToken)
)]
pub struct ApiDoc;

/// The bearer token every operation needs (from `data_dir/control.token`).
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document as pretty JSON text (what `docs/openapi.json` holds).
pub fn json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")) + "\n"
}

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checked_in_document_matches_the_code() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
        let now = json();
        if std::env::var_os("VVTV_UPDATE_DOCS").is_some() {
            std::fs::write(&path, &now).expect("write docs/openapi.json");
        }
        let saved = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            saved == now,
            "{} is stale: regenerate it with `VVTV_UPDATE_DOCS=1 cargo test --lib openapi` and commit it",
            path.display()
        );
        let doc: serde_json::Value = serde_json::from_str(&now).unwrap();
        for path in ["/api/v1/status", "/api/v1/ingest", "/api/v1/channels/{channel}/emergency", "/api/v1/playback"] {
            assert!(doc["paths"][path].is_object(), "{path} missing from the document");
        }
        assert!(doc["components"]["schemas"]["StatusReport"].is_object());
        assert!(doc["components"]["schemas"]["PlaybackBeacon"].is_object());
        // What viewers' pages use needs no token; the rest does.
        assert!(doc["paths"]["/api/v1/playback"]["post"]["security"].is_null());
        assert!(doc["paths"]["/api/v1/channels/{channel}/now"]["get"]["security"].is_null());
        assert!(doc["paths"]["/api/v1/audience"]["get"]["security"].is_array());
    }
}
