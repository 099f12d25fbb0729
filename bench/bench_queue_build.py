"""How fast a mass email's queue is built from 1,000,000 memberships on PostgreSQL.

Seeds a dedicated database set-based (generate_series): 4 target types (accounts,
contacts, leads, users), 3 including lists holding 1,000,000 memberships, an excluding
list of 50,000 records, addresses shared between contacts and leads, some opted-out
memberships, opted-out and invalid addresses. Then times, in the same run:
- massmail.queue.build_queue: one INSERT ... SELECT DISTINCT ON;
- the baseline: the reference product's per-row algorithm (walk every member of every
  list, type by type, load its record and primary address, skip what was met, insert a
  queue item) re-expressed in the ORM, on a sample of the same lists, extrapolated.

    .venv/bin/python bench/bench_queue_build.py [--members 1000000] [--sample 5000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import benchdb

ROOT = Path(__file__).resolve().parent.parent
benchdb.use_database("queue")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.contenttypes.models import ContentType  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from campaigns.models import Campaign, EmailTemplate  # noqa: E402
from massmail.models import MassEmail, QueueItem  # noqa: E402
from massmail.queue import build_queue  # noqa: E402
from targets.models import (  # noqa: E402
    Account,
    Contact,
    Lead,
    RecordEmailAddress,
    TargetList,
    TargetListMember,
)
from targets.registry import target_types  # noqa: E402

# Records per type; memberships: list 1 = all accounts + all contacts (500k),
# list 2 = all leads + all users (350k), list 3 = the first 150k contacts again (150k).
ACCOUNTS, CONTACTS, LEADS, USERS = 100_000, 400_000, 300_000, 50_000
EXCLUDED = 50_000  # contacts 150,001..200,000 are in the excluding list
SHARED = 20_000  # leads 1..20,000 use the address of contacts 1..20,000


def seed(scale: float) -> dict[str, int]:
    sizes = {k: int(v * scale) for k, v in dict(a=ACCOUNTS, c=CONTACTS, l=LEADS, u=USERS).items()}
    cts = {m: ContentType.objects.get_for_model(m).pk for m in (Account, Contact, Lead)}
    cts["user"] = ContentType.objects.get_for_model(get_user_model()).pk
    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE targets_account, targets_contact, targets_lead, auth_user,"
            " targets_emailaddress, targets_recordemailaddress, targets_targetlistmember,"
            " targets_targetlist, massmail_queueitem, massmail_massemail, campaigns_campaign,"
            " campaigns_emailtemplate RESTART IDENTITY CASCADE"
        )
        person = "'', 'First' || g, 'Last' || g, '', '', 'City', 'Country', now()"
        cur.execute(
            "INSERT INTO targets_account (name, website, industry, phone, city, country,"
            " created_at) SELECT 'Account ' || g, '', '', '', '', '', now()"
            " FROM generate_series(1, %s) g",
            [sizes["a"]],
        )
        cur.execute(
            "INSERT INTO targets_contact (salutation, first_name, last_name, title, phone,"
            f" city, country, created_at) SELECT {person} FROM generate_series(1, %s) g",
            [sizes["c"]],
        )
        cur.execute(
            "INSERT INTO targets_lead (salutation, first_name, last_name, title, phone, city,"
            f" country, created_at, account_name, status, source) SELECT {person}, '', 'new', ''"
            " FROM generate_series(1, %s) g",
            [sizes["l"]],
        )
        cur.execute(
            "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,"
            " email, is_staff, is_active, date_joined) SELECT '!', false, 'user' || g,"
            " 'User', 'N' || g, 'user' || g || '@example.com', false, true, now()"
            " FROM generate_series(1, %s) g",
            [sizes["u"]],
        )
        # One address per record (leads 1..SHARED reuse contacts'); 1% opted out, 0.5% invalid.
        cur.execute(
            "INSERT INTO targets_emailaddress (address, opt_out, invalid, created_at,"
            " updated_at) SELECT kind || '-' || g || '@example.com', g %% 100 = 7,"
            " g %% 200 = 11, now(), now() FROM (SELECT 'account' AS kind, generate_series(1, %s)"
            " AS g UNION ALL SELECT 'contact', generate_series(1, %s) UNION ALL"
            " SELECT 'lead', generate_series(%s, %s) UNION ALL"
            " SELECT 'user', generate_series(1, %s)) s",
            [sizes["a"], sizes["c"], int(SHARED * scale) + 1, sizes["l"], sizes["u"]],
        )
        for kind, model, ct in [
            ("account", "targets_account", cts[Account]),
            ("contact", "targets_contact", cts[Contact]),
            ("lead", "targets_lead", cts[Lead]),
            ("user", "auth_user", cts["user"]),
        ]:
            address_kind = (
                f"CASE WHEN r.id <= {int(SHARED * scale)} THEN 'contact' ELSE 'lead' END"
                if kind == "lead"
                else f"'{kind}'"
            )
            cur.execute(
                "INSERT INTO targets_recordemailaddress (content_type_id, object_id,"
                f' email_address_id, "primary") SELECT %s, r.id, e.id, true FROM {model} r'
                f" JOIN targets_emailaddress e ON e.address = {address_kind} || '-' || r.id"
                " || '@example.com'",
                [ct],
            )
        cur.execute(
            "INSERT INTO targets_targetlist (name, description, created_at) VALUES"
            " ('List 1', '', now()), ('List 2', '', now()), ('List 3', '', now()),"
            " ('Excluded', '', now())"
        )
        member = "INSERT INTO targets_targetlistmember (target_list_id, content_type_id,"
        member += " object_id, opted_out, added_at) SELECT %s, %s, id, id %% 97 = 5, now()"
        cur.execute(member + " FROM targets_account", [1, cts[Account]])
        cur.execute(member + " FROM targets_contact", [1, cts[Contact]])
        cur.execute(member + " FROM targets_lead", [2, cts[Lead]])
        cur.execute(member + " FROM auth_user", [2, cts["user"]])
        cur.execute(
            member + " FROM targets_contact WHERE id <= %s", [3, cts[Contact], 0.375 * sizes["c"]]
        )
        cur.execute(
            member + " FROM targets_contact WHERE id > %s AND id <= %s",
            [4, cts[Contact], 0.375 * sizes["c"], 0.375 * sizes["c"] + EXCLUDED * scale],
        )
        cur.execute("ANALYZE")
        cur.execute("SELECT count(*) FROM targets_targetlistmember WHERE target_list_id < 4")
        return {"memberships": cur.fetchone()[0]}


def make_mass_email(list_names: list[str], excluding: list[str]) -> MassEmail:
    campaign = Campaign.objects.create(name="Bench", type=Campaign.Type.NEWSLETTER)
    template = EmailTemplate.objects.create(name="Bench", subject="Hi", body_html="<p>Hi</p>")
    mass_email = MassEmail.objects.create(
        campaign=campaign,
        name=f"Bench {' '.join(list_names)}",
        start_at=timezone.now(),
        email_template=template,
        from_address="news@example.com",
    )
    mass_email.target_lists.set([TargetList.objects.get(name=n) for n in list_names])
    mass_email.excluding_target_lists.set([TargetList.objects.get(name=n) for n in excluding])
    return mass_email


def sample_lists(sample: int) -> tuple[list[str], list[str]]:
    """Lists shaped like the big ones, `sample` members in all, for the per-row baseline."""
    big = TargetListMember.objects.filter(target_list__name__in=["List 1", "List 2", "List 3"])
    total = big.count()
    names = []
    for source in ["List 1", "List 2", "List 3"]:
        rows = TargetListMember.objects.filter(target_list__name=source)
        share = round(sample * rows.count() / total)
        copy = TargetList.objects.create(name=f"Sample of {source}")
        step = max(1, rows.count() // max(share, 1))
        picked = list(rows.order_by("id")[::step][:share])
        TargetListMember.objects.bulk_create(
            TargetListMember(
                target_list=copy,
                content_type_id=m.content_type_id,
                object_id=m.object_id,
                opted_out=m.opted_out,
            )
            for m in picked
        )
        names.append(copy.name)
    excluded = TargetListMember.objects.filter(target_list__name="Excluded").order_by("id")
    copy = TargetList.objects.create(name="Sample of Excluded")
    share = max(1, round(sample * excluded.count() / total))
    TargetListMember.objects.bulk_create(
        TargetListMember(target_list=copy, content_type_id=m.content_type_id, object_id=m.object_id)
        for m in excluded[:share]
    )
    return names, [copy.name]


def reference_build(mass_email: MassEmail) -> int:
    """EspoCRM's queue build, row by row through the ORM (the baseline)."""
    informational = mass_email.campaign.is_informational
    met_records: set[tuple[int, int]] = set()
    met_addresses: set[int] = set()
    for excluded_list in mass_email.excluding_target_lists.all():
        for member in excluded_list.members.all():
            met_records.add((member.content_type_id, member.object_id))
            links = RecordEmailAddress.objects.filter(
                content_type_id=member.content_type_id, object_id=member.object_id
            )
            met_addresses.update(link.email_address_id for link in links)
    created = 0
    for target_list in mass_email.target_lists.order_by("id"):
        for target_type in target_types():
            ct = target_type.content_type
            for member in target_list.members.filter(content_type=ct).order_by("id"):
                key = (ct.pk, member.object_id)
                if (member.opted_out and not informational) or key in met_records:
                    continue
                record = target_type.model._default_manager.filter(pk=member.object_id).first()
                link = (
                    RecordEmailAddress.objects.filter(
                        content_type=ct, object_id=member.object_id, primary=True
                    )
                    .select_related("email_address")
                    .first()
                )
                if record is None or link is None or link.email_address_id in met_addresses:
                    continue
                address = link.email_address
                met_records.add(key)
                met_addresses.add(address.pk)
                if address.invalid or (address.opt_out and not informational):
                    continue
                QueueItem.objects.create(
                    mass_email=mass_email,
                    content_type=ct,
                    object_id=member.object_id,
                    email_address=address,
                )
                created += 1
    return created


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=5_000)
    args = parser.parse_args()
    benchdb.ensure_database()
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    seeded = seed(args.members / 1_000_000)
    print(f"seeded {seeded['memberships']:,} memberships in {time.perf_counter() - started:.1f} s")

    mass_email = make_mass_email(["List 1", "List 2", "List 3"], ["Excluded"])
    started = time.perf_counter()
    queued = build_queue(mass_email.pk)
    set_based = time.perf_counter() - started
    print(f"set-based build_queue: {queued:,} queue items in {set_based:.2f} s")

    names, excluding = sample_lists(args.sample)
    sample_mass_email = make_mass_email(names, excluding)
    sample_members = TargetListMember.objects.filter(target_list__name__in=names).count()
    started = time.perf_counter()
    with transaction.atomic():
        reference_queued = reference_build(sample_mass_email)
    per_row = time.perf_counter() - started
    rate = sample_members / per_row
    extrapolated = seeded["memberships"] / rate
    print(
        f"per-row ORM baseline: {sample_members:,} members -> {reference_queued:,} items in"
        f" {per_row:.2f} s ({rate:,.0f} members/s); extrapolated to"
        f" {seeded['memberships']:,}: {extrapolated:,.0f} s"
    )
    # The same rules must give the same queue: compare on the sample lists.
    check = make_mass_email(names, excluding)
    assert build_queue(check.pk) == reference_queued, "set-based and per-row queues differ"
    print(
        f"ratio: set-based is {extrapolated / set_based:,.0f}x faster (goal >= 100x);"
        f" {set_based:.2f} s vs goal <= 15 s"
    )


if __name__ == "__main__":
    main()
