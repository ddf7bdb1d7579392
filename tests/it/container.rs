//! The Containerfile, compose file and systemd units, checked against the
//! binary's real commands and against each other. The image itself is built
//! and run by tests/deploy/container.sh (`make test-container`).

use crate::cli::run_binary;
use crate::support::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use whatsapp_api::config::{self, Command};

/// One instruction of a Containerfile, continuation lines joined.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

fn repo_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse_containerfile(text: &str) -> Vec<Instruction> {
    let mut out: Vec<Instruction> = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head);
                pending.push(' ');
            }
            None => {
                pending.push_str(trimmed);
                let full = std::mem::take(&mut pending);
                let (keyword, args) = full.split_once(char::is_whitespace).unwrap_or((&full, ""));
                let keyword = keyword.to_ascii_uppercase();
                out.push(Instruction {
                    keyword,
                    args: args.trim().to_string(),
                });
            }
        }
    }
    assert!(pending.is_empty(), "a continuation line ends the file");
    out
}

/// A JSON exec form such as `["/bin/x", "arg"]`.
fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("not an exec form ({e}): {args}"))
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_containerfile_runs_the_binarys_real_commands() {
    let all = parse_containerfile(&repo_file("Containerfile"));
    let froms: Vec<&Instruction> = all.iter().filter(|i| i.keyword == "FROM").collect();
    assert_eq!(froms.len(), 1, "one stage: {froms:?}");
    assert_eq!(froms[0].args, "scratch", "nothing pulled from a registry");
    let one = |keyword: &str| -> &Instruction {
        let found: Vec<_> = all.iter().filter(|i| i.keyword == keyword).collect();
        assert_eq!(found.len(), 1, "one {keyword}");
        found[0]
    };

    // The binary `make image` puts in the build context; remember where it lands.
    let binary = all
        .iter()
        .filter(|i| i.keyword == "COPY")
        .filter_map(|i| {
            let words: Vec<&str> = i.args.split_whitespace().collect();
            (words[words.len() - 2] == "whatsapp-api").then(|| words[words.len() - 1].to_string())
        })
        .next()
        .expect("the image copies the binary");

    // The environment the image sets.
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for i in all.iter().filter(|i| i.keyword == "ENV") {
        for pair in i.args.split_whitespace() {
            let (k, v) = pair.split_once('=').expect("ENV KEY=value");
            env.insert(k.to_string(), v.to_string());
        }
    }
    let data_dir = env.get("DATA_DIR").expect("DATA_DIR is set").clone();
    assert!(exec_form(&one("VOLUME").args).contains(&data_dir));

    // ENTRYPOINT + CMD is a `serve` the real parser accepts, on the exposed port.
    let entry = exec_form(&one("ENTRYPOINT").args);
    assert_eq!(entry[0], binary);
    let mut args = entry[1..].to_vec();
    args.extend(exec_form(&one("CMD").args));
    let serve = match config::parse(&args, &env).expect("the image's command parses") {
        Command::Serve(c) => c,
        other => panic!("the image runs serve, not {other:?}"),
    };
    assert_eq!(serve.host, "0.0.0.0");
    assert_eq!(serve.data_dir, PathBuf::from(&data_dir));
    assert!(serve.db_path.starts_with(&data_dir) && serve.session_path.starts_with(&data_dir));
    let exposed: u16 = one("EXPOSE").args.parse().expect("EXPOSE <port>");
    assert_eq!(serve.port, exposed);
    assert_eq!(exposed, 3001);

    // HEALTHCHECK runs the binary's own `healthcheck` against that port.
    let health = &one("HEALTHCHECK").args;
    let (options, cmd) = health
        .split_once("CMD ")
        .expect("HEALTHCHECK ... CMD [...]");
    assert!(options.contains("--interval=") && options.contains("--timeout="));
    let cmd = exec_form(cmd);
    assert_eq!(cmd, strings(&[&binary, "healthcheck"]));
    match config::parse(&cmd[1..], &env).expect("the healthcheck parses") {
        Command::Healthcheck(c) => assert_eq!((c.host.as_str(), c.port), ("0.0.0.0", exposed)),
        other => panic!("HEALTHCHECK runs healthcheck, not {other:?}"),
    }
}

