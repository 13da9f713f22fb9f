"""The Kerf database: realistic, deterministic demo and benchmark data, bulk loaded.

`generate(url, customers, seed)` drops and recreates the Kerf tables (only those) at `url` and
fills them with `customers` customers and everything that hangs off them, in the proportions of a
small marketplace: per customer about 1.2 addresses, 2 quotes, 1.5 orders (80% delivered) each
with an invoice and a payment, 0.5 support tickets, 0.2 call recordings, 5 web visits, and a
newsletter subscription for half of them; plus prospects, job applicants, testimonials, ID
documents and max(5, customers // 200) manufacturing partners.

The same person appears under several identities, as in a real shop: a customer's e-mail in
support tickets (often typed in another case) and in the newsletter list, their phone number in
call recordings, their browser's cookie id in web visits (also on the anonymous visits before
they logged in). E-mail domains are reserved `.example` names.

Deterministic: one `random.Random(seed)` drives everything and dates are anchored on ANCHOR, so
the same seed gives the same rows, whatever the backend, the chunk size or the day it runs.

Loading is bulk: PostgreSQL through COPY (psycopg 3), MySQL/MariaDB through PyMySQL's multi-row
INSERTs with foreign key checks off, SQLite through executemany in one transaction. Rows are made
and loaded in chunks of customers with their dependants, so memory stays flat whatever the size;
indexes and (on PostgreSQL and MySQL) foreign keys are created after the rows are in.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import queue
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, create_engine, make_url
from sqlalchemy.schema import AddConstraint, CreateTable, ForeignKeyConstraint

from lawful.demo import pools
from lawful.demo.schema import TABLES, metadata

ANCHOR = dt.date(2026, 6, 30)  # "today" in the Kerf world: the last day any row can carry
START = dt.date(2018, 1, 1)  # Kerf's first day
NEWSLETTER_START = dt.date(2024, 1, 1)  # consent purposes are versioned from this day on
CHUNK = 25_000  # customers made and loaded at a time

# Ids of persons who are not customers (prospects, applicants, callers) and of partners are
# offset, so that their phone numbers and e-mails never collide with a customer's.
OTHER_BASE = 50_000_000
PARTNER_BASE = 90_000_000
# Invoice and payment ids do not run in step with order ids: a join on the wrong column finds
# nothing instead of the right rows by accident.
INVOICE_ID_BASE = 1_000_000
PAYMENT_ID_BASE = 2_000_000

Row = tuple[Any, ...]
Rows = dict[str, list[Row]]
Progress = Callable[[int, int], None]


def default_url() -> str:
    """Where `lawful demo-data` writes without `--url`: kerf.db in the current directory."""
    return "sqlite:///kerf.db"


@dataclass(frozen=True)
class _Tokens:
    """How a backend's loader wants NULLs, newlines and timestamps written."""

    null: str | None
    newline: str
    ts_suffix: str


_DBAPI = _Tokens(null=None, newline="\n", ts_suffix="")
# SQLite: timestamps as SQLAlchemy stores them, so string comparisons with bound values work.
_SQLITE = _Tokens(null=None, newline="\n", ts_suffix=".000000")
# PostgreSQL COPY text format.
_COPY = _Tokens(null="\\N", newline="\\n", ts_suffix="")


def _perm(k: int, size: int = 100_000_000) -> int:
    """A bijection of 0..size-1 (size a power of ten): distinct ids give distinct numbers that
    share no visible pattern (affine, digits reversed, affine again)."""
    width = len(str(size - 1))
    x = (k * 73_939_133 + 12_345_679) % size
    x = int(f"{x:0{width}d}"[::-1]) % size
    return (x * 19_260_817 + 48_271) % size


def _bsn(k: int) -> str:
    """A Dutch citizen service number (9 digits, passes the 11-test), distinct per k."""
    for attempt in range(16):
        digits = f"{_perm(k * 16 + attempt):08d}"
        total = sum(int(d) * w for d, w in zip(digits, range(9, 1, -1), strict=True))
        check = total % 11
        if check < 10:
            return digits + str(check)
    raise AssertionError("no valid BSN in 16 tries")  # probability (1/11)**16


