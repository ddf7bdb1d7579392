#!/usr/bin/env python3
"""The dashboard in a real browser: headless Chromium driven through
chromedriver's W3C WebDriver protocol (a small client on the standard
library, so nothing is installed from a registry), against the real server
binary with WHATSAPP_BACKEND=simulator on 127.0.0.1.

Steps: log in, see an injected message, open it, reply, see the reply in the
conversation and in GET /api/v1/simulator/sent, mark messages read with
"select all" (app.js under the CSP), see a new message appear in the open
inbox (with its tab count), and a new message, a reaction and an edit in
the open conversation, without navigating (the event stream), create a webhook and see its secret once; then the pages as a phone (390 px) and a laptop (1280 px) show them:
the inbox's filters folded on the phone and open on the laptop, the bulk
buttons on one line, a long group JID on one line, times in the browser's
time zone, the webhook list's health, the Settings examples and the audit
log's columns inside the screen; watch the pairing QR refresh without a
page reload, and confirm that a hostile message runs no script.
Screenshots of each page at both widths go to $BROWSER_SHOTS when set.

Usage: dashboard_test.py <path to the whatsapp-api binary>
"""

import base64
import datetime
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

API_KEY = "browser-test-key-0123456789abcdef"
USER, PASSWORD = "admin", "browser-test-password"
ALICE = "15551234567@s.whatsapp.net"
BOB = "15557654321@s.whatsapp.net"
# A group whose name is not known yet: its JID is all there is to show.
LONG_GROUP = "120363401234567890123456@g.us"
# The browser's time zone (no daylight saving time): UTC+05:30.
BROWSER_TZ, TZ_OFFSET_MINUTES = "Asia/Kolkata", 330
HOSTILE_TEXT = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
HOSTILE_NAME = '"><svg onload="window.__pwned=3">'
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
CHROME_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=390,900",
    # Nothing but this machine: every other host name fails to resolve.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, headers=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_for(what, check, secs=15):
    deadline = time.monotonic() + secs
    last = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as e:  # a page mid-load: try again
            last = e
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}" + (f" ({last})" if last else ""))


class Server:
    def __init__(self, binary, workdir):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.update(
            WHATSAPP_BACKEND="simulator",
            HOST="127.0.0.1",
            PORT=str(self.port),
            DATA_DIR=os.path.join(workdir, "data"),
            API_KEY=API_KEY,
            DASHBOARD_USER=USER,
            DASHBOARD_PASSWORD=PASSWORD,
            RATE_LIMIT_PER_MINUTE="0",
            WEBHOOK_RETRY_SCHEDULE="1",
            LOG_LEVEL="warn",
        )
        self.log = open(os.path.join(workdir, "server.log"), "w")
        self.proc = subprocess.Popen([binary, "serve", "--env-file", os.devnull], env=env, stdout=self.log, stderr=self.log)
        wait_for("the server", lambda: self.api("GET", "/api/v1/status")[1].get("state") == "connected")

    def api(self, method, path, body=None):
        status, text = http(method, self.base + path, body, {"X-API-Key": API_KEY})
        return status, (json.loads(text) if text else None)

    def inject(self, sender, text, push_name=None, group=None):
        body = {"from": sender, "text": text}
        if push_name:
            body["push_name"] = push_name
        if group:
            body["group"] = group
        status, answer = self.api("POST", "/api/v1/simulator/messages", body)
        assert status == 201, answer
        return answer["wa_id"]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class Browser:
    """A WebDriver session on a chromedriver this object starts and stops."""

    def __init__(self, workdir):
        self.port = free_port()
        self.driver_log = open(os.path.join(workdir, "chromedriver.log"), "w")
        self.driver = subprocess.Popen(
            ["chromedriver", f"--port={self.port}"],
            stdout=self.driver_log,
            stderr=self.driver_log,
            env=dict(os.environ, TZ=BROWSER_TZ),
        )
        self.base = f"http://127.0.0.1:{self.port}"
        self.session = None
        try:
            wait_for("chromedriver", lambda: json.loads(http("GET", self.base + "/status")[1])["value"]["ready"])
            options = {
                "binary": shutil.which("chromium") or "/usr/bin/chromium",
                "args": CHROME_FLAGS + [f"--user-data-dir={os.path.join(workdir, 'profile')}"],
            }
            session = self.call(
                "POST",
                "/session",
                {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}},
                prefix=False,
            )
            self.session = session["sessionId"]
            self.resize(390)
        except BaseException:
            # Nobody else holds this object yet: stop the browser and driver here.
            self.quit()
            raise

    def call(self, method, path, body=None, prefix=True):
        url = self.base + (f"/session/{self.session}" if prefix else "") + path
        status, text = http(method, url, body if body is not None else ({} if method == "POST" else None), timeout=60)
        value = json.loads(text)["value"] if text else None
        if status != 200:
            raise AssertionError(f"WebDriver {method} {path}: {status} {value}")
        return value

    def go(self, url):
        self.call("POST", "/url", {"url": url})

    def find(self, css):
        return self.call("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def find_all(self, css):
        return [e[ELEMENT] for e in self.call("POST", "/elements", {"using": "css selector", "value": css})]

    def click(self, css):
        self.call("POST", f"/element/{self.find(css)}/click")

    def type(self, css, text):
        self.call("POST", f"/element/{self.find(css)}/value", {"text": text})

    def text(self, css):
        return self.call("GET", f"/element/{self.find(css)}/text")

    def js(self, script, *args):
        return self.call("POST", "/execute/sync", {"script": script, "args": list(args)})

    def title(self):
        return self.call("GET", "/title")

    def source(self):
        return self.call("GET", "/source")

    def resize(self, width, height=900):
        """The page as a screen `width` CSS pixels wide shows it (a headless
        window cannot be narrower than 500 px, so the viewport is emulated)."""
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        self.call("POST", "/goog/cdp/execute", {"cmd": "Emulation.setDeviceMetricsOverride", "params": metrics})
        wait_for(f"a {width} px wide page", lambda: self.js("return window.innerWidth") == width)

    def no_horizontal_overflow(self):
        width = self.js("return document.documentElement.scrollWidth - window.innerWidth")
        assert width <= 0, f"the page is {width} px wider than the screen"

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.call("GET", "/screenshot")))

    def quit(self):
        try:
            if self.session:
                self.call("DELETE", "")
        except Exception:
            pass
        self.driver.terminate()
        try:
            self.driver.wait(10)
        except subprocess.TimeoutExpired:
            self.driver.kill()
        self.driver_log.close()


