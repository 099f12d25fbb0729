"""A client generated from the served OpenAPI schema, used against a live server.

The client knows nothing of the API but the schema: each operation is a method
named by its operationId that fills the path's parameters, sends the JSON body
and checks the answer against the schema of its documented response.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any

import jsonschema
import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from massmail.models import MassEmail
from targets.models import TargetListMember
from tests.api_client import make_marketer

pytestmark = pytest.mark.django_db(transaction=True)


class ApiError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status}: {body[:300]}")
        self.status = status


def _json_schema(schema: Any) -> Any:
    """OpenAPI 3.0's `nullable` as JSON Schema's null type, everywhere in a schema."""
    if isinstance(schema, list):
        return [_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: _json_schema(value) for key, value in schema.items() if key != "nullable"}
    if schema.get("nullable"):
        if "type" in converted:
            converted["type"] = [converted["type"], "null"]
        else:
            converted = {"anyOf": [converted, {"type": "null"}]}
    return converted


class GeneratedClient:
    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
        self.spec = self._call("GET", "/api/schema/?format=json", None)
        self.components = _json_schema(self.spec["components"])
        self.operations = {
            operation["operationId"]: (method.upper(), path, operation)
            for path, methods in self.spec["paths"].items()
            for method, operation in methods.items()
        }

    def __getattr__(self, operation_id: str):
        if operation_id not in self.operations:
            raise AttributeError(operation_id)
        method, template, operation = self.operations[operation_id]

        def call(body: Any = None, query: str = "", **path_params) -> Any:
            names = set(re.findall(r"{(\w+)}", template))
            assert names == set(path_params), f"{operation_id} takes {names}"
            path = template.format(**path_params) + (f"?{query}" if query else "")
            answer = self._call(method, path, body)
            self._check(operation, answer)
            return answer

        return call

    def _call(self, method: str, path: str, body: Any) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {**self.headers, **({"Content-Type": "application/json"} if data else {})}
        request = urllib.request.Request(self.base_url + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raise ApiError(error.code, error.read().decode()) from None
        return json.loads(raw) if raw else None

    def _check(self, operation: dict, answer: Any) -> None:
        for status, response in operation["responses"].items():
            if status.startswith("2") and "content" in response:
                schema = _json_schema(response["content"]["application/json"]["schema"])
                # Formats asserted: blank email fields are "oneOf: email, or empty".
                jsonschema.validate(
                    answer,
                    {**schema, "components": self.components},
                    format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
                )


@pytest.fixture
def client(live_server) -> GeneratedClient:
    token = Token.objects.create(user=make_marketer())
    return GeneratedClient(live_server.url, token.key)


def test_a_generated_client_runs_a_campaign_from_list_to_log(client, smtp_settings, smtp_sink):
    assert client.spec["info"]["title"] == "massmail API"
    target_list = client.target_lists_create({"name": "Newsletter readers"})
    upserted = client.contacts_upsert_create(
        {
            "records": [
                {"email": f"reader{n}@example.com", "first_name": f"R{n}", "last_name": "Reader"}
                for n in range(5)
            ]
        }
    )
    assert upserted["created"] == 5
    added = client.target_lists_members_create(
        {"addresses": [f"reader{n}@example.com" for n in range(5)]}, id=target_list["id"]
    )
    assert added["added"] == 5
    members = client.target_lists_members_list(id=target_list["id"], query="page_size=2")
    assert members["count"] == 5 and len(members["results"]) == 2
    template = client.templates_create(
        {"name": "News", "subject": "Hello {Person.firstName}", "body_html": "<p>News</p>"}
    )
    campaign = client.campaigns_create(
        {"name": "Spring", "type": "newsletter", "target_lists": [target_list["id"]]}
    )
    mass_email = client.mass_emails_create(
        {
            "campaign": campaign["id"],
            "name": "Spring news",
            "start_at": timezone.now().isoformat(),
            "email_template": template["id"],
            "from_address": "news@example.com",
        }
    )
    assert mass_email["status"] == "draft"
    tested = client.mass_emails_send_test_create(
        {"records": [{"type": "Contact", "id": upserted["records"][0]["id"]}]}, id=mass_email["id"]
    )
    assert tested["sent"] == ["reader0@example.com"]
    assert smtp_sink.received[0].message()["Subject"] == "Hello R0"
    scheduled = client.mass_emails_schedule_create(
        {"start_at": timezone.now().isoformat()}, id=mass_email["id"]
    )
    assert scheduled["status"] == "pending"
    assert client.mass_emails_pause_create(id=mass_email["id"])["status"] == "paused"
    assert client.mass_emails_resume_create(id=mass_email["id"])["status"] == "pending"
    stats = client.campaigns_statistics_retrieve(id=campaign["id"])
    assert stats["sent"] == 0  # the test send is left out
    log = client.campaigns_log_list(id=campaign["id"], query="include_test=true")
    assert [r["action"] for r in log["results"]] == ["sent"]
    assert client.campaigns_log_list(id=campaign["id"])["results"] == []
    assert client.mass_emails_cancel_create(id=mass_email["id"])["status"] == "canceled"
    assert MassEmail.objects.get(pk=mass_email["id"]).status == MassEmail.Status.CANCELED
    removed = client.target_lists_members_remove_create(
        {"addresses": ["reader4@example.com"]}, id=target_list["id"]
    )
    assert removed["removed"] == 1
    assert TargetListMember.objects.filter(target_list_id=target_list["id"]).count() == 4


def test_the_generated_client_is_refused_without_permission(live_server):
    from tests.factories import make_user

    token = Token.objects.create(user=make_user(is_staff=True))
    client = GeneratedClient(live_server.url, token.key)
    with pytest.raises(ApiError) as refused:
        client.target_lists_list()
    assert refused.value.status == 403


def test_the_docs_page_is_served_without_a_cdn(live_server):
    with urllib.request.urlopen(f"{live_server.url}/api/docs/", timeout=30) as response:
        page = response.read().decode()
    assert "swagger-ui" in page and "/static/drf_spectacular_sidecar/" in page
    assert "cdn" not in page.lower()
