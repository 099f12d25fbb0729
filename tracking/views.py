"""Public endpoints: read the signed token, call hits/unsubscribe, answer.

A forged, altered or truncated token, an unknown queue item or a tracking URL
of another campaign is a plain 404 and writes nothing. No GET changes a
subscription: the page's button POSTs (CSRF-protected), and only the RFC 8058
one-click POST (`List-Unsubscribe=One-Click`, no cookies, no CSRF token) acts
on a bare POST.
"""

from __future__ import annotations

import base64
import uuid

import markdown
import nh3
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.safestring import mark_safe
from django.utils.translation import get_language
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods

from subscriptions.consent import Visit as ConsentVisit
from subscriptions.consent import record_unsubscribe
from targets.models import EmailAddress
from tracking import links
from tracking.hits import record_hit
from tracking.models import Hit, TrackingUrl, UnsubscribePageText
from tracking.rules import Visit
from tracking.unsubscribe import (
    Subscription,
    find_subscription,
    set_address_opt_out,
    set_topics,
    subscribe_again,
)
from tracking.unsubscribe import (
    unsubscribe as apply_unsubscribe,
)

# A transparent 1x1 GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
# Every fetch must reach us to be counted; no proxy or client may keep a copy.
NO_CACHE = "no-cache, no-store, must-revalidate, max-age=0, private"
ONE_CLICK_FIELD = "List-Unsubscribe"
ONE_CLICK_VALUE = "One-Click"


