"""Pre-send checks: what would hurt delivery or compliance, shown on the mass email page.

Warnings, not blockers: the marketer decides. Each check reads the same settings
and the same composition code the sender uses, so what it says is what will go out.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from massmail.composition import prepare
from massmail.dkim import configured_signer
from massmail.models import MassEmail, OutboundSettings
from massmail.placeholders import OPT_OUT_KEYS, CompositionError, keys_in, validate_mass_email

WARNING = "warning"  # likely to hurt delivery, compliance or the message itself
NOTICE = "notice"  # what the system will do for you; worth knowing, nothing to fix

LOCAL_HOSTS = {"localhost", "localhost.localdomain", "0.0.0.0", ""}


@dataclass(frozen=True)
class PresendWarning:
    code: str
    message: str
    level: str = WARNING


def presend_warnings(
    mass_email: MassEmail, outbound: OutboundSettings | None = None
) -> list[PresendWarning]:
    outbound = outbound or OutboundSettings.load()
    template_errors = validate_mass_email(mass_email)
    warnings = [
        *site_url_warnings(outbound.effective_site_url),
        *unsubscribe_warnings(mass_email, outbound),
        *text_part_warnings(mass_email),
        *[PresendWarning("placeholder", error) for error in template_errors],
        *dkim_warnings(),
    ]
    if not template_errors:
        warnings += sender_domain_warnings(mass_email, outbound)
    return warnings


def _is_local(host: str) -> bool:
    if host in LOCAL_HOSTS or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_unspecified


def site_url_warnings(site_url: str) -> list[PresendWarning]:
    parts = urlsplit(site_url)
    host = (parts.hostname or "").lower()
    warnings = []
    if _is_local(host):
        warnings.append(
            PresendWarning(
                "site_url_local",
                f"Links in the message point to {site_url}, which recipients cannot reach. "
                "Set the public site URL (Outbound email settings, or SITE_URL).",
            )
        )
    if parts.scheme != "https":
        warnings.append(
            PresendWarning(
                "site_url_not_https",
                f"Links use {parts.scheme or 'no scheme'}://, not https://: mail clients flag "
                "them, and one-click unsubscribe (RFC 8058) requires HTTPS, so messages go "
                "out without the List-Unsubscribe-Post header (Gmail and Yahoo require it "
                "from bulk senders).",
            )
        )
    return warnings


def _template_keys(mass_email: MassEmail) -> set[str]:
    template = mass_email.email_template
    return set(keys_in(template.body_html or "")) | set(keys_in(template.body_text or ""))


def unsubscribe_warnings(mass_email: MassEmail, outbound: OutboundSettings) -> list[PresendWarning]:
    if mass_email.campaign.is_informational:
        return [
            PresendWarning(
                "informational",
                "Informational campaign: no unsubscribe link, no one-click unsubscribe, and "
                "opted-out addresses still receive it. Use it only for transactional notices.",
            )
        ]
    has_link = bool(_template_keys(mass_email) & OPT_OUT_KEYS)
    if outbound.disable_mandatory_opt_out_link:
        warnings = [
            PresendWarning(
                "one_click_off",
                "One-click unsubscribe (List-Unsubscribe headers) is off because the mandatory "
                "opt-out link is disabled: Gmail and Yahoo require it from bulk senders.",
            )
        ]
        if not has_link:
            warnings.append(
                PresendWarning(
                    "no_unsubscribe_link",
                    "The template has no {optOutUrl} or {optOutLink} and none will be added: "
                    "recipients have no visible way to unsubscribe.",
                )
            )
        return warnings
    if not has_link:
        return [
            PresendWarning(
                "unsubscribe_appended",
                "The template has no visible unsubscribe link ({optOutUrl} or {optOutLink}): "
                "one will be appended at the end of the message.",
                NOTICE,
            )
        ]
    return []


def text_part_warnings(mass_email: MassEmail) -> list[PresendWarning]:
    if (mass_email.email_template.body_text or "").strip():
        return []
    return [
        PresendWarning(
            "text_generated",
            "The template has no text part: one will be generated from the HTML. "
            "Check it in the preview.",
            NOTICE,
        )
    ]


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".")


def _aligned(one: str, other: str) -> bool:
    """DMARC's relaxed alignment, approximately: one domain is the other or under it."""
    return one == other or one.endswith("." + other) or other.endswith("." + one)


def sender_domain_warnings(
    mass_email: MassEmail, outbound: OutboundSettings
) -> list[PresendWarning]:
    try:
        prepared = prepare(mass_email, outbound=outbound)
    except (CompositionError, ImproperlyConfigured):
        return []  # reported by the placeholder and DKIM checks
    from_domain = _domain(prepared.from_address)
    bounce_domain = _domain(prepared.bounce_address)
    warnings = []
    if not _aligned(from_domain, bounce_domain):
        what = "VERP address" if prepared.use_verp else "Return-Path"
        warnings.append(
            PresendWarning(
                "return_path_domain",
                f"The From domain {from_domain} does not match the {what} domain "
                f"{bounce_domain} ({prepared.bounce_address}): SPF will not align for DMARC.",
            )
        )
    dkim_domain = settings.DKIM_DOMAIN.lower() if prepared.dkim else ""
    if dkim_domain and not _aligned(from_domain, dkim_domain):
        warnings.append(
            PresendWarning(
                "dkim_domain",
                f"Messages are signed for {dkim_domain} but sent from {from_domain}: "
                "DKIM will not align for DMARC.",
            )
        )
    return warnings


def dkim_warnings() -> list[PresendWarning]:
    try:
        signer = configured_signer()
    except ImproperlyConfigured as error:
        return [PresendWarning("dkim_broken", f"DKIM is misconfigured: {error}")]
    if signer is None:
        return [
            PresendWarning(
                "dkim_missing",
                "No DKIM key is configured (DKIM_PRIVATE_KEY_PATH, DKIM_SELECTOR, DKIM_DOMAIN): "
                "unless your mail server signs, Gmail and Yahoo will reject or junk bulk mail.",
            )
        ]
    return []
