#!/usr/bin/env python3
"""Fills a stopped server's database (schema already created by a first
start) with N messages in 2,000 chats over the year before now, 80%
incoming in every status and 20% outgoing replies, plus N audit rows, for
timing the dashboard (tests/browser/dashboard_timing.sh). The schema's
triggers keep the inbox and chat counts, as they do for the server.

Usage: load_messages.py <whatsapp-api.db> [N]
"""

import random
import sys
import time
import uuid

# The schema's search index (FTS5 contentless_delete) needs SQLite 3.43+;
# Debian 12's Python has 3.40, so dashboard_timing.sh installs
# pysqlite3-binary (a newer SQLite) in a venv.
try:
    import pysqlite3 as sqlite3
except ImportError:
    import sqlite3
if sqlite3.sqlite_version_info < (3, 43):
    sys.exit(f"load_messages.py needs SQLite 3.43+, this Python has {sqlite3.sqlite_version}")

WORDS = (
    "hello price order invoice delivery sunday open thanks question box "
    "shop address payment refund size colour tomorrow please urgent"
).split()


def main(path, n):
    rng = random.Random(42)
    now = int(time.time())
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    rows, audits = [], []
    for i in range(n):
        chat = i % 2000
        phone = f"1555{chat:06d}@s.whatsapp.net"
        created = now - 365 * 86400 + i * (365 * 86400) // n
        incoming = rng.random() < 0.8
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 25)))
        rows.append(
            (
                str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                f"3EB0{i:016X}",
                "incoming" if incoming else "outgoing",
                phone,
                phone if incoming else "15550000000@s.whatsapp.net",
                f"Customer {chat}" if incoming else None,
                text,
                rng.choice(["unread", "read", "replied", "ignored"]) if incoming else "sent",
                None if incoming else "delivered",
                created,
            )
        )
        audits.append(
            (
                rng.choice(["api_request", "api_request", "api_request", "dashboard_action", "auth_failed"]),
                "GET",
                "/api/v1/inbox/unread",
                200,
                "127.0.0.1",
                rng.randint(100, 5000),
                None,
                created,
            )
        )
    with db:
        db.executemany(
            "INSERT INTO messages (id, wa_id, direction, phone, sender_jid, push_name, message,"
            " reply_status, delivery_status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        db.executemany(
            "INSERT INTO audit_logs (action, method, path, status, ip_address, duration_us, details,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            audits,
        )
    db.close()
    print(f"loaded {n} messages and {n} audit rows into {path}")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) == 3 else 100_000)
