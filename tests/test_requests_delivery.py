"""Delivery: the outbox through a real SMTP server (aiosmtpd on loopback), and Art. 19
notifications to a real HTTP server on loopback that checks the signature."""

from __future__ import annotations

import email as email_lib
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from lawful.manifest import load_manifest
from lawful.requests import execute, mail, recipients
from lawful.requests.kinds import Status
from lawful.requests.views import view
from lawful.store import audit, db
from lawful.store.models import Notification, OutboxMessage
from tests.conftest import KERF, free_port
from tests.test_requests_workflow import (
    CODE,
    World,
    base_env,
    latest_code,
    outbox,
    row,
    submitted,
    verified,
)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return World(tmp_path, base_env(monkeypatch, tmp_path), load_manifest(KERF))


# --- a real SMTP server ---------------------------------------------------------------------

@dataclass
class Inbox:
    """What the SMTP server received."""

    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email_lib.message_from_bytes(envelope.original_content or envelope.content,
                                              policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for _, rcpt, m in self.messages if address in rcpt]


class SmtpServer:
    def __init__(self, port: int) -> None:
        self.inbox = Inbox()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=port,
                                     enable_SMTPUTF8=True)
        self.port = port

    def __enter__(self) -> Inbox:
        self.controller.start()
        return self.inbox

    def __exit__(self, *_: object) -> None:
        self.controller.stop()


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    port = free_port()
    with SmtpServer(port) as inbox:
        monkeypatch.setenv("LAWFUL_SMTP_URL", f"smtp://127.0.0.1:{port}")
        yield inbox


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def statuses(request_id: str) -> list[tuple[str, int, str | None]]:
    with db.session() as s:
        return [(m.status, m.attempts, m.error) for m in s.execute(
            sa.select(OutboxMessage).where(OutboxMessage.request_id == request_id)
            .order_by(OutboxMessage.id)).scalars()]


def test_the_code_e_mail_goes_through_smtp(world: World, smtp: Inbox) -> None:
    svc = world.service()
    person = world.person()
    rid, token = submitted(svc, "access", person.upper())
    [message] = smtp.to(person)
    assert message["Subject"] == "Kerf: your verification code"
    assert message["From"] == "privacy@kerf.example" and message["To"] == person
    found = CODE.search(text_of(message))
    assert found is not None
    assert statuses(rid) == [("sent", 1, None)]
    assert outbox(rid, "kept") == []
    # The code the person received is the one that works.
    svc.verify(rid, token, found.group(1))
    assert row(rid).status == Status.completed
    [done] = [m for m in smtp.to(person) if "is done" in str(m["Subject"])]
    assert f"/v1/packages/{rid}?expires=" in text_of(done)
    with db.session() as s:
        sent = [e for e in audit.entries(s, rid) if e.action == "email.sent"]
        assert len(sent) == 2 and audit.verify(s).ok


def test_a_message_whose_sender_died_mid_send_goes_out_later(world: World,
                                                              smtp: Inbox) -> None:
    """A sender killed between claiming a message and recording the outcome leaves it
    "sending". Once the claim is older than CLAIM_EXPIRES the next delivery sends it (or, out
    of attempts, marks it failed); a recent claim, a sender still at work, is left alone."""
    import datetime as dt

    world.service()  # the store, migrated
    long_ago = mail.now() - mail.CLAIM_EXPIRES - dt.timedelta(minutes=1)
    cases = {"dead@example.com": (long_ago, 1), "busy@example.com": (mail.now(), 1),
             "tired@example.com": (long_ago, mail.MAX_ATTEMPTS), "old@example.com": (None, 1)}
    ids = {}
    with db.transaction() as s:
        for to, (claimed, attempts) in cases.items():
            m = mail.queue(s, "privacy@kerf.example", to, "Kerf: your code", "123456")
            m.status, m.claimed_at, m.attempts = "sending", claimed, attempts
            ids[to] = m.id

    assert mail.deliver() == 2

    with db.session() as s:
        state = {to: (s.get(OutboxMessage, i).status, s.get(OutboxMessage, i).attempts)  # type: ignore[union-attr]
                 for to, i in ids.items()}
    assert state == {"dead@example.com": ("sent", 2), "busy@example.com": ("sending", 1),
                     "tired@example.com": ("failed", mail.MAX_ATTEMPTS),
                     "old@example.com": ("sent", 2)}  # claimed before claims had a time
    assert len(smtp.to("dead@example.com")) == 1 and len(smtp.to("old@example.com")) == 1
    assert smtp.to("busy@example.com") == [] and smtp.to("tired@example.com") == []
    assert mail.deliver() == 0  # nothing sent twice


def test_a_unicode_address_is_delivered(world: World, smtp: Inbox) -> None:
    svc = world.service()
    rid, _ = submitted(svc, "erasure", "zoë.ünal@kërf.example")
    assert statuses(rid) == [("sent", 1, None)]
    assert len(smtp.to("zoë.ünal@kërf.example")) == 1


