"""The four notification jobs' data, as Node producers send it: the wire contract of the `notifications` queue.

Keys are camelCase on the wire, byte for byte as the original system's producers write them
(`userId`, `contentType`, `idempotencyKey`); Python code reads the snake_case attributes. Dump with
`model_dump(mode="json", by_alias=True, exclude_none=True)` to get the wire form back.

    SEND_EMAIL                 {to, subject, html, text?, attachments?, metadata?}
    SEND_SMS                   {to, message, metadata?}
    SEND_WHATSAPP              {to, message, metadata?}         to may carry a `whatsapp:` prefix
    CREATE_INAPP_NOTIFICATION  {userId, title, message, metadata?}

`attachments` is envoi's extension: `[{filename, contentType, content}]`, content in base64.
`metadata` keeps every key it is given; the ones envoi reads are declared on `JobMetadata`.
Unknown top-level keys are ignored (a newer producer must not break an older worker).

`parse_job(name, data)` validates and raises `InvalidJobDataError(name, {"to": "reason", ...})`, a
permanent error: the worker fails the job at once, without spending its retries.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

import phonenumbers
from pydantic import AfterValidator, ConfigDict, EmailStr, Field, ValidationError
from pydantic.alias_generators import to_camel

from envoi.errors import InvalidJobDataError, UnknownJobError
from envoi.queue.names import JobName
from envoi.validation import RejectsNul

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
    """A valid international number, returned in E.164 (`+33612345678`), the only form Twilio takes."""
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueError("must be an E.164 phone number such as +33612345678") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


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
NonEmpty = Annotated[str, Field(min_length=1)]
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_LENGTH)]


class _Wire(RejectsNul):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
    )


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

    def decoded(self) -> bytes:
        return base64.b64decode(self.content)


class SendEmailJob(_Wire):
    to: EmailStr
    subject: NonEmpty
    html: str
    text: str | None = None
    attachments: list[Attachment] | None = None
    metadata: JobMetadata | None = None


class SendSmsJob(_Wire):
    to: Phone
    message: Text
    metadata: JobMetadata | None = None


class SendWhatsAppJob(_Wire):
    to: WhatsAppPhone
    message: Text
    metadata: JobMetadata | None = None


class CreateInAppNotificationJob(_Wire):
    user_id: NonEmpty
    title: Annotated[str, Field(min_length=1, max_length=500)]
    message: NonEmpty
    metadata: JobMetadata | None = None


NotificationJob = SendEmailJob | SendSmsJob | SendWhatsAppJob | CreateInAppNotificationJob

JOB_MODELS: dict[str, type[NotificationJob]] = {
    JobName.SEND_EMAIL: SendEmailJob,
    JobName.SEND_SMS: SendSmsJob,
    JobName.SEND_WHATSAPP: SendWhatsAppJob,
    JobName.CREATE_INAPP_NOTIFICATION: CreateInAppNotificationJob,
}


def parse_job(job_name: str, data: Any) -> NotificationJob:
    """The job's model; `InvalidJobDataError` naming each bad field by its wire path (`metadata.userId`)."""
    model = JOB_MODELS.get(job_name)
    if model is None:
        raise UnknownJobError(job_name)
    if not isinstance(data, dict):
        raise InvalidJobDataError(job_name, {"data": "must be an object"})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidJobDataError(job_name, _fields(exc)) from None


def _fields(exc: ValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"]) or "data"
        # "Value error, must be base64" -> "must be base64": the prefix says nothing to a reader.
        fields.setdefault(path, error["msg"].removeprefix("Value error, "))
    return fields
