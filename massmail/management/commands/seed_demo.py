"""Demo data: a newsletter campaign whose mass email is due, so the first send tick sends it.

Idempotent: every object is looked up by its name first, so a second run changes nothing.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from campaigns.models import Campaign, EmailTemplate
from massmail.models import MassEmail, OutboundSettings
from massmail.roles import MARKETERS, ensure_marketers_group
from massmail.schedule import TASK
from targets.models import Account, Contact, Lead, TargetList, set_email_addresses
from tracking.models import TrackingUrl

DEMO_PASSWORD = "massmail-demo"

ACCOUNTS = [
    ("Acme Corporation", "info@acme.example", "Manufacturing", "Springfield"),
    ("Globex", "hello@globex.example", "Energy", "Cypress Creek"),
    ("Initech", "office@initech.example", "Software", "Austin"),
]
CONTACTS = [
    ("Jane", "Doe", "jane.doe@acme.example", "Acme Corporation"),
    ("John", "Smith", "john.smith@acme.example", "Acme Corporation"),
    ("Hank", "Scorpio", "hank@globex.example", "Globex"),
    ("Peter", "Gibbons", "peter@initech.example", "Initech"),
    ("Milton", "Waddams", "milton@initech.example", "Initech"),
    ("Ada", "Lovelace", "ada@example.org", None),
]
LEADS = [
    # Jane is also a lead under the same address: she gets one message, as a contact.
    ("Jane", "Doe", "JANE.DOE@acme.example", "Acme Corporation"),
    ("Grace", "Hopper", "grace@navy.example", "US Navy"),
    ("Alan", "Turing", "alan@bletchley.example", "Bletchley Park"),
    ("Linus", "Torvalds", "linus@kernel.example", "Linux Foundation"),
]

# Accounts are on the demo lists too: they have no first name, hence the fallbacks.
TEMPLATE_HTML = """<h1>Hello {Person.firstName|there},</h1>
<p>Spring is here, and so is our newsletter for {currentYear}.</p>
<p>Read about <a href="{trackingUrl:%(link)s}">our spring offers</a>.</p>
<p>Kind regards,<br>The Example team</p>
<p style="font-size:small">You receive this because you are on our list.
{optOutLink}</p>"""


class Command(BaseCommand):
    help = "Create demo targets, lists, a template and a due newsletter mass email (idempotent)."

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        OutboundSettings.load()
        self.create_users()
        accounts = {
            name: self.account(name, email, industry, city)
            for name, email, industry, city in ACCOUNTS
        }
        contacts = [
            self.contact(first, last, email, accounts.get(account))
            for first, last, email, account in CONTACTS
        ]
        leads = [self.lead(*row) for row in LEADS]

        subscribers = self.target_list("Newsletter subscribers", [*contacts[:5], *leads])
        customers = self.target_list("Customers", [*accounts.values(), contacts[5]])
        do_not_contact = self.target_list("Do not contact", [contacts[4]])

        campaign, created = Campaign.objects.get_or_create(
            name="Spring newsletter",
            defaults={
                "type": Campaign.Type.NEWSLETTER,
                "status": Campaign.Status.ACTIVE,
                "start_date": timezone.localdate(),
                "description": "Demo campaign created by seed_demo.",
            },
        )
        if created:
            campaign.target_lists.set([subscribers, customers])
            campaign.excluding_target_lists.set([do_not_contact])
        link, _ = TrackingUrl.objects.get_or_create(
            campaign=campaign,
            name="Spring offers",
            defaults={"url": "https://example.com/spring-offers"},
        )
        template, _ = EmailTemplate.objects.get_or_create(
            name="Spring newsletter",
            defaults={
                "subject": "{Person.firstName|Hello}, our spring news",
                "body_html": TEMPLATE_HTML % {"link": link.pk},
            },
        )
        mass_email, created = MassEmail.objects.get_or_create(
            campaign=campaign,
            name="Spring newsletter: first send",
            defaults={
                "status": MassEmail.Status.PENDING,
                "start_at": timezone.now(),
                "email_template": template,
                "from_address": "news@example.com",
                "from_name": "Example News",
                "reply_to_address": "hello@example.com",
            },
        )
        if created:
            mass_email.target_lists.set(campaign.target_lists.all())
            mass_email.excluding_target_lists.set(campaign.excluding_target_lists.all())
        self.make_send_tick_due()
        self.stdout.write(
            self.style.SUCCESS("Demo data ready.")
            + f"\n  administrator: admin / {DEMO_PASSWORD}"
            + f"\n  marketer:      marketer / {DEMO_PASSWORD}"
            + f"\n  mass email '{mass_email}' is {mass_email.get_status_display()}, "
            f"start {mass_email.start_at:%Y-%m-%d %H:%M %Z}"
        )

    def make_send_tick_due(self) -> None:
        """Beat counts a job's first interval from its start: without this the demo's
        first send waits 10 minutes. One interval back, the tick is due when beat starts."""
        task = PeriodicTask.objects.filter(task=TASK, enabled=True).first()
        if task is not None and task.interval is not None:
            task.last_run_at = timezone.now() - task.interval.schedule.run_every
            task.save(update_fields=["last_run_at"])

    def create_users(self) -> None:
        User = get_user_model()
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser(
                "admin", "admin@example.com", DEMO_PASSWORD, first_name="Ada", last_name="Admin"
            )
        if not User.objects.filter(username="marketer").exists():
            marketer = User.objects.create_user(
                "marketer",
                "marketer@example.com",
                DEMO_PASSWORD,
                first_name="Mark",
                last_name="Eter",
                is_staff=True,
            )
            ensure_marketers_group()
            marketer.groups.add(Group.objects.get(name=MARKETERS))

    def account(self, name: str, email: str, industry: str, city: str) -> Account:
        account, created = Account.objects.get_or_create(
            name=name, defaults={"industry": industry, "city": city}
        )
        if created:
            set_email_addresses(account, email)
        return account

    def contact(self, first: str, last: str, email: str, account: Account | None) -> Contact:
        contact, created = Contact.objects.get_or_create(
            first_name=first, last_name=last, defaults={"account": account}
        )
        if created:
            set_email_addresses(contact, email)
        return contact

    def lead(self, first: str, last: str, email: str, company: str) -> Lead:
        lead, created = Lead.objects.get_or_create(
            first_name=first, last_name=last, defaults={"account_name": company, "source": "Web"}
        )
        if created:
            set_email_addresses(lead, email)
        return lead

    def target_list(self, name: str, records: list) -> TargetList:
        target_list, created = TargetList.objects.get_or_create(name=name)
        if created:
            for record in records:
                target_list.add(record)
        return target_list
