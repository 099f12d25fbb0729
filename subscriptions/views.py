"""Public pages of subscription forms: the form, its token, the confirmation link.

The form's POST is exempt from Django's CSRF check on purpose: it must work from
a page of another origin, which cannot hold our CSRF cookie. It uses no cookie
or session, so a cross-site request forgery can do nothing a stranger could not
do by typing the address; the signed form token (see subscriptions.signup)
stands in for the CSRF token, and double opt-in means only the address's owner
can make a sign-up count. The confirmation page is ours, so its button keeps
Django's CSRF protection.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods

from massmail.models import OutboundSettings
from subscriptions import signup
from subscriptions.consent import Visit
from subscriptions.models import EXTRA_FIELDS, SubscriptionForm
from tracking.views import no_cache


def _form(key: str) -> SubscriptionForm:
    form = SubscriptionForm.objects.filter(key=key, active=True).first()
    if form is None:
        raise Http404
    return form


def form_context(form: SubscriptionForm, action: str, token: str = "") -> dict:
    return {
        "form": form,
        "action": action,
        "token": token,
        "honeypot": signup.HONEYPOT_FIELD,
        "extra_fields": [(name, EXTRA_FIELDS[name]) for name in form.extra_fields],
    }


@csrf_exempt  # cross-origin by design: see the module's docstring
@require_http_methods(["GET", "HEAD", "POST"])
def subscribe(request: HttpRequest, key: str) -> HttpResponse:
    form = _form(key)
    with translation.override(form.language):
        if request.method != "POST":
            return _page(request, form)
        submission = signup.sign_up(form, request.POST.dict(), Visit.from_request(request))
        if submission.outcome == signup.Outcome.INVALID:
            return _page(request, form, errors=submission.errors, data=request.POST, status=400)
        if submission.outcome == signup.Outcome.LIMITED:
            response = render(request, "subscriptions/limited.html", {"form": form}, status=429)
            response["Retry-After"] = str(int(signup.LIMIT_WINDOW.total_seconds()))
            return no_cache(response)
        target = form.thanks_url or reverse("subscriptions:thanks", args=[form.key])
        return HttpResponseRedirect(target, status=303)


def _page(request, form, *, errors=None, data=None, status=200) -> HttpResponse:
    context = form_context(form, request.path, signup.form_token(form))
    context.update(errors=errors or {}, data=data or {})
    return no_cache(render(request, "subscriptions/form_page.html", context, status=status))


@require_GET
def form_token(request: HttpRequest, key: str) -> HttpResponse:
    """A fresh token for the embedded snippet; readable from any origin, no credentials."""
    response = JsonResponse({"token": signup.form_token(_form(key))})
    response["Access-Control-Allow-Origin"] = "*"
    return no_cache(response)


@require_GET
def thanks(request: HttpRequest, key: str) -> HttpResponse:
    form = _form(key)
    with translation.override(form.language):
        context = {"form": form, "text": form.thanks_text}
        return render(request, "subscriptions/message.html", context)


@csrf_protect
@require_http_methods(["GET", "HEAD", "POST"])
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a button, POST confirms: mail scanners follow links, people press buttons."""
    sign_up = signup.read_confirm_token(token)
    if sign_up is None:
        return no_cache(render(request, "subscriptions/invalid_link.html", status=404))
    form = sign_up.form
    with translation.override(form.language):
        if request.method == "POST":
            signup.confirm(sign_up, Visit.from_request(request))
            target = form.confirmed_url or reverse("subscriptions:confirmed", args=[form.key])
            return HttpResponseRedirect(target, status=303)
        context = {"form": form, "address": sign_up.address}
        return no_cache(render(request, "subscriptions/confirm.html", context))


@require_GET
def confirmed(request: HttpRequest, key: str) -> HttpResponse:
    form = _form(key)
    with translation.override(form.language):
        context = {"form": form, "text": form.confirmed_text, "confirmed": True}
        return render(request, "subscriptions/message.html", context)


def snippet(form: SubscriptionForm) -> str:
    """The HTML a marketer pastes on a website: the form, and a script fetching its token."""
    site = OutboundSettings.load().effective_site_url
    context = form_context(form, f"{site}/subscribe/{form.key}/")
    context["token_url"] = f"{site}/subscribe/{form.key}/token/"
    with translation.override(form.language):
        return render_to_string("subscriptions/snippet.html", context).strip()
