"""Writes for campaigns, contacts and the do-not-call list (each one transaction)."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from assistants.phone import normalize_e164

from .csv_import import Row
from .models import Campaign, CampaignStatus, Contact, ContactAttempt, ContactStatus, DoNotCall, Outcome

# Which states a campaign may move to from which, as the admin's buttons allow.
MOVES = {
    "start": ({CampaignStatus.DRAFT}, CampaignStatus.RUNNING),
    "pause": ({CampaignStatus.RUNNING}, CampaignStatus.PAUSED),
    "resume": ({CampaignStatus.PAUSED, CampaignStatus.DONE}, CampaignStatus.RUNNING),
    "cancel": ({CampaignStatus.DRAFT, CampaignStatus.RUNNING, CampaignStatus.PAUSED}, CampaignStatus.CANCELLED),
}


class CampaignError(Exception):
    """A campaign action that cannot be done; the message says why."""


@transaction.atomic
def campaign_move(*, campaign_pk: int, action: str) -> Campaign:
    """Start, pause, resume or cancel a campaign; a call already ringing is left to finish."""
    allowed, target = MOVES[action]
    campaign = Campaign.objects.select_for_update().get(pk=campaign_pk)
    if campaign.status not in allowed:
        raise CampaignError(f"A campaign that is {campaign.get_status_display().lower()} cannot {action}.")
    if target == CampaignStatus.RUNNING and not campaign.contacts.exists():
        raise CampaignError("The campaign has no contacts: upload a contact list first.")
    campaign.status = target
    campaign.last_error = ""
    campaign.save(update_fields=["status", "last_error", "updated_at"])
    return campaign


@transaction.atomic
def contacts_import(*, campaign: Campaign, rows: list[Row]) -> int:
    """Add the good rows of a checked list; a number already in the campaign is not added twice."""
    contacts = [
        Contact(campaign=campaign, number=row.number, variables=row.variables, time_zone=row.time_zone)
        for row in rows
        if row.ok
    ]
    created = Contact.objects.bulk_create(contacts, ignore_conflicts=True)
    return len(created)


@transaction.atomic
def do_not_call_add(*, number: str, reason: str = "", source: str = "admin") -> DoNotCall:
    """Put a number on the do-not-call list; its campaign contacts still waiting are not called."""
    number = normalize_e164(number)
    entry, _ = DoNotCall.objects.get_or_create(number=number, defaults={"reason": reason[:200], "source": source})
    Contact.objects.filter(number=number, status=ContactStatus.PENDING).update(
        status=ContactStatus.SKIPPED, last_outcome=Outcome.DO_NOT_CALL
    )
    return entry


@transaction.atomic
def attempt_placed(*, attempt_pk: int, outbound_pk: int) -> None:
    ContactAttempt.objects.filter(pk=attempt_pk).update(outbound_id=outbound_pk)
    Contact.objects.filter(attempt_records__pk=attempt_pk).update(outbound_id=outbound_pk)


@transaction.atomic
def attempt_finished(*, attempt_pk: int, outcome: str, error: str = "", answered_by: str = "") -> None:
    """Record how one attempt went, and whether (and when) the contact is called again."""
    attempt = ContactAttempt.objects.select_for_update().select_related("contact__campaign").get(pk=attempt_pk)
    if attempt.outcome:
        return
    now = timezone.now()
    attempt.outcome, attempt.error, attempt.ended_at = outcome, error[:2000], now
    attempt.save(update_fields=["outcome", "error", "ended_at"])
    contact = attempt.contact
    campaign = contact.campaign
    contact.last_outcome = outcome
    if answered_by and not contact.answered_by:
        contact.answered_by = answered_by
    retry = {
        Outcome.NO_ANSWER: campaign.retry_on_no_answer,
        Outcome.BUSY: campaign.retry_on_busy,
        Outcome.FAILED: campaign.retry_on_failed,
        Outcome.VOICEMAIL: campaign.retry_on_voicemail,
    }.get(outcome, False)
    if outcome in (Outcome.COMPLETED, Outcome.OPTED_OUT) or (outcome == Outcome.VOICEMAIL and not retry):
        contact.status = ContactStatus.DONE
    elif outcome == Outcome.DO_NOT_CALL:
        contact.status = ContactStatus.SKIPPED
    elif retry and contact.attempts < campaign.max_attempts:
        contact.status = ContactStatus.PENDING
        contact.next_attempt_at = now + timedelta(minutes=campaign.retry_delay_minutes)
    else:
        contact.status = ContactStatus.FAILED
    contact.save(update_fields=["last_outcome", "answered_by", "status", "next_attempt_at"])


@transaction.atomic
def attempt_not_placed(*, attempt_pk: int, campaign_pk: int, error: str) -> None:
    """Our own setup stopped the call (no credentials, ...): the contact waits, the campaign pauses."""
    attempt = ContactAttempt.objects.select_for_update().get(pk=attempt_pk)
    attempt.delete()
    Contact.objects.filter(pk=attempt.contact_id).update(status=ContactStatus.PENDING, claimed_at=None)
    Contact.objects.filter(pk=attempt.contact_id, attempts__gt=0).update(attempts=F("attempts") - 1)
    Campaign.objects.filter(pk=campaign_pk, status=CampaignStatus.RUNNING).update(
        status=CampaignStatus.PAUSED, last_error=f"Paused: {error}"[:2000]
    )


@transaction.atomic
def attempt_released(*, attempt_pk: int) -> None:
    """A claim whose call was never placed (the worker stopped in between): the contact waits again."""
    attempt = ContactAttempt.objects.select_for_update().filter(pk=attempt_pk, outbound__isnull=True).first()
    if attempt is None:
        return
    attempt.delete()
    Contact.objects.filter(pk=attempt.contact_id, status=ContactStatus.DIALING).update(
        status=ContactStatus.PENDING, claimed_at=None, attempts=F("attempts") - 1
    )


@transaction.atomic
def contact_answered_by(*, contact_pk: int, answered_by: str) -> None:
    """What answered the contact's latest call (answering-machine detection); a machine's verdict stays."""
    Contact.objects.filter(pk=contact_pk).exclude(answered_by="machine").update(answered_by=answered_by)
