//! Build steps: rebuild when a migration is added (`sqlx::migrate!` embeds the `migrations/` folder), and embed the
//! web pages. The files of `web/src/` and hls.js (installed from `web/package-lock.json` with `npm ci` when
//! `web/node_modules` is missing or holds another version) are copied to `OUT_DIR/web/` and listed in
//! `OUT_DIR/web_assets.rs`, which `src/http/page.rs` includes: the binary serves them from memory and the pages load
//! nothing from anywhere else.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The hls.js build the pages load (UMD: its worker is inlined, so nothing else is fetched).
const HLS_JS: &str = "node_modules/hls.js/dist/hls.min.js";

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=web/src");
    println!("cargo:rerun-if-changed=web/package.json");
    println!("cargo:rerun-if-changed=web/package-lock.json");
    println!("cargo:rerun-if-env-changed=NPM");
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    ensure_node_modules(&web);
    println!("cargo:rerun-if-changed={}", web.join(HLS_JS).display());

    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("web");
    std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("create {}: {e}", out.display()));
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(web.join("src"))
        .unwrap_or_else(|e| panic!("read web/src: {e}"))
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    files.push(("hls.min.js".into(), web.join(HLS_JS)));
    files.sort();

    let mut table =
        String::from("/// Every file the pages load, made by build.rs.\npub static ASSETS: &[Asset] = &[\n");
    for (name, path) in &files {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        std::fs::write(out.join(name), &bytes).unwrap_or_else(|e| panic!("write {name} to OUT_DIR: {e}"));
        let content_type = match name.rsplit('.').next() {
            Some("html") => "text/html; charset=utf-8",
            Some("js" | "mjs") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            Some("json") => "application/json",
            other => panic!("web/src/{name}: no content type for {other:?} files; add one in build.rs"),
        };
        table.push_str(&format!(
            "    Asset {{ name: {name:?}, content_type: {content_type:?}, etag: \"\\\"{:016x}\\\"\", body: \
             include_bytes!(concat!(env!(\"OUT_DIR\"), \"/web/{name}\")) }},\n",
            fnv1a(&bytes)
        ));
    }
    table.push_str("];\n");
    let rs = out.parent().expect("OUT_DIR").join("web_assets.rs");
    std::fs::write(&rs, table).unwrap_or_else(|e| panic!("write {}: {e}", rs.display()));
}

/// Installs the locked npm packages when they are missing or not the locked version.
fn ensure_node_modules(web: &Path) {
    let locked = locked_version(web, "hls.js");
    let installed = std::fs::read_to_string(web.join("node_modules/hls.js/package.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["version"].as_str().map(str::to_owned));
    if installed.as_deref() == Some(locked.as_str()) && web.join(HLS_JS).is_file() {
        return;
    }
    let npm = std::env::var("NPM").unwrap_or_else(|_| "npm".into());
    let run = Command::new(&npm).args(["ci", "--no-audit", "--no-fund", "--prefix"]).arg(web).output();
    match run {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "web/node_modules is missing (hls.js {locked} is embedded into the binary) and `{npm}` is not installed: \
             install Node.js 18 or later with npm (Debian: apt-get install nodejs npm) and build again"
        ),
        Err(e) => panic!("cannot run `{npm} ci --prefix web`: {e}"),
        Ok(o) if !o.status.success() => panic!(
            "`{npm} ci --prefix web` failed ({}), so hls.js cannot be embedded:\n{}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Ok(_) => {}
    }
    if !web.join(HLS_JS).is_file() {
        panic!("`npm ci --prefix web` ran but {} is missing", web.join(HLS_JS).display());
    }
}

/// The version of `package` pinned in `web/package-lock.json`.
fn locked_version(web: &Path, package: &str) -> String {
    let path = web.join("package-lock.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let lock: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    lock["packages"][format!("node_modules/{package}")]["version"]
        .as_str()
        .unwrap_or_else(|| panic!("{} does not pin {package}", path.display()))
        .to_owned()
}

/// A content hash for ETags (FNV-1a, 64 bits): changes whenever a file does.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}
