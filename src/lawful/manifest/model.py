"""The manifest model: every declaration a privacy notice makes, typed.

Every list of things that other things point at (subjects, categories, activities, recipients,
retention rules, consent purposes, systems) carries an `id`; cross references are checked in
`lawful.manifest.references` after the shapes here are validated, so that all problems of a
file are reported at once.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Any, Literal

import pycountry
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic_core import PydanticCustomError

from lawful.manifest.duration import Duration

Id = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=200),
]
def _country(value: Any) -> Any:
    """ISO 3166-1 alpha-2, the code the adequacy list and transfer checks compare."""
    if not isinstance(value, str):
        return value
    code = value.strip().upper()
    if pycountry.countries.get(alpha_2=code) is None:
        try:
            guess = pycountry.countries.search_fuzzy(value)[0].alpha_2
        except LookupError:
            guess = None
        hint = f"; did you mean {guess}?" if guess else ""
        raise PydanticCustomError(
            "country", f"{value!r} is not a two-letter ISO 3166 country code{hint}")
    return code


Country = Annotated[str, BeforeValidator(_country)]


def _listify(value: Any) -> Any:
    """Let a single value stand for a one-element list (`categories: user.contact.email`)."""
    return [value] if isinstance(value, str | dict) else value


class Strict(BaseModel):
    # Unknown keys are errors: a misspelt `retention_rule:` must not be silently ignored.
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, frozen=False)


# --- organisation -----------------------------------------------------------------------------


class Controller(Strict):
    id: Id
    name: str
    address: str
    country: Country | None = None
    email: str | None = None
    phone: str | None = None
    website: str | None = None
    registration: str | None = Field(None, description="Company registry number.")
    # "7 years after the end of the financial year": the year end differs per company.
    financial_year_end: Annotated[str, StringConstraints(pattern=r"^\d{2}-\d{2}$")] = "12-31"


class Representative(Strict):
    """Art. 27 representative of a controller not established in the Union."""

    name: str
    address: str
    country: Country
    email: str | None = None


class DPO(Strict):
    name: str | None = None
    email: str | None = None
    address: str | None = None
    phone: str | None = None


class SupervisoryAuthority(Strict):
    id: Id
    name: str
    country: Country
    email: str | None = None
    url: str | None = None
    complaint_url: str | None = None


class Organisation(Strict):
    name: str
    controllers: Annotated[list[Controller], Field(min_length=1)]
    # Art. 26(2): the essence of the arrangement between joint controllers is made available.
    joint_arrangement: str | None = None
    representative: Representative | None = None
    dpo: DPO | None = None
    supervisory_authorities: list[SupervisoryAuthority] = []
    website: str | None = None

    @property
    def joint(self) -> bool:
        return len(self.controllers) > 1


# --- what and whose ----------------------------------------------------------------------------


class Subject(Strict):
    id: Id
    name: str
    description: str | None = None
    # fideslang data subject key: customer, prospect, job_applicant, employee, visitor...
    fideslang: str | None = None

    @property
    def is_customer(self) -> bool:
        return (self.fideslang or self.id) == "customer"


class Category(Strict):
    """A custom data category, placed under a fideslang category or another custom one."""

    id: Id
    name: str
    parent: Id
    description: str | None = None
    special: bool = Field(False, description="Art. 9(1) special category.")
    criminal: bool = Field(False, description="Art. 10 criminal convictions data.")


# --- processing activities -------------------------------------------------------------------


class Basis(StrEnum):
    consent = "consent"
    contract = "contract"
    legal_obligation = "legal_obligation"
    vital_interests = "vital_interests"
    public_task = "public_task"
    legitimate_interests = "legitimate_interests"

    @property
    def article(self) -> str:
        return "Art. 6(1)(" + "abcdef"[list(Basis).index(self)] + ")"


_BASIS_ALIASES = {
    "a": "consent", "b": "contract", "c": "legal_obligation", "d": "vital_interests",
    "e": "public_task", "f": "legitimate_interests", "legitimate_interest": "legitimate_interests",
    "vital_interest": "vital_interests", "performance_of_contract": "contract",
}


def _basis_alias(value: Any) -> Any:
    if isinstance(value, str):
        key = value.strip().lower().replace(" ", "_").replace("6(1)(", "").rstrip(")")
        return _BASIS_ALIASES.get(key, key)
    return value


class Art9Condition(StrEnum):
    explicit_consent = "explicit_consent"  # 9(2)(a)
    employment = "employment"  # 9(2)(b)
    vital_interests = "vital_interests"  # 9(2)(c)
    not_for_profit = "not_for_profit"  # 9(2)(d)
    made_public = "made_public"  # 9(2)(e)
    legal_claims = "legal_claims"  # 9(2)(f)
    substantial_public_interest = "substantial_public_interest"  # 9(2)(g)
    health_care = "health_care"  # 9(2)(h)
    public_health = "public_health"  # 9(2)(i)
    archiving = "archiving"  # 9(2)(j)

    @property
    def article(self) -> str:
        return "Art. 9(2)(" + "abcdefghij"[list(Art9Condition).index(self)] + ")"


def _art9_alias(value: Any) -> Any:
    if isinstance(value, str):
        letter = value.strip().lower().replace("9(2)(", "").rstrip(")")
        if len(letter) == 1 and letter in "abcdefghij":
            return list(Art9Condition)["abcdefghij".index(letter)].value
    return value


class LegalBasis(Strict):
    basis: Annotated[Basis, BeforeValidator(_basis_alias)]
    consent_purpose: Id | None = Field(None, description="For consent: the purpose consented to.")
    law: str | None = Field(None, description="For legal obligation: the law that obliges.")
    interest: str | None = Field(None, description="For legitimate interests: the interest.")
    detail: str | None = None


def _bases(value: Any) -> Any:
    value = _listify(value)
    if isinstance(value, list):
        return [{"basis": item} if isinstance(item, str) else item for item in value]
    return value


class Marketing(Strict):
    """Direct marketing done by an activity (ePrivacy Art. 13)."""

    channel: Literal["email", "sms", "phone", "post", "social", "online_ads"]
    # Soft opt-in (ePrivacy Art. 13(2)): own similar products to existing customers.
    soft_opt_in: bool = False
    opt_out: bool = Field(True, description="Every message offers a free, easy opt-out.")
    profiling: bool = False


class AutomatedDecision(Strict):
    """Art. 22: a decision based solely on automated processing with legal or similar effect."""

    description: str
    logic: str | None = None
    significance: str | None = None
    exception: Literal["contract", "law", "explicit_consent"] | None = None
    human_review: bool = False


class Activity(Strict):
    id: Id
    name: str
    purpose: str
    data_use: str | None = Field(None, description="fideslang data use key.")
    controller: Id | None = Field(None, description="Controller id; all controllers if unset.")
    role: Literal["controller", "processor"] = "controller"
    on_behalf_of: str | None = Field(None, description="For processor activities: the clients.")
    subjects: Annotated[list[Id], BeforeValidator(_listify)] = []
    categories: Annotated[list[Id], BeforeValidator(_listify)] = []
    legal_bases: Annotated[list[LegalBasis], BeforeValidator(_bases)] = []
    special_category_condition: Annotated[
        Art9Condition | None, BeforeValidator(_art9_alias)] = None
    criminal_data_authority: str | None = Field(None, description="Art. 10 authorisation.")
    sources: Annotated[list[str], BeforeValidator(_listify)] = ["data_subject"]
    marketing: Marketing | None = None
    profiling: bool = False
    automated_decisions: list[AutomatedDecision] = []
    portability: bool | None = Field(
        None, description="True when the notice promises portability for this activity.")
    required: str | None = Field(None, description="Whether and why the data must be provided.")
    description: str | None = None

    def has_basis(self, *bases: Basis) -> bool:
        return any(lb.basis in bases for lb in self.legal_bases)


# --- recipients and transfers ----------------------------------------------------------------


class Safeguard(StrEnum):
    adequacy = "adequacy"  # Art. 45
    sccs = "sccs"  # Art. 46(2)(c)
    bcrs = "bcrs"  # Art. 47
    dpf = "dpf"  # EU-US Data Privacy Framework, adequacy decision of 10 July 2023
    privacy_shield = "privacy_shield"  # invalid since C-311/18 (16 July 2020)
    art49 = "art49"  # derogations for specific situations
    none = "none"


class Notify(Strict):
    """How a recipient is told of a rectification, erasure or restriction (Art. 19)."""

    webhook: str | None = None
    email: str | None = None


class Recipient(Strict):
    id: Id
    name: str
    role: Literal["processor", "controller", "joint_controller", "public_authority"]
    category: str | None = Field(None, description="hosting, payment, logistics, advertising…")
    purpose: str | None = None
    country: Country | None = None
    locations: Annotated[list[Country], BeforeValidator(_listify)] = []
    # For notices that say data "is sent outside the EEA" without naming where.
    outside_eea: bool = False
    safeguard: Safeguard | None = None
    safeguard_reference: str | None = None
    derogation: Literal["a", "b", "c", "d", "e", "f", "g"] | None = Field(
        None, description="Art. 49(1) point relied on.")
    dpf_certified: bool = False
    dpa_date: dt.date | None = Field(None, description="Date of the Art. 28 agreement.")
    activities: Annotated[list[Id], BeforeValidator(_listify)] = []
    categories: Annotated[list[Id], BeforeValidator(_listify)] = []
    notify: Notify | None = None

    @property
    def countries(self) -> list[str]:
        seen = [c for c in [self.country, *self.locations] if c]
        return list(dict.fromkeys(seen))


# --- retention -------------------------------------------------------------------------------


class Clock(StrEnum):
    collection = "collection"  # from when the data was collected
    event = "event"  # a date held in a column (delivered_at)
    last_event = "last_event"  # the latest of several events (the last visit)
    financial_year_end = "financial_year_end"  # end of the financial year of a date
    contract_end = "contract_end"  # as long as a contract runs, then `keep`
    consent_withdrawal = "consent_withdrawal"  # until consent for a purpose is withdrawn
    processing = "processing"  # immediately after processing
    decision = "decision"  # a decision taken (not to hire)


class Action(StrEnum):
    delete = "delete"
    anonymise = "anonymise"
    pseudonymise = "pseudonymise"


class ConsentExtension(Strict):
    """Kept longer when the person agreed: the CV kept 4 weeks, or 1 year with consent."""

    consent_purpose: Id
    keep: Duration


class RetentionRule(Strict):
    id: Id
    name: str | None = None
    description: str | None = Field(None, description="The promise in the notice's words.")
    activities: Annotated[list[Id], BeforeValidator(_listify)] = []
    categories: Annotated[list[Id], BeforeValidator(_listify)] = []
    subjects: Annotated[list[Id], BeforeValidator(_listify)] = []
    keep: Duration | None = None
    after: Clock = Clock.collection
    event: str | None = Field(None, description="The event in words: 'delivery of the order'.")
    columns: Annotated[list[str], BeforeValidator(_listify)] = Field(
        [], description="table.column holding the event date(s); latest wins for last_event.")
    consent_purpose: Id | None = None
    maximum: Duration | None = None
    extension: ConsentExtension | None = None
    # last_event: the column(s) that group rows of one person ("the last visit of a
    # visitor": web_visit.visitor_id); default: the table's only identity column, if any.
    per: Annotated[list[str], BeforeValidator(_listify)] = Field(
        [], description="table.column grouping the rows whose latest event counts.")
    action: Action = Action.delete
    basis: Annotated[Basis | None, BeforeValidator(_basis_alias)] = None
    law: str | None = None


# --- consent ---------------------------------------------------------------------------------


class ConsentText(Strict):
    version: int = Field(ge=1)
    effective: dt.date
    text: dict[str, str] = Field(description="Text shown, per language code.")


class ConsentPurpose(Strict):
    id: Id
    name: str
    description: str | None = None
    channel: Literal["email", "sms", "phone", "post", "web", "cookie", "other"] = "other"
    marketing: bool = False
    # Sale, sharing or targeted advertising: Global Privacy Control opts out of these.
    gpc_opt_out: bool = False
    versions: list[ConsentText] = []

    def current(self, today: dt.date | None = None) -> ConsentText | None:
        today = today or dt.date.today()
        live = [v for v in self.versions if v.effective <= today]
        return max(live, key=lambda v: v.version) if live else None


# --- security --------------------------------------------------------------------------------


class SecurityMeasure(Strict):
    name: str
    kind: Literal["technical", "organisational"] = "technical"
    description: str | None = None


def _measures(value: Any) -> Any:
    if isinstance(value, list):
        return [{"name": item} if isinstance(item, str) else item for item in value]
    return value


# --- systems (the engine's map of the customer's databases) ------------------------------------


class Identity(StrEnum):
    email = "email"
    phone = "phone"
    customer_number = "customer_number"
    user_id = "user_id"
    cookie_id = "cookie_id"
    national_id = "national_id"
    ip_address = "ip_address"
    other = "other"


class Strategy(StrEnum):
    null = "null"  # set to NULL
    fixed = "fixed"  # replace by a fixed text (`fixed_value`)
    hash = "hash"  # keyed hash: the same input gives the same pseudonym
    mask = "mask"  # keep the last 4 characters
    delete_row = "delete_row"
    keep = "keep"  # not erased (e.g. the key itself); must be justified by a retention rule


class FieldDecl(Strict):
    name: str
    category: Id | None = Field(None, description="None: the column holds no personal data.")
    identity: Identity | None = None
    # How stored identities compare with a normalised one. Default: e-mail addresses are
    # compared case-folded (an index on lower(column) keeps it fast), everything else exactly.
    match: Literal["exact", "casefold"] | None = None
    erase: Strategy | None = None
    fixed_value: str | None = None
    provided: bool = Field(True, description="Provided by the person (Art. 20 portability).")
    retention: Id | None = Field(None, description="A rule that holds this field.")


class Reference(Strict):
    field: str
    to: str = Field(description="'table.column', or 'system.table.column' across databases.")
    # The referenced row is somebody else (an order's manufacturing partner): requests do not
    # walk this edge, so erasing a customer never touches the partner.
    other_person: bool = False


class ConsentColumn(Strict):
    """Where a table holds the state of a consent, until the consent ledger does: one of
    `withdrawn_at` (a date set on withdrawal), `given_at` (a date, null without consent) or
    `given` (a boolean)."""

    purpose: Id
    withdrawn_at: str | None = None
    given_at: str | None = None
    given: str | None = None

    @model_validator(mode="after")
    def _one_column(self) -> ConsentColumn:
        named = [c for c in (self.withdrawn_at, self.given_at, self.given) if c]
        if len(named) != 1:
            raise PydanticCustomError(
                "consent_column", "name exactly one of withdrawn_at, given_at or given")
        return self

    @property
    def column(self) -> str:
        return self.withdrawn_at or self.given_at or self.given or ""


class Table(Strict):
    name: str
    subject: Id | None = None
    primary_key: Annotated[list[str], BeforeValidator(_listify)] = ["id"]
    fields: list[FieldDecl] = []
    references: list[Reference] = []
    erase: Strategy | None = Field(None, description="Default strategy for the table's fields.")
    retention: Annotated[list[Id], BeforeValidator(_listify)] = []
    restricted_column: str | None = None
    activities: Annotated[list[Id], BeforeValidator(_listify)] = []
    # Retention: when a row was collected (for `after: collection` and `maximum:`), and the
    # consent states it holds (for `consent_withdrawal` clocks and consent extensions).
    collected_at: str | None = None
    consent: Annotated[list[ConsentColumn], BeforeValidator(_listify)] = []


class System(Strict):
    id: Id
    name: str | None = None
    url: str = Field(description="SQLAlchemy URL; use ${ENV_VAR} for anything secret.")
    tables: list[Table] = []


# --- rights, notice, breaches ----------------------------------------------------------------

Right = Literal["access", "portability", "rectification", "erasure", "restriction", "objection",
                "consent_withdrawal", "automated_decision"]
ALL_RIGHTS: list[Right] = ["access", "portability", "rectification", "erasure", "restriction",
                           "objection", "consent_withdrawal", "automated_decision"]


class Rights(Strict):
    offered: list[Right] = list(ALL_RIGHTS)
    contact: str | None = None
    response_time: Duration = Duration(1, "months")
    extension: Duration | None = Duration(2, "months")
    verify_identity: bool = True
    fee_for_unfounded: bool = False
    backup_erasure_latency: Duration | None = None
    # Verified requests of these kinds run at once; the others wait for a staff member.
    auto_execute: list[Right] = ["access", "portability", "objection", "consent_withdrawal"]
    # How long lawful keeps a closed request (its proof), then purges it (Art. 5(1)(e)).
    keep_request_records: Duration = Duration(3, "years")


class NoticeMeta(Strict):
    title: str | None = None
    languages: Annotated[list[str], Field(min_length=1)] = ["en"]
    version: str = "1"
    effective: dt.date | None = None
    change_notice_days: int | None = Field(None, ge=0)
    sources: list[str] = []
    cookies_url: str | None = None
    extra_sections: dict[str, str] = Field({}, description="Further sections, title: text.")


class Breaches(Strict):
    report_internally_to: str | None = "dpo"
    regulator_within_hours: int = 72
    procedure: str | None = None


class Manifest(Strict):
    lawful: Literal[1] = Field(1, description="Manifest format version.")
    organisation: Organisation
    subjects: list[Subject] = []
    categories: list[Category] = []
    activities: list[Activity] = []
    recipients: list[Recipient] = []
    retention: list[RetentionRule] = []
    consent_purposes: list[ConsentPurpose] = []
    security: Annotated[list[SecurityMeasure], BeforeValidator(_measures)] = []
    systems: list[System] = []
    rights: Rights = Rights()
    notice: NoticeMeta = NoticeMeta()
    breaches: Breaches | None = None

    # --- lookups used by checks, documents and the engine ---
    def activity(self, key: str) -> Activity | None:
        return next((a for a in self.activities if a.id == key), None)

    def recipient(self, key: str) -> Recipient | None:
        return next((r for r in self.recipients if r.id == key), None)

    def subject(self, key: str) -> Subject | None:
        return next((s for s in self.subjects if s.id == key), None)

    def consent_purpose(self, key: str) -> ConsentPurpose | None:
        return next((p for p in self.consent_purposes if p.id == key), None)

    def recipients_of(self, activity_id: str) -> list[Recipient]:
        return [r for r in self.recipients if activity_id in r.activities]

    def controllers_of(self, activity: Activity) -> list[Controller]:
        ctrls = self.organisation.controllers
        return [c for c in ctrls if activity.controller in (None, c.id)]
