"""Campaigns: the contact list (CSV, variables), the do-not-call list on every outbound call, the
dialer's pacing, calling hours, retries and claims (two dialers at once on PostgreSQL), and one
campaign call end to end through daphne: the contact's texts reach OpenAI, the opt-out tool works."""

from __future__ import annotations

import asyncio
import csv
import html
import io
import json
import re
import threading
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import close_old_connections, connection
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from assistants.models import Assistant, PhoneNumber
from campaigns import dialer, services
from campaigns.csv_import import needed_variables, parse_contacts
from campaigns.dialer import dial_round, in_calling_hours
from campaigns.models import Campaign, CampaignStatus, Contact, ContactAttempt, DoNotCall
from campaigns.rendering import MissingVariable, render
from tests.bridge_helpers import fake_openai, simulator, wait_call_ended
from tests.fakes_http import FakeElksApi
from tools.models import OutboundCall
from tools.outbound import OutboundCallError, place_outbound_call
from tools.services import outbound_call_hung_up

WEBSOCKET_NUMBER = "+46766860000"
OUR_NUMBER = "+46766862222"
ALL_WEEK = [0, 1, 2, 3, 4, 5, 6]
CALLER_TURN = [("silence", 300), ("speech", 500), ("silence", 900)]


def elks_settings(api: FakeElksApi):
    return override_settings(
        ELKS_API_URL=api.api_url,
        ELKS_API_USERNAME=api.username,
        ELKS_API_PASSWORD=api.password,
        ELKS_WEBSOCKET_NUMBER=WEBSOCKET_NUMBER,
        ELKS_CALLER_ID="",
        PUBLIC_BASE_URL="https://voice.example.com",
    )


@pytest.fixture
def elks():
    with FakeElksApi() as api, elks_settings(api):
        yield api


def make_campaign(n_contacts: int = 0, **fields) -> Campaign:
    assistant = Assistant.objects.create(
        name="Reminders",
        instructions="Remind {{first_name}} of the appointment at {{appointment_time}}.",
        welcome_message="Hi {{first_name}}!",
        end_call_enabled=False,
        datetime_tool_enabled=False,
    )
    PhoneNumber.objects.create(number=OUR_NUMBER, assistant=assistant)
    defaults = dict(
        calling_hours_start=time(0, 0),
        calling_hours_end=time(23, 59, 59),
        calling_days=ALL_WEEK,
        status=CampaignStatus.RUNNING,
    )
    campaign = Campaign.objects.create(assistant=assistant, name="Reminders", **{**defaults, **fields})
    for i in range(n_contacts):
        Contact.objects.create(
            campaign=campaign,
            number=f"+4670100{i:04d}",
            variables={"first_name": f"Person{i}", "appointment_time": "10:00"},
        )
    return campaign


# ------------------------------------------------------------------ the contact list


def test_csv_rows_are_checked_one_by_one(db):
    data = (
        b"Number,first_name,appointment_time,time_zone\n"
        b"+46 70-123 45 67,Anna,10:00,\n"
        b"0701234567,Bo,11:00,\n"  # national form
        b"+46701234567,Anna again,12:00,\n"  # duplicate after normalising
        b"+46709876543,,13:00,\n"  # empty variable
        b"+44 20 7946 0000,Clara,14:00,Europe/London\n"
        b"+46705555555,Dan,15:00,Mars/Olympus\n"
    )
    parsed = parse_contacts(data, needed={"first_name", "appointment_time"}, existing={"+46700000009"})
    assert parsed.errors == []
    assert [(r.line, r.number) for r in parsed.good] == [(2, "+46701234567"), (6, "+442079460000")]
    assert parsed.good[0].variables == {"first_name": "Anna", "appointment_time": "10:00"}
    assert parsed.good[1].time_zone == "Europe/London"
    problems = {r.line: " ".join(r.errors) for r in parsed.bad}
    assert "national number" in problems[3]
    assert "already in the list" in problems[4]
    assert "{{first_name}} is empty" in problems[5]
    assert "Unknown time zone" in problems[7]


def test_a_list_lacking_a_variable_is_refused_with_one_clear_message(db):
    parsed = parse_contacts(b"number,first_name\n+46701234567,Anna\n", needed={"first_name", "appointment_time"})
    assert parsed.rows == []
    assert parsed.errors == [
        "The assistant's texts use {{appointment_time}}, but the list has no such column. Add it to the CSV."
    ]
    assert "No number column" in parse_contacts(b"phone_no,x\n1,2\n").errors[0]


