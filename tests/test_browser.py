"""End to end in a real headless Chromium: the live dashboard and the browser test call.

Chromium is Debian's package (`.ci/run` installs it), driven by Playwright's Python client with
`executable_path`; Playwright's own browser download is never used. Without Chromium or the
client these tests are skipped, saying why. Screenshots go to artifacts/ for people to look at.
"""

from __future__ import annotations

import array
import asyncio
import math
import shutil
import wave
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from assistants.audio_formats import ALAW, PCM_24000, ULAW
from assistants.models import Assistant
from calls.live.audio import decode, encode, rms
from calls.models import Call
from tests.bridge_helpers import CALLER, NUMBER_A, fake_openai, get_call, make_assistant, simulator
from tests.conftest import ROOT
from tests.test_dashboard import browser_facing_daphne, log_on_failure, make_user

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
try:
    from playwright.async_api import async_playwright, expect
except ImportError:  # pragma: no cover - the skip below says what to install
    async_playwright = None

if CHROMIUM is None:
    SKIP = "Chromium is not installed (apt-get install -y chromium chromium-driver; .ci/run does this)"
elif async_playwright is None:
    SKIP = "the Playwright client is not installed (pip install -r requirements-dev.txt)"
else:
    SKIP = ""

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(bool(SKIP), reason=SKIP),
]

ARTIFACTS = ROOT / "artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # A microphone without a person: Chromium plays a WAV file as the capture device.
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]


def write_voice_wav(path: Path, rate: int = 48000) -> None:
    """Half a second of quiet, a second of voice-like sound (syllables of a low hum), then quiet."""
    samples = array.array("h")
    samples.extend([0] * (rate // 2))
    for i in range(rate):
        t = i / rate
        syllables = 0.55 + 0.45 * math.sin(2 * math.pi * 4 * t)
        voice = 0.6 * math.sin(2 * math.pi * 220 * t) + 0.3 * math.sin(2 * math.pi * 440 * t)
        samples.append(int(12000 * syllables * voice))
    samples.extend([0] * (2 * rate))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())


@pytest.fixture(scope="module")
def site(django_db_setup, django_db_blocker):
    """The product as browsers reach it: a daphne that allows their host and plain-http cookies."""
    with browser_facing_daphne() as server:
        yield server


@pytest.fixture(autouse=True)
def _site_log(request):
    yield from log_on_failure(request, "site")


@pytest.fixture
async def browser(tmp_path):
    """A fresh headless Chromium (its own temporary profile), with the WAV as its microphone."""
    wav = tmp_path / "voice.wav"
    write_voice_wav(wav)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=[*FLAGS, f"--use-file-for-fake-audio-capture={wav}"]
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def logged_in_page(browser, server, username: str, next_path: str):
    """Log in through the admin login form, as a person does, and land on `next_path`."""
    page = await browser.new_page(viewport={"width": 1440, "height": 960})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    await page.goto(f"{server.http_url}/admin/login/?next={next_path}")
    await page.fill("#id_username", username)
    await page.fill("#id_password", "pw")
    await page.click("input[type=submit]")
    await page.wait_for_url(f"**{next_path}")
    return page


async def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / name), full_page=True)


async def test_dashboard_shows_a_live_call_its_words_and_hangs_it_up(browser, site):
    await sync_to_async(make_assistant)("Anna", NUMBER_A)
    await sync_to_async(make_user)("boss", superuser=True)
    page = await logged_in_page(browser, site, "boss", "/dashboard/")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    assert "Nobody is on the phone right now" in await page.locator("#active-empty").inner_text()

    async with fake_openai(site, answer_ms=1200) as fake:
        fake.reply_texts[:] = ["Hello, this is Anna.", "Of course, one margherita."]
        fake.caller_transcripts[:] = ["Can I order a pizza?"]
        sim = simulator(site, caller_audio=[("silence", 1500), ("speech", 600), ("silence", 20000)])
        task = asyncio.ensure_future(sim.run())
        row = page.locator("#active-calls tr.call-row")
        await expect(row).to_have_count(1, timeout=5000)
        await expect(row).to_contain_text(CALLER)
        await expect(page.locator("#active-count")).to_have_text("1")
        await row.click()
        panel = page.locator("#call-panel")
        await expect(panel.locator("li.role-assistant").first).to_contain_text("Hello, this is Anna.")
        await expect(panel.locator(".timer")).not_to_have_text("0:00", timeout=3000)  # it runs
        # The caller speaks after the panel opened: the line arrives live, then the answer.
        await expect(panel.locator("li.role-caller")).to_contain_text("Can I order a pizza?", timeout=8000)
        await expect(panel.locator("li.role-assistant")).to_have_count(2, timeout=5000)
        await screenshot(page, "dashboard-live-call.png")

        hang_up = panel.locator("button.hangup:not(.hangup-now)")
        await hang_up.click()
        await expect(hang_up).to_have_text("Confirm")
        await hang_up.click()
        await expect(hang_up).to_have_text("Hanging up…")
        await expect(panel.locator("button.hangup-now")).to_be_enabled()  # in case the goodbye takes too long
        result = await task
        await expect(page.locator("#active-calls tr")).to_have_count(0, timeout=5000)
        ended = page.locator("#recent-calls tr.call-row").first
        await expect(ended).to_contain_text("ended by staff")
        await expect(panel.locator(".outcome")).to_contain_text("Ended from the dashboard by boss.")
        await screenshot(page, "dashboard-after-hang-up.png")

    assert result.ended_by == "server" and result.violations == []
    call = await get_call(result.callid)
    assert (call.status, call.end_reason) == ("completed", "staff_hangup")
    assert page.errors == []


