"""The web dashboard (docs/DASHBOARD.md) in a real browser: musterd, the C++ and Python example
workers and muster-gateway, with headless Debian chromium driven by Selenium through
/usr/bin/chromedriver. Each step saves a screenshot under build/test-output/dashboard/.

Also, without a browser: the gateway's static file serving (content types, caching, the
Content-Security-Policy, no way out of the web root).

Skips (saying why) only where chromium or chromedriver cannot be found; everything else that is
missing (selenium, the bundle) is a failure. Every wait is bounded; every process is killed
when its test ends (conftest)."""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BUILD, read_log, spawn, wait_for
from test_gateway import PASSWORDS, Gateway, add_user, start_python_worker

os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never try to download a driver
from selenium import webdriver  # noqa: E402  (tools/lib/setup.sh installs selenium)
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

OUT = BUILD / "test-output" / "dashboard"
WEB_ROOT = BUILD / "gateway" / "web"
SIM_WORKERS = BUILD / "tools" / "bench" / "muster-bench-simworkers"
USERS = [("alice", "default", "call"), ("reader", "default", "read")]


def find_program(env: str, *candidates: str) -> str | None:
    for c in (os.environ.get(env), *candidates):
        if not c:
            continue
        path = c if os.path.isabs(c) else shutil.which(c)
        if path and os.access(path, os.X_OK):
            return path
    return None