def test_variables_are_rendered_and_a_missing_one_is_named():
    assert render("Hi {{ first_name }}, at {{time}}.", {"first_name": "Anna", "time": "10"}) == "Hi Anna, at 10."
    with pytest.raises(MissingVariable, match=r"The welcome message uses \{\{time\}\}"):
        render("At {{time}}", {}, where="The welcome message")


# ------------------------------------------------------------------ do not call


def test_the_do_not_call_list_stops_every_outbound_call(elks, db):
    campaign = make_campaign(1)
    services.do_not_call_add(number="+46 70 100 0000", reason="asked us", source="admin")
    with pytest.raises(OutboundCallError, match="do-not-call list"):
        place_outbound_call(assistant=campaign.assistant, to="+46701000000", source="admin")
    assert elks.calls == [] and not OutboundCall.objects.exists()
    # The campaign's contact with that number is not called either.
    assert Contact.objects.get().last_outcome == "do_not_call"
    assert dial_round() == "" and elks.calls == []


# ------------------------------------------------------------------ the dialer


def test_the_dialer_keeps_to_calls_at_once_and_per_minute(elks, db):
    campaign = make_campaign(6, max_concurrent=2, calls_per_minute=3)
    assert dial_round().startswith("2 calls placed")
    assert len(elks.calls) == 2
    assert dial_round() == ""  # two are still ringing
    # One call is over (no answer): one more may start, then the minute's three are used.
    first = Contact.objects.exclude(outbound=None).order_by("pk").first()
    outbound_call_hung_up(elks_call_id=first.outbound.elks_call_id, state="failed")
    dial_round()
    assert len(elks.calls) == 3
    for contact in Contact.objects.filter(status="dialing"):
        outbound_call_hung_up(elks_call_id=contact.outbound.elks_call_id, state="success")
    dial_round()
    assert len(elks.calls) == 3, "the minute's three calls are used"
    dial_round(now=timezone.now() + timedelta(minutes=2))
    assert len(elks.calls) == 5
    assert {c["to"] for c in elks.calls} == set(Contact.objects.values_list("number", flat=True)) - {"+46701000005"}
    assert campaign.contacts.filter(status="dialing").count() == 2


def test_calling_hours_are_the_contacts_own(elks, db):
    campaign = make_campaign(2, calling_hours_start=time(9), calling_hours_end=time(17), calling_days=[0, 1, 2, 3, 4])
    london, stockholm = Contact.objects.order_by("pk")
    Contact.objects.filter(pk=london.pk).update(time_zone="Europe/London")
    # A Monday, 16:30 in Stockholm = 15:30 in London; at 17:30 Stockholm it is 16:30 in London.
    at = datetime(2026, 12, 7, 17, 30, tzinfo=ZoneInfo("Europe/Stockholm"))
    assert in_calling_hours(campaign, "Europe/London", at) and not in_calling_hours(campaign, "", at)
    assert not in_calling_hours(campaign, "", datetime(2026, 12, 6, 12, 0, tzinfo=ZoneInfo("Europe/Stockholm")))
    dial_round(now=at)
    assert [c["to"] for c in elks.calls] == [london.number]
    assert Contact.objects.get(pk=stockholm.pk).status == "pending"


def test_retries_wait_their_delay_and_stop_at_the_maximum(elks, db):
    campaign = make_campaign(1, max_attempts=2, retry_delay_minutes=30, retry_on_busy=True)
    now = timezone.now()
    dial_round(now=now)
    contact = Contact.objects.get()
    outbound_call_hung_up(elks_call_id=contact.outbound.elks_call_id, state="busy")
    dial_round(now=now)
    contact.refresh_from_db()
    assert (contact.status, contact.last_outcome, contact.attempts) == ("pending", "busy", 1)
    assert contact.next_attempt_at > now + timedelta(minutes=29)
    assert len(elks.calls) == 1
    dial_round(now=now + timedelta(minutes=31))
    assert len(elks.calls) == 2
    contact.refresh_from_db()
    outbound_call_hung_up(elks_call_id=contact.outbound.elks_call_id, state="busy")
    dial_round(now=now + timedelta(minutes=31))
    contact.refresh_from_db()
    assert (contact.status, contact.attempts) == ("failed", 2)
    assert [a.outcome for a in ContactAttempt.objects.order_by("pk")] == ["busy", "busy"]
    assert Campaign.objects.get(pk=campaign.pk).status == "done"


