"""Give every existing assistant its first revision, so prompt history starts at once.

A self-contained copy of the snapshot rule in insights/revisions.py (migrations must not depend on
code that will change): the assistant's own fields except id, timestamps and secrets.
"""

import json

from django.core.serializers.json import DjangoJSONEncoder
from django.db import migrations

NOT_TRACKED = {"id", "created_at", "updated_at"}
SECRET_HINTS = ("secret", "password", "token", "api_key")


def first_revisions(apps, schema_editor):
    Assistant = apps.get_model("assistants", "Assistant")
    AssistantRevision = apps.get_model("assistants", "AssistantRevision")
    fields = [
        f
        for f in Assistant._meta.concrete_fields
        if f.name not in NOT_TRACKED and not any(hint in f.name for hint in SECRET_HINTS)
    ]
    for assistant in Assistant.objects.all():
        if AssistantRevision.objects.filter(assistant=assistant).exists():
            continue
        settings = {f.name: getattr(assistant, f.attname) for f in fields}
        AssistantRevision.objects.create(
            assistant=assistant,
            number=1,
            settings=json.loads(json.dumps(settings, cls=DjangoJSONEncoder)),
            changed_fields=[],
        )


class Migration(migrations.Migration):
    dependencies = [
        ("insights", "0002_seed_prices"),
        ("assistants", "0002_extension_fields"),
    ]

    operations = [migrations.RunPython(first_revisions, migrations.RunPython.noop)]