async def test_talk_to_an_assistant_from_its_admin_page(browser, site):
    assistant = await sync_to_async(make_assistant)("Anna", NUMBER_A, welcome_message="Hello, this is Anna.")
    await sync_to_async(make_user)("boss", superuser=True)
    page = await logged_in_page(browser, site, "boss", f"/admin/assistants/assistant/{assistant.pk}/change/")
    await page.click("text=Talk to this assistant")
    await page.wait_for_url(f"**/dashboard/talk/{assistant.pk}/")

    async with fake_openai(site, answer_ms=800) as fake:
        fake.reply_texts[:] = ["Hello, this is Anna.", "I heard you."]
        fake.caller_transcripts[:] = ["Testing, one two three."]
        await page.click("#call-button")
        session = await fake.next_session()
        # The assistant's voice reaches the page, and the microphone's reaches OpenAI.
        await page.wait_for_function("window.voiceTestCall.stats.audioMessages > 0", timeout=5000)
        await session.wait_for("input_audio_buffer.speech_started", timeout=8)
        await expect(page.locator("#talk-transcript li.role-caller")).to_contain_text("Testing, one two three.")
        # The greeting is 0.8 s of audio: past 1.2 s, the reply to the caller has arrived too.
        await page.wait_for_function("window.voiceTestCall.stats.heardMs >= 1200", timeout=8000)
        await screenshot(page, "talk-to-an-assistant.png")
        stats = await page.evaluate("window.voiceTestCall.stats")
        call_pk = await page.evaluate("window.voiceTestCall.state.callPk")
        await page.click("#call-button")  # hang up
        await expect(page.locator("#talk-status")).to_have_text("The call has ended.", timeout=8000)
        await expect(page.locator("#talk-result")).to_contain_text("test call")

    assert stats["sentMs"] >= 1000 and stats["heardMs"] >= 1200
    heard = decode(bytes(session.input_audio), PCM_24000)
    assert rms(heard) > 300, "the fake microphone's voice arrived as sound, not silence"
    call = await sync_to_async(Call.objects.get)(pk=call_pk)
    assert call.is_test and call.assistant_id == assistant.pk and call.from_number == "browser:boss"
    assert (call.status, call.end_reason) == ("completed", "caller_hangup")
    lines = await sync_to_async(list)(call.transcript.order_by("position").values_list("role", "text"))
    # The greeting comes first, whole or cut short where the voice in the WAV talked over it.
    assert lines[0][0] == "assistant" and lines[0][1].startswith("Hello")
    assert ("caller", "Testing, one two three.") in lines
    assert page.errors == []


async def test_the_page_encodes_telephone_audio_like_the_server(browser, site):
    """Assistants on µ-law or A-law get the page's own G.711: it must match calls.audio exactly."""
    assistant = await sync_to_async(make_assistant)("Tele", NUMBER_A, audio_format="ulaw")
    await sync_to_async(make_user)("boss", superuser=True)
    page = await logged_in_page(browser, site, "boss", f"/dashboard/talk/{assistant.pk}/")
    samples = list(range(-32768, 32768, 4))
    js = await page.evaluate(
        """(samples) => {
          const c = window.voiceTestCall.codecs;
          const all = [...Array(256).keys()];
          return {
            ulawDecoded: all.map(c.ulawDecode), alawDecoded: all.map(c.alawDecode),
            ulaw: samples.map(c.ulawEncode), alaw: samples.map(c.alawEncode),
          };
        }""",
        samples,
    )
    assert js["ulawDecoded"] == list(decode(bytes(range(256)), ULAW))
    assert js["alawDecoded"] == list(decode(bytes(range(256)), ALAW))
    assert bytes(js["ulaw"]) == encode(array.array("h", samples), ULAW)
    assert bytes(js["alaw"]) == encode(array.array("h", samples), ALAW)


