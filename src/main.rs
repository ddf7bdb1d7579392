//! The `whatsapp-api` binary: collects arguments and environment, calls
//! `whatsapp_api::run`, and turns an error into one line and exit code 2.

use std::collections::BTreeMap;

/// The static build's allocator (see Cargo.toml): a heap per thread instead
/// of musl's one lock.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    no_huge_pages_for_the_allocator();
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

/// mimalloc reserves its memory in large aligned regions, and where the
/// kernel backs anonymous memory with transparent huge pages (`always`, the
/// default of many distributions) each region a thread touches becomes
/// resident 2 MiB at a time: the static build idled at 23 MB and served
/// inbox pages at 55-58 MB instead of 11 and 16-20. So this process opts out
/// (`PR_SET_THP_DISABLE`, as mimalloc's own `MIMALLOC_ALLOW_THP=0` does),
/// first thing, before the threads allocate.
fn no_huge_pages_for_the_allocator() {
    #[cfg(target_env = "musl")]
    // SAFETY: PR_SET_THP_DISABLE only sets a flag on this process; it
    // reads no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
