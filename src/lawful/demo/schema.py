"""The Kerf shop database: the tables `examples/kerf/lawful.yaml` declares, as SQLAlchemy Core.

Portable across SQLite, PostgreSQL (15+) and MySQL/MariaDB (10.11+). Every table has an integer
`id` primary key; references are real FOREIGN KEY constraints (nullable, so that an engine may
detach a row it anonymises); every reference column, identity column and retention date column
is indexed. E-mail identities are matched case-folded: PostgreSQL and SQLite get an expression
index on `lower(column)` for each e-mail identity column, MySQL/MariaDB compare with their
case-insensitive default collation, where the plain index serves.

The indexes are declared here but the generator creates them after loading the rows (faster);
`metadata.create_all()` creates everything at once, for an empty database.
"""

from __future__ import annotations

from sqlalchemy import (
    CHAR,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    false,
    func,
)

# Constraint names are fixed so that the DDL is the same on every backend and run.
metadata = MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

# Backends with expression indexes; MySQL/MariaDB search e-mails through the plain index, its
# default collation being case-insensitive.
LOWER_INDEX_DIALECTS = ("postgresql", "sqlite")

EMAIL = 320  # RFC 5321: 64 (local part) + 1 + 255 (domain)
PHONE = 20  # E.164: at most 15 digits, with the "+"
NAME = 200
TIMESTAMP = DateTime(timezone=False)


def _id() -> Column[int]:
    return Column("id", Integer, primary_key=True, autoincrement=True)


def _fk(name: str, target: str) -> Column[int]:
    return Column(name, Integer, ForeignKey(target), nullable=True)


customer = Table(
    "customer",
    metadata,
    _id(),
    Column("email", String(EMAIL), nullable=False),
    Column("first_name", String(100)),
    Column("last_name", String(100)),
    Column("phone", String(PHONE)),
    Column("company", String(NAME)),
    Column("job_title", String(100)),
    Column("password_hash", String(255)),
    Column("created_at", TIMESTAMP, nullable=False),
    Column("contract_ended_at", TIMESTAMP),  # null while the customer is active
    Column("restricted", Boolean, nullable=False, default=False, server_default=false()),
)

partner = Table(
    "partner",
    metadata,
    _id(),
    Column("company_name", String(NAME), nullable=False),
    Column("contact_name", String(NAME)),
    Column("email", String(EMAIL)),
    Column("phone", String(PHONE)),
    Column("iban", String(34)),
    Column("vat_id", String(20)),
    Column("contract_ended_at", TIMESTAMP),
)

address = Table(
    "address",
    metadata,
    _id(),
    _fk("customer_id", "customer.id"),
    Column("kind", String(10), nullable=False),
    Column("name", String(NAME)),
    Column("street", String(NAME)),
    Column("city", String(100)),
    Column("postal_code", String(16)),
    Column("country", String(2)),  # ISO 3166-1 alpha-2
    CheckConstraint("kind IN ('billing', 'shipping')", name="kind"),
)

quote = Table(
    "quote",
    metadata,
    _id(),
    _fk("customer_id", "customer.id"),
    Column("cad_file_name", String(255)),
    Column("material", String(100)),
    Column("price", Numeric(10, 2)),
    Column("created_at", TIMESTAMP, nullable=False),
)

orders = Table(
    "orders",
    metadata,
    _id(),
    _fk("customer_id", "customer.id"),
    _fk("quote_id", "quote.id"),
    _fk("partner_id", "partner.id"),
    _fk("shipping_address_id", "address.id"),
    Column("created_at", TIMESTAMP, nullable=False),
    Column("delivered_at", TIMESTAMP),  # null while not delivered
)

invoice = Table(
    "invoice",
    metadata,
    _id(),
    _fk("order_id", "orders.id"),
    _fk("customer_id", "customer.id"),
    Column("billing_name", String(NAME)),
    Column("billing_email", String(EMAIL)),
    Column("vat_id", String(20)),
    Column("amount", Numeric(12, 2)),
    Column("issued_at", TIMESTAMP, nullable=False),
)

payment = Table(
    "payment",
    metadata,
    _id(),
    _fk("invoice_id", "invoice.id"),
    Column("card_last4", CHAR(4)),
    Column("amount", Numeric(12, 2)),
    Column("paid_at", TIMESTAMP),
)

support_ticket = Table(
    "support_ticket",
    metadata,
    _id(),
    Column("customer_email", String(EMAIL)),  # as typed: no FK, case varies
    Column("subject", String(NAME)),
    Column("body", Text),
    Column("created_at", TIMESTAMP, nullable=False),
)

