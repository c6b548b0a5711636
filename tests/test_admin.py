"""Admin pages as the people who use them see them."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from assistants.models import Assistant, PhoneNumber
from calls.models import Call, CallStatus, TranscriptEntry


@pytest.fixture
def assistant(db):
    a = Assistant.objects.create(name="Reception", instructions="You answer for Pizza Bella.", welcome_message="Hej!")
    PhoneNumber.objects.create(number="+46701234567", assistant=a, label="Main line")
    return a


@pytest.fixture
def call(assistant):
    c = Call.objects.create(
        call_id="c1",
        from_number="+46700000001",
        to_number="+46701234567",
        assistant=assistant,
        started_at=timezone.now(),
        status=CallStatus.COMPLETED,
    )
    TranscriptEntry.objects.create(call=c, position=0, role="assistant", text="Hej! Pizza Bella.")
    TranscriptEntry.objects.create(call=c, position=1, role="caller", text="En margherita, tack.")
    return c


@pytest.fixture
def editor(db):
    user = User.objects.create_user("editor", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Prompt editors"))
    return user


@pytest.mark.django_db
def test_migration_creates_prompt_editors_group():
    import importlib

    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    migration = importlib.import_module("calls.migrations.0002_prompt_editors_group")
    state = MigrationExecutor(connection).loader.project_state([("calls", "0002_prompt_editors_group")])
    Group.objects.filter(name="Prompt editors").delete()
    migration.create_group(state.apps, None)
    perms = set(Group.objects.get(name="Prompt editors").permissions.values_list("codename", flat=True))
    assert {"change_assistant", "view_call"} <= perms
    assert not {p for p in perms if p.endswith("_user") or p in ("change_phonenumber", "add_phonenumber")}


def test_superuser_sees_every_page(admin_client, assistant, call):
    for url in (
        reverse("admin:index"),
        reverse("admin:assistants_assistant_changelist"),
        reverse("admin:assistants_assistant_change", args=[assistant.pk]),
        reverse("admin:assistants_assistant_add"),
        reverse("admin:assistants_phonenumber_changelist"),
        reverse("admin:calls_call_changelist"),
        reverse("admin:calls_call_change", args=[call.pk]),
    ):
        assert admin_client.get(url).status_code == 200, url


def test_assistant_page_groups_settings_in_plain_language(admin_client, assistant):
    html = admin_client.get(reverse("admin:assistants_assistant_change", args=[assistant.pk])).content.decode()
    for heading in ("Persona", "Voice", "Listening and turn-taking", "Advanced"):
        assert heading in html
    assert "How long a pause ends the caller" in html or "pause that ends the caller" in html.lower()
    assert "+46701234567" in html  # numbers inline


def test_call_page_shows_the_conversation_read_only(admin_client, call):
    html = admin_client.get(reverse("admin:calls_call_change", args=[call.pk])).content.decode()
    assert html.index("Hej! Pizza Bella.") < html.index("En margherita, tack.")
    assert 'name="_save"' not in html


def test_call_list_searches_by_number(admin_client, call):
    html = admin_client.get(reverse("admin:calls_call_changelist") + "?q=0000001").content.decode()
    assert "+46700000001" in html


def test_rejected_call_links_to_mapping_its_number(admin_client, db):
    c = Call.objects.create(call_id="r1", to_number="+46766861234", started_at=timezone.now(), status="rejected")
    html = admin_client.get(reverse("admin:calls_call_change", args=[c.pk])).content.decode()
    assert "number=%2B46766861234" in html
    add = admin_client.get(reverse("admin:assistants_phonenumber_add") + "?number=%2B46766861234").content.decode()
    assert 'value="+46766861234"' in add


def test_duplicate_action_copies_settings_not_numbers(admin_client, assistant):
    admin_client.post(
        reverse("admin:assistants_assistant_changelist"),
        {"action": "duplicate", "_selected_action": [assistant.pk]},
    )
    copy = Assistant.objects.get(name="Reception (copy)")
    assert copy.instructions == assistant.instructions and not copy.is_active and not copy.numbers.exists()


def test_prompt_editor_can_edit_assistants_and_read_calls_only(client, editor, assistant, call):
    client.force_login(editor)
    assert client.get(reverse("admin:assistants_assistant_change", args=[assistant.pk])).status_code == 200
    assert client.get(reverse("admin:calls_call_change", args=[call.pk])).status_code == 200
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 403
    assert client.get(reverse("admin:assistants_phonenumber_add")).status_code == 403
    assert client.post(reverse("admin:calls_call_delete", args=[call.pk]), {"post": "yes"}).status_code == 403
    response = client.post(
        reverse("admin:assistants_assistant_change", args=[assistant.pk]),
        _form_data(assistant, instructions="New prompt."),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assistant.refresh_from_db()
    assert assistant.instructions == "New prompt."
    assert PhoneNumber.objects.get().number == "+46701234567"


def _form_data(assistant: Assistant, **changes) -> dict:
    fields = [f.name for f in Assistant._meta.fields if f.editable and f.name != "id"]
    data = {name: getattr(assistant, name) for name in fields}
    data.update(changes)
    data = {k: ("on" if v is True else "" if v is False else v) for k, v in data.items() if v is not False}
    data.update({"numbers-TOTAL_FORMS": "0", "numbers-INITIAL_FORMS": "0"})
    return data


def test_migrations_are_complete(db):
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_the_call_page_title_and_its_start_time_are_in_the_sites_time_zone(admin_client, assistant, settings):
    settings.TIME_ZONE = "Europe/Stockholm"
    started = timezone.make_aware(datetime.datetime(2026, 12, 3, 10, 33), datetime.UTC)  # 11:33 in Stockholm
    call = Call.objects.create(
        call_id="tz1",
        from_number="+46700000001",
        to_number="+46701234567",
        assistant=assistant,
        started_at=started,
        status=CallStatus.COMPLETED,
    )
    html = admin_client.get(reverse("admin:calls_call_change", args=[call.pk])).content.decode()
    assert "(2026-12-03 11:33)" in html  # the title
    assert "10:33" not in html


def test_server_processes_show_read_only_with_their_state_and_calls(admin_client, call):
    from calls.models import ServerProcess

    now = timezone.now()
    dead = ServerProcess.objects.create(
        slot="web.1", host="h", pid=7, boot_id="b1", started_at=now, last_seen_at=now - timezone.timedelta(minutes=5)
    )
    ServerProcess.objects.create(slot="web.2", host="h", pid=8, boot_id="b2", started_at=now, last_seen_at=now)
    Call.objects.filter(pk=call.pk).update(status=CallStatus.ACTIVE, server=dead)
    html = admin_client.get(reverse("admin:calls_serverprocess_changelist")).content.decode()
    assert "web.1" in html and "web.2" in html and "Running" in html
    assert "dead; its calls are being closed" in html
    assert admin_client.get(reverse("admin:calls_serverprocess_add")).status_code == 403
    page = admin_client.get(reverse("admin:calls_call_change", args=[call.pk])).content.decode()
    assert "web.1 (pid 7)" in page
