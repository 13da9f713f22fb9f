"""The cookie banner in a real browser: headless Chromium (Debian's, driven by Playwright) on a
website of one origin, with lawful's API served by uvicorn on another, as a company deploys it.

What a visitor sees (the manifest's cookie purposes in their language, accept and reject equally
prominent), what the ledger then holds (the choice, with the audit id the browser keeps), and
that the banner comes back when the text changes and when the visitor asks for it. Screenshots
of each state are kept in out/test-artifacts/.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from lawful.api.app import create_app
from lawful.api.limits import RateLimiter
from lawful.consent.ledger import Ledger, Subject
from lawful.engine import state
from lawful.manifest import load_located
from lawful.requests.workflow import Service
from tests.conftest import KERF, ROOT

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "out" / "test-artifacts"
SITE = "kerf.example"
PURPOSE = "analytics-cookies"  # Kerf's only cookie purpose
EN_TEXT = "Allow analytics cookies so Kerf can see how the website is used."
NL_TEXT = "Sta analytische cookies toe zodat Kerf kan zien hoe de website wordt gebruikt."
BE_TEXT = "Laat analytische cookies toe, zodat Kerf ziet hoe de website gebruikt wordt."
V2_TEXT = "Allow analytics cookies, kept for 13 months, so Kerf can see how the website is used."
GUARD = 15_000  # ms: a hung browser fails the test instead of stalling the run


def _unavailable(reason: str) -> None:
    if os.environ.get("LAWFUL_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason}, and LAWFUL_REQUIRE_SERVICES=1 requires it")
    pytest.skip(reason)


# --- the API origin and the website origin ------------------------------------------------------


class Api:
    """lawful's app served by uvicorn on a free loopback port, in a background thread."""

    def __init__(self, manifest_path: Path) -> None:
        import uvicorn

        service = Service(load_located(manifest_path).manifest, base_url="http://127.0.0.1")
        self.app = create_app(service, RateLimiter(per_minute=10_000))
        self.ledger: Ledger = self.app.state.ledger
        self.manifest = service.manifest
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]},
                                       daemon=True)
        self.thread.start()
        started = threading.Event()
        for _ in range(200):  # at most 10 s
            if self.server.started:
                started.set()
                break
            started.wait(0.05)
        assert started.is_set(), "uvicorn did not start"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Kerf: laser-cut parts</title>
