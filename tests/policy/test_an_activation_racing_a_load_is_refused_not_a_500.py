"""Activating a version while a load of the same role commits a new one answers "look again", not an
IntegrityError (a 500 in the admin). Found by an outside review: the activation's row lock finds the
versions there before the load, not the one the load adds, so it switched nothing off."""

import copy
import threading
import time

import pytest

from policy import services
from policy.models import ProfileVersion
from tests.policy.conftest import FINANCE

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_activation_waiting_behind_a_load_is_refused_and_the_load_stands():
    first, _ = services.upsert_profile(document=FINANCE, actor="test", source="test")
    second, _ = services.upsert_profile(
        document={**copy.deepcopy(FINANCE), "description": "v2"}, actor="test", source="test"
    )
    loading = threading.Event()

    def load_third():
        from django.db import connection, transaction

        try:
            with transaction.atomic():
                services.upsert_profile(
                    document={**copy.deepcopy(FINANCE), "description": "v3"}, actor="test", source="test"
                )
                loading.set()
                time.sleep(1.5)
        finally:
            connection.close()

    loader = threading.Thread(target=load_third)
    loader.start()
    assert loading.wait(10)

    with pytest.raises(services.ProfileRefused, match="look again and activate again"):
        services.activate_version(version_id=first.pk, actor="test")
    loader.join(10)

    assert list(ProfileVersion.objects.filter(role="finance", is_active=True).values_list("version", flat=True)) == [3]