def run(binary):
    workdir = tempfile.mkdtemp(prefix="wa-browser-")
    shots = os.environ.get("BROWSER_SHOTS", os.path.join(workdir, "shots"))
    os.makedirs(shots, exist_ok=True)
    server = browser = None
    passed, failed = [], []
    step = "start"
    try:
        server = Server(binary, workdir)
        browser = Browser(workdir)
        login_url = server.base.replace("http://", f"http://{USER}:{PASSWORD}@")

        step = "without credentials the dashboard is refused"
        browser.go(server.base + "/")
        # Chromium answers the Basic challenge with an empty page (its login prompt).
        assert not browser.find_all("main"), browser.source()[:300]
        assert not browser.title().startswith("Inbox")
        passed.append(step)

        step = "log in and see an injected message"
        wa_id = server.inject(ALICE, "Do you deliver on Saturdays?", "Alice")
        server.inject(BOB, "Second customer question")
        server.inject(BOB, "Third customer question")
        browser.go(login_url + "/")
        wait_for("the inbox", lambda: browser.title().startswith("Inbox"))
        browser.go(server.base + "/")  # the browser keeps the credentials
        wait_for("the message", lambda: "Do you deliver on Saturdays?" in browser.text("main"))
        browser.screenshot(os.path.join(shots, "inbox.png"))
        passed.append(step)

        step = "open the message and reply"
        link = next(
            e for e in browser.find_all("a.row-link") if "Saturdays" in browser.call("GET", f"/element/{e}/text")
        )
        browser.call("POST", f"/element/{link}/click")
        wait_for("the conversation", lambda: browser.title().startswith("Chat with Alice"))
        browser.type("#reply-text", "Yes, from 9 to 1.")
        browser.click(".reply button.primary")
        wait_for("the reply notice", lambda: "Reply sent" in browser.text(".notice.ok"))
        bubbles = [browser.call("GET", f"/element/{e}/text") for e in browser.find_all(".bubble.out")]
        assert any("Yes, from 9 to 1." in b for b in bubbles), bubbles
        browser.screenshot(os.path.join(shots, "conversation.png"))
        passed.append(step)

        step = "the reply went out quoted, and the question was marked read (GET /api/v1/simulator/sent)"
        _, sent = server.api("GET", "/api/v1/simulator/sent")
        texts = [s for s in sent if s["kind"] == "text"]
        assert [s["text"] for s in texts] == ["Yes, from 9 to 1."], sent
        assert texts[0]["quoted_wa_id"] == wa_id, sent
        assert [s["wa_ids"] for s in sent if s["kind"] == "read"] == [[wa_id]], sent
        passed.append(step)

        step = "a quick reaction, and the customer's own reaction under their message"
        browser.click(".react.in button[value='👍']")
        wait_for("the reaction notice", lambda: "Reaction sent" in browser.text(".notice.ok"))
        pressed = browser.js(
            "return [...document.querySelectorAll('.react.in button[aria-pressed=true]')].map(b => b.textContent)"
        )
        assert pressed == ["👍"], pressed
        _, sent = server.api("GET", "/api/v1/simulator/sent")
        reactions = [s for s in sent if s["kind"] == "reaction"]
        assert [(r["target_wa_id"], r["emoji"]) for r in reactions] == [(wa_id, "👍")], sent
        server.api("POST", "/api/v1/simulator/reactions", {"from": ALICE, "target_wa_id": wa_id, "emoji": "🎉"})
        browser.go(browser.call("GET", "/url"))
        wait_for("the customer's reaction", lambda: "🎉" in browser.text(".bubble.in .reactions"))
        browser.no_horizontal_overflow()
        browser.screenshot(os.path.join(shots, "reactions.png"))
        passed.append(step)

        step = "a reply with a file from the file picker"
        photo = os.path.join(workdir, "dot.png")
        with open(photo, "wb") as f:
            f.write(base64.b64decode(
                "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkaPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
            ))
        browser.type("#reply-file", photo)
        browser.type("#reply-text", "Here is a photo.")
        browser.click(".reply button.primary")
        wait_for("the reply notice", lambda: "Reply sent" in browser.text(".notice.ok"))
        assert browser.find_all(".bubble.out img"), "the photo is not shown in the conversation"
        _, sent = server.api("GET", "/api/v1/simulator/sent")
        media = [s for s in sent if s["kind"] == "media"]
        assert [(m["media_type"], m["text"], m["filename"]) for m in media] == [("image", "Here is a photo.", "dot.png")], sent
        passed.append(step)

        step = "select all and mark read"
        browser.go(server.base + "/")
        wait_for("the unread list", lambda: browser.find_all("input[name=id]"))
        browser.click("#select-all")
        checked = browser.js("return [...document.querySelectorAll('input[name=id]')].every(b => b.checked)")
        assert checked, "select all did not tick every box (app.js not running?)"
        browser.click("button[name=status][value=read]")
        wait_for("the notice", lambda: "Marked 2 messages read" in browser.text(".notice.ok"))
        _, read = server.api("GET", "/api/v1/inbox/read")
        assert read["pagination"]["total"] == 2, read
        passed.append(step)

        step = "a message injected while the inbox is open appears without navigation, counts change"
        browser.go(server.base + "/")
        wait_for("the inbox", lambda: browser.title().startswith("Inbox"))
        unread = int(browser.text("#tabs a[aria-current] .count"))
        browser.js("window.__samePage = true")
        server.inject(BOB, "Arrived while you were looking")
        wait_for("the live message", lambda: "Arrived while you were looking" in browser.text("#listing"))
        wait_for("the new count", lambda: int(browser.text("#tabs a[aria-current] .count")) == unread + 1)
        assert browser.js("return window.__samePage === true"), "the page was reloaded"
        passed.append(step)

        step = "a message, a reaction and an edit appear on an open conversation without navigation"
        link = next(
            e for e in browser.find_all("a.row-link") if "Arrived while" in browser.call("GET", f"/element/{e}/text")
        )
        browser.call("POST", f"/element/{link}/click")
        wait_for("the conversation", lambda: browser.find_all("#chat[data-after]"))
        browser.js("window.__samePage = true")
        more = server.inject(BOB, "And one more thing")
        server.inject(ALICE, "Not in this chat")
        wait_for("the live bubble", lambda: "And one more thing" in browser.text("#chat"))
        assert "Not in this chat" not in browser.text("#chat")
        server.api("POST", "/api/v1/simulator/reactions", {"from": BOB, "target_wa_id": more, "emoji": "🙏"})
        wait_for("the live reaction", lambda: "🙏" in browser.text("#chat .reactions"))
        server.api("POST", "/api/v1/simulator/edits", {"from": BOB, "target_wa_id": more, "text": "One more, edited"})
        wait_for("the live edit", lambda: "One more, edited" in browser.text("#chat"))
        assert browser.js("return window.__samePage === true"), "the page was reloaded"
        # The pages below are checked with the inbox as it was before.
        _, unread = server.api("GET", "/api/v1/inbox/unread")
        ids = [m["id"] for m in unread["messages"]]
        server.api("PATCH", "/api/v1/messages/batch/status", {"ids": ids, "status": "read"})
        passed.append(step)

        step = "create a webhook and see its secret once"
        browser.go(server.base + "/webhooks")
        browser.type("#hook-url", f"http://127.0.0.1:{free_port()}/hook")
        browser.click("form[action='/webhooks'] button.primary")
        secret = wait_for("the secret", lambda: browser.text("#secret"))
        assert secret.startswith("whsec_"), secret
        browser.screenshot(os.path.join(shots, "webhooks.png"))
        _, hooks = server.api("GET", "/api/v1/webhooks")
        assert len(hooks["webhooks"]) == 1 and hooks["webhooks"][0]["has_secret"], hooks
        browser.go(server.base + "/webhooks")
        assert "whsec_" not in browser.source()
        passed.append(step)

        step = "the inbox at 390 px: filters folded, buttons on one line, a long JID on one line"
        server.inject(ALICE, "A message with a time", "Alice")
        server.inject(BOB, "Who is coming on Sunday?", "Bob", group=LONG_GROUP)
        browser.go(server.base + "/")
        wait_for("the group message", lambda: "Who is coming on Sunday?" in browser.text("main"))
        assert browser.js("return window.innerWidth") == 390, browser.js("return window.innerWidth")
        assert browser.js("return document.getElementById('filters').open") is False, "the filters are open"
        assert browser.js("return document.querySelector('form.filters').checkVisibility()") is False, "the filters show"
        first_row = browser.js("return document.querySelector('.inbox .row').getBoundingClientRect().top")
        assert first_row < 400, f"the first message starts {first_row} px down"
        tops = browser.js("return [...document.querySelectorAll('.marks button')].map(b => b.getBoundingClientRect().top)")
        assert len(tops) == 3 and len(set(tops)) == 1, f"the bulk buttons split: {tops}"
        one_line = browser.js(
            "const f = [...document.querySelectorAll('.row .from')];"
            "return f.map(e => e.getBoundingClientRect().height <= 1.6 * parseFloat(getComputedStyle(e).lineHeight))"
        )
        assert all(one_line), f"a sender takes more than one line: {one_line}"
        assert browser.js(
            f"return [...document.querySelectorAll('.row .from')].some(e => e.title.includes('{LONG_GROUP}'))"
        ), "no row names the long group"
        browser.no_horizontal_overflow()
        browser.screenshot(os.path.join(shots, "inbox-390.png"))
        browser.click("#filters summary")
        wait_for("the unfolded filters", lambda: browser.js("return document.querySelector('form.filters').checkVisibility()"))
        passed.append(step)

        step = "times are shown in the browser's time zone, the UTC value in the title"
        times = browser.js(
            "return [...document.querySelectorAll('main time')].map(t => [t.dateTime, t.textContent, t.title])"
        )
        assert times, "no times on the inbox"
        shift = datetime.timedelta(minutes=TZ_OFFSET_MINUTES)
        for iso, text, title in times:
            utc = datetime.datetime.fromisoformat(iso.replace("Z", "+00:00"))
            local = utc + shift
            assert title == utc.strftime("%Y-%m-%d %H:%M:%S UTC"), (iso, title)
            # Today's as the time of day, others with their date ("today"
            # read at both ends, in case midnight passes in between).
            today = {(datetime.datetime.now(datetime.timezone.utc) + shift).date()}
            expected = {local.strftime("%Y-%m-%d %H:%M")}
            if local.date() in today:
                expected.add(local.strftime("%H:%M"))
            assert text in expected, (iso, text, expected)
        passed.append(step)

        step = "the webhook list at 390 px shows a dead endpoint's failures"
        # The webhook made above points at a closed port; this message's
        # delivery fails twice (WEBHOOK_RETRY_SCHEDULE=1).
        server.inject(ALICE, "Does anyone hear me?")
        browser.go(server.base + "/webhooks")
        wait_for(
            "the failed delivery",
            lambda: browser.go(server.base + "/webhooks") or "1 failed" in browser.text(".hook"),
            secs=20,
        )
        assert "health-failing" in browser.js("return document.querySelector('.hook').className")
        assert "Last attempt" in browser.text(".hook .last")
        browser.no_horizontal_overflow()
        browser.screenshot(os.path.join(shots, "webhooks-390.png"))
        passed.append(step)

        step = "the settings examples at 390 px are not cut off"
        browser.go(server.base + "/settings")
        wait_for("the settings", lambda: browser.title().startswith("Settings"))
        cut = browser.js("return [...document.querySelectorAll('pre')].filter(p => p.scrollWidth > p.clientWidth).length")
        assert cut == 0, f"{cut} examples are wider than their box"
        browser.no_horizontal_overflow()
        browser.screenshot(os.path.join(shots, "settings-390.png"))
        passed.append(step)

        step = "the audit log at 390 px: every column on screen, the actions a list"
        browser.go(server.base + "/audit-logs")
        wait_for("the audit log", lambda: browser.find_all("table.log td"))
        for label in ["Status", "IP", "Request"]:
            right = browser.js(
                f"const c = document.querySelector('td[data-label={label}]').getBoundingClientRect();"
                "return c.width > 0 ? c.right : -1"
            )
            assert 0 < right <= 390, f"the {label} column ends at {right} px"
        assert browser.js("return document.querySelector('select[name=action]').options.length") > 5
        browser.no_horizontal_overflow()
        browser.screenshot(os.path.join(shots, "audit-390.png"))
        passed.append(step)

        step = "the same pages at 1280 px"
        browser.resize(1280)
        browser.go(server.base + "/")
        wait_for("the inbox", lambda: browser.title().startswith("Inbox"))
        assert browser.js("return document.getElementById('filters').open") is True, "folded at 1280 px"
        assert browser.js("return document.querySelector('#filters summary').offsetHeight") == 0, "a fold to open"
        assert browser.js("return document.querySelector('form.filters').checkVisibility()"), "no filters"
        browser.no_horizontal_overflow()
        browser.screenshot(os.path.join(shots, "inbox-1280.png"))
        for name, path in [("webhooks", "/webhooks"), ("settings", "/settings"), ("audit", "/audit-logs")]:
            browser.go(server.base + path)
            wait_for(f"the {name} page", lambda: browser.find_all("main h1"))
            browser.no_horizontal_overflow()
            browser.screenshot(os.path.join(shots, f"{name}-1280.png"))
        browser.resize(390)
        passed.append(step)

        step = "the pairing QR refreshes without reloading the page"
        server.api("POST", "/api/v1/simulator/connection", {"state": "qr"})
        wait_for("a QR code", lambda: server.api("GET", "/api/v1/status")[1]["qrReady"])
        browser.go(server.base + "/login")
        first = browser.js("window.__samePage = true; return document.getElementById('qr').src")
        wait_for(
            "a refreshed QR image",
            lambda: browser.js("return document.getElementById('qr').src") != first,
            secs=10,
        )
        assert browser.js("return window.__samePage === true"), "the page was reloaded"
        wait_for(
            "the QR image to load",
            lambda: browser.js("const i = document.getElementById('qr'); return i.complete && i.naturalWidth > 0"),
        )
        browser.screenshot(os.path.join(shots, "login.png"))
        server.api("POST", "/api/v1/simulator/connection", {"state": "connected"})
        wait_for("the connection", lambda: server.api("GET", "/api/v1/status")[1]["connected"])
        passed.append(step)

        step = "a hostile message runs no script"
        server.inject(ALICE, HOSTILE_TEXT, HOSTILE_NAME)
        browser.go(server.base + "/")
        wait_for("the hostile message", lambda: "window.__pwned=2" in browser.text("main"))
        assert "<script>window.__pwned=2</script>" in browser.text("main")
        assert browser.js("return window.__pwned === undefined"), "script ran on the inbox"
        link = browser.find_all("a.row-link")[0]
        browser.call("POST", f"/element/{link}/click")
        wait_for("the conversation", lambda: browser.title().startswith("Chat with"))
        time.sleep(0.3)  # give an injected onerror handler the time to fire
        assert browser.js("return window.__pwned === undefined"), "script ran on the conversation"
        assert 'onerror="window.__pwned=1"' in browser.text(".bubble.selected .text")
        passed.append(step)
    except Exception as e:  # report, keep a screenshot, fail
        failed.append(step)
        print(f"browser test FAILED at: {step}\n  {type(e).__name__}: {e}", file=sys.stderr)
        if browser:
            try:
                browser.screenshot(os.path.join(shots, "failure.png"))
                print(f"  screenshot: {os.path.join(shots, 'failure.png')}", file=sys.stderr)
            except Exception:
                pass
        if server:
            with open(os.path.join(workdir, "server.log")) as f:
                sys.stderr.write("  server log (tail):\n" + "".join(f.readlines()[-20:]))
    finally:
        if browser:
            browser.quit()
        if server:
            server.stop()
        if not failed and "BROWSER_SHOTS" not in os.environ:
            shutil.rmtree(workdir, ignore_errors=True)
    for name in passed:
        print(f"ok - {name}")
    print(f"browser: {len(passed)} passed, {len(failed)} failed")
    return 0 if not failed else 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(run(os.path.abspath(sys.argv[1])))
