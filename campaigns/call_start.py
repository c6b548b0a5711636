"""The campaigns app's part in a new call (settings.CALL_START_HOOKS, after tools' hook).

When the call is the answered leg of a campaign's call (tools claimed it: the claim's target is
the OutboundCall), its contact's {{variables}} go into the call's welcome message and
instructions, and the voicemail policy into its extras: the live call never queries the database.
"""

from __future__ import annotations

import logging
from typing import Any

from calls.hooks import CONFIG_OVERRIDES, CallStartHook, Claim

from .models import Contact, ContactAttempt, ContactStatus
from .rendering import MissingVariable, render, render_prompt

log = logging.getLogger(__name__)


def _contact_for(outbound: Any) -> Contact | None:
    attempt = ContactAttempt.objects.select_related("contact__campaign").filter(outbound_id=outbound.pk).first()
    if attempt is not None:
        return attempt.contact
    # The leg may arrive before the dialer linked the attempt: the contact being dialled at this number.
    return (
        Contact.objects.select_related("campaign")
        .filter(number=outbound.to_number, status=ContactStatus.DIALING, campaign__assistant_id=outbound.assistant_id)
        .order_by("-claimed_at")
        .first()
    )


class CampaignCallStart(CallStartHook):
    def extras(self, assistant: Any, claim: Claim | None) -> dict[str, Any]:
        target = claim.target if claim is not None else None
        if target is None or getattr(target, "source", "") != "campaign":
            return {}
        contact = _contact_for(target)
        if contact is None:
            return {}
        campaign = contact.campaign
        variables = {str(k): str(v) for k, v in (contact.variables or {}).items()}
        try:
            overrides = render_prompt(assistant, variables)
            voicemail = render(campaign.voicemail_message, variables, where="The voicemail message")
        except MissingVariable as exc:
            log.warning("campaign %s, contact %s: %s", campaign.pk, contact.pk, exc)
            return {"campaign": {"id": campaign.pk, "contact": contact.pk, "number": contact.number}}
        return {
            CONFIG_OVERRIDES: overrides,
            "campaign": {
                "id": campaign.pk,
                "contact": contact.pk,
                "number": contact.number,
                "voicemail_policy": campaign.voicemail_policy,
                "voicemail_message": voicemail,
            },
        }