call_recording = Table(
    "call_recording",
    metadata,
    _id(),
    Column("phone", String(PHONE)),  # E.164, no FK
    Column("recording_url", String(500)),
    Column("recorded_at", TIMESTAMP, nullable=False),
)

newsletter_subscriber = Table(
    "newsletter_subscriber",
    metadata,
    _id(),
    Column("email", String(EMAIL)),  # no FK: customers and prospects
    Column("subscribed_at", TIMESTAMP, nullable=False),
    Column("consent_version", Integer),
    Column("unsubscribed_at", TIMESTAMP),  # set when consent is withdrawn (retention clock)
)

web_visit = Table(
    "web_visit",
    metadata,
    _id(),
    Column("visitor_id", String(64)),  # the cookie id
    _fk("customer_id", "customer.id"),  # set on visits after login
    Column("ip_address", String(45)),
    Column("user_agent", String(500)),
    Column("path", String(500)),
    Column("visited_at", TIMESTAMP, nullable=False),
)

job_applicant = Table(
    "job_applicant",
    metadata,
    _id(),
    Column("email", String(EMAIL)),
    Column("phone", String(PHONE)),
    Column("full_name", String(NAME)),
    Column("cv_text", Text),
    Column("applied_at", TIMESTAMP, nullable=False),
    Column("decided_at", TIMESTAMP),  # null while pending
    Column("talent_pool_consent", Boolean, nullable=False, default=False,
           server_default=false()),
)

testimonial = Table(
    "testimonial",
    metadata,
    _id(),
    _fk("customer_id", "customer.id"),
    Column("display_name", String(NAME)),
    Column("quote_text", Text),
    Column("published", Boolean, nullable=False, default=False, server_default=false()),
    Column("consented_at", TIMESTAMP),
)

id_document = Table(
    "id_document",
    metadata,
    _id(),
    _fk("customer_id", "customer.id"),
    Column("national_id_number", String(32)),
    Column("verified_at", TIMESTAMP),  # null until verified
)

# Tables in the order rows are loaded (parents first).
TABLES: tuple[Table, ...] = (
    customer,
    partner,
    address,
    quote,
    orders,
    invoice,
    payment,
    support_ticket,
    call_recording,
    newsletter_subscriber,
    web_visit,
    job_applicant,
    testimonial,
    id_document,
)

# Identity columns (the ways a person is found), by table.
IDENTITY_COLUMNS: dict[str, tuple[str, ...]] = {
    "customer": ("email", "phone"),
    "partner": ("email", "phone"),
    "invoice": ("billing_email",),
    "support_ticket": ("customer_email",),
    "call_recording": ("phone",),
    "newsletter_subscriber": ("email",),
    "web_visit": ("visitor_id",),
    "job_applicant": ("email", "phone"),
    "id_document": ("national_id_number",),
}

EMAIL_COLUMNS: dict[str, tuple[str, ...]] = {
    "customer": ("email",),
    "partner": ("email",),
    "invoice": ("billing_email",),
    "support_ticket": ("customer_email",),
    "newsletter_subscriber": ("email",),
    "job_applicant": ("email",),
}

# The date columns retention rules scan.
DATE_COLUMNS: dict[str, tuple[str, ...]] = {
    "customer": ("contract_ended_at",),
    "partner": ("contract_ended_at",),
    "quote": ("created_at",),
    "orders": ("delivered_at",),
    "invoice": ("issued_at",),
    "support_ticket": ("created_at",),
    "call_recording": ("recorded_at",),
    "newsletter_subscriber": ("unsubscribed_at",),
    "web_visit": ("visited_at",),
    "job_applicant": ("decided_at",),
    "id_document": ("verified_at",),
}

# A customer logs in with their e-mail: one account per address.
UNIQUE_COLUMNS = {("customer", "email")}


def _declare_indexes() -> None:
    for table in TABLES:
        name = table.name
        columns: list[str] = [c.name for c in table.columns if c.foreign_keys]
        columns += IDENTITY_COLUMNS.get(name, ())
        columns += DATE_COLUMNS.get(name, ())
        for col in dict.fromkeys(columns):  # keeps order, drops repeats
            unique = (name, col) in UNIQUE_COLUMNS
            Index(f"ix_{name}_{col}", table.c[col], unique=unique)
        for col in EMAIL_COLUMNS.get(name, ()):
            Index(f"ix_{name}_{col}_lower", func.lower(table.c[col])).ddl_if(
                dialect=LOWER_INDEX_DIALECTS
            )


_declare_indexes()
