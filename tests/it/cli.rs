//! The real binary: `--help`, `--version`, and a bad configuration value
//! ending in one clear line rather than a panic.

use std::collections::BTreeMap;
use std::process::Command;

/// What a run of the binary left behind.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the built `whatsapp-api` with exactly `env` (nothing inherited).
pub fn run_binary(args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_whatsapp-api"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied().collect::<BTreeMap<_, _>>())
        .output()
        .expect("the binary runs");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn assert_one_clean_error_line(r: &Run, needle: &str) {
    assert_ne!(r.code, Some(0), "should fail: {}", r.stderr);
    assert!(r.code.is_some(), "killed by a signal: {}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got {:?}", r.stderr);
    assert!(lines[0].starts_with("whatsapp-api: "), "{}", lines[0]);
    assert!(lines[0].contains(needle), "{} lacks {needle}", lines[0]);
    for bad in [
        "panicked",
        "RUST_BACKTRACE",
        "stack backtrace",
        "thread 'main'",
    ] {
        assert!(!r.stderr.contains(bad), "{}", r.stderr);
    }
}

#[test]
fn help_lists_every_command_and_variable() {
    let r = run_binary(&["--help"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    for needle in [
        "Usage: whatsapp-api",
        "serve",
        "backup <file>",
        "import-legacy <db>",
        "healthcheck",
        "--version",
        "HOST",
        "PORT",
        "DATA_DIR",
        "API_KEY",
        "DASHBOARD_PASSWORD",
        "WHATSAPP_BACKEND",
        "WEBHOOK_RETRY_SCHEDULE",
        "LOG_LEVEL",
        "--data-dir",
        "WHATSAPP_BACKEND=simulator",
    ] {
        assert!(r.stdout.contains(needle), "--help lacks {needle}");
    }
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    assert_eq!(run_binary(&["-h"], &[]).stdout, r.stdout);
}

#[test]
fn version_is_one_line_with_the_crate_version() {
    let r = run_binary(&["--version"], &[]);
    assert_eq!(r.code, Some(0));
    assert_eq!(
        r.stdout,
        format!("whatsapp-api {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn bad_values_are_one_line_naming_the_variable() {
    assert_one_clean_error_line(&run_binary(&[], &[("PORT", "99999")]), "PORT");
    assert_one_clean_error_line(
        &run_binary(&["--port", "-1"], &[("WHATSAPP_BACKEND", "simulator")]),
        "PORT",
    );
    assert_one_clean_error_line(
        &run_binary(&[], &[("WHATSAPP_BACKEND", "telegram")]),
        "WHATSAPP_BACKEND",
    );
    assert_one_clean_error_line(&run_binary(&["--frobnicate"], &[]), "--frobnicate");
    assert_one_clean_error_line(&run_binary(&["backup"], &[]), "backup");
    // An unwritable data dir stops start-up the same way.
    assert_one_clean_error_line(
        &run_binary(
            &[],
            &[
                ("DATA_DIR", "/proc/whatsapp-api-cannot-be-here"),
                ("WHATSAPP_BACKEND", "simulator"),
                ("PORT", "0"),
            ],
        ),
        "DATA_DIR",
    );
}
