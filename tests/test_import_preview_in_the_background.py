"""A big upload's preview runs on a real Celery worker while the page waits and then shows it."""

from __future__ import annotations

import pytest

from targets import importing
from targets.models import Contact, ImportRun, TargetList
from tests.factories import make_user
from tests.fixtures.celery_worker import running_worker, use_redis_broker

ROWS = 40


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_page_polls_until_the_worker_has_the_preview(
    browser_page, settings, tmp_path, monkeypatch
):
    settings.MEDIA_ROOT = tmp_path / "media"
    use_redis_broker()
    monkeypatch.setattr(importing, "INLINE_IMPORT_LINES", 10)
    csv_path = tmp_path / "people.csv"
    lines = [f"person{n}@example.com,First{n},Last{n}" for n in range(ROWS)]
    csv_path.write_text("\n".join(["Email Address,First Name,Last Name", *lines, "bad,X,Y", ""]))
    make_user(username="marketer", password="preview-pw", is_staff=True, is_superuser=True)
    page = browser_page.page
    browser_page.goto("/admin/login/?next=/admin/targets/targetlist/import/")
    page.fill("#id_username", "marketer")
    page.fill("#id_password", "preview-pw")
    page.locator('input[type="submit"]').click()
    page.set_input_files("#id_file", str(csv_path))
    page.select_option("#id_target_type", "Contact")
    page.fill("#id_new_list_name", "Spring fair")
    page.locator('input[type="submit"]').click()
    page.locator('input[name="_preview"]').click()

    page.locator("#import-preview-progress").wait_for()  # no worker yet: the task waits
    browser_page.screenshot("waiting")
    assert f"0 of {ROWS + 1} rows read" in page.locator("#import-preview-progress").inner_text()
    with running_worker():
        page.locator("#import-preview").wait_for(timeout=60_000)  # the page reloaded itself
    browser_page.screenshot("previewed")
    assert (
        f"{ROWS + 1} rows read: {ROWS} new records" in page.locator("#import-preview").inner_text()
    )
    assert "not a valid email address" in page.content()
    assert ImportRun.objects.get().preview["state"] == "done"
    assert not Contact.objects.exists() and not TargetList.objects.exists()
