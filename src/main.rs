//! The `whatsapp-api` binary: collects arguments and environment, calls
//! `whatsapp_api::run`, and turns an error into one line and exit code 2.

use std::collections::BTreeMap;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Variables that are not valid UTF-8 cannot be ours; they are skipped.
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    if let Err(message) = whatsapp_api::run(&args, &env) {
        eprintln!("whatsapp-api: {message}");
        std::process::exit(2);
    }
}
