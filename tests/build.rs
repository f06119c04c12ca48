//! `cfg(has_chromium)` when Chromium and chromedriver are on PATH: the
//! console's browser test runs then, and is reported ignored otherwise
//! (`scripts/ensure-services.sh --browser` installs both).

fn on_path(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(has_chromium)");
    println!("cargo::rerun-if-env-changed=PATH");
    for name in ["chromium", "chromedriver"] {
        match on_path(name) {
            // Rebuilt when the binary is replaced or removed.
            Some(p) => println!("cargo::rerun-if-changed={}", p.display()),
            // Not there: a path that does not exist makes cargo re-run this
            // script on every build, so an install is noticed.
            None => println!("cargo::rerun-if-changed=/usr/bin/{name}"),
        }
    }
    if on_path("chromium").is_some() && on_path("chromedriver").is_some() {
        println!("cargo::rustc-cfg=has_chromium");
    }
}
