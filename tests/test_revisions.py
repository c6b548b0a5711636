"""Prompt history: a revision per saved change (admin or not, never twice), a readable diff, restore,
and calls linked to the exact settings they ran with."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from assistants import revisions
from assistants.models import Assistant, PhoneNumber
from calls.models import Call
from calls.services import call_start


class _Form(HTMLParser):
    """The values a browser would submit from the admin's change form (every inline included)."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, list[str]] = {}
        self._select: str | None = None
        self._textarea: str | None = None
        self._in_form = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and a.get("id", "").endswith("_form"):
            self._in_form = True
        if not self._in_form or ("name" not in a and tag not in ("option",)):
            return
        name = a.get("name")
        if tag == "input":
            kind = a.get("type", "text")
            if kind in ("submit", "button", "file") or (kind in ("checkbox", "radio") and "checked" not in a):
                return
            self.data.setdefault(name, []).append(a.get("value", "on" if kind == "checkbox" else ""))
        elif tag == "select":
            self._select = name
            self.data.setdefault(name, [])
        elif tag == "option" and self._select and "selected" in a:
            self.data[self._select].append(a.get("value", ""))
        elif tag == "textarea":
            self._textarea = name
            self.data[name] = [""]

    def handle_data(self, data):
        if self._textarea:
            self.data[self._textarea][0] += data

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            if self._textarea:
                self.data[self._textarea][0] = self.data[self._textarea][0].removeprefix("\n")
            self._textarea = None
        elif tag == "form":
            self._in_form = False


def admin_form(client, url: str) -> dict[str, list[str]]:
    parser = _Form()
    parser.feed(client.get(url).content.decode())
    return parser.data


def save_in_admin(client, assistant: Assistant, **changes) -> None:
    url = reverse("admin:assistants_assistant_change", args=[assistant.pk])
    data = admin_form(client, url)
    for name, value in changes.items():
        data[name] = [value]
    response = client.post(url, {**data, "_save": "Save"})
    assert response.status_code == 302, response.content.decode()[-3000:]


@pytest.fixture
def assistant(db):
    return Assistant.objects.create(name="Reception", instructions="Answer for Pizza Bella.\nBe brief.")


def test_creating_an_assistant_keeps_version_1(assistant):
    (first,) = assistant.revisions.all()
    assert (first.number, first.changed_fields, first.created_by) == (1, [], None)
    assert first.settings["instructions"] == "Answer for Pizza Bella.\nBe brief."
    assert first.settings["voice"] == "marin" and "id" not in first.settings
    assert not any("secret" in name for name in first.settings)  # secrets stay out of the history


def test_each_admin_save_keeps_one_revision_with_who_and_what(admin_client, admin_user, assistant):
    save_in_admin(admin_client, assistant, instructions="Answer for Pizza Bella.\nBe warm and brief.")
    save_in_admin(admin_client, assistant)  # nothing changed: no new version
    save_in_admin(admin_client, assistant, voice="cedar", speed="1.1")
    versions = list(assistant.revisions.order_by("number"))
    assert [r.number for r in versions] == [1, 2, 3]
    assert versions[1].created_by == admin_user and versions[1].changed_fields == ["instructions"]
    assert sorted(versions[2].changed_fields) == ["speed", "voice"]
    assert versions[2].settings["voice"] == "cedar"


def test_saves_outside_admin_are_kept_without_duplicates(assistant):
    assistant.welcome_message = "Hej!"
    assistant.save()
    assistant.save()
    versions = list(assistant.revisions.order_by("number"))
    assert [(r.number, r.changed_fields) for r in versions] == [(1, []), (2, ["welcome_message"])]


def test_version_page_shows_a_readable_diff_of_the_prompt(admin_client, assistant):
    assistant.instructions = "Answer for Pizza Bella.\nBe brief. <b>Never</b> promise delivery times."
    assistant.save()
    second = assistant.revisions.get(number=2)
    html = admin_client.get(reverse("admin:assistants_assistantrevision_change", args=[second.pk])).content.decode()
    assert 'class="diff"' in html and "version 1" in html and "version 2" in html
    assert "&lt;b&gt;Never&lt;/b&gt;" in html and "<b>Never</b>" not in html  # the prompt is escaped
    assert "Changed: instructions" in html
    assert "Restore this version" not in html  # it is what the assistant uses now
    history = admin_client.get(reverse("admin:assistants_assistant_change", args=[assistant.pk])).content.decode()
    assert "Prompt history" in history and f"/admin/assistants/assistantrevision/{second.pk}/change/" in history


