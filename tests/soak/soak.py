"""Mixed-load soak driver for whatsapp-api (see soak.sh)."""
import http.server, json, os, random, socket, subprocess, sys, tempfile, threading, time, urllib.request

BIN = sys.argv[1]
SECS = int(os.environ.get("SOAK_SECS", "1800"))
SAMPLE = int(os.environ.get("SAMPLE_SECS", "30"))
KEY = "soak-key-0123456789abcdef"


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


class Receiver(http.server.BaseHTTPRequestHandler):
    count = 0
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Receiver.count += 1
        self.send_response(200); self.end_headers()
    def log_message(self, *a):
        pass


def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(BASE + path, data=data, method=method, headers={"X-API-Key": KEY, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def sample(pid):
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


data = tempfile.mkdtemp(prefix="wa-soak-")
port = free_port()
env = dict(os.environ, WHATSAPP_BACKEND="simulator", DATA_DIR=data, PORT=str(port), API_KEY=KEY,
           RATE_LIMIT_PER_MINUTE="0", LOG_LEVEL="warn", DASHBOARD_PASSWORD="soak-password")
server = subprocess.Popen([BIN, "--env-file", os.devnull], env=env, stdout=subprocess.DEVNULL)
BASE = f"http://127.0.0.1:{port}"
for _ in range(200):
    try:
        urllib.request.urlopen(BASE + "/api/v1/health", timeout=1); break
    except OSError:
        time.sleep(0.05)

rx = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=rx.serve_forever, daemon=True).start()
call("POST", "/api/v1/webhooks", {"url": f"http://127.0.0.1:{rx.server_address[1]}/hook", "events": ["message.received", "message.sent"]})

stop = time.time() + SECS
counts = {"ingest": 0, "read": 0, "reply": 0, "errors": 0}

def ingest():
    i = 0
    while time.time() < stop:
        # One message in a hundred carries the searched phrase, as a real
        # term would. (When every message did, each search held a match list
        # as long as the database, and RSS followed the data: 51 -> 67 MB.)
        text = f"soak message {i}" + (" hello world" if i % 100 == 0 else "")
        s, _ = call("POST", "/api/v1/simulator/messages", {"from": f"1555{random.randint(0, 300):07d}@s.whatsapp.net", "text": text})
        counts["ingest" if s == 201 else "errors"] += 1; i += 1
        time.sleep(0.01)

def read():
    paths = ["/api/v1/inbox?limit=50", "/api/v1/inbox/all?limit=50", "/api/v1/inbox/all?search=hello%20world",
             "/api/v1/inbox/all?phone=5551000042", "/api/v1/conversations", "/metrics", "/api/v1/audit-logs"]
    while time.time() < stop:
        s, _ = call("GET", random.choice(paths))
        counts["read" if s == 200 else "errors"] += 1

def reply():
    while time.time() < stop:
        s, body = call("GET", "/api/v1/inbox?limit=5")
        if s == 200:
            for m in json.loads(body)["messages"][:2]:
                s, _ = call("POST", f"/api/v1/messages/{m['id']}/reply", {"message": "thanks"})
                counts["reply" if s == 200 else "errors"] += 1
        time.sleep(0.2)

threads = [threading.Thread(target=f, daemon=True) for f in (ingest, read, read, reply)]
for t in threads:
    t.start()
curve = []
start = time.time()
while time.time() < stop:
    time.sleep(SAMPLE)
    rss, fds = sample(server.pid)
    curve.append((int(time.time() - start), rss, fds))
    print(f"{curve[-1][0]:>6}s  rss {rss / 1024:7.1f} MB  fds {fds:5d}  {counts}  webhooks {Receiver.count}", flush=True)
for t in threads:
    t.join()
server.terminate(); server.wait(timeout=15)
print(f"exit code {server.returncode}")

def mean(xs):
    return sum(xs) / max(1, len(xs))
q = max(1, len(curve) // 4)
ok = True
for name, idx in (("rss", 1), ("fds", 2)):
    early, late = mean([c[idx] for c in curve[q:2 * q]]), mean([c[idx] for c in curve[-q:]])
    grew = late > early * 1.25 + (2 if idx == 2 else 1024)
    print(f"{name}: second quarter {early:.0f}, last quarter {late:.0f} -> {'GROWING' if grew else 'flat'}")
    ok &= not grew
ok &= counts["errors"] == 0 and server.returncode == 0
sys.exit(0 if ok else 1)