<style>body {{ font: 16px/1.5 Georgia, serif; margin: 0; }} main {{ padding: 24px 32px; }}
header {{ background: #f4efe6; padding: 16px 32px; }} button {{ background: hotpink; }}</style>
<script>
  document.addEventListener("lawful:ready", function () {{ window.__lawfulReady = true; }});
  document.addEventListener("lawful:consent", function (e) {{ window.__lawfulChoice = e.detail; }});
</script>
<script src="http://127.0.0.1:{api}/v1/consent/banner.js" data-site="{site}" defer></script>
</head><body>
<header><strong>Kerf</strong> &middot; sheet-metal parts, cut to your drawing</header>
<main>
<h1>Upload a drawing, get a price</h1>
<p>Send us a DXF or STEP file; manufacturing partners near you cut, bend and ship the parts.</p>
<p>Steel, stainless, aluminium and brass from 0.5 to 20 mm, with delivery in five days.</p>
<p><a href="#" data-lawful-consent-open>Cookie settings</a></p>
</main></body></html>
"""


class Site:
    """A company's website on another origin: /?api=PORT includes the banner from that API."""

    def __init__(self) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                if url.path != "/":
                    self.send_error(404)
                    return
                api = int(parse_qs(url.query)["api"][0])
                body = PAGE.format(api=api, site=SITE).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, api: Api) -> str:
        return f"http://127.0.0.1:{self.port}/?api={api.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One store for the module; the Kerf API, the Kerf API after a new text version of the
    cookie purpose (a modified copy of the manifest, effective today), and the website."""
    tmp = tmp_path_factory.mktemp("banner")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("KERF_DATABASE_URL", f"sqlite:///{tmp / 'kerf.db'}")
        env.setenv("LAWFUL_STATE_DIR", str(tmp / "state"))
        env.setenv("LAWFUL_SECRET_KEY", "banner-test-secret-" + tmp.name)
        for name in ("LAWFUL_DATABASE_URL", "LAWFUL_SMTP_URL", "LAWFUL_BROKER_URL",
                     "LAWFUL_CORS_ORIGINS"):
            env.delenv(name, raising=False)
        def variant(name: str, change: Any) -> Path:
            """A modified copy of the Kerf manifest: `change` merged into the cookie purpose."""
            data = yaml.safe_load(KERF.read_text())
            cookie = next(p for p in data["consent_purposes"] if p["id"] == PURPOSE)
            cookie.update(change(cookie) if callable(change) else change)
            path = tmp / f"lawful-{name}.yaml"
            path.write_text(yaml.safe_dump(data, sort_keys=False))
            return path

        v2 = {"version": 2, "effective": state.now().date(), "text": {"en": V2_TEXT}}
        apis = {
            "kerf": Api(KERF),
            "v2": Api(variant("v2", lambda c: {"versions": [*c["versions"], v2]})),
            "gpc-opt-out": Api(variant("gpc", {"gpc_opt_out": True})),
            "regional": Api(variant("regional", lambda c: {"versions": [
                {**c["versions"][0], "text": {**c["versions"][0]["text"], "nl-BE": BE_TEXT}}]})),
        }
        site = Site()
        try:
            yield {"site": site, **apis}
        finally:
            site.stop()
            for api in apis.values():
                api.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is missing (pip install -e '.[dev]')")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def visit(browser: Any, world: dict[str, Any]) -> Iterator[Any]:
    """visit(api="kerf", locale="en-GB", **context options) -> a page on the website, its
    banner loaded; every page of one test shares one browser profile (one visitor)."""
    contexts: dict[str, Any] = {}

    def go(api: str = "kerf", locale: str = "en-GB", **options: Any) -> Any:
        if "context" not in contexts:
            contexts["context"] = browser.new_context(
                locale=locale, viewport=options.pop("viewport", {"width": 1280, "height": 720}),
                **options)
            contexts["context"].set_default_timeout(GUARD)
        page = contexts["context"].new_page()
        open_site(page, world, api)
        return page

    yield go
    if "context" in contexts:
        contexts["context"].close()


def open_site(page: Any, world: dict[str, Any], api: str = "kerf") -> None:
    page.goto(world["site"].url(world[api]))
    page.wait_for_function("window.__lawfulReady === true")


def banner(page: Any) -> Any:
    return page.locator("#lawful-banner")


def button(page: Any, action: str) -> Any:
    return page.locator(f"#lawful-banner button[data-action={action}]")


def shoot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"banner-{name}.png"))


def stored(page: Any) -> dict[str, Any]:
    value = page.evaluate(f"localStorage.getItem('lawful-consent:{SITE}')")
    assert value, "the choice was not stored in the browser"
    record: dict[str, Any] = json.loads(value)
    return record


def choose(page: Any, action: str, press: str | None = None) -> list[dict[str, Any]]:
    """Click (or press a key on) a banner button; the ledger's answer to the post."""
    page.evaluate("window.__lawfulChoice = null")
    with page.expect_response(lambda r: r.url.endswith("/v1/consent/choices")
                              and r.request.method == "POST") as answer:
        if press:
            page.keyboard.press(press)
        else:
            button(page, action).click()
    assert answer.value.status == 201, answer.value.text()
    events: list[dict[str, Any]] = answer.value.json()
    banner(page).wait_for(state="detached")
    page.wait_for_function("window.__lawfulChoice !== null")  # the banner took the answer
    return events


def ledger_state(api: Api, visitor: str) -> dict[str, Any]:
    found = {s.purpose: s for s in api.ledger.state(Subject.of(visitor_id=visitor))}
    return found[PURPOSE].__dict__


def history(api: Api, visitor: str) -> list[dict[str, Any]]:
    return [e for e in api.ledger.history(Subject.of(visitor_id=visitor))
            if e["purpose"] == PURPOSE]


# --- what the visitor sees ----------------------------------------------------------------------


def test_first_visit_shows_the_cookie_purposes_in_english(visit: Any) -> None:
    page = visit(locale="en-GB")
    shown = banner(page)
    shown.wait_for()
    assert shown.get_attribute("role") == "dialog"
    assert shown.get_attribute("lang") == "en"
    text = shown.inner_text()
    assert "Your privacy choices" in text and "Analytics cookies" in text and EN_TEXT in text
    # Only the cookie purposes: not the newsletter, the talent pool or testimonials.
    assert [c.get_attribute("data-purpose") for c in
            shown.locator("input[type=checkbox]").all()] == [PURPOSE]
    assert not shown.locator("input[data-purpose]").is_checked()  # nothing ticked for them
    assert button(page, "reject").inner_text() == "Reject all"
    assert button(page, "accept").inner_text() == "Accept all"
    assert page.evaluate(f"lawfulConsent.allowed('{PURPOSE}')") is False
    shoot(page, "first-en")


def test_dutch_visitor_gets_the_dutch_text_and_buttons(visit: Any) -> None:
    page = visit(locale="nl-NL")
    shown = banner(page)
    shown.wait_for()
    assert shown.get_attribute("lang") == "nl"
    text = shown.inner_text()
    assert "Uw privacykeuzes" in text and NL_TEXT in text and EN_TEXT not in text
    assert button(page, "reject").inner_text() == "Alles weigeren"
    assert button(page, "accept").inner_text() == "Alles accepteren"
    shoot(page, "first-nl")


def test_language_the_manifest_lacks_falls_back_to_english(visit: Any) -> None:
    page = visit(locale="ja-JP")
    shown = banner(page)
    shown.wait_for()
    text = shown.inner_text()
    assert EN_TEXT in text and "Your privacy choices" in text
    assert button(page, "accept").inner_text() == "Accept all"
    # Marked as English, so a screen reader does not read it with a Japanese voice.
    assert shown.get_attribute("lang") == "en"
    assert shown.locator("label").get_attribute("lang") == "en"


@pytest.mark.parametrize(("locale", "text", "language"), [
    ("nl-BE", BE_TEXT, "nl-BE"),  # the manifest has a regional text: that one
    ("fr-BE", EN_TEXT, "en"),     # none in French: English
], ids=["nl-BE", "fr-BE"])
def test_the_ledger_records_the_text_the_banner_showed(
        visit: Any, world: dict[str, Any], locale: str, text: str, language: str) -> None:
    api: Api = world["regional"]
    page = visit(api="regional", locale=locale)
    assert text in banner(page).inner_text()
    choose(page, "accept")
    [event] = history(api, stored(page)["visitor_id"])
    assert event["language"] == language
    assert event["text_hash"] == hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(("locale", "viewport"), [
    ("en-GB", {"width": 1280, "height": 720}),
    ("nl-NL", {"width": 1280, "height": 720}),
    ("nl-NL", {"width": 360, "height": 640}),  # a phone: the longer Dutch words wrap
])
def test_accept_and_reject_are_equally_prominent(visit: Any, locale: str,
                                                 viewport: dict[str, int]) -> None:
    page = visit(locale=locale, viewport=viewport)
    reject, accept = button(page, "reject"), button(page, "accept")
    accept.wait_for()
    one, two = reject.bounding_box(), accept.bounding_box()
    assert abs(one["width"] - two["width"]) <= 1 and abs(one["height"] - two["height"]) <= 1
    looks = """b => { const s = getComputedStyle(b); return [s.color, s.backgroundColor,
        s.borderTopColor, s.borderTopWidth, s.fontWeight, s.fontSize, s.fontFamily,
        s.paddingTop, s.textDecorationLine, s.opacity]; }"""
    assert reject.evaluate(looks) == accept.evaluate(looks)
    for box in (one, two):  # both on screen without scrolling
        assert box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"]
        assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]
    # The banner leaves the page usable: it covers less than half of the screen.
    whole = banner(page).bounding_box()
    assert whole["height"] < viewport["height"] / 2 or viewport["width"] < 500
    if viewport["width"] < 500:
        assert whole["height"] < viewport["height"] * 0.75
        shoot(page, "phone-nl")