def test_restore_brings_back_old_settings_as_a_new_version(admin_client, admin_user, assistant):
    first = assistant.revisions.get(number=1)
    assistant.instructions, assistant.voice, assistant.is_active = "Something else.", "cedar", False
    assistant.save()
    page = admin_client.get(reverse("admin:assistants_assistantrevision_change", args=[first.pk])).content.decode()
    assert "Restore this version" in page
    url = reverse("admin:assistants_assistantrevision_restore", args=[first.pk])
    assert admin_client.get(url).status_code == 405  # only the button's POST restores
    response = admin_client.post(url, follow=True)
    assert "Restored version 1 of Reception; saved as version 3" in response.content.decode()
    assistant.refresh_from_db()
    assert (assistant.instructions, assistant.voice) == ("Answer for Pizza Bella.\nBe brief.", "marin")
    assert assistant.is_active is False  # switching on or off is not part of restoring a prompt
    third = assistant.revisions.get(number=3)
    assert third.created_by == admin_user and set(third.changed_fields) == {"instructions", "voice"}


def test_restore_that_would_break_a_rule_says_why(admin_client, assistant):
    assistant.name = "Front desk"
    assistant.save()
    Assistant.objects.create(name="Reception", instructions="Another one took the old name.")
    first = assistant.revisions.get(number=1)
    url = reverse("admin:assistants_assistantrevision_restore", args=[first.pk])
    html = admin_client.post(url, follow=True).content.decode()
    assert "cannot be restored as it is" in html and "name" in html
    assistant.refresh_from_db()
    assert assistant.name == "Front desk"


def test_prompt_editors_may_read_and_restore_but_viewers_may_not_restore(client, assistant):
    editor = User.objects.create_user("editor", password="pw", is_staff=True)
    editor.groups.add(Group.objects.get(name="Prompt editors"))
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    first = assistant.revisions.get(number=1)
    page = reverse("admin:assistants_assistantrevision_change", args=[first.pk])
    restore = reverse("admin:assistants_assistantrevision_restore", args=[first.pk])
    client.force_login(viewer)
    assert client.get(page).status_code == 403 and client.post(restore).status_code == 403
    client.force_login(editor)
    assert client.get(page).status_code == 200
    assert client.post(restore).status_code == 302


def test_a_call_records_the_version_it_runs_with(admin_client, assistant):
    PhoneNumber.objects.create(number="+46700000001", assistant=assistant)
    pk, config, _ = call_start(call_id="rev-1", from_number="+46709999999", to_number="+46700000001")
    call = Call.objects.get(pk=pk)
    assert call.revision.number == 1 and config.revision_id == call.revision_id

    # A change that bypassed save() is noticed when the next call starts.
    Assistant.objects.filter(pk=assistant.pk).update(instructions="Changed by a script.")
    pk2, config2, _ = call_start(call_id="rev-2", from_number="+46709999999", to_number="+46700000001")
    second = Call.objects.get(pk=pk2).revision
    assert second.number == 2 and second.settings["instructions"] == "Changed by a script."
    assert config2.revision_id == second.pk and config2.instructions == "Changed by a script."

    html = admin_client.get(reverse("admin:calls_call_change", args=[pk])).content.decode()
    url = reverse("admin:assistants_assistantrevision_change", args=[call.revision_id])
    assert f'href="{url}"' in html and "Reception — version 1" in html
    version_page = admin_client.get(url).content.decode()
    assert "1 call</a> ran with this version" in version_page
    calls = admin_client.get(reverse("admin:calls_call_changelist") + f"?revision={call.revision_id}")
    assert calls.status_code == 200 and "1 call" in calls.content.decode()


def test_compare_with_the_current_settings(admin_client, assistant):
    first = assistant.revisions.get(number=1)
    assistant.instructions = "Answer for Pizza Bella.\nBe brief.\nOffer the lunch menu."
    assistant.save()
    url = reverse("admin:assistants_assistantrevision_change", args=[first.pk]) + "?compare=current"
    html = admin_client.get(url).content.decode()
    assert "lunch&nbsp;menu" in html and "now" in html  # difflib keeps spaces as &nbsp;


def test_snapshot_helpers_name_settings_as_admin_does():
    assert revisions.field_label("silence_duration_ms") == "pause that ends the caller's turn (ms)"
    assert revisions.display_value("voice", "cedar") == "Cedar (recommended)"
    assert revisions.display_value("record_calls", False) == "no"
    assert revisions.changed_fields({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == ["b", "c"]


def test_all_versions_are_listed_per_assistant(admin_client, assistant):
    assistant.voice = "cedar"
    assistant.save()
    url = reverse("admin:assistants_assistantrevision_changelist") + f"?assistant__id__exact={assistant.pk}"
    html = admin_client.get(url).content.decode()
    assert "2 assistant revisions" in html and "first version" in html and "voice" in html
