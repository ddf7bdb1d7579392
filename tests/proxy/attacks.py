# The seven hostile-client attacks of RELIABILITY.md sent through a reverse
# proxy in front of the server: prints what each got, and fails when
# /api/v1/health, asked through the proxy and directly after each attack,
# does not answer 200 within a second.
#
#   python3 attacks.py PROXY_PORT SERVER_PORT
import socket, time, sys
NGINX, BACKEND = ("127.0.0.1", int(sys.argv[1])), ("127.0.0.1", int(sys.argv[2]))
failures = []

def conn(addr=NGINX, rcvbuf=None):
    s = socket.socket()
    if rcvbuf: s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10); s.connect(addr); return s

def exchange(raw, addr=NGINX, wait=5):
    s = conn(addr); s.settimeout(wait)
    try:
        s.sendall(raw)
    except OSError as e:
        pass
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d: break
            out += d
    except OSError as e:
        out += b"<" + str(e).encode() + b">"
    s.close(); return out

def statuses(out):
    return [l.split(b" ")[1].decode() for l in out.split(b"\r\n") if l.startswith(b"HTTP/1.")]

def health(tag):
    res = []
    for name, addr in (("proxy", NGINX), ("direct", BACKEND)):
        t = time.time()
        try:
            out = exchange(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", addr, 2)
            took = time.time() - t
            res.append("%s %s %.0f ms" % (name, statuses(out)[:1], took * 1000))
            if statuses(out)[:1] != ["200"] or took > 1:
                failures.append("%s: health %s" % (tag, res[-1]))
        except OSError as e:
            res.append("%s FAILED %s" % (name, e))
            failures.append("%s: health %s" % (tag, res[-1]))
    print("   health after %s: %s" % (tag, "; ".join(res))); sys.stdout.flush()

print("1. huge announced body")
print("  ", statuses(exchange(b"POST /api/v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000\r\n\r\n")))
health("1")

print("2. 300 connections held open, then 300 opened and closed (the server allowed 256 open files)")
held = [conn() for _ in range(300)]
health("300 held")
for c in held: c.close()
for _ in range(300): conn().close()
health("2")

print("3. 8 connections x 400 pipelined GET /api/v1/openapi.json, never read")
flood = []
for _ in range(8):
    c = conn(rcvbuf=4096); c.setblocking(False)
    data = b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n" * 400
    try: c.send(data)
    except BlockingIOError: pass
    flood.append(c)
time.sleep(1); health("3 (flood open)")
time.sleep(6); health("3 (+6 s)")
for c in flood: c.close()

print("4. 8 trickled 2 MB bodies, 8 trickled 100 KB bodies, 8 Connection: Upgrade")
slow = []
for cl in (2000000, 100000):
    for _ in range(8):
        c = conn(); c.sendall(b"POST /api/v1/messages/x/reply HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % cl); slow.append(c)
ups = []
for _ in range(8):
    c = conn(); c.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"); ups.append(c)
for i in range(4):
    for c in slow:
        try: c.send(b"a")
        except OSError: pass
    time.sleep(1)
health("4 (trickling)")
slow[0].settimeout(3); print("   first trickled 2 MB:", statuses(slow[0].recv(4096)))
c = slow[8]; c.settimeout(1)
try: print("   first trickled 100 KB:", statuses(c.recv(4096)))
except OSError as e: print("   first trickled 100 KB: no answer yet (%s)" % e)
ups[0].settimeout(3); print("   upgrade request:", statuses(ups[0].recv(4096)))
for c in slow + ups: c.close()

print("5. huge heads")
big = b"a" * (64 * 1024 * 1024)
print("   64 MB header value:", statuses(exchange(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + big + b"\r\n\r\n")))
print("   100,000 headers:", statuses(exchange(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 100000 + b"\r\n")))
print("   64 MB request line:", statuses(exchange(b"GET /" + big + b" HTTP/1.1\r\nHost: x\r\n\r\n")))
health("5")

print("6. framing")
smuggled = b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n"
cases = {
  "CL + TE": b"POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
  "TE xchunked + smuggled": b"POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n%x\r\n" % len(smuggled) + smuggled + b"\r\n0\r\n\r\n",
  "TE identity": b"POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n",
  "TE gzip, chunked": b"POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
  "two CL differing": b"POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
  "two CL equal": b"POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab",
  "CL +5": b"POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nabcde",
  "obs-fold": b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
  "bare LF in a header": b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-A: a\nX-API-Key: k\r\n\r\n",
  "space before colon": b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-A : a\r\n\r\n",
}
for name, raw in cases.items():
    print("   %s: %s" % (name, statuses(exchange(raw + smuggled, wait=3))))
health("6")

print("7. control characters")
print("   LF + FORGED-LINE in the request line:", statuses(exchange(b"GET /a\nFORGED-LINE HTTP/1.1\r\nHost: x\r\n\r\n")))
print("   ESC in the target:", statuses(exchange(b"GET /a\x1b[31m HTTP/1.1\r\nHost: x\r\n\r\n")))
print("   ESC in User-Agent:", statuses(exchange(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nUser-Agent: a\x1b[31mred\r\nConnection: close\r\n\r\n")))
print("   %0a%1b in the path:", statuses(exchange(b"GET /x%0aFORGED%1b[31m HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")))
health("7")

if failures:
    print("FAILED:", *failures, sep="\n  ")
    sys.exit(1)
print("the server answered /api/v1/health within a second after every attack")
