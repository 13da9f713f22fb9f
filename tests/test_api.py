"""The HTTP API as a requester and as staff use it: a real Kerf database, a real store.

Scoping is tested by trying: one requester never reads another's request, journal or package,
and an unknown id looks exactly like someone else's.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import sqlalchemy as sa
import yaml
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from lawful.api.app import create_app
from lawful.api.auth import Role, create, revoke
from lawful.api.limits import MAX_BODY, RateLimiter
from lawful.manifest import load_located
from lawful.manifest.load import located_from_text
from lawful.requests import mail
from lawful.requests.workflow import Service
from lawful.store import db
from lawful.store.models import Package
from tests.conftest import KERF


@pytest.fixture
def world(kerf_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fresh store and secret per test, on the module's Kerf database."""
    monkeypatch.setenv("KERF_DATABASE_URL", kerf_db)
    monkeypatch.setenv("LAWFUL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LAWFUL_SECRET_KEY", "test-secret-key-" + tmp_path.name)
    monkeypatch.delenv("LAWFUL_DATABASE_URL", raising=False)
    monkeypatch.delenv("LAWFUL_SMTP_URL", raising=False)
    monkeypatch.delenv("LAWFUL_BROKER_URL", raising=False)
    service = Service(load_located(KERF).manifest, base_url="http://testserver")
    app = create_app(service, RateLimiter(per_minute=10_000))
    with TestClient(app) as client:
        yield client, service, kerf_db


def emails(url: str, count: int = 3) -> list[str]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        found = [str(e) for e in conn.execute(sa.text(
            "SELECT email FROM customer WHERE email LIKE '%@%' AND EXISTS (SELECT 1 FROM "
            "orders o WHERE o.customer_id = customer.id) ORDER BY id LIMIT :n"),
            {"n": count}).scalars()]
    engine.dispose()
    return found


def last_code(address: str) -> str:
    with db.session() as s:
        mine = [m for m in mail.show(s, None) if m.to == address and "code is" in m.body]
    match = re.search(r"code is (\d{6})", mine[-1].body)
    assert match
    return match.group(1)


def submit(client: TestClient, address: str, kind: str = "access",
           **details: Any) -> tuple[str, str]:
    body: dict[str, Any] = {"type": kind, "email": address}
    if details:
        body["details"] = details
    made = client.post("/v1/requests", json=body)
    assert made.status_code == 201, made.text
    return made.json()["id"], made.json()["token"]


def test_access_request_end_to_end(world: Any) -> None:
    client, _, url = world
    mine, other = emails(url, 2)
    rid, token = submit(client, mine.upper())  # the address is matched case-folded
    assert client.get(f"/v1/requests/{rid}",
                      headers={"X-Request-Token": token}).json()["status"] == \
        "awaiting_verification"
    done = client.post(f"/v1/requests/{rid}/verify", json={"code": last_code(mine)},
                       headers={"X-Request-Token": token})
    assert done.status_code == 200, done.text
    state = done.json()
    assert state["status"] == "completed" and state["download"]
    assert [e["action"] for e in state["journal"]][:2] == ["request.received", "email.queued"]
    link = state["download"].removeprefix("http://testserver")
    package = client.get(link)
    assert package.status_code == 200
    assert package.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(package.content))
    assert {"data.json", "index.html"} <= set(archive.namelist())
    data = archive.read("data.json").decode()
    assert mine in data and other not in data


def test_another_persons_request_is_indistinguishable_from_none(world: Any) -> None:
    client, _, url = world
    alice, bob = emails(url, 2)
    a_id, a_token = submit(client, alice)
    b_id, b_token = submit(client, bob)
    client.post(f"/v1/requests/{b_id}/verify", json={"code": last_code(bob)},
                headers={"X-Request-Token": b_token})
    unknown = client.get("/v1/requests/" + "0" * 32, headers={"X-Request-Token": a_token})
    for attempt in (
        client.get(f"/v1/requests/{b_id}", headers={"X-Request-Token": a_token}),
        client.get(f"/v1/requests/{b_id}", headers={"X-Request-Token": ""}),
        client.post(f"/v1/requests/{b_id}/verify", json={"code": "123456"},
                    headers={"X-Request-Token": a_token}),
        client.post(f"/v1/requests/{b_id}/resend", headers={"X-Request-Token": a_token}),
    ):
        assert attempt.status_code == 404
        assert attempt.json() == unknown.json() == {"detail": "no such request"}
    # Bob's package: his link works, and no variation of it (Alice's id, another expiry,
    # a forged signature) reaches it.
    link = client.get(f"/v1/requests/{b_id}", headers={"X-Request-Token": b_token}
                      ).json()["download"].removeprefix("http://testserver")
    assert client.get(link).status_code == 200
    expires = re.search(r"expires=(\d+)", link).group(1)  # type: ignore[union-attr]
    forged = [link.replace(b_id, a_id), link.replace(f"expires={expires}",
                                                     f"expires={int(expires) + 86400}"),
              re.sub(r"signature=\w+", "signature=" + "0" * 64, link),
              f"/v1/packages/{b_id}?expires={expires}&signature="]
    for url_ in forged:
        assert client.get(url_).status_code == 404