def test_a_down_server_keeps_messages_and_they_go_later(world: World,
                                                       monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    port = free_port()
    monkeypatch.setenv("LAWFUL_SMTP_URL", f"smtp://127.0.0.1:{port}")
    svc = world.service()
    rid, token = submitted(svc, "erasure", "later@example.org")
    [(status, attempts, error)] = statuses(rid)
    assert (status, attempts) == ("kept", 0) and error and "cannot reach" in error
    [kept] = outbox(rid, "kept")
    assert kept.error == error and kept.to == "later@example.org"
    with SmtpServer(port) as inbox:
        assert mail.deliver() == 1
        assert mail.deliver() == 0  # nothing sent twice
    assert statuses(rid) == [("sent", 1, None)]
    [message] = inbox.to("later@example.org")
    found = CODE.search(text_of(message))
    assert found is not None and found.group(1) == latest_code(rid)
    assert svc.verify(rid, token, found.group(1)).status == Status.verified


def test_an_outage_never_uses_up_a_message(world: World,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A mail server that is down is nobody's message's fault: however many deliveries fail
    to connect, the message stays kept and goes once the server is back."""
    port = free_port()
    monkeypatch.setenv("LAWFUL_SMTP_URL", f"smtp://127.0.0.1:{port}")
    rid, _ = submitted(world.service(), "erasure", "never@example.org")
    for _ in range(mail.MAX_ATTEMPTS + 2):
        mail.deliver()
    [(status, attempts, error)] = statuses(rid)
    assert (status, attempts) == ("kept", 0) and "cannot reach" in (error or "")
    with SmtpServer(port) as inbox:
        assert mail.deliver() == 1
    assert len(inbox.to("never@example.org")) == 1
    assert statuses(rid) == [("sent", 1, None)]


def test_without_smtp_messages_are_kept_for_the_outbox(world: World) -> None:
    rid, _ = submitted(world.service(), "erasure", "kept@example.org")
    assert mail.deliver() == 0
    assert statuses(rid) == [("kept", 0, None)]


def test_an_address_with_a_line_break_never_reaches_anyone_else(
        world: World, smtp: Inbox) -> None:
    """Whatever submit decides about such an address, no Bcc is injected and nothing
    crashes after the request was stored."""
    address = "a@example.org\nBcc: victim@example.org"
    try:
        rid, _ = submitted(world.service(), "access", address)
    except Exception as exc:  # refusing it is right too; crashing after storing is not
        from lawful.requests.kinds import Invalid

        assert isinstance(exc, Invalid), exc
        return
    assert smtp.to("victim@example.org") == []
    [(status, _, error)] = statuses(rid)
    assert status in ("kept", "failed") and error


# --- Art. 19: a real HTTP server on loopback ------------------------------------------------

@dataclass
class Hook:
    """A recipient's webhook endpoint: answers from `script` in turn, then the last."""

    script: list[int]
    received: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, headers: Any, raw: bytes) -> int:
        stamp = headers.get("X-Lawful-Timestamp", "")
        signature = headers.get("X-Lawful-Signature", "")
        expected = "sha256=" + hmac.new(recipients.secret(), stamp.encode() + b"." + raw,
                                        hashlib.sha256).hexdigest()
        with self.lock:
            self.received.append({"genuine": hmac.compare_digest(signature, expected),
                                  "body": json.loads(raw), "path": headers["_path"],
                                  "type": headers.get("Content-Type")})
            n = len(self.received)
        return self.script[min(n, len(self.script)) - 1]


@pytest.fixture
def hook_server() -> Iterator[tuple[str, Hook]]:
    hook = Hook([200])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k: v for k, v in self.headers.items()}
            headers["_path"] = self.path
            status = hook.answer(headers, raw)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", hook
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recipients, "BACKOFF", 0.01)


def with_webhook(world: World, url: str) -> Any:
    def change(data: dict[str, Any]) -> None:
        hosting = next(r for r in data["recipients"] if r["id"] == "hosting")
        hosting["notify"] = {"webhook": url}
    return world.manifest_with(change)


def notifications(request_id: str) -> dict[str, tuple[str, str, int, str | None]]:
    with db.session() as s:
        return {n.recipient: (n.channel, n.status, n.attempts, n.last_error)
                for n in s.execute(sa.select(Notification).where(
                    Notification.request_id == request_id)).scalars()}


