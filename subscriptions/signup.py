"""Signing up through a form and confirming it: the double opt-in workflow.

- `form_token(form)` is put into every rendering of the form (our page, or the
  embedded snippet fetching it). It is signed under a salt of its own and names
  the form and the time it was made, so a submission proves it came from a form
  of ours at least MIN_SECONDS earlier (bots post at once) and at most
  FORM_TOKEN_MAX_AGE earlier. It replaces Django's CSRF cookie, which a form on
  another origin cannot have: the endpoint uses no cookie and no session, so a
  forged cross-site POST can at most ask for a confirmation email.
- `sign_up()` drops honeypot and too-fast submissions silently, refuses beyond
  the per-client and per-address limits, and otherwise keeps a SignUp with its
  consent record and sends the confirmation email.
- `confirm()` is what the signed confirmation link's button does: the address
  joins the form's lists as its existing contact or lead, or as a new one.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import smtplib
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Case, Exists, IntegerField, OuterRef, Value, When
from django.utils import timezone
from django.utils.html import escape

from massmail.composition import text_from_html
from massmail.models import OutboundSettings
from massmail.placeholders import split
from subscriptions.consent import Visit, record_consent
from subscriptions.models import EXTRA_FIELDS, ConsentRecord, SignUp, SubscriptionForm
from targets.models import (
    Contact,
    EmailAddress,
    Lead,
    RecordEmailAddress,
    Suppression,
    TargetListMember,
    address_hash,
    validate_address,
)
from tracking.links import _decode_uid, _encode_uid

logger = logging.getLogger(__name__)

SALT_FORM = "massmail.subscription-form"
SALT_CONFIRM = "massmail.subscription-confirm"
HONEYPOT_FIELD = "website"
MIN_SECONDS = getattr(settings, "MASSMAIL_FORM_MIN_SECONDS", 3)
FORM_TOKEN_MAX_AGE = timedelta(days=1)
LIMIT_WINDOW = timedelta(hours=1)
LIMIT_PER_CLIENT = getattr(settings, "MASSMAIL_SIGNUPS_PER_CLIENT_PER_HOUR", 5)
LIMIT_PER_ADDRESS = getattr(settings, "MASSMAIL_SIGNUPS_PER_ADDRESS_PER_HOUR", 3)


class Outcome:
    ACCEPTED = "accepted"
    DROPPED = "dropped"  # honeypot or too fast: answered like a success, nothing done
    LIMITED = "limited"
    INVALID = "invalid"


@dataclass
class Submission:
    outcome: str
    errors: dict[str, str]
    sign_up: SignUp | None = None


def form_token(form: SubscriptionForm, now: float | None = None) -> str:
    return signing.dumps({"f": form.key, "t": int(now or time.time())}, salt=SALT_FORM)


def token_age(form: SubscriptionForm, token: str) -> float | None:
    """Seconds since the token was made for this form; None when forged or too old."""
    try:
        value = signing.loads(token, salt=SALT_FORM)
    except signing.BadSignature:
        return None
    if not isinstance(value, dict) or value.get("f") != form.key:
        return None
    age = time.time() - float(value.get("t", 0))
    return age if 0 <= age <= FORM_TOKEN_MAX_AGE.total_seconds() else None


def client_key(ip: str | None) -> str:
    key = hashlib.sha256(f"{SALT_FORM}:{settings.SECRET_KEY}".encode()).digest()
    return hmac.new(key, (ip or "").encode(), hashlib.sha256).hexdigest()


def sign_up(form: SubscriptionForm, data: dict[str, str], visit: Visit) -> Submission:
    if data.get(HONEYPOT_FIELD):
        return Submission(Outcome.DROPPED, {})
    age = token_age(form, data.get("token", ""))
    if age is None:
        return Submission(Outcome.INVALID, {"token": "This form has expired; please try again."})
    if age < MIN_SECONDS:
        return Submission(Outcome.DROPPED, {})
    try:
        address = validate_address(data.get("email", ""))
    except ValidationError:
        return Submission(Outcome.INVALID, {"email": "Please enter a valid email address."})
    if form.ask_last_name and not data.get("last_name", "").strip():
        return Submission(Outcome.INVALID, {"last_name": "Please enter your last name."})
    with transaction.atomic():
        # One client's or address's sign-ups are counted under a lock, so parallel
        # posts cannot all pass the same count.
        SubscriptionForm.objects.select_for_update().filter(pk=form.pk).first()
        if _over_limit(address, client_key(visit.ip), visit.at):
            return Submission(Outcome.LIMITED, {})
        sign_up = _keep(form, address, data, visit)
    # After the commit: the link must name a sign-up that exists when it is clicked.
    try:
        send_confirmation(sign_up)
    except (smtplib.SMTPException, OSError):
        # Kept: the person may ask again; the sign-up expires unconfirmed otherwise.
        logger.exception("Could not send the confirmation of sign-up %s", sign_up.pk)
    return Submission(Outcome.ACCEPTED, {}, sign_up)


def _over_limit(address: str, key: str, now) -> bool:
    recent = SignUp.objects.filter(created_at__gt=now - LIMIT_WINDOW)
    return (
        recent.filter(client_key=key).count() >= LIMIT_PER_CLIENT
        or recent.filter(address=address).count() >= LIMIT_PER_ADDRESS
    )


def _keep(form: SubscriptionForm, address: str, data: dict[str, str], visit: Visit) -> SignUp:
    sign_up = SignUp.objects.create(
        form=form,
        address=address,
        first_name=data.get("first_name", "").strip()[:100] if form.ask_first_name else "",
        last_name=data.get("last_name", "").strip()[:100] if form.ask_last_name else "",
        extra={
            name: data[name].strip()[:100]
            for name in form.extra_fields
            if name in EXTRA_FIELDS and data.get(name, "").strip()
        },
        ip=visit.short_ip,
        client_key=client_key(visit.ip),
        user_agent=visit.user_agent,
        created_at=visit.at,
        expires_at=visit.at + form.confirm_within,
    )
    record_consent(ConsentRecord.Action.SIGN_UP, address, visit, form=form, text=form.consent_text)
    return sign_up


# ---------------------------------------------------------------- the confirmation email


def confirm_token(sign_up: SignUp) -> str:
    return signing.TimestampSigner(salt=SALT_CONFIRM).sign(_encode_uid(sign_up.uid))


def read_confirm_token(token: str) -> SignUp | None:
    """The pending, unexpired sign-up a link names; None for forged, expired or used links."""
    signer = signing.TimestampSigner(salt=SALT_CONFIRM)
    try:
        value = signer.unsign(token)
    except signing.BadSignature:
        return None
    uid = _decode_uid(value)
    sign_up = SignUp.objects.select_related("form").filter(uid=uid).first() if uid else None
    if sign_up is None:
        return None
    try:
        signer.unsign(token, max_age=sign_up.form.confirm_within)
    except signing.SignatureExpired:
        return None
    return sign_up if not sign_up.is_expired() else None


def confirm_url(sign_up: SignUp) -> str:
    site = OutboundSettings.load().effective_site_url
    return f"{site}/subscribe/confirm/{confirm_token(sign_up)}/"


def _fill(text: str, values: dict[str, str], *, html: bool) -> str:
    literals, keys = split(text)
    parts = [literals[0]]
    for key, literal in zip(keys, literals[1:], strict=True):
        value = values.get(key, "")
        parts += [escape(value) if html else value, literal]
    return "".join(parts)


def send_confirmation(sign_up: SignUp) -> None:
    """The form's confirmation template, filled for this sign-up, through EMAIL_BACKEND."""
    template = sign_up.form.confirmation_template
    values = {
        "confirmUrl": confirm_url(sign_up),
        "emailAddress": sign_up.address,
        "Person.firstName": sign_up.first_name,
        "Person.lastName": sign_up.last_name,
        "Person.name": " ".join(p for p in (sign_up.first_name, sign_up.last_name) if p),
    }
    html = _fill(template.body_html, values, html=True)
    text = _fill(template.body_text, values, html=False) if template.body_text else ""
    outbound = OutboundSettings.load()
    from_address = outbound.from_address or settings.DEFAULT_FROM_EMAIL
    if outbound.from_address and outbound.from_name:
        from_address = f"{outbound.from_name} <{outbound.from_address}>"
    message = EmailMultiAlternatives(
        subject=_fill(template.subject, values, html=False),
        body=text or text_from_html(html),
        from_email=from_address,
        to=[sign_up.address],
    )
    message.attach_alternative(html, "text/html")
    message.send()


