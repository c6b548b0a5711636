import pytest
from django.core.exceptions import ValidationError

from assistants.models import Assistant, PhoneNumber
from assistants.phone import normalize_e164


@pytest.mark.parametrize(
    "raw",
    ["+46701234567", "+46 70-123 45 67", "0046701234567", "46701234567", "+46 (0)70 123 45 67".replace("(0)", "")],
)
def test_normalize_common_spellings(raw):
    assert normalize_e164(raw) == "+46701234567"


@pytest.mark.parametrize("raw", ["", "0701234567", "+0123", "hello", "+4670123456789012345"])
def test_reject_what_is_not_e164(raw):
    with pytest.raises(ValueError):
        normalize_e164(raw)


def test_national_number_message_says_what_to_do():
    with pytest.raises(ValueError, match="country code"):
        normalize_e164("070-123 45 67")


@pytest.mark.django_db
def test_phone_number_is_normalised_and_unique():
    a = Assistant.objects.create(name="Reception", instructions="Be kind.")
    n = PhoneNumber(number="+46 70 123 45 67", assistant=a)
    n.full_clean()
    n.save()
    assert PhoneNumber.objects.get().number == "+46701234567"
    dup = PhoneNumber(number="0046701234567", assistant=a)
    with pytest.raises(ValidationError) as exc:
        dup.full_clean()
    assert "number" in exc.value.message_dict


@pytest.mark.django_db
def test_invalid_number_is_a_validation_error_on_the_field():
    a = Assistant.objects.create(name="Reception", instructions="Be kind.")
    with pytest.raises(ValidationError) as exc:
        PhoneNumber(number="0701234567", assistant=a).full_clean()
    assert "country code" in str(exc.value.message_dict["number"])
