import pytest

from tests.webhooks.receiver import Receiver


@pytest.fixture(autouse=True)
def _webhooks_reach_loopback(settings):
    """Receivers in these tests listen on 127.0.0.1, which production refuses (the SSRF guard)."""
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    settings.WEBHOOK_BACKOFF_BASE_SECONDS = 0.01
    settings.WEBHOOK_BACKOFF_MAX_SECONDS = 0.05
    settings.WEBHOOK_TIMEOUT_SECONDS = 2.0
    settings.PUBLIC_BASE_URL = "https://orchestrator.example.com"


@pytest.fixture
def receiver():
    started = []

    def start(**options):
        started.append(Receiver(**options).start())
        return started[-1]

    yield start
    for each in started:
        each.stop()
