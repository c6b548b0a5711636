"""The "Prompt editors" group: change assistants, view calls; no users, no numbers."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP = "Prompt editors"
PERMISSIONS = [
    ("assistants", "view_assistant"),
    ("assistants", "change_assistant"),
    ("assistants", "view_phonenumber"),
    ("calls", "view_call"),
    ("calls", "view_transcriptentry"),
]


def create_group(apps, schema_editor):
    # Permissions are normally created after all migrations; this group needs them now.
    for config in apps.get_app_configs():
        config.models_module = True
        create_permissions(config, verbosity=0, apps=apps)
        config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=GROUP)
    for app_label, codename in PERMISSIONS:
        group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


def remove_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("calls", "0001_initial"),
        ("assistants", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_group, remove_group)]