# --- what the ledger holds ----------------------------------------------------------------------


def test_reject_is_recorded_and_the_link_reopens_the_saved_choice(
        visit: Any, world: dict[str, Any]) -> None:
    api: Api = world["kerf"]
    page = visit()
    events = choose(page, "reject")
    assert [(e["purpose"], e["action"], e["version"]) for e in events] == \
        [(PURPOSE, "denied", 1)]
    mine = stored(page)
    visitor, first_audit = mine["visitor_id"], mine["audit_id"]
    assert mine["choices"] == {PURPOSE: False}
    now = ledger_state(api, visitor)
    assert now["status"] == "denied" and now["version"] == 1 and not now["stale"]
    [event] = history(api, visitor)
    assert event["audit_id"] == first_audit and event["action"] == "denied"
    assert event["channel"] == "web_banner" and event["site"] == SITE
    assert event["language"] == "en" and event["gpc"] is False
    assert event["ip_hash"] and "127.0.0.1" not in json.dumps(event)  # never the address
    assert "Chrome" in (event["user_agent"] or "")

    # The choice holds: no banner on the next page view.
    page.reload()
    page.wait_for_function("window.__lawfulReady === true")
    assert banner(page).count() == 0
    assert page.evaluate(f"lawfulConsent.allowed('{PURPOSE}')") is False

    # "Cookie settings" reopens it, showing what was chosen.
    page.get_by_text("Cookie settings").click()
    banner(page).wait_for()
    assert not page.locator(f"#lawful-banner input[data-purpose={PURPOSE}]").is_checked()
    shoot(page, "reopened")
    events = choose(page, "accept")
    assert [(e["action"], e["version"]) for e in events] == [("granted", 1)]
    again = stored(page)
    assert again["visitor_id"] == visitor and again["audit_id"] != first_audit
    assert ledger_state(api, visitor)["status"] == "granted"
    both = history(api, visitor)
    assert [e["action"] for e in both] == ["denied", "granted"]
    assert [e["audit_id"] for e in both] == [first_audit, again["audit_id"]]
    assert page.evaluate(f"lawfulConsent.allowed('{PURPOSE}')") is True

    # Reopened once more, the box is ticked: the saved choice is shown, not a default.
    page.get_by_text("Cookie settings").click()
    assert page.locator(f"#lawful-banner input[data-purpose={PURPOSE}]").is_checked()
    page.keyboard.press("Escape")  # closes it unchanged
    banner(page).wait_for(state="detached")
    assert len(history(api, visitor)) == 2


