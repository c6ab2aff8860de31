//! Schemathesis (a property-based API tester, from PyPI) against the live server's
//! `/openapi.json`: every operation, every phase (examples, coverage, fuzzing, stateful) and
//! every check, with the widened expectations in `tests/api/schemathesis.toml`. The
//! document must describe the API as it behaves: any failure fails this test.
//!
//! `.ci/run` installs schemathesis into `target/schemathesis` and names it in
//! `SNIP_SCHEMATHESIS`. Without it this test is skipped loudly on a laptop, and fails in CI.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::process::Snip;

const KEY: &str = "snip_SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS";

fn schemathesis() -> Option<PathBuf> {
    let named = std::env::var_os("SNIP_SCHEMATHESIS").map(PathBuf::from);
    let local =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/schemathesis/bin/schemathesis");
    if let Some(found) = named.into_iter().chain([local]).find(|p| p.is_file()) {
        return Some(found);
    }
    if std::env::var_os("CI").is_some() {
        panic!("schemathesis is not installed (SNIP_SCHEMATHESIS), and CI must run it");
    }
    eprintln!("\n!!! SKIPPED: schemathesis is not installed (see .ci/run) !!!\n");
    None
}

#[test]
fn the_openapi_document_describes_the_api_as_it_behaves() {
    let Some(st) = schemathesis() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Limits off: the tester sends thousands of requests with one key.
    let snip = Snip::on_sqlite(dir.path(), KEY, "[rate_limits]\nenabled = false\n");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/schemathesis.toml");
    let out = Command::new(st)
        .args(["--config-file", config, "run", &snip.url("/openapi.json")])
        .args([
            "--checks",
            "all",
            "--max-examples",
            "40",
            "--seed",
            "20261207",
        ])
        .args(["-H", &format!("Authorization: Bearer {KEY}")])
        .args(["--no-color", "--request-timeout", "10"])
        .current_dir(dir.path())
        .output()
        .expect("run schemathesis");
    let report = String::from_utf8_lossy(&out.stdout);
    let summary: String = report
        .lines()
        .skip_while(|l| !l.contains("SUMMARY"))
        .collect::<Vec<_>>()
        .join("\n");
    eprintln!("{summary}");
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains("Tested: 23"),
        "not every operation was tested:\n{report}"
    );
}