# ---------------------------------------------------------------- confirming


@dataclass
class Confirmation:
    record: Contact | Lead
    resubscribed: bool


@transaction.atomic
def confirm(sign_up: SignUp, visit: Visit) -> Confirmation | None:
    """Add the person to the form's lists; None when already confirmed (a second click)."""
    claimed = SignUp.objects.filter(pk=sign_up.pk, status=SignUp.Status.PENDING).update(
        status=SignUp.Status.CONFIRMED, confirmed_at=visit.at
    )
    if not claimed:
        return None
    form = sign_up.form
    # The person's own confirmed consent is what may bring an erased address back.
    Suppression.objects.filter(address_hash=address_hash(sign_up.address)).delete()
    email = EmailAddress.objects.for_address(sign_up.address)
    resubscribed = EmailAddress.objects.filter(pk=email.pk, opt_out=True).update(opt_out=False)
    record = _matching_record(email, form) or _new_record(sign_up, form)
    content_type = ContentType.objects.get_for_model(record)
    lists = list(form.target_lists.all())
    for target_list in lists:
        member, created = TargetListMember.objects.get_or_create(
            target_list=target_list, content_type=content_type, object_id=record.pk
        )
        if not created and member.opted_out:
            TargetListMember.objects.filter(pk=member.pk).update(opted_out=False)
            resubscribed += 1
    Action = ConsentRecord.Action
    action = Action.RE_SUBSCRIPTION if resubscribed else Action.CONFIRMATION
    record_consent(action, sign_up.address, visit, form=form, text=form.consent_text, lists=lists)
    return Confirmation(record, bool(resubscribed))