def test_the_same_event_is_not_stored_twice_when_the_post_is_replayed(
        visit: Any, world: dict[str, Any]) -> None:
    api: Api = world["kerf"]
    page = visit()
    choose(page, "accept")
    mine = stored(page)
    replay = page.evaluate("""([base, body]) => fetch(base + "/v1/consent/choices", {
        method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify(body)}).then(r => r.json())""",
        [f"http://127.0.0.1:{api.port}",
         {"visitor_id": mine["visitor_id"], "audit_id": mine["audit_id"],
          "choices": mine["choices"], "versions": mine["versions"], "site": SITE,
          "client_event_id": mine["audit_id"]}])
    assert [e["replayed"] for e in replay] == [True]
    assert len(history(api, mine["visitor_id"])) == 1


def test_global_privacy_control_is_recorded(visit: Any, world: dict[str, Any]) -> None:
    page = visit(extra_http_headers={"Sec-GPC": "1"})
    events = choose(page, "accept")
    visitor = stored(page)["visitor_id"]
    [event] = history(world["kerf"], visitor)
    assert event["gpc"] is True
    # Kerf's analytics cookies are not marked as sale, sharing or targeted advertising.
    assert event["action"] == events[0]["action"] == "granted"


def test_gpc_opt_out_purpose_is_denied_in_the_browser_too(visit: Any,
                                                           world: dict[str, Any]) -> None:
    """A purpose marked gpc_opt_out is recorded as denied under GPC; the page must not then
    load it as if it had been granted."""
    api: Api = world["gpc-opt-out"]
    page = visit(api="gpc-opt-out", extra_http_headers={"Sec-GPC": "1"})
    events = choose(page, "accept")
    assert events[0]["action"] == "denied" and events[0]["note"]
    visitor = stored(page)["visitor_id"]
    assert ledger_state(api, visitor)["status"] == "denied"
    assert stored(page)["choices"] == {PURPOSE: False}
    assert page.evaluate(f"lawfulConsent.allowed('{PURPOSE}')") is False


