"""Fixtures for the approval tests."""

import pytest
from aiosmtpd.controller import Controller
from django.contrib.auth.models import Group, User

from tests.net import free_port


@pytest.fixture
def smtp_server(settings):
    """smtp_server(handler) -> handler, served by a real SMTP server (aiosmtpd) on loopback that the
    mail settings point at for the test."""
    controllers = []

    def serve(handler, *, timeout=2):
        port = free_port()
        controllers.append(Controller(handler, hostname="127.0.0.1", port=port))
        controllers[-1].start()
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_TIMEOUT = timeout
        settings.PUBLIC_BASE_URL = "https://orchestrator.example.com"
        return handler

    yield serve
    for controller in controllers:
        controller.stop()


@pytest.fixture
def people(db):
    managers, _ = Group.objects.get_or_create(name="approver:manager")
    # Deciders are staff; their approver groups carry the permission to decide (made by migrate).
    Group.objects.get_or_create(name="approver:operations")[0].user_set.add(
        User.objects.create_user("olga", email="olga@example.com", is_staff=True)
    )
    maria = User.objects.create_user("maria", email="maria@example.com", is_staff=True)
    managers.user_set.add(
        maria, User.objects.create_user("gone", email="gone@example.com", is_active=False, is_staff=True)
    )
    managers.user_set.add(User.objects.create_user("nomail", email="", is_staff=True))
    User.objects.create_superuser("root", email="root@example.com", password="x")
    User.objects.create_user("bystander", email="bystander@example.com")
    return maria
