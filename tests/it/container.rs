//! The Containerfile, compose file and systemd unit, checked against the
//! binary's real commands (no container engine runs in CI): stages, a
//! non-root user, the volume, the port and the healthcheck.

use crate::cli::run_binary;
use crate::support::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use whatsapp_api::config::{self, Command};

/// One instruction of a Containerfile, continuation lines joined.
#[derive(Debug)]
struct Instruction {
    /// Index of the `FROM` stage it belongs to.
    stage: usize,
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
    let mut stage = 0;
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
                if keyword == "FROM" && !out.is_empty() {
                    stage += 1;
                }
                out.push(Instruction {
                    stage,
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
fn containerfile_builds_the_static_binary_and_runs_it_safely() {
    let all = parse_containerfile(&repo_file("Containerfile"));
    let froms: Vec<&Instruction> = all.iter().filter(|i| i.keyword == "FROM").collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    let build_stage = froms[0];
    let build_name = build_stage
        .args
        .split_whitespace()
        .skip_while(|w| !w.eq_ignore_ascii_case("AS"))
        .nth(1)
        .expect("the build stage is named");
    let last = froms.last().unwrap().stage;
    let final_image = &froms.last().unwrap().args;
    assert!(
        final_image == "scratch" || final_image.contains("distroless/static"),
        "minimal final image: {final_image}"
    );
    assert!(
        all.iter().any(|i| i.stage == 0
            && i.keyword == "RUN"
            && (i.args.contains("make static")
                || i.args.contains("--target x86_64-unknown-linux-musl"))),
        "the build stage builds the static musl binary"
    );

    let fin: Vec<&Instruction> = all.iter().filter(|i| i.stage == last).collect();
    let one = |keyword: &str| -> &Instruction {
        let found: Vec<_> = fin.iter().filter(|i| i.keyword == keyword).collect();
        assert_eq!(found.len(), 1, "one {keyword} in the final stage");
        found[0]
    };

    // The binary comes from the build stage; remember where it lands.
    let binary = fin
        .iter()
        .filter(|i| i.keyword == "COPY" && i.args.contains(&format!("--from={build_name}")))
        .filter_map(|i| {
            let words: Vec<&str> = i.args.split_whitespace().collect();
            let (src, dest) = (words[words.len() - 2], words[words.len() - 1]);
            src.ends_with("/whatsapp-api").then(|| dest.to_string())
        })
        .next()
        .expect("the final stage copies the binary from the build stage");

    // Non-root.
    let user = &one("USER").args;
    let uid = user.split(':').next().unwrap();
    assert!(
        uid != "root" && uid.parse::<u32>() != Ok(0),
        "runs as non-root: {user}"
    );

    // The environment the image sets.
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for i in fin.iter().filter(|i| i.keyword == "ENV") {
        for pair in i.args.split_whitespace() {
            let (k, v) = pair.split_once('=').expect("ENV KEY=value");
            env.insert(k.to_string(), v.to_string());
        }
    }
    assert_eq!(env.get("HOST").map(String::as_str), Some("0.0.0.0"));
    let data_dir = env.get("DATA_DIR").expect("DATA_DIR is set").clone();

    // The data dir is a volume, seeded by a tree the build stage makes and
    // the final stage copies owned by USER (so a fresh volume is writable).
    assert!(exec_form(&one("VOLUME").args).contains(&data_dir));
    let (tree, dest) = fin
        .iter()
        .filter(|i| i.keyword == "COPY" && i.args.contains(&format!("--chown={user}")))
        .map(|i| {
            let words: Vec<&str> = i.args.split_whitespace().collect();
            (words[words.len() - 2], words[words.len() - 1])
        })
        .next()
        .unwrap_or_else(|| panic!("a COPY --chown={user} seeds {data_dir}"));
    let seeded = format!(
        "{}{}",
        tree.trim_end_matches('/'),
        Path::new(dest)
            .join(data_dir.trim_start_matches('/'))
            .display()
    );
    assert!(
        all.iter()
            .any(|i| i.stage == 0 && i.keyword == "RUN" && i.args.contains(&seeded)),
        "the build stage creates {seeded}"
    );

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
fn compose_and_systemd_use_the_same_commands() {
    let compose = repo_file("contrib/compose.yaml");
    for needle in [
        r#"test: ["CMD", "/usr/local/bin/whatsapp-api", "healthcheck"]"#,
        "replicas: 1",
        "memory: 512M",
        r#"cpus: "0.5""#,
        "restart: unless-stopped",
        "whatsapp-api-data:/data",
        "dockerfile: Containerfile",
    ] {
        assert!(compose.contains(needle), "compose.yaml lacks {needle}");
    }
    assert!(compose.contains("\nvolumes:\n  whatsapp-api-data:"));

    // The build context leaves out what must not be baked into an image.
    let ignore = repo_file(".dockerignore");
    for needle in ["target", "data", ".env"] {
        assert!(
            ignore.lines().any(|l| l.trim() == needle),
            ".dockerignore lacks {needle}"
        );
    }

    let unit = repo_file("contrib/whatsapp-api.service");
    let settings: Vec<(&str, &str)> = unit
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .collect();
    let has = |k: &str, v: &str| settings.iter().any(|(a, b)| *a == k && *b == v);
    let exec = settings
        .iter()
        .find(|(k, _)| *k == "ExecStart")
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
}