def test_erasure_notifies_recipients_with_retries(world: World,
                                                  hook_server: tuple[str, Hook]) -> None:
    url, hook = hook_server
    hook.script = [500, 200]
    svc = world.service(with_webhook(world, url))
    person = world.person()
    rid, _ = verified(svc, "erasure", person)
    assert hook.received == []  # nothing is told before the erasure is done
    svc.execute(rid, "agent:bo")
    assert row(rid).status == Status.completed
    assert len(hook.received) == 2 and all(r["genuine"] for r in hook.received)
    body = hook.received[-1]["body"]
    assert body["event"] == "erasure" and body["request"] == rid
    assert body["identities"]["email"] == [person]
    assert body["tables"]["shop.customer"] == 1
    assert hook.received[0]["path"] == "/hook"
    assert hook.received[0]["type"] == "application/json"
    told = notifications(rid)
    assert told["hosting"] == ("webhook", "delivered", 2, None)
    assert told["mailer"] == ("email", "delivered", 1, None)
    assert told["carrier"][:2] == ("none", "manual")
    assert "no way to notify" in (told["carrier"][3] or "")
    [notice] = [m for m in outbox(rid) if m.to == "privacy@mailgun.example"]
    assert "Art. 19" in notice.subject and rid in notice.body
    with db.session() as s:
        entries = [json.loads(e.detail) for e in audit.entries(s, rid)
                   if e.action == "recipient.notified"]
    assert {(e["recipient"], e["outcome"], e["attempts"]) for e in entries} >= {
        ("hosting", "delivered", 2), ("mailer", "delivered", 1)}
    # Staff see each notification and its outcome on the request.
    shown = view(svc, svc.get(rid, "agent:bo"), notifications=True)
    assert {(n.recipient, n.channel, n.status, n.attempts) for n in shown.notifications} == {
        (name, channel, status, attempts)
        for name, (channel, status, attempts, _) in told.items()}
    # Run again (a redelivered task): nobody is told twice.
    assert execute.run(svc, rid) == Status.completed
    assert len(hook.received) == 2 and notifications(rid) == told


@pytest.mark.parametrize(("kind", "details"), [
    ("rectification", {"set": {"customer.last_name": "Jansen"}}),
    ("restriction", None),
])
def test_rectification_and_restriction_notify(world: World, hook_server: tuple[str, Hook],
                                              kind: str, details: dict[str, Any] | None
                                              ) -> None:
    url, hook = hook_server
    svc = world.service(with_webhook(world, url))
    rid, _ = verified(svc, kind, world.person(), details)
    svc.execute(rid, "agent:bo")
    assert row(rid).status == Status.completed
    assert [r["body"]["event"] for r in hook.received] == [kind]
    assert hook.received[0]["genuine"]
    assert notifications(rid)["hosting"] == ("webhook", "delivered", 1, None)


def test_access_tells_no_recipient(world: World, hook_server: tuple[str, Hook]) -> None:
    url, hook = hook_server
    svc = world.service(with_webhook(world, url))
    rid, _ = verified(svc, "access", world.person())
    assert row(rid).status == Status.completed
    assert hook.received == [] and notifications(rid) == {}


@pytest.mark.parametrize("refusal", [400, 404, 410, 422])
def test_a_refusing_recipient_is_not_retried(world: World, hook_server: tuple[str, Hook],
                                             refusal: int) -> None:
    url, hook = hook_server
    hook.script = [refusal, 200]
    svc = world.service(with_webhook(world, url))
    rid, _ = verified(svc, "restriction", world.person())
    svc.execute(rid, "agent:bo")
    assert len(hook.received) == 1
    assert notifications(rid)["hosting"] == ("webhook", "failed", 1, f"HTTP {refusal}")
    assert row(rid).status == Status.completed  # the request itself is done


@pytest.mark.parametrize("busy", [503, 429])
def test_a_busy_recipient_is_retried_until_the_attempts_run_out(
        world: World, hook_server: tuple[str, Hook], monkeypatch: pytest.MonkeyPatch,
        busy: int) -> None:
    monkeypatch.setattr(recipients, "ATTEMPTS", 3)
    url, hook = hook_server
    hook.script = [busy]
    svc = world.service(with_webhook(world, url))
    rid, _ = verified(svc, "restriction", world.person())
    svc.execute(rid, "agent:bo")
    assert len(hook.received) == 3 and all(r["genuine"] for r in hook.received)
    assert notifications(rid)["hosting"] == ("webhook", "failed", 3, f"HTTP {busy}")


def test_an_unreachable_webhook_fails_cleanly(world: World,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recipients, "ATTEMPTS", 2)
    svc = world.service(with_webhook(world, f"http://127.0.0.1:{free_port()}/hook"))
    rid, _ = verified(svc, "restriction", world.person())
    svc.execute(rid, "agent:bo")
    channel, status, attempts, error = notifications(rid)["hosting"]
    assert (channel, status, attempts) == ("webhook", "failed", 2)
    assert error and "Connect" in error
    assert row(rid).status == Status.completed


def test_the_configured_webhook_secret_signs(world: World, hook_server: tuple[str, Hook],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAWFUL_WEBHOOK_SECRET", "shared-with-the-recipient")
    assert recipients.secret() == b"shared-with-the-recipient"
    url, hook = hook_server
    svc = world.service(with_webhook(world, url))
    rid, _ = verified(svc, "restriction", world.person())
    svc.execute(rid, "agent:bo")
    assert [r["genuine"] for r in hook.received] == [True]


def test_notices_to_recipients_go_by_smtp(world: World, smtp: Inbox,
                                          hook_server: tuple[str, Hook]) -> None:
    url, _ = hook_server
    svc = world.service(with_webhook(world, url))
    rid, _ = verified(svc, "erasure", world.person())
    svc.execute(rid, "agent:bo")
    [notice] = smtp.to("privacy@mailgun.example")
    assert "Art. 19" in str(notice["Subject"]) and rid in text_of(notice)
    assert all(status == "sent" for status, _, _ in statuses(rid))
