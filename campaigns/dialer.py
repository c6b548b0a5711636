"""The dialer: one round of every running campaign's work, run by the `worker` (settings.WORKER_JOBS).

Each round first settles the attempts whose call has ended (retry or not), then starts new calls
within the campaign's pacing (calls at once, calls per minute) and calling hours.

Several workers may run it at once: on PostgreSQL a campaign's round holds its row
(`SELECT … FOR UPDATE SKIP LOCKED`: another worker skips that campaign meanwhile), so pacing is
exact and no contact is claimed twice. On SQLite (no row locks) each contact is claimed by a
conditional UPDATE (pending → dialing), which one writer at a time wins: never twice, though two
workers may together overshoot the pacing by a call. State lives in the database only, so a
restarted worker carries on where the last one stopped.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from calls.models import CallStatus
from tools.models import OutboundCall, OutboundStatus
from tools.outbound import OutboundCallError, place_outbound_call

from . import services
from .models import AnsweredBy, Campaign, CampaignStatus, Contact, ContactAttempt, ContactStatus, DoNotCall, Outcome

log = logging.getLogger(__name__)

# A call 46elks never reported on (no hangup callback) is given up after this long.
STALE_AFTER = timedelta(minutes=15)
# A claim whose call was never placed (the worker stopped in between) is released after this long.
ORPHAN_AFTER = timedelta(minutes=2)


def _zone(name: str, fallback: str) -> ZoneInfo:
    for candidate in (name, fallback, "UTC"):
        try:
            return ZoneInfo(candidate)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo("UTC")


def in_calling_hours(campaign: Campaign, contact_zone: str, now: datetime) -> bool:
    """Whether a call may start now, in the contact's time zone (else the campaign's)."""
    local = now.astimezone(_zone(contact_zone, campaign.time_zone))
    days = campaign.calling_days if isinstance(campaign.calling_days, list) else []
    if local.weekday() not in days:
        return False
    return campaign.calling_hours_start <= local.time().replace(tzinfo=None) < campaign.calling_hours_end


def _outcome_of(outbound: OutboundCall | None, now: datetime, started: datetime) -> tuple[str, str] | None:
    """How a placed call went, once it is over (None: not over yet)."""
    if outbound is None:
        return None
    if outbound.status == OutboundStatus.FAILED:
        return Outcome.FAILED, outbound.error
    if outbound.status == OutboundStatus.ENDED:
        state = (outbound.elks_state or "").lower()
        if state == "busy":
            return Outcome.BUSY, outbound.error
        if state == "failed":
            return Outcome.FAILED, outbound.error
        return Outcome.NO_ANSWER, outbound.error
    if outbound.status == OutboundStatus.ANSWERED:
        call = outbound.call
        if call is None or call.status == CallStatus.ACTIVE:
            return None
        return Outcome.COMPLETED, ""
    if now - started > STALE_AFTER:
        return Outcome.NO_ANSWER, "46elks never reported how the call ended."
    return None


def settle(now: datetime) -> int:
    """Close the attempts whose call is over; returns how many."""
    settled = 0
    open_attempts = ContactAttempt.objects.filter(outcome="", contact__status=ContactStatus.DIALING).select_related(
        "outbound__call", "contact"
    )
    blocked = set()
    for attempt in open_attempts:
        if attempt.outbound is None:
            if now - attempt.created_at > ORPHAN_AFTER:
                _adopt_or_release(attempt)
            continue
        found = _outcome_of(attempt.outbound, now, attempt.created_at)
        if found is None:
            continue
        outcome, error = found
        answered_by = ""
        if outcome == Outcome.COMPLETED:
            answered_by = AnsweredBy.UNKNOWN  # unless the detector (campaigns.amd) said otherwise
            if not blocked:
                blocked = set(DoNotCall.objects.values_list("number", flat=True)) or {""}
            if attempt.contact.number in blocked:
                outcome = Outcome.OPTED_OUT
            elif attempt.contact.answered_by == AnsweredBy.MACHINE:
                outcome = Outcome.VOICEMAIL
        services.attempt_finished(attempt_pk=attempt.pk, outcome=outcome, error=error, answered_by=answered_by)
        settled += 1
    return settled


def _adopt_or_release(attempt: ContactAttempt) -> None:
    """A claim without a placed call: find the call if it was placed after all, else let the contact wait."""
    outbound = (
        OutboundCall.objects.filter(
            to_number=attempt.contact.number,
            source="campaign",
            created_at__gte=attempt.created_at,
            campaign_attempt__isnull=True,
        )
        .order_by("created_at")
        .first()
    )
    if outbound is not None:
        services.attempt_placed(attempt_pk=attempt.pk, outbound_pk=outbound.pk)
    else:
        services.attempt_released(attempt_pk=attempt.pk)


def _claim(campaign_pk: int, now: datetime) -> tuple[Campaign | None, list[tuple[int, str]]]:
    """Within pacing and calling hours, claim the contacts to call now: [(attempt pk, number)]."""
    with transaction.atomic():
        rows = Campaign.objects.filter(pk=campaign_pk, status=CampaignStatus.RUNNING).select_related("assistant")
        if connection.features.has_select_for_update_skip_locked:
            rows = rows.select_for_update(skip_locked=True, of=("self",))
        campaign = rows.first()
        if campaign is None:
            return None, []
        in_flight = Contact.objects.filter(campaign=campaign, status=ContactStatus.DIALING).count()
        this_minute = ContactAttempt.objects.filter(
            contact__campaign=campaign, created_at__gt=now - timedelta(seconds=60)
        ).count()
        room = min(campaign.max_concurrent - in_flight, campaign.calls_per_minute - this_minute)
        if room <= 0:
            return campaign, []
        due = Contact.objects.filter(campaign=campaign, status=ContactStatus.PENDING).filter(
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
        )
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        blocked = None
        claimed: list[tuple[int, str]] = []
        for contact in due.order_by("next_attempt_at", "pk")[: max(room * 20, 100)]:
            if len(claimed) >= room:
                break
            if not in_calling_hours(campaign, contact.time_zone, now):
                continue
            if blocked is None:
                blocked = set(DoNotCall.objects.values_list("number", flat=True))
            if contact.number in blocked:
                Contact.objects.filter(pk=contact.pk).update(
                    status=ContactStatus.SKIPPED, last_outcome=Outcome.DO_NOT_CALL
                )
                continue
            # The conditional update is the claim where there are no row locks (SQLite).
            won = Contact.objects.filter(pk=contact.pk, status=ContactStatus.PENDING).update(
                status=ContactStatus.DIALING,
                claimed_at=now,
                attempts=contact.attempts + 1,
                outbound=None,
                answered_by="",
            )
            if won:
                attempt = ContactAttempt.objects.create(contact=contact)
                claimed.append((attempt.pk, contact.number))
        return campaign, claimed


def _finish_if_done(campaign: Campaign) -> bool:
    open_contacts = Contact.objects.filter(
        campaign=campaign, status__in=(ContactStatus.PENDING, ContactStatus.DIALING)
    ).exists()
    if open_contacts:
        return False
    return bool(
        Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.RUNNING).update(status=CampaignStatus.DONE)
    )


def dial_round(now: datetime | None = None) -> str:
    """One round for every running campaign; a sentence for the worker's log ("" when idle)."""
    now = now or timezone.now()
    settled = settle(now)
    placed = failed = 0
    for campaign_pk in Campaign.objects.filter(status=CampaignStatus.RUNNING).values_list("pk", flat=True):
        campaign, claimed = _claim(campaign_pk, now)
        if campaign is None:
            continue
        for index, (attempt_pk, number) in enumerate(claimed):
            try:
                outbound = place_outbound_call(assistant=campaign.assistant, to=number, source="campaign")
            except OutboundCallError as exc:
                if exc.outbound is not None:  # 46elks refused this one call: a failed attempt
                    services.attempt_placed(attempt_pk=attempt_pk, outbound_pk=exc.outbound.pk)
                    services.attempt_finished(attempt_pk=attempt_pk, outcome=Outcome.FAILED, error=exc.message)
                    failed += 1
                    continue
                if DoNotCall.objects.filter(number=number).exists():  # listed since the claim
                    services.attempt_finished(attempt_pk=attempt_pk, outcome=Outcome.DO_NOT_CALL, error=exc.message)
                    continue
                # Refused before anything was recorded: our setup (credentials, an inactive assistant, ...).
                services.attempt_not_placed(attempt_pk=attempt_pk, campaign_pk=campaign.pk, error=exc.message)
                for later_pk, _ in claimed[index + 1 :]:
                    services.attempt_released(attempt_pk=later_pk)
                log.warning("campaign %s paused: %s", campaign.pk, exc.message)
                break
            services.attempt_placed(attempt_pk=attempt_pk, outbound_pk=outbound.pk)
            placed += 1
        _finish_if_done(campaign)
    if not (settled or placed or failed):
        return ""
    return f"{placed} calls placed, {failed} failed to place, {settled} attempts settled"