#[test]
fn the_healthcheck_command_answers_for_a_running_server_only() {
    let s = TestServer::start();
    let port = s.server.as_ref().unwrap().port.to_string();
    // HOST=0.0.0.0 as in the image: the check dials the loopback address.
    let ok = run_binary(&["healthcheck"], &[("HOST", "0.0.0.0"), ("PORT", &port)]);
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);
    assert!(ok.stdout.starts_with("healthy"), "{}", ok.stdout);
    let dir = s.stop();
    drop(dir);
    let down = run_binary(&["healthcheck"], &[("HOST", "0.0.0.0"), ("PORT", &port)]);
    assert_ne!(down.code, Some(0));
    assert_eq!(down.stderr.lines().count(), 1, "{}", down.stderr);
    assert!(down.stderr.contains("unhealthy"), "{}", down.stderr);
}

#[test]
fn compose_runs_two_numbers_apart() {
    let compose = repo_file("contrib/compose.yaml");
    // Shared by every number (a YAML anchor merged into each service).
    for needle in [
        "image: localhost/whatsapp-api:latest",
        "replicas: 1",
        "restart: unless-stopped",
        "read_only: true",
    ] {
        assert_eq!(compose.matches(needle).count(), 1, "compose.yaml: {needle}");
    }
    assert!(
        repo_file("Makefile").contains("IMAGE ?= localhost/whatsapp-api:latest"),
        "compose runs the image `make image` tags"
    );
    // Each number: the shared settings, its own volume and its own port.
    let services = compose
        .split_once("\nservices:\n")
        .and_then(|(_, rest)| rest.split_once("\nvolumes:\n"))
        .expect("services: then volumes:");
    let service = |name: &str| -> &str {
        let (_, rest) = services
            .0
            .split_once(&format!("  {name}:\n"))
            .unwrap_or_else(|| panic!("compose.yaml has no service {name}"));
        rest.split("\n\n").next().unwrap()
    };
    for (name, port) in [("sales", 3001), ("support", 3002)] {
        let s = service(name);
        assert!(
            s.contains("<<: *whatsapp-api"),
            "{name} shares the settings"
        );
        assert!(
            s.contains(&format!("- {name}-data:/data")),
            "{name}: its volume"
        );
        assert!(
            s.contains(&format!("\"127.0.0.1:{port}:3001\"")),
            "{name} on 127.0.0.1:{port}"
        );
        assert!(services.1.contains(&format!("  {name}-data:\n")));
    }
}

/// A unit file's settings, `[Section]` lines and comments left out.
fn unit_settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_systemd_units_run_serve_hardened() {
    let unit = unit_settings(&repo_file("contrib/whatsapp-api.service"));
    let has = |k: &str, v: &str| unit.iter().any(|(a, b)| a == k && b == v);
    let exec = &unit
        .iter()
        .find(|(k, _)| k == "ExecStart")
        .expect("ExecStart")
        .1;
    let words: Vec<String> = exec.split_whitespace().skip(1).map(String::from).collect();
    assert!(matches!(
        config::parse(&words, &BTreeMap::new()),
        Ok(Command::Serve(_))
    ));
    for (k, v) in [
        ("DynamicUser", "yes"),
        ("StateDirectory", "whatsapp-api"),
        ("Environment", "DATA_DIR=%S/whatsapp-api"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("SystemCallFilter", "@system-service"),
        ("Restart", "on-failure"),
    ] {
        assert!(has(k, v), "the unit lacks {k}={v}");
    }

    // The template is the same unit with the instance's own description,
    // data directory, settings file (PORT comes from there) and state
    // directory: every other setting, the hardening included, is equal.
    let template = unit_settings(&repo_file("contrib/whatsapp-api@.service"));
    let instance_lines = [
        (
            "Description",
            "whatsapp-api %i - self-hosted, reply-only WhatsApp HTTP API",
        ),
        ("Environment", "DATA_DIR=%S/whatsapp-api/%i"),
        ("EnvironmentFile", "/etc/whatsapp-api/%i.env"),
        ("StateDirectory", "whatsapp-api/%i"),
    ];
    let shared = |settings: &[(String, String)]| -> Vec<(String, String)> {
        settings
            .iter()
            .filter(|(k, v)| {
                !(instance_lines.iter().any(|(a, b)| a == k && b == v)
                    || k == "Description"
                    || k == "EnvironmentFile"
                    || k == "StateDirectory"
                    || v.starts_with("DATA_DIR=")
                    || v.starts_with("PORT="))
            })
            .cloned()
            .collect()
    };
    for (k, v) in instance_lines {
        assert!(
            template.iter().any(|(a, b)| a == k && b == v),
            "the template lacks {k}={v}"
        );
    }
    assert!(
        !template.iter().any(|(_, v)| v.starts_with("PORT=")),
        "each instance's PORT comes from its settings file"
    );
    assert_eq!(shared(&template), shared(&unit));
}