def test_pause_resume_and_cancel(elks, db):
    campaign = make_campaign(3, max_concurrent=1, status=CampaignStatus.DRAFT)
    assert dial_round() == ""
    services.campaign_move(campaign_pk=campaign.pk, action="start")
    dial_round()
    services.campaign_move(campaign_pk=campaign.pk, action="pause")
    for contact in Contact.objects.filter(status="dialing"):
        outbound_call_hung_up(elks_call_id=contact.outbound.elks_call_id, state="success")
    dial_round()
    assert len(elks.calls) == 1
    with pytest.raises(services.CampaignError, match="cannot start"):
        services.campaign_move(campaign_pk=campaign.pk, action="start")
    services.campaign_move(campaign_pk=campaign.pk, action="resume")
    dial_round()
    assert len(elks.calls) == 2
    services.campaign_move(campaign_pk=campaign.pk, action="cancel")
    dial_round(now=timezone.now() + timedelta(hours=1))
    assert len(elks.calls) == 2


def test_missing_setup_pauses_the_campaign_and_loses_no_contact(elks, db, settings):
    campaign = make_campaign(2)
    settings.ELKS_API_PASSWORD = ""
    dial_round()
    campaign.refresh_from_db()
    assert campaign.status == "paused" and "ELKS_API_PASSWORD" in campaign.last_error
    assert list(Contact.objects.values_list("status", "attempts")) == [("pending", 0), ("pending", 0)]


def test_a_claim_left_by_a_stopped_worker_is_released(elks, db):
    make_campaign(1)
    contact = Contact.objects.get()
    old = timezone.now() - timedelta(minutes=5)
    Contact.objects.filter(pk=contact.pk).update(status="dialing", attempts=1, claimed_at=old)
    attempt = ContactAttempt.objects.create(contact=contact)
    ContactAttempt.objects.filter(pk=attempt.pk).update(created_at=old)
    dial_round()  # the restarted worker releases it, then calls it
    assert len(elks.calls) == 1
    contact.refresh_from_db()
    assert (contact.status, contact.attempts) == ("dialing", 1)