CHROMIUM = find_program("MUSTER_CHROMIUM", "/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
CHROMEDRIVER = find_program("MUSTER_CHROMEDRIVER", "/usr/bin/chromedriver", "chromedriver")


# ---- the browser ------------------------------------------------------------------------------

class Page:
    """One headless chromium with the helpers the steps need."""

    def __init__(self, driver, out: Path, base_url: str):
        self.d, self.out, self.base = driver, out, base_url
        self.console: list[dict] = []
        self.shots = 0

    def open(self):
        self.d.get(self.base)
        return self

    def shot(self, name: str) -> Path:
        self.shots += 1
        path = self.out / f"{self.shots:02d}-{name}.png"
        self.d.save_screenshot(str(path))
        return path

    def wait(self, pred, timeout=20.0, what="condition"):
        def safe():
            try:
                return pred()
            except (NoSuchElementException, StaleElementReferenceException):
                return None
        return wait_for(safe, timeout, what, interval=0.05)

    def q(self, css):
        return self.d.find_element(By.CSS_SELECTOR, css)

    def qa(self, css):
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def click(self, css):
        """Clicks the element `css` names; lists re-render on pushes, so a stale one is found again."""
        def attempt():
            try:
                self.q(css).click()
                return True
            except (NoSuchElementException, StaleElementReferenceException):
                return False
        wait_for(attempt, 10, f"{css} to be clickable")

    def text(self, css) -> str:
        return self.fresh(lambda: self.q(css).text)

    def text_if_any(self, css) -> str:
        """The first element's text, or "" when none matches."""
        return self.fresh(lambda: next((e.text for e in self.qa(css)), ""))

    @staticmethod
    def fresh(read):
        """`read()`, found again when the element went stale in between: lists and tables
        re-render on every push (bounded: 50 tries, 50 ms apart)."""
        for _ in range(49):
            try:
                return read()
            except StaleElementReferenceException:
                time.sleep(0.05)
        return read()

    def js(self, script, *args):
        return self.d.execute_script(script, *args)

    def login(self, user: str):
        self.wait(lambda: self.qa("#login-form"), what="the login form")
        self.q("#login-username").clear()
        self.q("#login-username").send_keys(user)
        self.q("#login-password").send_keys(PASSWORDS[user])
        self.q("#login-submit").click()
        self.wait(lambda: self.qa("#whoami"), what=f"the dashboard after {user}'s login")

    def open_node(self, name: str):
        self.wait(lambda: self.qa(f'tr[data-node="{name}"]'), what=f"node {name} listed")
        self.click(f'tr[data-node="{name}"] button.open-node')
        self.wait(lambda: self.q("#panel").get_attribute("data-node") == name and self.q("#panel").is_displayed(),
                  what=f"the panel of {name}")

    def field(self, port: str, section="inputs"):
        return self.q(f'#panel [data-section="{section}"][data-port="{port}"]:not([data-alt])')

    def call_status(self) -> str:
        return self.q("#call-status").get_attribute("data-status") or ""

    def wait_call(self, status: str, timeout=20.0):
        self.wait(lambda: self.call_status() == status, timeout, f"the call to end {status} (is {self.call_status()!r})")

    def progress(self) -> float:
        v = self.js("return document.querySelector('#call-progress').getAttribute('value')")
        return float(v) if v is not None else -1.0

    def collect_console(self):
        self.console += self.d.get_log("browser")
        return self.console

    def console_errors(self):
        return [e for e in self.collect_console() if e.get("level") == "SEVERE"]


@pytest.fixture
def browser(tmp_base, request):
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip(f"no browser to drive: chromium={CHROMIUM}, chromedriver={CHROMEDRIVER} "
                    "(Debian: apt-get install chromium chromium-driver, as tools/lib/setup.sh does)")
    out = OUT / request.node.name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    # Without the background-networking flags chromium keeps trying hosts this machine cannot reach.
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-extensions", "--disable-default-apps", "--window-size=1440,1000",
                f"--user-data-dir={tmp_base / 'chromium-profile'}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER, log_output=str(out / "chromedriver.log"))
    driver = webdriver.Chrome(options=opts, service=service)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        yield driver, out
    finally:
        driver.quit()


@pytest.fixture
def stack(daemon, start_worker, tmp_base):
    """musterd, the C++ (cpp-1) and Python (py-1, nodes py.*) example workers, and the gateway."""
    assert (WEB_ROOT / "index.html").exists(), \
        f"the dashboard is not bundled in {WEB_ROOT}: npm ci in gateway/web, then build muster-gateway-web"
    cpp = start_worker(daemon, worker_id="cpp-1").wait_ready()
    py = start_python_worker(daemon, "py-1")
    gw = Gateway(daemon, tmp_base)
    for u in USERS:
        add_user(gw.data_dir, *u)
    gw.start()
    wait_for(lambda: "py.checksum" in json.dumps(gw.get("/api/nodes", token=gw.login("alice"))[1]), 20,
             "the Python worker's nodes")
    return {"gw": gw, "cpp": cpp, "py": py}


def raw_get(port, target, method="GET", headers=None):
    """A request sent exactly as written (no client-side path normalisation)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.putrequest(method, target, skip_accept_encoding=True)
    for k, v in (headers or {}).items():
        c.putheader(k, v)
    c.endheaders()
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


# ---- static files (no browser) ---------------------------------------------------------------

def test_gateway_serves_the_bundle_with_types_caching_and_csp(daemon, tmp_base):
    gw = Gateway(daemon, tmp_base)
    add_user(gw.data_dir, "alice", "default", "call")
    gw.start()
    assert re.search(rf"dashboard: http://127\.0\.0\.1:{gw.port}/ \(files in ", gw.log), gw.log

    status, h, body = raw_get(gw.port, "/")
    assert status == 200 and h["content-type"] == "text/html; charset=utf-8"
    assert h["cache-control"] == "no-cache" and h["x-content-type-options"] == "nosniff"
    csp = h["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "http" not in csp and "*" not in csp and "unsafe" not in csp  # no remote origin, nothing inline
    page = body.decode()
    assets = re.findall(r'(?:src|href)="(/assets/[^"]+)"', page)
    assert len(assets) == 3 and not re.search(r'(?:src|href)="(?:https?:)?//', page)  # nothing from elsewhere

    js = next(a for a in assets if a.endswith(".js"))
    status, h, body = raw_get(gw.port, js)
    assert status == 200 and h["content-type"] == "text/javascript; charset=utf-8"
    assert h["cache-control"] == "public, max-age=31536000, immutable" and len(body) > 1000
    assert (WEB_ROOT / js.lstrip("/")).read_bytes() == body
    css = next(a for a in assets if a.endswith(".css"))
    assert raw_get(gw.port, css)[1]["content-type"] == "text/css; charset=utf-8"
    assert raw_get(gw.port, "/assets/favicon.svg")[1]["content-type"] == "image/svg+xml"

    # Revalidation, HEAD, methods, unknown files.
    etag = raw_get(gw.port, "/index.html")[1]["etag"]
    assert raw_get(gw.port, "/", headers={"If-None-Match": etag})[:2][0] == 304
    status, h, body = raw_get(gw.port, js, method="HEAD")
    assert status == 200 and body == b"" and int(h["content-length"]) == (WEB_ROOT / js.lstrip("/")).stat().st_size
    assert raw_get(gw.port, "/", method="POST")[0] == 405
    assert raw_get(gw.port, "/assets/nothing.js")[0] == 404
    assert raw_get(gw.port, "/assets/")[0] == 400  # no directory listing
    # The API is not shadowed.
    assert gw.get("/healthz")[0] == 200 and gw.get("/api/nodes")[0] == 401

    # No way out of the web root, plain or percent-encoded.
    secret = (tmp_base / "secret.txt")
    secret.write_text("not for the web")
    for target in ("/assets/../../../../../../etc/passwd", "/assets/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                   "/assets/%2E%2E%2F%2E%2E%2Fgw-data%2Fjwt.key", "/assets/..%2f..%2f..%2fetc%2fpasswd",
                   "/assets/.%2e/index.html", "/assets/%2e/favicon.svg", "/assets/..\\..\\etc\\passwd",
                   "/assets/%00.js", f"/assets/{'%2e%2e/' * 12}{str(secret).lstrip('/')}"):
        status, _, body = raw_get(gw.port, target)
        assert status == 400, (target, status)
        assert b"root:" not in body and b"not for the web" not in body
    assert "a path leaving the web root was refused" in gw.log


def test_web_root_flag_symlinks_and_a_missing_bundle(daemon, tmp_base):
    root = tmp_base / "web"
    shutil.copytree(WEB_ROOT, root)
    (tmp_base / "outside.txt").write_text("outside the root")
    (root / "assets" / "leak.txt").symlink_to(tmp_base / "outside.txt")
    (root / "assets" / "hello.txt").write_text("inside")
    gw = Gateway(daemon, tmp_base, "--web-root", str(root))
    add_user(gw.data_dir, "alice", "default", "call")
    gw.start()
    assert raw_get(gw.port, "/assets/hello.txt")[:1] == (200,)
    assert raw_get(gw.port, "/assets/hello.txt")[1]["cache-control"] == "no-cache"  # not content-hashed
    status, _, body = raw_get(gw.port, "/assets/leak.txt")
    assert status == 400 and b"outside" not in body
    gw.stop()

    empty = tmp_base / "empty"
    empty.mkdir()
    gw2 = Gateway(daemon, tmp_base, "--web-root", str(empty), name="gw2")
    add_user(gw2.data_dir, "alice", "default", "call")
    gw2.start()
    assert "not built: no index.html in" in gw2.log
    status, _, body = raw_get(gw2.port, "/")
    assert status == 404 and b"npm ci" in body


# ---- the dashboard in the browser --------------------------------------------------------------

def test_dashboard_in_a_browser(stack, browser, tmp_base, run_cli):
    driver, out = browser
    gw, py = stack["gw"], stack["py"]
    # Two calls of hello from another client (the CLI): musterd's per-node statistics count
    # them, the page's own counts cannot.
    for name in ("Cli1", "Cli2"):
        r = run_cli(gw.daemon, "call", "hello", json.dumps({"name": name}))
        assert r.returncode == 0, r.stderr
    p = Page(driver, out, f"http://127.0.0.1:{gw.port}/").open()

    # Log in; the example nodes and both workers appear.
    p.wait(lambda: p.qa("#login-form"), what="the login form")
    p.shot("login")
    p.login("alice")
    for node in ("hello", "sleep", "echo", "fail", "py.hello", "py.hash", "py.checksum"):
        p.wait(lambda: p.qa(f'tr[data-node="{node}"]'), what=f"node {node} listed")
    for worker in ("cpp-1", "py-1"):
        p.wait(lambda: p.qa(f'tr[data-worker="{worker}"]'), what=f"worker {worker} listed")
    p.wait(lambda: p.text('[data-stat="workers"] .value') == "2", what="2 workers in the broker cards")
    assert p.text('#whoami').startswith("alice · call")
    assert "muster-python" in p.text('tr[data-worker="py-1"]') and "muster-cpp" in p.text('tr[data-worker="cpp-1"]')
    for worker in ("cpp-1", "py-1"):  # both SDKs' workers have one connection to musterd (PROTOCOL.md §7.10)
        assert p.text(f'tr[data-worker="{worker}"] td[data-stat="direct"]') == "yes", worker
    assert p.js("return sessionStorage.getItem('muster.dashboard.session')").count(".") >= 2  # the JWT
    p.shot("nodes-and-workers")

    # Call hello through the generated form and read the greeting.
    p.open_node("hello")
    assert "who to greet" in p.text("#panel")
    p.field("name").send_keys("Ada")
    p.q("#call-button").click()
    p.wait_call("completed")
    assert '"greeting": "Hello Ada"' in p.text("#call-result")
    p.shot("hello-called")

    # The hello row shows musterd's statistics: the CLI's two calls and the page's one, and
    # a p50 service time; the broker's latency percentiles come from them too.
    def hello_stat(key):
        return p.text_if_any(f'tr[data-node="hello"] td[data-stat="{key}"]')
    p.wait(lambda: hello_stat("completed") == "3", 20, "hello's completed count from musterd (3)")
    assert re.fullmatch(r"[\d,]+\.\d+ ms", hello_stat("p50")) and hello_stat("p50") != "0.00 ms", hello_stat("p50")
    assert hello_stat("errors") == "0"
    p.wait(lambda: p.qa('#broker .latency[data-source="musterd"]'), 20, "the broker latency from musterd's statistics")
    assert re.fullmatch(r"[\d,]+\.\d+ ms", p.text('#broker [data-stat="p50"]')), p.text('#broker [data-stat="p50"]')

    # sleep: the progress bar's value goes up while the call runs.
    p.open_node("sleep")
    p.field("ms").send_keys("3000")
    p.q("#call-button").click()
    seen = []
    deadline = time.monotonic() + 30
    while p.call_status() != "completed" and time.monotonic() < deadline:
        v = p.progress()
        if v >= 0 and (not seen or v != seen[-1]):
            seen.append(v)
            if len(seen) == 3:
                p.shot("sleep-progress")
        time.sleep(0.05)
    p.wait_call("completed")
    assert len(seen) >= 3 and seen == sorted(seen) and p.progress() == 10, seen
    assert '"slept_ms"' in p.text("#call-result")

    # Another sleep, cancelled from the panel: the worker stops, the page says cancelled.
    p.field("ms").clear()
    p.field("ms").send_keys("30000")
    p.q("#call-button").click()
    p.wait(lambda: p.progress() >= 1, 10, "the long sleep to report progress")
    p.q("#cancel-button").click()
    p.wait_call("cancelled")
    assert "CANCELLED" in p.text("#call-result")
    p.wait(lambda: p.qa('#calls tr[data-status="cancelled"]'), what="the cancelled call in the calls list")
    p.shot("sleep-cancelled")

    # Upload a file to a bytes input (chunked, with its progress bar), then call with it.
    blob = os.urandom(300_000)  # three chunks of 128 KiB
    upload = tmp_base / "upload.bin"
    upload.write_bytes(blob)
    digest = hashlib.sha256(blob).hexdigest()
    p.open_node("py.checksum")
    p.field("data").send_keys(str(upload))
    p.wait(lambda: p.qa("#panel .upload-state.ok"), 30, "the upload to finish")
    assert p.q("#panel .upload-state.ok").get_attribute("data-hash") == f"sha256:{digest}"
    assert p.js("return document.querySelector('#panel .upload-progress').value") == 1
    p.q("#call-button").click()
    p.wait_call("completed")
    result = p.text("#call-result")
    assert f'"sha256": "{digest}"' in result and '"size": 300000' in result
    p.shot("file-uploaded")

    # Bytes in a result come as a download link holding exactly those bytes.
    p.open_node("py.hash")
    p.field("data").send_keys('"abc"')
    p.q("#call-button").click()
    p.wait_call("completed")
    link = p.q('#call-downloads a.download[data-path="digest"]')
    assert link.get_attribute("download") == "digest.bin"
    downloads = out / "downloads"
    downloads.mkdir()
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    link.click()
    saved = downloads / "digest.bin"
    wait_for(lambda: saved.exists() and saved.stat().st_size == 32, 20, "the download of digest.bin")
    assert saved.read_bytes() == hashlib.sha256(b"abc").digest()
    p.shot("bytes-download")

    # A failure shows up among the recent failures, with its code and message.
    p.open_node("fail")
    p.field("message").send_keys("boom on purpose")
    p.q("#call-button").click()
    p.wait_call("failed")
    p.wait(lambda: any("boom on purpose" in li.text for li in p.qa('#failure-list li[data-code="WORKER_ERROR"]')),
           what="the failure in the recent failures")
    # ... and again as musterd's (node.status recent_failures), not only as this page's call.
    p.wait(lambda: any("boom on purpose" in li.text
                       for li in p.qa('#failure-list li[data-source="musterd"][data-code="WORKER_ERROR"][data-node="fail"]')),
           20, "the failure among musterd's recent failures")
    p.wait(lambda: p.text('tr[data-node="fail"] td[data-stat="errors"]') == "1", 20, "fail's error count from musterd")
    p.shot("failure")

    # Search by name, description and category (service.search.request).
    p.q("#search-query").send_keys("checksum")
    p.wait(lambda: [r.get_attribute("data-node") for r in p.qa("#nodes tbody tr[data-node]")] == ["py.checksum"],
           what="the search by name")
    p.q("#search-query").clear()
    p.q("#search-query").send_keys("greets someone")  # a description
    p.wait(lambda: [r.get_attribute("data-node") for r in p.qa("#nodes tbody tr[data-node]")] == ["hello", "py.hello"],
           what="the search by description")
    p.q("#search-clear").click()
    Select(p.q("#search-category")).select_by_value("math")
    p.wait(lambda: [r.get_attribute("data-node") for r in p.qa("#nodes tbody tr[data-node]")] == ["py.stats"],
           what="the search by category")
    p.shot("search")
    p.q("#search-clear").click()
    p.wait(lambda: len(p.qa("#nodes tbody tr[data-node]")) >= 11, what="every node again")

    # Kill the Python worker (by pid): it leaves the list and the joins/leaves show it.
    os.kill(py.pid, signal.SIGKILL)
    p.wait(lambda: not p.qa('tr[data-worker="py-1"]'), 20, "py-1 to leave the worker list")
    p.wait(lambda: p.qa('#activity-list li[data-kind="left"][data-worker="py-1"]'), what="py-1's leave in the list")
    p.wait(lambda: p.text('[data-stat="workers"] .value') == "1", what="1 worker in the broker cards")
    p.wait(lambda: "INACTIVE" in p.text('tr[data-node="py.hello"]'), what="py.hello inactive")
    p.shot("worker-left")

    # A worker that joins is seen joining.
    stack["py2"] = start_python_worker(gw.daemon, "py-2")
    p.wait(lambda: p.qa('#activity-list li[data-kind="joined"][data-worker="py-2"]'), 20, "py-2's join")
    p.wait(lambda: p.text('tr[data-node="py.hello"] .badge') == "ACTIVE", 20, "py.hello active again")

    # The main screenshot: everything at once, with the hello panel showing a result.
    p.open_node("hello")
    p.field("name").send_keys("Grace")
    p.q("#call-button").click()
    p.wait_call("completed")
    p.wait(lambda: p.qa("#chart-rate canvas"), what="the charts")
    driver.set_window_size(1440, 1500)
    p.js("window.scrollTo(0, 0)")
    p.shot("dashboard")
    shutil.copy(out / f"{p.shots:02d}-dashboard.png", OUT / "dashboard.png")
    driver.set_window_size(1440, 1000)

    # Log out: back to the login form, the token forgotten.
    p.q("#logout").click()
    p.wait(lambda: p.qa("#login-form"), what="the login form after logout")
    assert p.js("return sessionStorage.getItem('muster.dashboard.session')") is None
    p.shot("logged-out")

    errors = p.console_errors()
    (out / "console.json").write_text(json.dumps(p.console, indent=1))
    assert not errors, errors


def test_a_read_only_user_sees_no_call_button_and_is_refused_anyway(stack, browser):
    driver, out = browser
    gw = stack["gw"]
    p = Page(driver, out, f"http://127.0.0.1:{gw.port}/").open()
    p.login("reader")
    assert p.q("#whoami").get_attribute("data-role") == "read"
    p.open_node("hello")
    assert not p.qa("#call-button") and not p.qa("#cancel-button")
    assert "role is read" in p.text("#read-only-note")
    p.open_node("py.checksum")
    assert not p.qa('#panel input[type="file"]') and "uploading needs role call or admin" in p.text("#panel")
    p.shot("read-only")
    # What the page hides, the gateway refuses: the same messages sent on the page's own socket.
    p.js("window.__muster.send('execution.start', {node: 'hello', inputs: {name: 'x'}, client_ref: 'forced'})")
    p.js("window.__muster.send('file.upload.start', {filename: 'x', total_size: 1, total_chunks: 1, chunk_size: 1})")
    p.wait(lambda: any(e.get("code") == "PERMISSION_DENIED" and e.get("client_ref") == "forced"
                       for e in p.js("return window.__muster.errors")), what="the gateway's refusal")
    # The upload went after the call on the same socket, so the gateway refuses it after the
    # call's refusal reached the page: its log line may still be on its way (bounded wait).
    wait_for(lambda: "uploads need role call or admin" in gw.log, 10, "the gateway's refusal of the upload")
    errors = p.console_errors()
    assert not errors, errors


def test_an_expired_login_brings_the_login_form_back(daemon, start_worker, browser, tmp_base):
    driver, out = browser
    start_worker(daemon, worker_id="cpp-1").wait_ready()
    gw = Gateway(daemon, tmp_base, "--token-ttl", "4")
    add_user(gw.data_dir, "alice", "default", "call")
    gw.start()
    p = Page(driver, out, f"http://127.0.0.1:{gw.port}/").open()
    p.login("alice")
    p.wait(lambda: p.qa('tr[data-node="hello"]'), what="the nodes")
    # The gateway closes the socket when the token expires (error TOKEN_EXPIRED, close 1008).
    p.wait(lambda: p.qa("#login-form"), 20, "the login form after the token expired")
    assert "Your session ended (the login expired)" in p.text("#login-error")
    assert p.js("return sessionStorage.getItem('muster.dashboard.session')") is None
    p.shot("login-expired")
    assert any(e.get("code") == "TOKEN_EXPIRED" for e in p.js("return window.__muster.errors"))
    errors = p.console_errors()
    assert not errors, errors


def test_musterd_going_away_shows_a_banner_until_it_is_back(daemon, start_worker, browser, tmp_base):
    driver, out = browser
    start_worker(daemon, worker_id="cpp-1").wait_ready()
    gw = Gateway(daemon, tmp_base)
    add_user(gw.data_dir, "alice", "default", "call")
    gw.start()
    p = Page(driver, out, f"http://127.0.0.1:{gw.port}/").open()
    p.login("alice")
    p.wait(lambda: p.qa('tr[data-worker="cpp-1"]'), what="the worker")
    daemon.stop()
    p.wait(lambda: p.q("#banner").is_displayed() and "musterd is unreachable" in p.text("#banner"), 20,
           "the banner saying musterd is unreachable")
    assert p.text("#conn-state") == "live"  # the page's socket to the gateway stays open
    assert "stale" in p.q("#app").get_attribute("class")  # what is shown is marked as old
    p.shot("musterd-unreachable")
    daemon.start()
    p.wait(lambda: not p.q("#banner").is_displayed(), 20, "the banner to go once musterd is back")
    assert "stale" not in (p.q("#app").get_attribute("class") or "")
    p.wait(lambda: p.qa('tr[data-worker="cpp-1"]'), 30, "the worker listed again after it re-attached")
    p.shot("musterd-back")
    errors = p.console_errors()
    assert not errors, errors


def test_dashboard_with_1000_workers_and_1000_nodes(start_daemon, browser, tmp_base):
    """Not a timed assertion: the render figures are printed and saved (render-1000.json)."""
    driver, out = browser
    assert SIM_WORKERS.exists(), f"build muster-bench-simworkers first ({SIM_WORKERS}; tools/test does)"
    d = start_daemon("--max-workers-per-identity", 2000, ping_ms=1000)  # one process holds them all
    sim = spawn([SIM_WORKERS, "--count", 1000, "--distinct-nodes", "--echo", "--auto-go", "--prefix", "sim",
                 "--node", "sim.node", "--request-address", f"ipc://{d.runtime_dir}/request.sock",
                 "--response-address", f"ipc://{d.runtime_dir}/response.sock"],
                d.env, tmp_base / "sim.log", stdin=subprocess.DEVNULL)
    wait_for(lambda: "settled 1000" in read_log(sim) or sim.poll() is not None, 120, "1,000 simulated workers to attach")
    assert sim.poll() is None, read_log(sim)
    gw = Gateway(d, tmp_base, "--services-interval", "2", "--peers-interval", "2")
    add_user(gw.data_dir, "alice", "default", "call")
    gw.start()
    p = Page(driver, out, f"http://127.0.0.1:{gw.port}/").open()
    p.wait(lambda: p.qa("#login-form"), what="the login form")
    t0 = time.monotonic()
    p.login("alice")
    total = lambda section: p.q(f"#{section} .pager .range").get_attribute("data-total")  # noqa: E731
    p.wait(lambda: total("nodes") == "1000" and total("workers") == "1000", 60, "1,000 nodes and workers shown")
    seen_ms = (time.monotonic() - t0) * 1000
    assert len(p.qa("#nodes tbody tr[data-node]")) == 50 and len(p.qa("#workers tbody tr[data-worker]")) == 50  # paged
    # A few periodic pushes of both full lists (every 2 s here), then the page's own timings.
    time.sleep(7)
    t1 = time.monotonic()
    p.click("#nodes .pager button[aria-label='next page']")
    p.wait(lambda: p.qa('tr[data-node="sim.node.50"]') and p.qa('tr[data-node="sim.node.99"]'), what="the second page of nodes")
    page_ms = (time.monotonic() - t1) * 1000
    m = p.js("return {metrics: window.__muster.metrics, frame: window.__muster.frame}")
    p.js("window.scrollTo(0, 0)")
    p.wait(lambda: p.text('[data-stat="workers"] .value') == "1,000", what="1,000 workers in the broker cards")
    p.shot("1000-workers")
    report = {
        "workers": 1000, "nodes": 1000,
        "login_click_to_both_lists_shown_ms (selenium, polled every 50 ms)": round(seen_ms),
        "socket_opening_to_first_full_render_ms (page)": round(m["metrics"].get("first_full_render_ms", -1), 1),
        "services.updated (last): bytes, JSON.parse ms, into the store ms": [
            m["metrics"].get("services_bytes"), round(m["metrics"].get("services_parse_ms", -1), 2),
            round(m["metrics"].get("services_handle_ms", -1), 2)],
        "peers.updated (last): bytes, JSON.parse ms, into the store ms": [
            m["metrics"].get("peers_bytes"), round(m["metrics"].get("peers_parse_ms", -1), 2),
            round(m["metrics"].get("peers_handle_ms", -1), 2)],
        "frame render ms (max over the run)": round(m["frame"]["max_ms"], 2),
        "frames": m["frame"]["frames"],
        "per view (count, last ms, max ms)": {k: [v["count"], round(v["last_ms"], 2), round(v["max_ms"], 2)]
                                              for k, v in m["frame"]["by_view"].items()},
        "next page click to rows shown ms (selenium)": round(page_ms),
    }
    (out / "render-1000.json").write_text(json.dumps(report, indent=1))
    print("\ndashboard with 1,000 workers and 1,000 nodes:", json.dumps(report, indent=1))
    errors = p.console_errors()
    assert not errors, errors