def test_codes_cannot_be_brute_forced(world: Any) -> None:
    client, _, url = world
    (address,) = emails(url, 1)
    rid, token = submit(client, address)
    right = last_code(address)
    wrong = [c for c in ("000000", "111111", "222222", "333333", "444444", "555555")
             if c != right][:5]
    answers = [client.post(f"/v1/requests/{rid}/verify", json={"code": c},
                           headers={"X-Request-Token": token}) for c in wrong]
    assert [a.status_code for a in answers] == [422, 422, 422, 422, 423]
    late = client.post(f"/v1/requests/{rid}/verify", json={"code": right},
                       headers={"X-Request-Token": token})
    assert late.status_code == 423 and "locked" in late.json()["detail"]
    assert client.get(f"/v1/requests/{rid}", headers={"X-Request-Token": token}
                      ).json()["status"] == "awaiting_verification"
    # A new code does not reset the budget.
    assert client.post(f"/v1/requests/{rid}/resend",
                       headers={"X-Request-Token": token}).status_code == 423


def test_public_endpoints_are_rate_limited(world: Any) -> None:
    _, service, _ = world
    limited = TestClient(create_app(service, RateLimiter(per_minute=5)))
    codes = [limited.post("/v1/requests", json={"type": "access",
                                                "email": f"someone{i}@example.org"}
                          ).status_code for i in range(7)]
    assert codes[:5] == [201] * 5 and codes[5:] == [429, 429]
    refused = limited.post("/v1/requests", json={"type": "access",
                                                 "email": "someone@example.org"})
    assert int(refused.headers["Retry-After"]) > 0


def test_one_address_gets_a_few_codes_a_day_however_many_clients_ask(world: Any) -> None:
    """Each unverified request brings five guesses and an e-mail to the address: a cap per
    address keeps guessing (from many clients) and mail-bombing out of reach."""
    client, _, url = world
    (address,) = emails(url, 1)
    codes = [client.post("/v1/requests", json={"type": "access", "email": address}
                         ).status_code for _ in range(5)]
    assert codes == [201, 201, 201, 429, 429]
    with db.session() as s:
        assert len([m for m in mail.show(s, None) if m.to == address]) == 3


def test_without_identity_verification_nothing_runs_by_itself(
        world: Any, kerf_data: dict[str, Any], tmp_path: Path) -> None:
    """`verify_identity: false` means anyone may name any address: the request is recorded,
    but even an access request waits for a staff member to execute it."""
    _, _, url = world
    kerf_data["rights"]["verify_identity"] = False
    manifest = located_from_text(yaml.safe_dump(kerf_data), str(tmp_path / "k.yaml")).manifest
    open_service = Service(manifest, base_url="http://testserver")
    (address,) = emails(url, 1)
    request, _ = open_service.submit("access", address)
    assert request.status == "verified"
    with db.session() as s:
        assert s.get(Package, request.id) is None


def test_bad_bodies_are_refused_clearly(world: Any) -> None:
    client, _, _ = world
    big = client.post("/v1/requests", content=b'{"type": "access", "email": "' +
                      b"a" * (MAX_BODY + 10) + b'@x.example"}',
                      headers={"Content-Type": "application/json"})
    assert big.status_code == 413 and "larger than" in big.json()["detail"]
    broken = client.post("/v1/requests", content=b'{"type": ',
                         headers={"Content-Type": "application/json"})
    assert broken.status_code == 422 and "JSON" in broken.json()["detail"]
    unknown = client.post("/v1/requests", json={"type": "access", "email": "a@b.example",
                                                "colour": "red"})
    assert unknown.status_code == 422 and "colour" in unknown.json()["detail"]
    kind = client.post("/v1/requests", json={"type": "teleport", "email": "a@b.example"})
    assert kind.status_code == 422 and "type" in kind.json()["detail"]
    address = client.post("/v1/requests", json={"type": "access", "email": "nobody"})
    assert address.status_code == 422 and "e-mail" in address.json()["detail"]
    rectify = client.post("/v1/requests", json={
        "type": "rectification", "email": "a@b.example",
        "details": {"set": {"customer.email": "not an address"}}})
    assert rectify.status_code == 422, rectify.text
    with db.session() as s:
        assert mail.show(s, None) == []  # nothing was received


