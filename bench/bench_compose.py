"""How fast messages are composed: prepare once, render per recipient, vs Django's email classes.

Sets up a throw-away SQLite database (or the DATABASE_URL given), a mass email
with a ~20 KB HTML template (placeholders, tracking links, no text part so one is
generated), and N contacts with queue items. Measures in the same run:

- prepare(): once per mass email;
- recipient_contexts(): loading portions of 500 items (a few queries each);
- render(): the per-recipient hot path (bytes ready for SMTP);
- render() with DKIM (RSA 2048) on a sample of 2,000;
- with --ascii, the same without any non-ASCII character (names, text);
- the baseline: Django's EmailMultiAlternatives(...).message().as_bytes() for the
  same, already personalised, subject/text/HTML (generous to the baseline: it
  does no substitution and no link signing at all).

    .venv/bin/python bench/bench_compose.py [--recipients 10000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
_TMP = tempfile.mkdtemp(prefix="massmail-bench-compose-")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{_TMP}/bench.sqlite3")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("MASSMAIL_VAR_DIR", _TMP)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.contenttypes.models import ContentType  # noqa: E402
from django.core.mail import EmailMultiAlternatives  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402

from campaigns.models import Campaign, EmailTemplate  # noqa: E402
from massmail import dkim as massmail_dkim  # noqa: E402
from massmail.composition import prepare  # noqa: E402
from massmail.models import MassEmail, OutboundSettings, QueueItem  # noqa: E402
from massmail.recipients import recipient_contexts  # noqa: E402
from targets.models import Account, Contact, EmailAddress, RecordEmailAddress  # noqa: E402
from tracking.models import TrackingUrl  # noqa: E402

PORTION = 500


def template_html(tracking_ids: list[int], ascii_only: bool) -> str:
    """About 20 KB of newsletter HTML with a dozen placeholders, lines under 998
    characters (else Django quoted-printable-encodes it in pure Python)."""
    links = "".join(
        f'<p><a href="{{trackingUrl:{pk}}}" style="color:#0645ad">Read story {pk}</a></p>\n'
        for pk in tracking_ids
    )
    paragraph = (
        '<p style="font-family:Arial,sans-serif;font-size:14px;line-height:1.5">'
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
        "incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud "
        "exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. Zürich café.</p>\n"
    )
    if ascii_only:
        paragraph = paragraph.replace("Zürich café", "Zurich cafe")
    head = (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><style>a{color:#0645ad}'
        '</style></head>\n<body><table width="600"><tr><td>\n'
        "<h1>Hello {Person.firstName}!</h1><p>Dear {Person.name} of {Contact.account.name},"
        " this is your digest for {today}.</p>\n"
    )
    tail = (
        "<p>Sent to {emailAddress}. &copy; {currentYear} Example Ltd.</p>"
        "<p>{optOutLink}</p></td></tr></table></body></html>"
    )
    body = head + links
    while len(body) < 19_500:
        body += paragraph
    return body + tail


def seed(recipients: int, ascii_only: bool = False) -> MassEmail:
    call_command("migrate", verbosity=0)
    outbound = OutboundSettings.load()
    outbound.site_url = "https://crm.example.com"
    outbound.open_tracking = True
    outbound.use_verp = True
    outbound.save()
    campaign = Campaign.objects.create(name="Bench", type=Campaign.Type.NEWSLETTER)
    tracking = [
        TrackingUrl.objects.create(campaign=campaign, name=f"L{n}", url="https://example.org/")
        for n in range(5)
    ]
    template = EmailTemplate.objects.create(
        name="Bench",
        subject="{Person.firstName}, your weekly digest",
        body_html=template_html([t.pk for t in tracking], ascii_only),
    )
    mass_email = MassEmail.objects.create(
        campaign=campaign,
        name="Bench",
        start_at=timezone.now(),
        email_template=template,
        from_address="news@example.com",
        from_name="Example News",
    )
    account = Account.objects.create(name="Acme & Sons")
    contacts = Contact.objects.bulk_create(
        Contact(
            first_name=f"{'Zoe' if ascii_only else 'Zoë'}{n}", last_name=f"P{n}", account=account
        )
        for n in range(recipients)
    )
    addresses = EmailAddress.objects.bulk_create(
        EmailAddress(address=f"person{n}@example.com") for n in range(recipients)
    )
    content_type = ContentType.objects.get_for_model(Contact)
    RecordEmailAddress.objects.bulk_create(
        RecordEmailAddress(content_type=content_type, object_id=c.pk, email_address=a, primary=True)
        for c, a in zip(contacts, addresses, strict=True)
    )
    QueueItem.objects.bulk_create(
        QueueItem(
            mass_email=mass_email,
            content_type=content_type,
            object_id=c.pk,
            email_address=a,
        )
        for c, a in zip(contacts, addresses, strict=True)
    )
    return mass_email


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f} msg/s ({seconds * 1e6 / count:,.0f} µs each)"


def run(recipients: int, ascii_only: bool) -> None:
    mass_email = seed(recipients, ascii_only)
    items = list(QueueItem.objects.select_related("email_address").order_by("id"))
    portions = [items[start : start + PORTION] for start in range(0, len(items), PORTION)]

    started = time.perf_counter()
    prepared = prepare(mass_email)
    prepare_ms = (time.perf_counter() - started) * 1000

    # As the sender does it: contexts for a portion, render each, hand the bytes on.
    context_seconds = render_seconds = 0.0
    total_bytes = 0
    for portion in portions:
        started = time.perf_counter()
        contexts = recipient_contexts(portion)
        middle = time.perf_counter()
        for item in portion:
            total_bytes += len(prepared.render(item, contexts[item.id]).raw)
        context_seconds += middle - started
        render_seconds += time.perf_counter() - middle

    # Baseline: Django's email classes building the same, already personalised,
    # content (only the Django part is timed).
    django_seconds = 0.0
    for portion in portions:
        contexts = recipient_contexts(portion)
        for item in portion:
            r = prepared.render(item, contexts[item.id])
            subject, text, html, to = r.subject, r.text, r.html, r.headers["To"]
            started = time.perf_counter()
            message = EmailMultiAlternatives(
                subject, text, r.headers["From"], [to], headers={"Precedence": "bulk"}
            )
            message.attach_alternative(html, "text/html")
            message.message().as_bytes()
            django_seconds += time.perf_counter() - started

    n = len(items)
    print(
        f"template: {len(mass_email.email_template.body_html):,} chars HTML; "
        f"message: {total_bytes / n / 1024:.1f} KB (HTML + generated text); recipients: {n:,}"
    )
    print(f"prepare() once:                     {prepare_ms:.1f} ms")
    print(f"recipient_contexts, portions of {PORTION}: {rate(n, context_seconds)}")
    print(f"render():                           {rate(n, render_seconds)}")
    print(f"render() + contexts:                {rate(n, render_seconds + context_seconds)}")
    print(f"baseline EmailMultiAlternatives(...).message().as_bytes(): {rate(n, django_seconds)}")
    print(f"ratio render / baseline:            {django_seconds / render_seconds:.1f}x")
    print(
        "ratio render + contexts / baseline: "
        f"{django_seconds / (render_seconds + context_seconds):.1f}x"
    )
    bench_dkim(mass_email, portions[:4])


def bench_dkim(mass_email: MassEmail, portions: list[list[QueueItem]]) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = Path(_TMP) / "dkim.pem"
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    settings.DKIM_PRIVATE_KEY_PATH = str(key)
    settings.DKIM_SELECTOR = "bench"
    settings.DKIM_DOMAIN = "example.com"
    massmail_dkim._signer.cache_clear()
    prepared = prepare(mass_email)
    seconds, count = 0.0, 0
    for portion in portions:
        contexts = recipient_contexts(portion)
        started = time.perf_counter()
        for item in portion:
            prepared.render(item, contexts[item.id])
        seconds += time.perf_counter() - started
        count += len(portion)
    print(f"render() with DKIM rsa-sha256 2048: {rate(count, seconds)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument(
        "--ascii", action="store_true", help="no non-ASCII text (Django then sends 7bit)"
    )
    args = parser.parse_args()
    try:
        run(args.recipients, args.ascii)
    finally:
        shutil.rmtree(_TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