def test_a_choice_the_ledger_missed_is_resent_on_the_next_page_view(
        visit: Any, world: dict[str, Any]) -> None:
    api: Api = world["kerf"]
    page = visit()
    lost = "**/v1/consent/choices"
    page.route(lost, lambda route: route.abort())  # the network drops the post
    page.evaluate("window.__lawfulChoice = null")
    button(page, "accept").click()
    page.wait_for_function("window.__lawfulChoice !== null")
    mine = stored(page)
    assert mine["pending"] is True
    assert history(api, mine["visitor_id"]) == []
    assert page.evaluate(f"lawfulConsent.allowed('{PURPOSE}')") is False  # no proof yet
    page.unroute(lost)

    with page.expect_response(lambda r: r.url.endswith("/v1/consent/choices")) as answer:
        page.reload()
        page.wait_for_function("window.__lawfulReady === true")
    assert answer.value.status == 201
    assert banner(page).count() == 0  # the visitor is not asked again
    page.wait_for_function(f"lawfulConsent.allowed('{PURPOSE}') === true")
    [event] = history(api, mine["visitor_id"])
    assert event["action"] == "granted" and event["audit_id"] == mine["audit_id"]


def test_a_new_text_version_asks_again(visit: Any, world: dict[str, Any]) -> None:
    page = visit(api="kerf")
    choose(page, "accept")
    visitor = stored(page)["visitor_id"]
    assert ledger_state(world["kerf"], visitor)["version"] == 1

    # The manifest gets version 2 of the text, effective today: the banner is back.
    open_site(page, world, "v2")
    shown = banner(page)
    shown.wait_for()
    assert V2_TEXT in shown.inner_text()
    assert page.evaluate(f"lawfulConsent.allowed('{PURPOSE}')") is False
    before = ledger_state(world["v2"], visitor)
    assert before["status"] == "granted" and before["stale"] is True
    shoot(page, "new-version")
    events = choose(page, "accept")
    assert [(e["action"], e["version"]) for e in events] == [("granted", 2)]
    after = ledger_state(world["v2"], visitor)
    assert after["version"] == 2 and after["stale"] is False
    assert stored(page)["visitor_id"] == visitor  # the same visitor, asked again


def test_save_my_choices_records_each_ticked_purpose(visit: Any, world: dict[str, Any]) -> None:
    page = visit()
    page.locator(f"#lawful-banner input[data-purpose={PURPOSE}]").check()
    events = choose(page, "save")
    assert [e["action"] for e in events] == ["granted"]
    assert ledger_state(world["kerf"], stored(page)["visitor_id"])["status"] == "granted"


# --- keyboard -----------------------------------------------------------------------------------


def tab_to(page: Any, selector: str, limit: int = 20) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement?.matches(s) || false", selector):
            return
    raise AssertionError(f"{selector} is not reachable with Tab")


def test_keyboard_reaches_and_operates_the_buttons(visit: Any, world: dict[str, Any]) -> None:
    api: Api = world["kerf"]
    page = visit()
    tab_to(page, "#lawful-banner button[data-action=reject]")
    events = choose(page, "reject", press="Enter")
    assert events[0]["action"] == "denied"
    visitor = stored(page)["visitor_id"]

    # Reopen from the link with the keyboard; focus moves into the banner.
    tab_to(page, "[data-lawful-consent-open]")
    page.keyboard.press("Enter")
    banner(page).wait_for()
    assert page.evaluate("document.getElementById('lawful-banner')"
                         ".contains(document.activeElement)")
    tab_to(page, "#lawful-banner button[data-action=accept]")
    shoot(page, "keyboard-focus")  # the focus ring must show on the dark button
    assert button(page, "accept").evaluate(
        "b => [getComputedStyle(b).outlineStyle, getComputedStyle(b).outlineWidth]") == \
        ["solid", "3px"]
    assert choose(page, "accept", press="Enter")[0]["action"] == "granted"
    assert ledger_state(api, visitor)["status"] == "granted"
    # Focus goes back to where the visitor was, not lost to the top of the page.
    assert page.evaluate("document.activeElement.hasAttribute('data-lawful-consent-open')")

    # Space toggles the purpose, Enter on "Save my choices" records it.
    page.keyboard.press("Enter")
    banner(page).wait_for()
    tab_to(page, f"#lawful-banner input[data-purpose={PURPOSE}]")
    page.keyboard.press("Space")
    tab_to(page, "#lawful-banner button[data-action=save]")
    assert choose(page, "save", press="Enter")[0]["action"] == "denied"