def test_staff_roles(world: Any) -> None:
    client, _, url = world
    (address,) = emails(url, 1)
    agent, lead = create("ann", Role.agent), create("lee", Role.privacy_lead)
    rid, _ = submit(client, address, "erasure")
    assert client.get("/v1/staff/requests").status_code == 401
    assert client.get("/v1/staff/requests",
                      headers={"Authorization": "Bearer lk_000000000000_nope"}
                      ).status_code == 401
    listed = client.get("/v1/staff/requests", headers={"X-API-Key": agent})
    assert listed.status_code == 200 and listed.json()[0]["email"] == address
    refuse = {"grounds": "manifestly_unfounded", "reason": "the same request daily"}
    assert client.post(f"/v1/staff/requests/{rid}/refuse", json=refuse,
                       headers={"X-API-Key": agent}).status_code == 403
    assert client.get("/v1/staff/audit", headers={"X-API-Key": agent}).status_code == 403
    done = client.post(f"/v1/staff/requests/{rid}/refuse", json=refuse,
                       headers={"Authorization": f"Bearer {lead}"})
    assert done.status_code == 200 and done.json()["status"] == "refused"
    with db.session() as s:
        letter = [m for m in mail.show(s, None) if "cannot act" in m.subject][-1]
    assert "Autoriteit Persoonsgegevens" in letter.body and "the same request daily" in \
        letter.body
    chain = client.get("/v1/staff/audit/verify", headers={"X-API-Key": lead}).json()
    assert chain["ok"] and chain["entries"] > 3
    revoke(agent.split("_")[1])
    assert client.get("/v1/staff/requests", headers={"X-API-Key": agent}).status_code == 401


def test_staff_verify_and_execute_an_erasure(world: Any) -> None:
    client, _, url = world
    address, neighbour = emails(url, 2)
    lead = create("lee", Role.privacy_lead)
    rid, token = submit(client, address, "erasure")
    headers = {"X-API-Key": lead}
    assert client.post(f"/v1/staff/requests/{rid}/execute", headers=headers
                       ).status_code == 409  # not verified yet
    assert client.post(f"/v1/staff/requests/{rid}/verify", json={"note": ""},
                       headers=headers).status_code == 422
    verified = client.post(f"/v1/staff/requests/{rid}/verify",
                           json={"note": "called back on the number on file"},
                           headers=headers)
    assert verified.json()["status"] == "verified"  # erasure waits for staff
    done = client.post(f"/v1/staff/requests/{rid}/execute", headers=headers).json()
    assert done["status"] == "completed" and done["result"]["verified"] is True
    assert any(k["law"] and k["until"] for k in done["result"]["kept"])
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        left = conn.execute(sa.text("SELECT count(*) FROM customer WHERE email = :e"),
                            {"e": address}).scalar()
        still = conn.execute(sa.text("SELECT count(*) FROM customer WHERE email = :e"),
                             {"e": neighbour}).scalar()
    engine.dispose()
    assert left == 0 and still == 1
    follow = client.get(f"/v1/requests/{rid}", headers={"X-Request-Token": token}).json()
    assert follow["status"] == "completed" and follow["result"]["kept"]
    assert {"by": "staff", "action": "request.verified"}.items() <= \
        next(e for e in follow["journal"] if e["action"] == "request.verified").items()


def test_a_fee_is_charged_and_its_payment_recorded_by_a_privacy_lead(world: Any) -> None:
    client, _, url = world
    (address,) = emails(url, 1)
    agent, lead = create("ann", Role.agent), create("lee", Role.privacy_lead)
    rid, _ = submit(client, address, "erasure")
    staff = {"X-API-Key": lead}
    client.post(f"/v1/staff/requests/{rid}/verify", json={"note": "called back"}, headers=staff)
    charged = client.post(f"/v1/staff/requests/{rid}/fee", headers=staff,
                          json={"amount": "25 EUR", "reason": "excessive"})
    assert charged.status_code == 200 and charged.json()["fee"] == "25 EUR"
    assert charged.json()["fee_paid_at"] is None
    held = client.post(f"/v1/staff/requests/{rid}/execute", headers=staff)
    assert held.status_code == 409 and "unpaid" in held.text
    paid = {"note": "bank transfer"}
    assert client.post(f"/v1/staff/requests/{rid}/fee-paid", json=paid,
                       headers={"X-API-Key": agent}).status_code == 403
    assert client.post("/v1/staff/requests/00000000000000000000000000000000/fee-paid",
                       json=paid, headers=staff).status_code == 404
    recorded = client.post(f"/v1/staff/requests/{rid}/fee-paid", json=paid, headers=staff)
    assert recorded.status_code == 200 and recorded.json()["fee_paid_at"]
    done = client.post(f"/v1/staff/requests/{rid}/execute", headers=staff)
    assert done.status_code == 200 and done.json()["status"] == "completed"


# --- schemathesis: generated requests against the OpenAPI find no server error ------------


def test_no_server_error(world: Any) -> None:
    """Generated requests (valid and not) for every operation: never a 5xx."""
    client, _, _ = world
    key = create("fuzz", Role.admin)
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14
    seen: Counter[int] = Counter()
    for operation in operations:
        _fuzz(operation, key, seen)
    # The examples reached the handlers (not only validation): some succeeded, some were
    # refused as invalid, some as not found.
    assert seen[200] and seen[422] and seen[404], seen


def _fuzz(operation: Any, key: str, seen: Counter[int]) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=12, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        if case.path.startswith("/v1/staff"):
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {key}",
                            "X-API-Key": key}
        response = case.call()
        seen[response.status_code] += 1
        assert response.status_code < 500, (operation.label, response.text)

    check()
