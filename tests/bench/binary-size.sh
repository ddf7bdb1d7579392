#!/usr/bin/env bash
# Where the bytes of the release binary's code are: the `.text` of an
# unstripped build, summed by the crate each function belongs to and grouped
# into the parts of the program.
#
#   CARGO_PROFILE_RELEASE_STRIP=false make static
#   tests/bench/binary-size.sh target/x86_64-unknown-linux-musl/release/whatsapp-api
#
# A function is counted under the first path segment of its demangled name
# (for `<T as Trait>::f`, the crate of T, else of Trait). Generic code is
# counted under the crate that defines it (a `Vec<waproto::Message>` method
# is `alloc`), so the standard library row holds code instantiated for every
# other row. C functions (SQLite, the musl libc) have no path and are
# counted together.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 UNSTRIPPED-BINARY" >&2; exit 2; }
if [ "$(readelf -SW "$1" | grep -c '\.symtab')" = 0 ]; then
	echo "$1 has no symbols: build it with CARGO_PROFILE_RELEASE_STRIP=false" >&2
	exit 2
fi

size -A "$1" | awk '$1 ~ /^\.(text|rodata|eh_frame|eh_frame_hdr|gcc_except_table|rela\.dyn|data\.rel\.ro)$/ {
	printf "%-20s %12d B\n", $1, $2 }'
echo

nm --size-sort -S --demangle=rust "$1" | python3 -c '
import collections, re, sys

GROUPS = {
    "WhatsApp protocol (whatsapp_rust, wacore*, waproto, buffa)": """whatsapp_rust
        waproto buffa wacore wacore_libsignal wacore_binary wacore_noise
        wacore_appstate whatsapp_rust_tokio_transport
        whatsapp_rust_ureq_http_client""",
    "its session store (whatsapp_rust_sqlite_storage, diesel, r2d2)": """
        whatsapp_rust_sqlite_storage diesel diesel_migrations
        migrations_internals r2d2 scheduled_thread_pool""",
    "tokio, TLS, crypto": """tokio tokio_util tokio_websockets tokio_rustls
        rustls webpki ring curve25519_dalek x25519_dalek ed25519_dalek aes
        cbc ctr ghash polyval hkdf sha1 md5 aes_gcm futures_util
        futures_core futures_channel zlib_rs""",
    "this crate (whatsapp_api)": "whatsapp_api",
    "C: SQLite and the musl libc": "(C)",
    "standard library, and generic code instantiated for all": """core
        alloc std hashbrown""",
}
group_of = {c: g for g, cs in GROUPS.items() for c in cs.split()}

total = 0
by_group = collections.Counter()
by_crate = collections.Counter()
for line in sys.stdin:
    parts = line.rstrip("\n").split(" ", 3)
    if len(parts) < 4 or parts[2] not in "tTwW":
        continue
    size, name = int(parts[1], 16), parts[3]
    if name.startswith("<"):
        m = re.match(r"<([A-Za-z_]\w*)::", name) or re.search(r" as ([A-Za-z_]\w*)::", name)
    else:
        m = re.match(r"([A-Za-z_]\w*)::", name)
    if m:
        crate = m.group(1)
    else:
        crate = "(C)"
    total += size
    by_crate[crate] += size
    by_group[group_of.get(crate, "everything else")] += size

print(f"{total:>12,} B of functions")
for group, size in by_group.most_common():
    print(f"{size:>12,} B {100 * size / total:5.1f}%  {group}")
print()
print("largest crates:")
for crate, size in by_crate.most_common(15):
    print(f"{size:>12,} B  {crate}")
'
