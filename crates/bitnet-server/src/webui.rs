//! The web chat page at `/` (off with `--no-webui`), as llama-server has one: a hand-written
//! HTML page, script and stylesheet (`crates/bitnet-server/webui/`) compiled into the binary,
//! so the page works offline and always matches the server that serves it. It talks only to
//! this server's own `/v1/models` and streaming `/v1/chat/completions`.
//!
//! Every asset is answered with its content type, an `ETag` (SHA-256 of its bytes) and
//! `Cache-Control: no-cache`: browsers keep a copy but revalidate it (304 when unchanged), so
//! an upgraded server never runs an old script. A Content-Security-Policy allowing this
//! origin only (no inline script or style, no other hosts, no framing) means that even a
//! bug that put model output into the page as markup could not load or run anything.

use std::sync::OnceLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The policy sent with every asset: only this origin, and only what the page uses.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    /// Route.
    path: &'static str,
    /// `Content-Type`.
    content_type: &'static str,
    /// The bytes.
    body: &'static [u8],
}

/// The page and what it loads (`index.html` names the others by relative URL).
static ASSETS: [Asset; 4] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../webui/index.html"),
    },
    Asset {
        path: "/webui/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../webui/app.js"),
    },
    Asset {
        path: "/webui/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../webui/app.css"),
    },
    Asset {
        path: "/webui/icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../webui/icon.svg"),
    },
];

/// The routes the page uses, for tests and documentation.
pub fn asset_paths() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|a| a.path)
}

/// Strong ETags (quoted hex SHA-256 prefix), computed once per process.
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let d = Sha256::digest(a.body);
                let hex: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    })
}

/// Registers the page's routes (GET and HEAD; other methods 405), unless `enabled` is
/// false: then `/` and the assets fall through to the server's JSON 404.
pub fn configure(cfg: &mut web::ServiceConfig, enabled: bool) {
    if !enabled {
        return;
    }
    for (i, asset) in ASSETS.iter().enumerate() {
        let handler = move |req: HttpRequest| async move { serve(&req, i) };
        cfg.service(
            web::resource(asset.path)
                .route(web::get().to(handler))
                .route(web::head().to(handler))
                .default_service(web::to(method_not_allowed)),
        );
    }
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(req.method().to_string()))
}

/// Does `If-None-Match` name `etag` (or `*`)? Weak tags compare equal too (RFC 9110 13.1.2).
fn not_modified(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

fn serve(req: &HttpRequest, i: usize) -> HttpResponse {
    let asset = &ASSETS[i];
    let etag = &etags()[i];
    let fresh = not_modified(req, etag);
    let mut resp = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    resp.insert_header((header::ETAG, etag.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"));
    if fresh {
        return resp.finish();
    }
    resp.content_type(asset.content_type).body(asset.body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn etags_differ_per_asset_and_match_if_none_match() {
        let tags = etags();
        assert_eq!(tags.len(), ASSETS.len());
        assert!(tags.iter().all(|t| t.len() == 34 && t.starts_with('"')));
        let req = TestRequest::default()
            .insert_header((header::IF_NONE_MATCH, format!("\"x\", W/{}", tags[1])))
            .to_http_request();
        assert!(not_modified(&req, &tags[1]));
        assert!(!not_modified(&req, &tags[0]));
        let none = TestRequest::default().to_http_request();
        assert!(!not_modified(&none, &tags[0]));
    }
}
