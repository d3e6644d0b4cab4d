//! The web chat page at `/`: served from the binary with its content types, cache validators
//! and a same-origin Content-Security-Policy; everything it loads or calls is on this server;
//! `--no-webui` turns it off (404 like any unknown route). The page's behaviour in a browser is
//! checked by `scripts/ci-local.sh webui` (scripts/webui/test.mjs).

mod common;

use awc::http::header;
use bitnet_server::config::{Args, ServerConfig};
use clap::Parser;
use common::{TestServer, client, config, get};

/// Status, content type, selected headers and body of a GET (or HEAD) with extra headers.
struct Fetched {
    status: u16,
    header: Vec<(String, String)>,
    body: String,
}

impl Fetched {
    fn header(&self, name: &str) -> &str {
        self.header
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

async fn fetch(method: &str, url: &str, extra: &[(&str, &str)]) -> Fetched {
    let mut req = match method {
        "HEAD" => client().head(url),
        "POST" => client().post(url),
        _ => client().get(url),
    };
    for (n, v) in extra {
        req = req.insert_header((*n, *v));
    }
    let mut resp = req.send().await.expect("request sent");
    let header = resp
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = resp.body().limit(1 << 20).await.expect("body read");
    Fetched {
        status: resp.status().as_u16(),
        header,
        body: String::from_utf8(body.to_vec()).expect("UTF-8 body"),
    }
}

/// Every `src="…"` and `href="…"` value in `html`.
fn references(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let end = rest.find('"').expect("closing quote");
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    out
}

#[actix_web::test]
async fn the_page_is_served_with_its_headers_and_only_same_origin_assets() {
    let s = TestServer::start(config());
    let page = fetch("GET", &s.url("/"), &[]).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header(header::CONTENT_TYPE.as_str()),
        "text/html; charset=utf-8"
    );
    let csp = page.header("content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe") && !csp.contains("http"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), "nosniff");
    assert_eq!(page.header("cache-control"), "no-cache");
    assert!(page.body.contains("<title>BitNet-rs chat</title>"));

    // No inline script, style or event handler (the CSP would block them anyway).
    let lower = page.body.to_ascii_lowercase();
    assert!(!lower.contains("<style"), "inline <style>");
    assert!(!lower.contains(" style="), "inline style attribute");
    assert!(!lower.contains(" onclick=") && !lower.contains(" onload="));
    assert_eq!(
        lower.matches("<script").count(),
        lower.matches("<script src=\"").count(),
        "every script is loaded by src"
    );

    // Everything the page references is a relative URL on this server, served 200 with the
    // right type and the same policy.
    let refs = references(&page.body);
    assert!(refs.len() >= 3, "{refs:?}");
    for r in &refs {
        assert!(
            !r.contains(':') && !r.starts_with("//") && !r.starts_with('/'),
            "not a relative same-origin URL: {r}"
        );
        let asset = fetch("GET", &s.url(&format!("/{r}")), &[]).await;
        assert_eq!(asset.status, 200, "{r}");
        let want = match r.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            other => panic!("unexpected asset type {other:?} ({r})"),
        };
        assert_eq!(asset.header("content-type"), want, "{r}");
        assert_eq!(asset.header("content-security-policy"), csp, "{r}");
        assert!(!asset.body.is_empty(), "{r}");
    }
    // And the server embeds nothing the page does not use.
    let mut used: Vec<String> = refs.iter().map(|r| format!("/{r}")).collect();
    used.push("/".into());
    used.sort();
    used.dedup();
    let mut served: Vec<&str> = bitnet_server::webui::asset_paths().collect();
    served.sort_unstable();
    assert_eq!(served, used);

    // The script and stylesheet reach no other host: the script calls only this server's
    // API by relative URL, the stylesheet loads nothing (no url(), no @import).
    let js = fetch("GET", &s.url("/webui/app.js"), &[]).await.body;
    assert!(!js.contains("http://") && !js.contains("https://"));
    assert!(!js.contains("innerHTML") && !js.contains("eval("));
    let fetched: Vec<&str> = js
        .split("fetch(")
        .skip(1)
        .map(|s| s.split([',', ')']).next().unwrap_or_default().trim())
        .collect();
    assert_eq!(
        fetched,
        ["\"v1/models\"", "\"v1/chat/completions\""],
        "the page's requests"
    );
    let css = fetch("GET", &s.url("/webui/app.css"), &[]).await.body;
    assert!(!css.contains("url(") && !css.contains("@import"));

    s.stop().await;
}

#[actix_web::test]
async fn conditional_requests_head_and_other_methods() {
    let s = TestServer::start(config());
    let first = fetch("GET", &s.url("/webui/app.js"), &[]).await;
    let etag = first.header("etag").to_string();
    assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");
    // Revalidation: unchanged -> 304 without a body; another tag -> the asset again.
    let again = fetch("GET", &s.url("/webui/app.js"), &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), etag);
    let other = fetch(
        "GET",
        &s.url("/webui/app.js"),
        &[("if-none-match", "\"0\"")],
    )
    .await;
    assert_eq!((other.status, other.body.len()), (200, first.body.len()));
    // HEAD: the headers of GET, no body.
    let head = fetch("HEAD", &s.url("/"), &[]).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), "text/html; charset=utf-8");
    assert!(head.body.is_empty());
    // Other methods: 405 with an OpenAI-style error body, and the server keeps serving.
    let post = fetch("POST", &s.url("/"), &[]).await;
    assert_eq!(post.status, 405);
    assert!(post.body.contains("\"error\""), "{}", post.body);
    assert_eq!(get(&s.url("/health")).await.0, 200);
    s.stop().await;
}

#[actix_web::test]
async fn no_webui_turns_the_page_off() {
    let args = Args::try_parse_from(["bitnet-server", "--no-webui"]).unwrap();
    assert!(!ServerConfig::from_args(&args).unwrap().webui);
    let args = Args::try_parse_from(["bitnet-server"]).unwrap();
    assert!(
        ServerConfig::from_args(&args).unwrap().webui,
        "on by default"
    );

    let mut cfg = config();
    cfg.webui = false;
    let s = TestServer::start(cfg);
    for path in bitnet_server::webui::asset_paths() {
        let (status, body) = get(&s.url(path)).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(body.contains("not_found_error"), "{path}: {body}");
    }
    // The API is untouched.
    assert_eq!(get(&s.url("/v1/models")).await.0, 200);
    s.stop().await;
}
