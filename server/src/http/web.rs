//! The web client: the files of `clients/web`, embedded in the binary when it is built and
//! served at `/` (the page) and `/app/{file}` (its modules, styles and icon), so a running
//! server needs no files on disk.
//!
//! The files are a small fixed table of `include_str!`s rather than a directory embedded by a
//! crate: only what is listed is served (not the type-check configuration or the generated
//! declarations next to it), there is no dependency to keep, and each file's `ETag` is
//! computed at compile time. A test checks that the table and the folder agree.
//!
//! Every response carries a strict Content-Security-Policy: scripts, styles and images from
//! this origin only, requests and websockets to this origin only, no inline code, no framing.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// What the page may load: its own scripts, styles and images, and requests and websockets
/// to this origin only (`'self'` covers `ws:`/`wss:` to the same host in CSP Level 3, which
/// Chromium, Firefox and Safari implement). No inline scripts or styles, no plug-ins, no
/// framing, no form posts, no `<base>`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    /// Its name under `/app/` (and in `clients/web`).
    name: &'static str,
    /// Its media type.
    content_type: &'static str,
    /// Its contents.
    body: &'static str,
    /// A strong validator of the contents, quoted as `ETag` wants it.
    etag: &'static str,
}

/// Declares the table: each file with its media type, its body and its `ETag`.
macro_rules! assets {
    ($($name:literal => $content_type:expr),* $(,)?) => {
        &[$(Asset {
            name: $name,
            content_type: $content_type,
            body: include_str!(concat!("../../../clients/web/", $name)),
            etag: {
                const HEX: [u8; 18] =
                    quoted_hex(fnv1a(include_bytes!(concat!("../../../clients/web/", $name))));
                match std::str::from_utf8(&HEX) {
                    Ok(etag) => etag,
                    Err(_) => panic!("hex digits are ASCII"),
                }
            },
        }),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// The web client's files.
static ASSETS: &[Asset] = assets![
    "index.html" => "text/html; charset=utf-8",
    "style.css" => "text/css; charset=utf-8",
    "icon.svg" => "image/svg+xml",
    "app.js" => JS,
    "connection.js" => JS,
    "rooms.js" => JS,
    "roomlist.js" => JS,
    "chat.js" => JS,
    "call.js" => JS,
    "composer.js" => JS,
    "outbox.js" => JS,
    "time.js" => JS,
    "credentials.js" => JS,
    "coachings.js" => JS,
    "pins.js" => JS,
];

/// FNV-1a, 64 bits: enough to tell versions of a file apart.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// `"<16 hex digits>"`.
const fn quoted_hex(value: u64) -> [u8; 18] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'"'; 18];
    let mut i = 0;
    while i < 16 {
        out[1 + i] = DIGITS[((value >> (60 - 4 * i)) & 0xf) as usize];
        i += 1;
    }
    out
}

/// The web client's routes: the page at `/`, its files at `/app/{file}`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(page))
        .route("/app/{file}", get(file))
}

/// `GET /`: the page.
async fn page(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /app/{file}`: one of the page's files.
async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    serve(&name, &headers)
}

fn serve(name: &str, request: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == asset.etag));
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        ),
        (header::ETAG, HeaderValue::from_static(asset.etag)),
        // Revalidate each time: a new server version serves new files at once.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    if fresh {
        (StatusCode::NOT_MODIFIED, headers).into_response()
    } else {
        (headers, asset.body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn get(path: &str, if_none_match: Option<&str>) -> Response {
        let mut request = Request::get(path);
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        routes::<()>()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_page_and_its_files_are_served_with_a_policy() {
        let page = get("/", None).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(
            page.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(
            page.headers()[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY
        );
        assert!(text(page).await.contains("app/app.js"));

        let script = get("/app/app.js", None).await;
        assert_eq!(script.status(), StatusCode::OK);
        assert_eq!(script.headers()[header::CONTENT_TYPE], JS);
        assert_eq!(script.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let style = get("/app/style.css", None).await;
        assert_eq!(
            style.headers()[header::CONTENT_TYPE],
            "text/css; charset=utf-8"
        );

        for missing in ["/app/nothing.js", "/app/package.json", "/app/protocol.d.ts"] {
            assert_eq!(get(missing, None).await.status(), StatusCode::NOT_FOUND);
        }
    }

    #[tokio::test]
    async fn an_unchanged_file_is_not_sent_again() {
        let first = get("/app/chat.js", None).await;
        let etag = first.headers()[header::ETAG].to_str().unwrap().to_string();
        assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() == 18);
        let again = get("/app/chat.js", Some(&etag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(
            get("/app/chat.js", Some("\"0000000000000000\""))
                .await
                .status(),
            StatusCode::OK
        );
    }

    #[test]
    fn the_table_and_the_folder_agree() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/web");
        let mut on_disk: Vec<String> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| {
                [".html", ".css", ".svg"].iter().any(|e| name.ends_with(e))
                    || (name.ends_with(".js") && !name.ends_with(".config.js"))
            })
            .collect();
        on_disk.sort();
        let mut served: Vec<String> = ASSETS.iter().map(|a| a.name.to_string()).collect();
        served.sort();
        assert_eq!(served, on_disk, "list every file of clients/web in ASSETS");
        for asset in ASSETS {
            if asset.name.ends_with(".js") {
                assert_eq!(asset.content_type, JS, "{}", asset.name);
            }
        }
    }

    #[test]
    fn every_module_a_module_imports_is_served() {
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let code = asset.body.lines().filter(|line| {
                let line = line.trim_start();
                !(line.starts_with("//") || line.starts_with("/*") || line.starts_with('*'))
            });
            for line in code {
                for (_, rest) in line
                    .match_indices("from './")
                    .map(|(i, _)| line.split_at(i + 8))
                {
                    let name = rest.split('\'').next().unwrap_or_default();
                    assert!(
                        ASSETS.iter().any(|a| a.name == name),
                        "{} imports ./{name}, which is not served",
                        asset.name
                    );
                }
            }
        }
    }
}
