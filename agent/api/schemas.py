"""Typed request schemas: every operation's arguments, validated before any handler runs.

Unknown fields are refused (``extra="forbid"``): a client that sends ``uid`` or ``user`` to
claim an identity is told the field is not accepted; identity comes only from the kernel.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from agent.api.protocol import PROTOCOL_VERSION
from agent.errors import InvalidRequest, ProtocolError
from agent.lifecycle.model import HoldReason


def _iso_date(value: Any) -> date:
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or len(value) != 10:
        raise ValueError("must be a date written YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"'{value}' is not a real date (YYYY-MM-DD)") from None


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
ShortText = Annotated[str, Field(max_length=4096)]


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class NoArgs(Args):
    pass


class ProjectCreateArgs(Args):
    project: Annotated[str, Field(max_length=64)]
    title: ShortText
    leader: Annotated[str, Field(max_length=64)]
    end_date: IsoDate
    data_dir: ShortText | None = None
    key_dir: ShortText | None = None
    export_dir: ShortText | None = None


class ProjectRef(Args):
    project: Annotated[str, Field(max_length=64)]


UserName = Annotated[str, Field(max_length=64)]
Reason = Annotated[str, Field(max_length=1000)]


class MemberAddArgs(Args):
    project: Annotated[str, Field(max_length=64)]
    user: UserName
    role: Annotated[str, Field(max_length=32)]
    expires: IsoDate | None = None
    reason: Reason


class MemberRemoveArgs(Args):
    project: Annotated[str, Field(max_length=64)]
    user: UserName
    role: Annotated[str, Field(max_length=32)] | None = None
    reason: Reason
    terminate: bool = False


class AccessReviewArgs(Args):
    project: Annotated[str, Field(max_length=64)] | None = None


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    v: int = PROTOCOL_VERSION
    op: Annotated[str, Field(max_length=64)]
    args: dict[str, Any] = Field(default_factory=dict)


def describe_validation_error(exc: ValidationError) -> str:
    """One line for people, naming the first bad field."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "request"
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    if first.get("type") == "extra_forbidden":
        message = "is not an accepted field"
    more = len(exc.errors()) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{where}: {message}{tail}"


def parse_envelope(message: Any) -> Envelope:
    if not isinstance(message, dict):
        raise ProtocolError("a request must be a JSON object with 'op' and 'args'")
    try:
        envelope = Envelope.model_validate(message)
    except ValidationError as exc:
        raise ProtocolError(f"malformed request: {describe_validation_error(exc)}") from None
    if envelope.v != PROTOCOL_VERSION:
        raise ProtocolError(
            f"protocol version {envelope.v} is not spoken here (this daemon speaks "
            f"{PROTOCOL_VERSION})",
            hint="use the vokter client of the same version as vokterd",
        )
    return envelope


ArgsT = TypeVar("ArgsT", bound=Args)


def parse_args(model: type[ArgsT], args: dict[str, Any]) -> ArgsT:
    try:
        return model.model_validate(args)
    except ValidationError as exc:
        raise InvalidRequest(describe_validation_error(exc)) from None


_TIME_EXAMPLE = (
    "write ISO 8601 with a timezone, e.g. 2026-11-01T00:00:00Z or "
    "2026-11-01T08:00+01:00"
)


def _aware_time(value: Any) -> datetime:
    """A moment, never a wall-clock reading open to guesswork: the timezone is required."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and len(value) <= 40:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"is not a real time; {_TIME_EXAMPLE}") from None
    else:
        raise ValueError(f"must be a time; {_TIME_EXAMPLE}")
    if moment.tzinfo is None:
        raise ValueError(f"has no timezone; {_TIME_EXAMPLE}")
    return moment


def _base_name(value: Any) -> str:
    """A file's own name (the manifest records it), never a path the daemon could follow."""
    if not isinstance(value, str) or not value or value in (".", ".."):
        raise ValueError("must be a file name")
    if "/" in value or not value.isprintable():
        raise ValueError("must be a file name without '/' or control characters")
    return value


AwareTime = Annotated[datetime, BeforeValidator(_aware_time)]