@pytest.mark.django_db(transaction=True)
def test_two_dialers_at_once_never_call_a_contact_twice(elks, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("row locks (SKIP LOCKED) are PostgreSQL's; SQLite's conditional claim is covered above")
    make_campaign(30, max_concurrent=10, calls_per_minute=30)
    start = threading.Barrier(2)
    # Inside the claim, each dialer waits (briefly) for the other: without the campaign's row lock
    # both would be claiming at once, each counting nothing in flight.
    inside = threading.Barrier(2, timeout=1.0)
    waited = set()
    hours = dialer.in_calling_hours

    def meet_inside(*args):
        if threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            try:
                inside.wait()
            except threading.BrokenBarrierError:
                pass
        return hours(*args)

    monkeypatch.setattr(dialer, "in_calling_hours", meet_inside)
    errors = []

    def run():
        try:
            start.wait()
            dial_round()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    numbers = [c["to"] for c in elks.calls]
    assert len(numbers) == 10 and len(set(numbers)) == 10, "pacing holds across workers, and no one twice"
    assert ContactAttempt.objects.count() == 10
    assert Contact.objects.filter(status="dialing").count() == 10


# ------------------------------------------------------------------ a campaign call, end to end


def _dial_one():
    with FakeElksApi() as api, elks_settings(api):
        dial_round()
        [form] = api.calls
    return Contact.objects.select_related("outbound").get(number=form["to"])


@pytest.mark.django_db(transaction=True)
async def test_a_campaign_call_speaks_the_contacts_texts_and_honours_an_opt_out(daphne_server):
    await sync_to_async(make_campaign)(1)
    contact = await sync_to_async(_dial_one)()
    async with fake_openai(daphne_server, answer_ms=400) as fake:
        fake.reply_tool_calls[:] = [{"name": "do_not_call_again", "arguments": {"reason": "no more"}, "call_id": "c1"}]
        fake.reply_texts[:] = ["You will not be called again. Goodbye."]
        sim = simulator(
            daphne_server,
            to=contact.number,
            from_=OUR_NUMBER,
            callid=contact.outbound.elks_call_id,
            caller_audio=CALLER_TURN,
        )
        task = asyncio.ensure_future(sim.run())
        session = await fake.next_session()
        update = (await session.wait_for("session.update"))["session"]
        greeting = await session.wait_for("response.create")
        output = (await session.wait_for("conversation.item.create", timeout=15))["item"]
        await sim.wait_played_ms(400, timeout=10)
        if not sim.done.done():
            await sim.hang_up()
        await task
    await wait_call_ended(daphne_server, contact.outbound.elks_call_id)
    assert update["instructions"] == "Remind Person0 of the appointment at 10:00."
    assert "Hi Person0!" in greeting["response"]["instructions"]
    assert "do_not_call_again" in [t["name"] for t in update["tools"]]
    assert json.loads(output["output"])["ok"] is True
    entry = await sync_to_async(DoNotCall.objects.get)()
    assert (entry.number, entry.source, entry.reason) == (contact.number, "call", "no more")

    await sync_to_async(dial_round)()
    contact = await sync_to_async(Contact.objects.get)(pk=contact.pk)
    assert (contact.status, contact.last_outcome) == ("done", "opted_out")

    def call_page():
        admin = Client()
        admin.force_login(User.objects.create_superuser("boss", "b@example.com", "pw"))
        return admin.get(reverse("admin:calls_call_change", args=[contact.outbound.call_id])).content.decode()

    contact.outbound = await sync_to_async(OutboundCall.objects.get)(pk=contact.outbound_id)
    page = await sync_to_async(call_page)()
    assert "contact <a href" in page and contact.number in page and "answered by: Unknown" in page  # no transcript


# ------------------------------------------------------------------ admin


def test_admin_uploads_a_list_with_a_preview_then_adds_the_good_rows(admin_client, db):
    campaign = make_campaign(0, status=CampaignStatus.DRAFT)
    url = reverse("admin:campaigns_campaign_upload", args=[campaign.pk])
    data = "number,first_name,appointment_time\n+46701234567,Anna,10:00\nnonsense,Bo,11:00\n"
    page = admin_client.post(url, {"file": io.BytesIO(data.encode())}, format="multipart")
    text = page.content.decode()
    assert "1 rows are fine, 1 have problems" in text and "not a phone number" in text
    assert not Contact.objects.exists()  # nothing saved before the confirmation
    carried = html.unescape(re.search(r'<textarea name="data" hidden>(.*?)</textarea>', text, re.S).group(1))
    assert carried == data  # the confirm step gets the file exactly as checked
    done = admin_client.post(url, {"data": carried, "confirm": "1"})
    assert done.status_code == 302
    assert list(Contact.objects.values_list("number", "variables")) == [
        ("+46701234567", {"first_name": "Anna", "appointment_time": "10:00"})
    ]
    lacking = admin_client.post(url, {"file": io.BytesIO(b"number,first_name\n+46701234568,Anna\n")})
    assert "{{appointment_time}}, but the list has no such column" in lacking.content.decode()
    assert needed_variables(campaign) == {"first_name", "appointment_time"}


def test_admin_previews_a_contacts_prompt_and_exports_outcomes(admin_client, db):
    campaign = make_campaign(2)
    first = Contact.objects.order_by("pk").first()
    page = admin_client.get(reverse("admin:campaigns_campaign_preview", args=[campaign.pk]), {"contact": first.pk})
    assert "Remind Person0 of the appointment at 10:00." in page.content.decode()
    Contact.objects.filter(pk=first.pk).update(variables={"first_name": "Anna"})
    page = admin_client.get(reverse("admin:campaigns_campaign_preview", args=[campaign.pk]), {"contact": first.pk})
    assert "uses {{appointment_time}}, but the contact list has no such column" in page.content.decode()

    exported = admin_client.get(reverse("admin:campaigns_campaign_export", args=[campaign.pk]))
    rows = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert [r["number"] for r in rows] == ["+46701000000", "+46701000001"]
    assert rows[1]["first_name"] == "Person1" and rows[1]["status"] == "pending"

    change = admin_client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
    assert "2 contacts: 0 finished, 0 calling now, 2 waiting" in change.content.decode()
    assert admin_client.get(reverse("admin:campaigns_campaign_changelist")).status_code == 200


def test_admin_adds_a_do_not_call_number_and_explains_a_bad_one(admin_client, db):
    url = reverse("admin:campaigns_donotcall_add")
    bad = admin_client.post(url, {"number": "0701234567", "reason": ""})
    assert "national number" in bad.content.decode()
    admin_client.post(url, {"number": "+46 70 123 45 67", "reason": "asked by email"})
    assert list(DoNotCall.objects.values_list("number", "source")) == [("+46701234567", "admin")]


async def verdict(contact_pk: int, deadline: float = 10.0) -> str:
    """The detector's verdict once it is written (it is written off the event loop, a moment later)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while loop.time() < end:
        answered_by = await sync_to_async(Contact.objects.values_list("answered_by", flat=True).get)(pk=contact_pk)
        if answered_by:
            return answered_by
        await asyncio.sleep(0.05)
    return ""


async def campaign_call(server, *, said: str, stay_ms: int = 900, **campaign_fields):
    """One campaign call whose callee first says `said`; the contact after the dialer settled it."""
    await sync_to_async(make_campaign)(1, **campaign_fields)
    contact = await sync_to_async(_dial_one)()
    async with fake_openai(server, answer_ms=300) as fake:
        fake.caller_transcripts[:] = [said]
        sim = simulator(
            server,
            to=contact.number,
            from_=OUR_NUMBER,
            callid=contact.outbound.elks_call_id,
            caller_audio=[*CALLER_TURN, ("silence", stay_ms)],
        )
        task = asyncio.ensure_future(sim.run())
        session = await fake.next_session()
        if await verdict(contact.pk) == "human":
            await sim.hang_up()  # a person would talk on; this test has heard enough
        await asyncio.wait_for(task, 15)
    call = await wait_call_ended(server, contact.outbound.elks_call_id)
    await sync_to_async(dial_round)()
    return await sync_to_async(Contact.objects.get)(pk=contact.pk), call, session


@pytest.mark.django_db(transaction=True)
async def test_an_answering_machine_is_hung_up_on_and_recorded(daphne_server):
    contact, call, _ = await campaign_call(
        daphne_server, said="Hi, this is Anna. I can't take your call right now, please leave a message after the tone."
    )
    assert (contact.answered_by, contact.last_outcome, contact.status) == ("machine", "voicemail", "done")
    assert "answering machine" in call.end_detail


@pytest.mark.django_db(transaction=True)
async def test_an_answering_machine_gets_the_campaigns_message(daphne_server):
    contact, call, session = await campaign_call(
        daphne_server,
        said="Hej, du har kommit till Anna. Lämna ett meddelande efter tonen.",
        stay_ms=8000,  # the machine records until we hang up
        voicemail_policy="leave_message",
        voicemail_message="Hi {{first_name}}, your appointment is at {{appointment_time}}.",
    )
    said = [e["response"].get("instructions", "") for _, e in session.received if e.get("type") == "response.create"]
    assert any("Hi Person0, your appointment is at 10:00." in s for s in said)
    assert (contact.answered_by, contact.last_outcome) == ("machine", "voicemail")
    assert "message was left" in call.end_detail


@pytest.mark.django_db(transaction=True)
async def test_a_person_is_recorded_as_a_person(daphne_server):
    contact, _, _ = await campaign_call(daphne_server, said="Hello? Who is this?", stay_ms=5000)
    assert (contact.answered_by, contact.last_outcome) == ("human", "completed")


def test_the_dashboard_shows_running_campaigns_progress(admin_client, db):
    campaign = make_campaign(3)
    Contact.objects.filter(pk=Contact.objects.order_by("pk").first().pk).update(status="done", last_outcome="completed")
    page = admin_client.get(reverse("dashboard:index")).content.decode()
    assert 'id="campaigns-panel"' in page and campaign.name in page
    assert '<progress max="3" value="1">' in page and "Talked: 1" in page
    fragment = admin_client.get(reverse("campaigns:panel")).content.decode()
    assert '<progress max="3" value="1">' in fragment
    services.campaign_move(campaign_pk=campaign.pk, action="cancel")
    assert admin_client.get(reverse("campaigns:panel")).content == b""


def test_an_inactive_assistant_pauses_the_campaign_without_using_attempts(elks, db):
    campaign = make_campaign(2)
    Assistant.objects.filter(pk=campaign.assistant_id).update(is_active=False)
    dial_round()
    campaign.refresh_from_db()
    assert campaign.status == "paused" and "not active" in campaign.last_error
    assert list(Contact.objects.values_list("status", "attempts")) == [("pending", 0), ("pending", 0)]


def test_admin_explains_bad_calling_hours_and_days(admin_client, db):
    campaign = make_campaign(0, status=CampaignStatus.DRAFT)
    form = {
        "name": "x",
        "assistant": campaign.assistant_id,
        "max_concurrent": 1,
        "calls_per_minute": 1,
        "calling_hours_start": "18:00",
        "calling_hours_end": "09:00",
        "calling_days": "[7]",
        "time_zone": "Mars/Olympus",
        "retry_delay_minutes": 1,
        "max_attempts": 1,
        "voicemail_policy": "leave_message",
        "voicemail_message": "",
    }
    page = admin_client.post(reverse("admin:campaigns_campaign_add"), form).content.decode()
    for says in ("0 (Monday) to 6 (Sunday)", "must end after they start", "Unknown time zone", "Write the message"):
        assert says in page
    assert Campaign.objects.count() == 1
