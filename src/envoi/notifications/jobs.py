"""The four notification jobs' data, as Node producers send it: the wire contract of the `notifications` queue.

Keys are camelCase on the wire, byte for byte as the original system's producers write them
(`userId`, `contentType`, `idempotencyKey`); Python code reads the snake_case attributes. Each job is
built through its model (`SendEmailJob(to=..., ...)`, validated at the call) and `wire()` gives its
camelCase data back; `queue.enqueue_job(queue, job)` adds it under its `JOB_NAME`.

    SEND_EMAIL                 {to, subject, html, text?, attachments?, category?, timezone?, metadata?}
    SEND_SMS                   {to, message, category?, timezone?, metadata?}
    SEND_WHATSAPP              {to, message, category?, timezone?, metadata?}   `whatsapp:` prefix allowed
    CREATE_INAPP_NOTIFICATION  {userId, title, message, metadata?}

`attachments` is envoi's extension: `[{filename, contentType, content}]`, content in base64.
`category` (`transactional` or `marketing`) and `timezone` (an IANA name) are envoi's too: what the
recipient's preferences and quiet hours apply to (`envoi.recipients`, docs/recipients.md).
`metadata` keeps every key it is given; the ones envoi reads are declared on `JobMetadata`.
Unknown top-level keys are ignored (a newer producer must not break an older worker).

`parse_job(name, data)` validates and raises `InvalidJobDataError(name, {"to": "reason", ...})`, a
permanent error: the worker fails the job at once, without spending its retries.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from envoi.addresses import EmailAddress, phone_e164
from envoi.errors import UnknownJobError
from envoi.queue.jobs import parse_model, wire_form
from envoi.queue.names import JobName
from envoi.quiet_hours import iana_zone
from envoi.validation import CleanInput, single_line

__all__ = [
    "JOB_MODELS",
    "Attachment",
    "CreateInAppNotificationJob",
    "JobMetadata",
    "NotificationJob",
    "SendEmailJob",
    "SendSmsJob",
    "SendWhatsAppJob",
    "parse_job",
]

#: Twilio refuses longer bodies (error 21617); refusing them here fails the job without a request.
MAX_TEXT_LENGTH = 1600
WHATSAPP_PREFIX = "whatsapp:"


def e164(value: str) -> str:
    """A phone number as the original system sends it (`+33…`, `33…` without the `+`, or national with
    DEFAULT_PHONE_REGION), returned in E.164 (`+33612345678`), the only form Twilio takes. The rules
    are `envoi.addresses.phone_e164`'s."""
    return phone_e164(value)


def _whatsapp_e164(value: str) -> str:
    return e164(value.removeprefix(WHATSAPP_PREFIX))


def _base64(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be base64") from None
    return value


Phone = Annotated[str, AfterValidator(e164)]
#: Accepts `whatsapp:+33...` as Twilio spells it; stored without the prefix (the channel adds it).
WhatsAppPhone = Annotated[str, AfterValidator(_whatsapp_e164)]
Base64 = Annotated[str, AfterValidator(_base64)]
#: `envoi.recipients.Category`'s values, spelled out so the OpenAPI schema lists them.
CategoryName = Literal["transactional", "marketing"]
TimeZoneName = Annotated[str, Field(max_length=64), AfterValidator(iana_zone)]
NonEmpty = Annotated[str, Field(min_length=1)]
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_LENGTH)]


class _Wire(CleanInput):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
    )

    def wire(self) -> dict[str, Any]:
        """The camelCase dict a Node producer would add."""
        return wire_form(self)


class JobMetadata(_Wire):
    """Context carried with a job. Unknown keys are kept (and dumped back) as given."""

    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)

    #: Names one message: two jobs with the same key send once (see `envoi.deliveries`).
    idempotency_key: str | None = Field(None, min_length=1, max_length=255)
    template_key: str | None = None
    #: The original system's older spelling of `templateKey`.
    template: str | None = None
    user_id: str | None = None
    organization_id: str | None = None
    notification_id: str | None = None
    appointment_id: str | None = None
    #: A delayed message's row in `scheduled_messages`: checked before sending (cancelled, replaced?).
    schedule_id: str | None = Field(None, min_length=1, max_length=26)

    @property
    def flow(self) -> str | None:
        return self.template_key or self.template

    @property
    def entity_id(self) -> str | None:
        """The id of what the message is about, the most specific first: the notification, the
        appointment, another `...Id` the producer names (`invitationId`, `leadId`), the user, the
        organization. With `flow`, it names the message in the delivery ledger."""
        for value in (self.notification_id, self.appointment_id):
            if value:
                return value
        extras = self.model_extra or {}
        for name in sorted(extras):
            if name.endswith("Id") and isinstance(extras[name], str | int) and extras[name] != "":
                return str(extras[name])
        return self.user_id or self.organization_id or None


class Attachment(_Wire):
    filename: NonEmpty
    content_type: str = "application/octet-stream"
    content: Base64

    @field_validator("filename", "content_type")
    @classmethod
    def _header_safe(cls, value: str) -> str:
        return single_line(value)

    def decoded(self) -> bytes:
        return base64.b64decode(self.content)


class _Message(_Wire):
    """What the recipient's policy reads: the category (else the flow's, else transactional) and the
    time zone quiet hours are counted in (else the recipient's, else DEFAULT_TIMEZONE)."""

    category: CategoryName | None = None
    timezone: TimeZoneName | None = None


class SendEmailJob(_Message):
    JOB_NAME: ClassVar[str] = JobName.SEND_EMAIL

    to: EmailAddress
    subject: NonEmpty
    html: str
    text: str | None = None
    attachments: list[Attachment] | None = None
    metadata: JobMetadata | None = None

    @field_validator("subject")
    @classmethod
    def _header_safe(cls, value: str) -> str:
        return single_line(value)


class SendSmsJob(_Message):
    JOB_NAME: ClassVar[str] = JobName.SEND_SMS

    to: Phone
    message: Text
    metadata: JobMetadata | None = None


class SendWhatsAppJob(_Message):
    JOB_NAME: ClassVar[str] = JobName.SEND_WHATSAPP

    to: WhatsAppPhone
    message: Text
    metadata: JobMetadata | None = None


class CreateInAppNotificationJob(_Wire):
    JOB_NAME: ClassVar[str] = JobName.CREATE_INAPP_NOTIFICATION

    user_id: NonEmpty
    title: Annotated[str, Field(min_length=1, max_length=500)]
    message: NonEmpty
    metadata: JobMetadata | None = None


NotificationJob = SendEmailJob | SendSmsJob | SendWhatsAppJob | CreateInAppNotificationJob

JOB_MODELS: dict[str, type[NotificationJob]] = {
    model.JOB_NAME: model for model in (SendEmailJob, SendSmsJob, SendWhatsAppJob, CreateInAppNotificationJob)
}


def parse_job(job_name: str, data: Any) -> NotificationJob:
    """The job's model; `InvalidJobDataError` naming each bad field by its wire path (`metadata.userId`)."""
    model = JOB_MODELS.get(job_name)
    if model is None:
        raise UnknownJobError(job_name)
    return parse_model(model, job_name, data)