class AuditExportArgs(Args):
    """What to export; the file and its manifest come as descriptors the client opened."""

    project: Annotated[str, Field(max_length=64)] | None = None
    user: UserName | None = None
    since: AwareTime | None = None
    until: AwareTime | None = None
    action: Annotated[str, Field(max_length=64)] | None = None
    format: Literal["csv", "jsonl"]
    file_name: Annotated[str, BeforeValidator(_base_name), Field(max_length=255)]

    @model_validator(mode="after")
    def _since_before_until(self) -> AuditExportArgs:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError("since is after until: nothing could match")
        return self


#: Room for a checkpoint naming some thousands of projects, within one request (MAX_MESSAGE).
MAX_CHECKPOINT_TEXT = 512 * 1024


class AuditVerifyArgs(Args):
    """The trail (root) or one project's chain; ``checkpoint`` is the text of a checkpoint the
    auditor kept, read by the client with the auditor's own rights."""

    project: Annotated[str, Field(max_length=64)] | None = None
    checkpoint: Annotated[str, Field(max_length=MAX_CHECKPOINT_TEXT)] | None = None


class CryptoEncryptArgs(Args):
    """Nothing but the file, which comes as a descriptor the client opened."""


class CryptoDecryptArgs(Args):
    """The file and the output come as descriptors; ``project`` says whose key decrypts a copy
    kept outside every zone (a file in a zone is its zone's project's)."""

    project: Annotated[str, Field(max_length=64)] | None = None


class KeyShredArgs(Args):
    """``confirm`` repeats the project id: a shred cannot be undone, so the daemon too wants
    the name typed twice, whatever client sent the request."""

    project: Annotated[str, Field(max_length=64)]
    confirm: Annotated[str, Field(max_length=64)]


class ViolationListArgs(Args):
    """One project's violations, or (no project) every violation the caller may see."""

    project: Annotated[str, Field(max_length=64)] | None = None
    open_only: bool = False


class ViolationResolveArgs(Args):
    id: Annotated[int, Field(ge=1)]
    note: Annotated[str, Field(max_length=4096)]


class DatasetAddArgs(Args):
    """The delivered file comes as a descriptor the client opened; ``variables`` are the names
    the client read from the approved-variables file. The daemon checks each bound itself, to
    say which rule a bad list breaks (D2)."""

    project: Annotated[str, Field(max_length=64)]
    source: ShortText
    variables: Annotated[list[ShortText], Field(max_length=100_000)]


class ApprovalAddArgs(Args):
    """One approval (D1); the daemon checks the kind, the reference's bounds and the dates
    against the project and the policy itself, to name the rule a bad one breaks."""

    project: Annotated[str, Field(max_length=64)]
    kind: Annotated[str, Field(max_length=64)]
    reference: ShortText
    valid_until: IsoDate | None = None
    retention_until: IsoDate | None = None
    clinical_trial: bool = False
    final_report: IsoDate | None = None


class LifecycleRunArgs(Args):
    """One project, or (none) every project."""

    project: Annotated[str, Field(max_length=64)] | None = None


class CertificateArgs(Args):
    """The project's certificate of disposal, written into the one descriptor passed: the
    signed JSON, or (``html``) the page to print (L2)."""

    project: Annotated[str, Field(max_length=64)]
    html: bool = False


class ProjectEndArgs(Args):
    """``on``: the first day without access (the end date becomes the day before); today
    when absent, ending the project at once (L1)."""

    project: Annotated[str, Field(max_length=64)]
    on: IsoDate | None = None


#: The reasons a legal hold may give (L5), for clients that offer them as choices.
HOLD_REASONS = tuple(reason.value for reason in HoldReason)
#: Record numbers as the database keeps them (a signed 64-bit key).
RecordId = Annotated[int, Field(ge=1, le=2**63 - 1)]
#: Free text the lifecycle checks itself, to say which rule a bad one breaks (L2, L5).
LifecycleText = Annotated[str, Field(max_length=8192)]


class HoldPlaceArgs(Args):
    project: Annotated[str, Field(max_length=64)]
    reason: Annotated[str, Field(max_length=64)]
    reference: LifecycleText
    note: LifecycleText


class HoldReleaseArgs(Args):
    id: RecordId
    note: LifecycleText


class HoldListArgs(Args):
    """One project's holds, or (no project) those of every project the caller may see."""

    project: Annotated[str, Field(max_length=64)] | None = None
    open_only: bool = False


class CopyAddArgs(Args):
    project: Annotated[str, Field(max_length=64)]
    location: LifecycleText
    note: LifecycleText


class CopyConfirmArgs(Args):
    id: RecordId
    note: LifecycleText