async def test_the_page_says_when_the_microphone_is_refused(site, tmp_path):
    """Without the fake device's permission prompt answered, a person is told what to do."""
    await sync_to_async(Assistant.objects.create)(name="Anna", instructions="x")
    await sync_to_async(make_user)("boss", superuser=True)
    assistant = await sync_to_async(Assistant.objects.get)(name="Anna")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=[f for f in FLAGS if f != "--use-fake-ui-for-media-stream"]
        )
        try:
            context = await chromium.new_context()
            await context.grant_permissions([])  # the microphone is not allowed
            page = await context.new_page()
            await page.goto(f"{site.http_url}/admin/login/?next=/dashboard/talk/{assistant.pk}/")
            await page.fill("#id_username", "boss")
            await page.fill("#id_password", "pw")
            await page.click("input[type=submit]")
            await page.wait_for_url(f"**/dashboard/talk/{assistant.pk}/")
            await page.click("#call-button")
            await expect(page.locator("#talk-status")).to_contain_text("not allowed to use the microphone")
            await expect(page.locator("#call-button")).to_have_text("Start call")
        finally:
            await chromium.close()
    assert not await sync_to_async(Call.objects.exists)()


async def test_call_tables_stay_inside_their_cards_on_a_laptop_screen(browser, site):
    """At 1280 px the "Recent calls" table (with its Cost column) scrolls inside its card, not out of it."""
    from django.utils import timezone

    def recent_calls() -> None:
        assistant = make_assistant("Reception and after-hours bookings for the whole group", NUMBER_A)
        for i in range(3):
            Call.objects.create(
                call_id=f"wide-{i}",
                from_number="+46709999999",
                to_number=NUMBER_A,
                assistant=assistant,
                started_at=timezone.now(),
                status="failed",
                end_reason="openai_error",
                cost="0.1234",
                end_detail="OpenAI refused the connection (HTTP 429): check the billing and limits of the project.",
            )

    await sync_to_async(recent_calls)()
    await sync_to_async(make_user)("boss", superuser=True)
    page = await logged_in_page(browser, site, "boss", "/dashboard/")
    await page.set_viewport_size({"width": 1280, "height": 900})
    await expect(page.locator("#recent-calls tr.call-row")).to_have_count(3)
    spill = await page.evaluate(
        """() => [...document.querySelectorAll("table.calls")].map(t => {
            const card = t.closest(".card");
            let shown = t;  // what is drawn: the table, or the box that scrolls it
            for (let el = t.parentElement; el !== card; el = el.parentElement) {
                if (getComputedStyle(el).overflowX !== "visible") shown = el;
            }
            const a = shown.getBoundingClientRect(), b = card.getBoundingClientRect();
            return Math.round(Math.max(0, a.right - b.right, b.left - a.left));
        })"""
    )
    assert spill == [0, 0], f"tables run out of their cards by {spill} px"
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await screenshot(page, "dashboard-1280.png")


async def test_upload_a_document_and_try_a_question(browser, site, tmp_path):
    """Knowledge: upload a Markdown file in admin, pick the assistant, then try a question on its page."""
    assistant = await sync_to_async(make_assistant)("Anna", NUMBER_A)
    await sync_to_async(make_user)("boss", superuser=True)
    faq = tmp_path / "faq.md"
    faq.write_text("# Opening hours\nWe are open Saturdays 10 to 14.\n\n# Delivery\nDelivery costs 49 kronor.\n")
    page = await logged_in_page(browser, site, "boss", "/admin/knowledge/document/add/")
    await page.fill("#id_title", "Shop FAQ")
    await page.set_input_files("#id_file", str(faq))
    await page.select_option("#id_assistants_from", label="Anna")
    await page.click("#id_assistants_add")
    await page.click("input[name=_save]")
    await expect(page.locator("ul.messagelist")).to_contain_text("“Shop FAQ” is ready: 2 passages.")
    await expect(page.locator("#result_list")).to_contain_text("Anna")  # used by

    await page.goto(f"{site.http_url}/admin/assistants/assistant/{assistant.pk}/change/")
    await page.fill("#knowledge-q", "are you open on saturday")
    await page.click("#knowledge-go")
    first = page.locator("#knowledge-results .knowledge-hit").first
    await expect(first).to_contain_text("Shop FAQ – Opening hours")
    await expect(first).to_contain_text("Saturdays 10 to 14")
    await screenshot(page, "knowledge-try-a-question.png")
    assert page.errors == []