def _iban(bank: str, account: int) -> str:
    """A Dutch IBAN with a valid ISO 7064 check."""
    bban = f"{bank}{account:010d}"
    digits = "".join(str(int(ch, 36)) for ch in bban + "NL00")
    return f"NL{98 - int(digits) % 97:02d}{bban}"


def _vat(rng: random.Random, country: str) -> str:
    """A VAT id that passes the country's check where it has a simple one."""
    rnd = rng.random
    if country == "NL":
        while True:
            digits = [int(rnd() * 10) for _ in range(8)]
            check = sum(d * w for d, w in zip(digits, range(9, 1, -1), strict=True)) % 11
            if check < 10:
                return "NL" + "".join(map(str, digits)) + str(check) + "B01"
    if country == "BE":
        base = 20_000_000 + int(rnd() * 79_999_999)
        return f"BE0{base}{97 - base % 97:02d}"
    return f"DE{100_000_000 + int(rnd() * 899_999_999)}"


class _World:
    """The generator's state: pools, date tables, id counters and the one random source."""

    def __init__(self, seed: int, customers: int, tokens: _Tokens) -> None:
        self.rng = random.Random(seed)
        self.customers = customers
        self.tokens = tokens
        self.partners = max(5, customers // 200)
        self.days = (ANCHOR - START).days  # the last day index
        # Offset tables instead of datetime arithmetic: day index -> "YYYY-MM-DD", second of the
        # day -> " HH:MM:SS".
        self.day_text = [(START + dt.timedelta(days=d)).isoformat() for d in range(self.days + 1)]
        self.tod_text = [
            f" {s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}{tokens.ts_suffix}"
            for s in range(86_400)
        ]
        self.newsletter_day = (NEWSLETTER_START - START).days
        self.first = [(n, pools.slug(n)) for n in pools.FIRST_NAMES]
        self.last = [(n, pools.slug(n)) for n in pools.LAST_NAMES]
        self.companies = [
            (f"{stem} {trade}", pools.slug(stem + trade))
            for stem in pools.COMPANY_STEMS
            for trade in pools.COMPANY_TRADES
        ]
        rng = self.rng
        # Quote prices in cents: log-normal around 80 euros, capped below the column's range.
        self.prices = [
            min(99_999_999, max(500, int(rng.lognormvariate(math.log(8_000), 1.1))))
            for _ in range(4096)
        ]
        self.last4 = [f"{n:04d}" for n in range(10_000)]
        self.postal_letters = [
            a + b
            for a in "ABCDEFGHJKLMNPRSTVWXZ"
            for b in "ABCDEFGHJKLMNPRSTVWXZ"
            if a + b not in ("SA", "SD", "SS")
        ]
        self.next_id = {t.name: 1 for t in TABLES}
        self.next_id["invoice"] = INVOICE_ID_BASE + 1
        self.next_id["payment"] = PAYMENT_ID_BASE + 1
        self.next_other = OTHER_BASE + 1

    # -- small helpers ------------------------------------------------------------------------

    def ts(self, day: int, second: int) -> str:
        return self.day_text[day] + self.tod_text[second]

    def phone(self, k: int, country: str) -> str:
        """A mobile number in E.164, distinct per k (k below 40 million) and country."""
        if country == "BE":  # +32 4[6-9]x xx xx xx: 4 * 10**7 numbers
            serial = (k // 4 + k % 4 * 2_500_000) % 10_000_000  # distinct per k % 4
            return f"+324{6 + k % 4}{_perm(serial, 10_000_000):07d}"
        prefixes = pools.PHONE_PREFIXES[country]
        return prefixes[k % len(prefixes)] + f"{_perm(k):08d}"

    def other_person(self) -> tuple[str, str, str, str]:
        """A person who is no customer: (first, last, e-mail, phone), all unique."""
        rnd = self.rng.random
        k = self.next_other
        self.next_other += 1
        first, fs = self.first[int(rnd() * len(self.first))]
        last, ls = self.last[int(rnd() * len(self.last))]
        domain = pools.PERSONAL_DOMAINS[int(rnd() * len(pools.PERSONAL_DOMAINS))]
        # The underscore sets them apart from customers' addresses, which never have one.
        return first, last, f"{fs}_{ls}{k - OTHER_BASE}@{domain}", self.phone(k, "NL")

    # -- partners -----------------------------------------------------------------------------

    def partner_rows(self) -> list[Row]:
        rng = self.rng
        rnd = rng.random
        null = self.tokens.null
        rows: list[Row] = []
        for pid in range(1, self.partners + 1):
            country = "NL" if rnd() < 0.6 else ("DE" if rnd() < 0.6 else "BE")
            stem = pools.COMPANY_STEMS[int(rnd() * len(pools.COMPANY_STEMS))]
            trade = pools.PARTNER_TRADES[int(rnd() * len(pools.PARTNER_TRADES))]
            forms = pools.LEGAL_FORMS[country]
            company = f"{stem} {trade} {forms[int(rnd() * len(forms))]}"
            first, fs = self.first[int(rnd() * len(self.first))]
            last, ls = self.last[int(rnd() * len(self.last))]
            email = f"{fs}.{ls}@{pools.slug(stem + trade)}{pid}.example"
            bank = pools.IBAN_BANKS[int(rnd() * len(pools.IBAN_BANKS))]
            iban = _iban(bank, int(rnd() * 10_000_000_000))
            ended = null
            if rnd() < 0.1:
                ended = self.ts(int(rnd() * (self.days + 1)), 32_400 + int(rnd() * 32_400))
            rows.append(
                (
                    pid,
                    company,
                    f"{first} {last}",
                    email,
                    self.phone(PARTNER_BASE + pid, country),
                    iban,
                    _vat(rng, country),
                    ended,
                )
            )
        return rows

    # -- customers and their dependants -------------------------------------------------------

    def chunk(self, first_id: int, count: int) -> Rows:
        """Customers first_id .. first_id+count-1 and every row that belongs to them."""
        rng = self.rng
        rnd = rng.random
        bits = rng.getrandbits
        null = self.tokens.null
        nl = self.tokens.newline
        days = self.days
        day_text = self.day_text
        tod_text = self.tod_text
        first_pool, last_pool, companies = self.first, self.last, self.companies
        n_first, n_last, n_comp = len(first_pool), len(last_pool), len(companies)
        prices, n_prices = self.prices, len(self.prices)
        last4 = self.last4
        postal_letters, n_letters = self.postal_letters, len(self.postal_letters)
        n_partners = self.partners
        nid = self.next_id
        newsletter_day = self.newsletter_day
        b64 = base64.b64encode

        customers: list[Row] = []
        addresses: list[Row] = []
        quotes: list[Row] = []
        orders: list[Row] = []
        invoices: list[Row] = []
        payments: list[Row] = []
        tickets: list[Row] = []
        calls: list[Row] = []
        subscribers: list[Row] = []
        visits: list[Row] = []
        applicants: list[Row] = []
        testimonials: list[Row] = []
        documents: list[Row] = []

        aid, qid, oid = nid["address"], nid["quote"], nid["orders"]
        iid, pay_id = nid["invoice"], nid["payment"]
        tid, rid, sid = nid["support_ticket"], nid["call_recording"], nid["newsletter_subscriber"]
        vid, jid, tmid, did = nid["web_visit"], nid["job_applicant"], nid["testimonial"], nid[
            "id_document"
        ]

        def device() -> tuple[str, str, str]:
            """A browser: its cookie id, IP address and user agent."""
            cookie = f"{bits(128):032x}"
            x = bits(32)
            ip = f"{(x >> 24) % 223 + 1}.{(x >> 16) & 255}.{(x >> 8) & 255}.{x & 255}"
            return cookie, ip, pools.USER_AGENTS[int(rnd() * len(pools.USER_AGENTS))]

        def visit(cookie: str, customer: int | None, ip: str, agent: str, wday: int) -> None:
            nonlocal vid
            path = pools.PATHS[int(rnd() * len(pools.PATHS))]
            visits.append((vid, cookie, customer, ip, agent, path,
                           day_text[wday] + tod_text[int(rnd() * 86_400)]))
            vid += 1

        for cid in range(first_id, first_id + count):
            first, fs = first_pool[int(rnd() * n_first)]
            last, ls = last_pool[int(rnd() * n_last)]
            full = f"{first} {last}"
            u = rnd()
            country = "NL" if u < 0.7 else ("DE" if u < 0.85 else "BE")
            company: str | None = null
            vat: str | None = null
            company_slug = ""
            has_company = rnd() < 0.7
            if has_company:
                base, company_slug = companies[int(rnd() * n_comp)]
                forms = pools.LEGAL_FORMS[country]
                company = f"{base} {forms[int(rnd() * len(forms))]}"
                vat = _vat(rng, country)
                job = pools.JOB_TITLES[int(rnd() * len(pools.JOB_TITLES))]
            else:
                job = pools.JOB_TITLES[int(rnd() * len(pools.JOB_TITLES))] if rnd() < 0.3 else null
            u = rnd()
            local = (
                f"{fs}.{ls}{cid}"
                if u < 0.5
                else (f"{fs[0]}.{ls}{cid}" if u < 0.75 else f"{fs}{ls}{cid}")
            )
            if has_company and rnd() < 0.6:
                email = f"{local}@{company_slug}.example"
            else:
                email = f"{local}@{pools.PERSONAL_DOMAINS[int(rnd() * 6)]}"
            has_phone = rnd() < 0.85
            phone = self.phone(cid, country) if has_phone else null
            secret = b64(bits(408).to_bytes(51, "little")).decode("ascii")
            pw_hash = f"$argon2id$v=19$m=65536,t=3,p=4${secret[:22]}${secret[22:65]}"
            # More customers every year: the signup day grows like a square root.
            cday = int((days - 1) * math.sqrt(rnd()))
            created = day_text[cday] + tod_text[25_200 + int(rnd() * 57_600)]
            last_day = days  # the last day this customer is active
            ended: str | None = null
            if rnd() < 0.1 and days - cday > 30:
                last_day = cday + 30 + int(rnd() * (days - cday - 30))
                ended = day_text[last_day] + tod_text[28_800 + int(rnd() * 36_000)]
            span = last_day - cday + 1
            customers.append(
                (cid, email, first, last, phone, company, job, pw_hash, created, ended, False)
            )

            # Addresses: always a billing address, one in five a separate shipping address.
            cities = pools.CITIES[country]
            streets = pools.STREETS[country]
            city, postal_base = cities[int(rnd() * len(cities))]
            if country == "NL":
                postal = f"{postal_base + int(rnd() * 80)} {postal_letters[int(rnd() * n_letters)]}"
            elif country == "DE":
                postal = f"{postal_base + int(rnd() * 90):05d}"
            else:
                postal = str(postal_base + int(rnd() * 9) * 10)
            street = f"{streets[int(rnd() * len(streets))]} {1 + int(rnd() * 180)}"
            billed = company if has_company else full
            addresses.append((aid, cid, "billing", billed, street, city, postal, country))
            ship_to = aid
            aid += 1
            if rnd() < 0.2:
                city, postal_base = cities[int(rnd() * len(cities))]
                if country == "NL":
                    postal = (
                        f"{postal_base + int(rnd() * 80)} "
                        f"{postal_letters[int(rnd() * n_letters)]}"
                    )
                elif country == "DE":
                    postal = f"{postal_base + int(rnd() * 90):05d}"
                else:
                    postal = str(postal_base + int(rnd() * 9) * 10)
                street = f"{streets[int(rnd() * len(streets))]} {1 + int(rnd() * 180)}"
                addresses.append((aid, cid, "shipping", full, street, city, postal, country))
                ship_to = aid
                aid += 1

            # Quotes, three in four of them ordered; one invoice and one payment per order.
            u = rnd()
            n_quotes = (
                0 if u < 0.12 else 1 if u < 0.42 else 2 if u < 0.68 else 3 if u < 0.84 else
                4 if u < 0.94 else 5
            )
            for _ in range(n_quotes):
                qday = cday + int(rnd() * span)
                cents = prices[int(rnd() * n_prices)]
                part = pools.CAD_PARTS[int(rnd() * len(pools.CAD_PARTS))]
                ext = pools.CAD_EXTENSIONS[int(rnd() * len(pools.CAD_EXTENSIONS))]
                quotes.append(
                    (
                        qid,
                        cid,
                        f"{part}_v{1 + int(rnd() * 6)}.{ext}",
                        pools.MATERIALS[int(rnd() * len(pools.MATERIALS))],
                        f"{cents // 100}.{cents % 100:02d}",
                        day_text[qday] + tod_text[25_200 + int(rnd() * 57_600)],
                    )
                )
                if rnd() < 0.75:
                    oday = min(days, qday + int(rnd() * 15))
                    delivered: str | None = null
                    if rnd() < 0.855:  # 80% delivered, counting recent orders not yet delivered
                        dday = oday + 3 + int(rnd() * 25)
                        if dday <= days:
                            delivered = day_text[dday] + tod_text[28_800 + int(rnd() * 36_000)]
                    orders.append(
                        (
                            oid,
                            cid,
                            qid,
                            1 + int(rnd() * n_partners),
                            ship_to,
                            day_text[oday] + tod_text[25_200 + int(rnd() * 57_600)],
                            delivered,
                        )
                    )
                    total = cents * 121 // 100  # with 21% VAT
                    amount = f"{total // 100}.{total % 100:02d}"
                    iday = min(days, oday + int(rnd() * 3))
                    invoices.append(
                        (
                            iid,
                            oid,
                            cid,
                            billed,
                            email,
                            vat,
                            amount,
                            day_text[iday] + tod_text[21_600 + int(rnd() * 3_600)],
                        )
                    )
                    pday = min(days, iday + int(rnd() * 30))
                    payments.append(
                        (
                            pay_id,
                            iid,
                            last4[int(rnd() * 10_000)],
                            amount,
                            day_text[pday] + tod_text[int(rnd() * 86_400)],
                        )
                    )
                    oid += 1
                    iid += 1
                    pay_id += 1
                qid += 1

            # Support tickets, three in ten typed with the e-mail in another case.
            u = rnd()
            n_tickets = 0 if u < 0.6 else 1 if u < 0.92 else 2 if u < 0.98 else 3
            for _ in range(n_tickets):
                u = rnd()
                typed = (
                    email
                    if u < 0.7
                    else email.title()
                    if u < 0.85
                    else email.capitalize()
                    if u < 0.95
                    else email.upper()
                )
                subject, line = pools.TICKETS[int(rnd() * len(pools.TICKETS))]
                tday = cday + int(rnd() * span)
                tickets.append(
                    (
                        tid,
                        typed,
                        subject,
                        f"Hello Kerf,{nl}{nl}{line}{nl}{nl}Kind regards,{nl}{full}",
                        day_text[tday] + tod_text[25_200 + int(rnd() * 57_600)],
                    )
                )
                tid += 1
            if rnd() < 0.05:  # a ticket from someone who is not a customer
                ofirst, olast, oemail, _ = self.other_person()
                subject, line = pools.TICKETS[int(rnd() * len(pools.TICKETS))]
                tday = int(rnd() * (days + 1))
                tickets.append(
                    (
                        tid,
                        oemail,
                        subject,
                        f"Hi,{nl}{nl}{line}{nl}{nl}{ofirst} {olast}",
                        day_text[tday] + tod_text[25_200 + int(rnd() * 57_600)],
                    )
                )
                tid += 1

            # Call recordings, by the caller's phone number.
            if has_phone:
                u = rnd()
                for _ in range(0 if u >= 0.19 else 1 if u < 0.16 else 2):
                    rday = cday + int(rnd() * span)
                    calls.append(
                        (
                            rid,
                            phone,
                            f"https://calls.kerf.example/recordings/{bits(64):016x}.mp3",
                            day_text[rday] + tod_text[28_800 + int(rnd() * 32_400)],
                        )
                    )
                    rid += 1
            if rnd() < 0.02:  # a call from a number that is no customer's
                _, _, _, ophone = self.other_person()
                rday = int(rnd() * (days + 1))
                calls.append(
                    (
                        rid,
                        ophone,
                        f"https://calls.kerf.example/recordings/{bits(64):016x}.mp3",
                        day_text[rday] + tod_text[28_800 + int(rnd() * 32_400)],
                    )
                )
                rid += 1

            # Newsletter: half of the customers, and as many prospects.
            if rnd() < 0.5:
                sday = max(cday, newsletter_day)
                sday = min(days, sday + int(rnd() * (days - sday + 1)))
                subscribers.append(
                    (sid, email, day_text[sday] + tod_text[25_200 + int(rnd() * 57_600)], 1, null)
                )
                sid += 1
            if rnd() < 0.5:
                _, _, oemail, _ = self.other_person()
                sday = newsletter_day + int(rnd() * (days - newsletter_day + 1))
                subscribers.append(
                    (sid, oemail, day_text[sday] + tod_text[int(rnd() * 86_400)], 1, null)
                )
                sid += 1

            # Web visits: per device (cookie), anonymous visits before signing up, then visits
            # mostly logged in; plus visitors who never became customers.
            u = rnd()
            for _ in range(0 if u < 0.1 else 1 if u < 0.7 else 2):
                cookie, ip, agent = device()
                for _ in range(int(rnd() * 3)):
                    visit(cookie, null, ip, agent, max(0, cday - 1 - int(rnd() * 60)))
                for _ in range(1 + int(rnd() * 5)):
                    wday = cday + int(rnd() * span)
                    visit(cookie, cid if rnd() < 0.85 else null, ip, agent, wday)
            if rnd() < 0.1:
                cookie, ip, agent = device()
                wday = int(rnd() * (days + 1))
                for _ in range(1 + int(rnd() * 3)):
                    wday = min(days, wday + int(rnd() * 3))
                    visit(cookie, null, ip, agent, wday)

            # Job applicants: other people, one for every fifty customers.
            if rnd() < 0.02:
                afirst, alast, aemail, aphone = self.other_person()
                skill = pools.CV_SKILLS[int(rnd() * len(pools.CV_SKILLS))]
                role = pools.JOBS_APPLIED[int(rnd() * len(pools.JOBS_APPLIED))]
                years = 1 + int(rnd() * 15)
                aday = int(rnd() * (days + 1))
                decided: str | None = null
                dday = aday + 7 + int(rnd() * 35)
                if dday <= days and rnd() < 0.9:
                    decided = day_text[dday] + tod_text[32_400 + int(rnd() * 28_800)]
                applicants.append(
                    (
                        jid,
                        aemail,
                        aphone,
                        f"{afirst} {alast}",
                        f"{afirst} {alast}{nl}Applying for: {role}{nl}{nl}"
                        f"{years} years of experience with {skill}.{nl}"
                        f"Languages: Dutch, English.",
                        day_text[aday] + tod_text[25_200 + int(rnd() * 57_600)],
                        decided,
                        aday >= newsletter_day and rnd() < 0.3,
                    )
                )
                jid += 1

            # Testimonials, published once the customer consented.
            if rnd() < 0.05:
                shown = f"{first} {last[0]}."
                if has_company:
                    shown = f"{shown}, {company}"
                kday = max(cday, newsletter_day)
                kday = min(days, kday + int(rnd() * (days - kday + 1)))
                testimonials.append(
                    (
                        tmid,
                        cid,
                        shown,
                        pools.TESTIMONIALS[int(rnd() * len(pools.TESTIMONIALS))],
                        rnd() < 0.7,
                        day_text[kday] + tod_text[25_200 + int(rnd() * 57_600)],
                    )
                )
                tmid += 1

            # ID documents, checked for large orders; deleted by retention once verified.
            if rnd() < 0.1:
                verified: str | None = null
                if rnd() < 0.7:
                    vday = min(days, cday + int(rnd() * 6))
                    verified = day_text[vday] + tod_text[32_400 + int(rnd() * 28_800)]
                documents.append((did, cid, _bsn(cid), verified))
                did += 1

        nid.update(
            {
                "customer": first_id + count,
                "address": aid,
                "quote": qid,
                "orders": oid,
                "invoice": iid,
                "payment": pay_id,
                "support_ticket": tid,
                "call_recording": rid,
                "newsletter_subscriber": sid,
                "web_visit": vid,
                "job_applicant": jid,
                "testimonial": tmid,
                "id_document": did,
            }
        )
        return {
            "customer": customers,
            "address": addresses,
            "quote": quotes,
            "orders": orders,
            "invoice": invoices,
            "payment": payments,
            "support_ticket": tickets,
            "call_recording": calls,
            "newsletter_subscriber": subscribers,
            "web_visit": visits,
            "job_applicant": applicants,
            "testimonial": testimonials,
            "id_document": documents,
        }

    def chunks(self, size: int | None = None) -> Iterator[tuple[int, Rows]]:
        """(customers done, rows) per chunk; the partners come with the first one."""
        size = size or CHUNK
        partners = self.partner_rows()  # first: the same rows whatever the chunk size
        done = 0
        while partners or done < self.customers:
            count = min(size, self.customers - done)
            rows = self.chunk(done + 1, count)
            if partners:
                rows["partner"], partners = partners, []
            done += count
            yield done, rows


# -- loaders ----------------------------------------------------------------------------------


class _Loader:
    """Writes rows into one backend; subclasses know its bulk path."""

    tokens: _Tokens = _DBAPI
    deferred_foreign_keys = True  # tables are created without FKs, added after loading
    pipelined = True  # rows are written by a thread while the next chunk is made

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.dbapi: Any = conn.connection.driver_connection

    def begin_load(self) -> None:
        """Settings for the bulk load (the tables exist, empty)."""

    def load(self, table: Table, rows: list[Row]) -> None:
        raise NotImplementedError

    def end_load(self) -> None:
        """Commit the rows and undo the load settings."""
        self.conn.commit()

    def finish(self) -> None:
        """After indexes and foreign keys: statistics and sequences."""


class _PostgresLoader(_Loader):
    tokens = _COPY

    def begin_load(self) -> None:
        # One transaction from the CREATE TABLEs on; FREEZE needs the tables made in it.
        self.conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '512MB'")

    def load(self, table: Table, rows: list[Row]) -> None:
        if not rows:
            return
        columns = ", ".join(table.c.keys())
        line = "\t".join(["%s"] * len(table.c)) + "\n"
        data = "".join([line % row for row in rows])
        with (
            self.dbapi.cursor() as cur,
            cur.copy(f"COPY {table.name} ({columns}) FROM STDIN (FREEZE)") as copy,
        ):
            copy.write(data)

    def end_load(self) -> None:
        """Stay in the transaction: indexes and keys are built in it too."""

    def finish(self) -> None:
        for table in TABLES:
            self.conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                f"COALESCE((SELECT max(id) FROM {table.name}), 0) + 1, false)"
            )
        self.conn.commit()
        for table in TABLES:
            self.conn.exec_driver_sql(f"ANALYZE {table.name}")
        self.conn.commit()


class _MySQLLoader(_Loader):
    def begin_load(self) -> None:
        self.conn.exec_driver_sql("SET SESSION foreign_key_checks = 0")
        self.conn.exec_driver_sql("SET SESSION unique_checks = 0")
        self.conn.commit()

    def load(self, table: Table, rows: list[Row]) -> None:
        if not rows:
            return
        columns = ", ".join(f"`{c.name}`" for c in table.c)
        marks = ", ".join(["%s"] * len(table.c))
        # PyMySQL rewrites this into multi-row INSERTs of up to ~1 MB each.
        with self.dbapi.cursor() as cur:
            cur.executemany(f"INSERT INTO `{table.name}` ({columns}) VALUES ({marks})", rows)

    def end_load(self) -> None:
        self.conn.commit()
        self.conn.exec_driver_sql("SET SESSION unique_checks = 1")

    def finish(self) -> None:
        # The foreign keys were added with the checks off (in place, no table copy).
        self.conn.exec_driver_sql("SET SESSION foreign_key_checks = 1")
        for table in TABLES:
            self.conn.exec_driver_sql(f"ANALYZE TABLE `{table.name}`").fetchall()
        self.conn.commit()


class _SQLiteLoader(_Loader):
    tokens = _SQLITE
    deferred_foreign_keys = False  # SQLite cannot add a foreign key to an existing table
    pipelined = False  # in-process: nothing to overlap with

    def begin_load(self) -> None:
        self.conn.commit()
        self.journal_mode = str(self.conn.exec_driver_sql("PRAGMA journal_mode").scalar())
        self.conn.exec_driver_sql("PRAGMA journal_mode = WAL")
        self.conn.exec_driver_sql("PRAGMA synchronous = OFF")
        self.conn.commit()

    def load(self, table: Table, rows: list[Row]) -> None:
        if not rows:
            return
        columns = ", ".join(table.c.keys())
        marks = ", ".join(["?"] * len(table.c))
        cur = self.dbapi.cursor()
        try:
            cur.executemany(f"INSERT INTO {table.name} ({columns}) VALUES ({marks})", rows)
        finally:
            cur.close()

    def finish(self) -> None:
        self.conn.exec_driver_sql("ANALYZE")
        self.conn.commit()
        self.conn.exec_driver_sql("PRAGMA synchronous = FULL")
        if self.journal_mode.lower() != "wal":
            self.conn.exec_driver_sql(f"PRAGMA journal_mode = {self.journal_mode}")
        self.conn.commit()


_LOADERS: dict[str, type[_Loader]] = {
    "postgresql": _PostgresLoader,
    "mysql": _MySQLLoader,
    "mariadb": _MySQLLoader,
    "sqlite": _SQLiteLoader,
}


def generate(
    url: str,
    customers: int,
    seed: int = 1,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Drop and recreate the Kerf tables at `url` and fill them; rows per table.

    `progress(done, total)` is called after each chunk of customers is loaded.
    """
    if customers < 0:
        raise ValueError(f"customers must be 0 or more, not {customers}")
    backend = make_url(url).get_backend_name()
    loader_type = _LOADERS.get(backend)
    if loader_type is None:
        raise ValueError(
            f"demo data can be loaded into SQLite, PostgreSQL or MySQL/MariaDB, not {backend}"
        )
    engine = create_engine(url)
    counts = {t.name: 0 for t in TABLES}
    try:
        with engine.connect() as conn:
            loader = loader_type(conn)
            metadata.drop_all(conn, tables=list(TABLES), checkfirst=True)
            conn.commit()
            loader.begin_load()
            fks: list[ForeignKeyConstraint] = []
            for table in TABLES:
                if loader.deferred_foreign_keys:
                    conn.execute(CreateTable(table, include_foreign_key_constraints=[]))
                    fks += sorted(table.foreign_key_constraints, key=lambda c: str(c.name))
                else:
                    conn.execute(CreateTable(table))
            world = _World(seed, customers, loader.tokens)
            by_name = {t.name: t for t in TABLES}

            def write(rows: Rows) -> None:
                for name, table_rows in sorted(rows.items(), key=lambda kv: _ORDER[kv[0]]):
                    loader.load(by_name[name], table_rows)
                    counts[name] += len(table_rows)

            def report(done: int) -> None:
                if progress is not None:
                    progress(done, customers)

            if loader.pipelined:
                _pipeline(world.chunks(), write, report)
            else:
                for done, rows in world.chunks():
                    write(rows)
                    report(done)
            loader.end_load()
            for table in TABLES:
                for index in sorted(table.indexes, key=lambda i: str(i.name)):
                    index.create(conn)
            for fk in fks:
                conn.execute(AddConstraint(fk))
            conn.commit()
            loader.finish()
    finally:
        engine.dispose()
    return counts


_ORDER = {t.name: i for i, t in enumerate(TABLES)}


def _pipeline(
    chunks: Iterator[tuple[int, Rows]],
    write: Callable[[Rows], None],
    report: Callable[[int], None],
) -> None:
    """Make the next chunk while a thread writes the last one (the server parses and stores it
    meanwhile, on the other core). At most one chunk waits; progress is reported from here."""
    todo: queue.Queue[tuple[int, Rows] | None] = queue.Queue(maxsize=1)
    written: queue.Queue[int] = queue.Queue()
    failure: list[BaseException] = []

    def writer() -> None:
        try:
            while (item := todo.get()) is not None:
                write(item[1])
                written.put(item[0])
        except BaseException as exc:  # handed to the main thread
            failure.append(exc)

    def hand_over(item: tuple[int, Rows] | None) -> None:
        while thread.is_alive():
            try:
                todo.put(item, timeout=0.2)
                return
            except queue.Full:
                continue
        raise failure[0] if failure else RuntimeError("the loader thread stopped")

    def drain() -> None:
        while True:
            try:
                report(written.get_nowait())
            except queue.Empty:
                return

    thread = threading.Thread(target=writer, name="kerf-loader", daemon=True)
    thread.start()
    try:
        for item in chunks:
            hand_over(item)
            del item  # the writer holds the only reference: freed once written
            drain()
    finally:
        if thread.is_alive():
            hand_over(None)
        thread.join()
    if failure:
        raise failure[0]
    drain()


def describe(counts: dict[str, int]) -> str:
    """Rows per table, one line each, for people."""
    width = max(len(name) for name in counts)
    lines = [f"{name:<{width}}  {n:>12,}" for name, n in counts.items()]
    lines.append(f"{'total':<{width}}  {sum(counts.values()):>12,}")
    return "\n".join(lines)


__all__ = ["ANCHOR", "default_url", "describe", "generate"]