def no_cache(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = NO_CACHE
    response["Pragma"] = "no-cache"
    response["Expires"] = "0"
    return response


# csrf_exempt: they accept no unsafe method, and without it CSRF refuses those with 403
# before require_http_methods can say 405.
@csrf_exempt
@require_http_methods(["GET", "HEAD"])
def click(request: HttpRequest, token: str) -> HttpResponse:
    found = links.read_click_token(token)
    if found is None:
        raise Http404
    uid, tracking_url_id = found
    destination = record_hit(Hit.Kind.CLICK, uid, Visit.from_request(request), tracking_url_id)
    if destination is None:
        raise Http404
    if destination.action == TrackingUrl.Action.SHOW_MESSAGE or not destination.url:
        html = nh3.clean(markdown.markdown(destination.message))
        response = render(request, "tracking/message.html", {"message_html": mark_safe(html)})
    else:
        # Only ever the URL stored on the tracking URL: no open redirect.
        response = HttpResponseRedirect(destination.url)
    return no_cache(response)


@csrf_exempt
@require_http_methods(["GET", "HEAD"])
def open_pixel(request: HttpRequest, token: str) -> HttpResponse:
    uid = links.read_open_token(token)
    if uid is None or record_hit(Hit.Kind.OPEN, uid, Visit.from_request(request)) is None:
        raise Http404
    return no_cache(HttpResponse(PIXEL, content_type="image/gif"))


@require_http_methods(["GET", "HEAD", "POST"])
def trap(request: HttpRequest, token: str) -> HttpResponse:
    """The hidden link: only machines follow it."""
    uid = links.read_trap_token(token)
    if uid is None or record_hit(Hit.Kind.TRAP, uid, Visit.from_request(request)) is None:
        raise Http404
    response = HttpResponse("", content_type="text/plain")
    response["X-Robots-Tag"] = "noindex, nofollow"
    return no_cache(response)


@csrf_exempt  # for the one-click POST only; the page's own form is checked below
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    uid = links.read_unsubscribe_token(token)
    if uid is None:
        raise Http404
    # The value stripped: a body sent as a line ends with CRLF, which form decoding keeps.
    if (
        request.method == "POST"
        and request.POST.get(ONE_CLICK_FIELD, "").strip() == ONE_CLICK_VALUE
    ):
        return _one_click(request, uid)
    return _unsubscribe_page(request, uid)


def _one_click(request: HttpRequest, uid: uuid.UUID) -> HttpResponse:
    """RFC 8058: act on the POST and answer 200, no redirect; repeating changes nothing."""
    subscription = find_subscription(uid)
    if subscription is None:
        raise Http404
    if apply_unsubscribe(subscription):
        _record(request, subscription)
    return no_cache(HttpResponse("Unsubscribed.\n", content_type="text/plain; charset=utf-8"))


@csrf_protect
def _unsubscribe_page(request: HttpRequest, uid: uuid.UUID) -> HttpResponse:
    subscription = find_subscription(uid)
    if subscription is None:
        raise Http404
    if request.method == "POST":
        done = _apply_choice(request, subscription)
        return HttpResponseRedirect(f"{request.path}?done={done}", status=303)
    record_hit(Hit.Kind.UNSUBSCRIBE_PAGE, uid, Visit.from_request(request))
    topics = subscription.topics()
    context = {
        "address": subscription.address.address,
        "entirely": subscription.entirely,
        "target_lists": subscription.target_lists,
        "unsubscribed": subscription.is_unsubscribed(),
        # The preference centre, when there is a choice to make beyond this message's list.
        "topics": topics if len(topics) > 1 else [],
    }
    return _render_page(request, context)


def _apply_choice(request: HttpRequest, subscription: Subscription) -> str:
    choice = request.POST.get("action")
    if choice == "unsubscribe":
        if apply_unsubscribe(subscription):
            _record(request, subscription)
        return "unsubscribed"
    if choice == "subscribe":
        if subscribe_again(subscription):
            _record(request, subscription, again=True)
        return "subscribed"
    if choice in ("topics", "leave_all"):
        keep = {int(pk) for pk in request.POST.getlist("keep") if pk.isdigit()}
        choices = set_topics(subscription, keep if choice == "topics" else set())
        visit = ConsentVisit.from_request(request)
        address = subscription.address.address
        if choices.left:
            record_unsubscribe(address, visit, choices.left, entirely=False)
        if choices.rejoined:
            record_unsubscribe(address, visit, choices.rejoined, entirely=False, again=True)
        if choice == "leave_all":
            if apply_unsubscribe(subscription):
                _record(request, subscription)
            return "unsubscribed"
        return "saved"
    raise Http404


def _record(request: HttpRequest, subscription: Subscription, *, again: bool = False) -> None:
    """The person's consent record: every opt-out and its undoing, with who and when."""
    record_unsubscribe(
        subscription.address.address,
        ConsentVisit.from_request(request),
        subscription.target_lists,
        entirely=subscription.entirely,
        again=again,
    )


def _render_page(request: HttpRequest, context: dict) -> HttpResponse:
    done = request.GET.get("done")
    context = {
        **context,
        "done": done if done in ("unsubscribed", "subscribed", "saved") else "",
        "texts": UnsubscribePageText.for_language(get_language() or ""),
    }
    return no_cache(render(request, "tracking/unsubscribe.html", context))


@csrf_protect
@require_http_methods(["GET", "HEAD", "POST"])
def address_unsubscribe(request: HttpRequest, address: str, signature: str) -> HttpResponse:
    """The address form: toggles only the address's opt_out, writes no log entry."""
    email = links.read_address_unsubscribe(address, signature)
    if email is None:
        raise Http404
    if request.method == "POST":
        choice = request.POST.get("action")
        if choice not in ("unsubscribe", "subscribe"):
            raise Http404
        before = EmailAddress.objects.filter(address=email, opt_out=True).exists()
        set_address_opt_out(email, choice == "unsubscribe")
        if before != (choice == "unsubscribe"):
            visit = ConsentVisit.from_request(request)
            record_unsubscribe(email, visit, [], entirely=True, again=choice == "subscribe")
        done = "unsubscribed" if choice == "unsubscribe" else "subscribed"
        return HttpResponseRedirect(f"{request.path}?done={done}", status=303)
    opted_out = EmailAddress.objects.filter(address=email, opt_out=True).exists()
    context = {"address": email, "entirely": True, "target_lists": [], "unsubscribed": opted_out}
    return _render_page(request, context)