def _matching_record(email: EmailAddress, form: SubscriptionForm) -> Contact | Lead | None:
    """An existing contact or lead with the address: the form's type first, primary first."""
    types = {Contact: SubscriptionForm.RecordType.CONTACT, Lead: SubscriptionForm.RecordType.LEAD}
    content_types = ContentType.objects.get_for_models(*types)
    preferred = content_types[Contact if form.record_type == "contact" else Lead]
    link = (
        RecordEmailAddress.objects.filter(
            email_address=email, content_type__in=content_types.values()
        )
        .annotate(
            preference=Case(
                When(content_type=preferred, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            )
        )
        .order_by("preference", "-primary", "object_id")
        .first()
    )
    if link is None:
        return None
    model = Contact if link.content_type_id == content_types[Contact].pk else Lead
    return model.objects.filter(pk=link.object_id).first()


def _new_record(sign_up: SignUp, form: SubscriptionForm) -> Contact | Lead:
    model = Contact if form.record_type == SubscriptionForm.RecordType.CONTACT else Lead
    fields = {"first_name": sign_up.first_name, "last_name": sign_up.last_name, **sign_up.extra}
    if model is Lead:
        fields["source"] = f"Subscription form: {form.name}"[:100]
    record = model.objects.create(**fields)
    record.set_email_addresses(sign_up.address)
    return record


@transaction.atomic
def delete_expired(now=None) -> int:
    """Unconfirmed sign-ups past their time go, with their sign-up consent records.

    Nobody agreed to anything that lasts: keeping the address would be keeping
    personal data of someone who may never have asked (anyone can type an address).
    """
    expired = SignUp.objects.filter(
        status=SignUp.Status.PENDING, expires_at__lte=now or timezone.now()
    )
    ConsentRecord.objects.filter(action=ConsentRecord.Action.SIGN_UP).filter(
        Exists(
            expired.filter(
                address=OuterRef("address"), form=OuterRef("form"), created_at=OuterRef("at")
            )
        )
    ).delete()
    deleted, _ = expired.delete()
    return deleted
