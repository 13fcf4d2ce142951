""".env.example documents every environment variable orchestrator/settings.py reads."""

from tests.test_docker_compose import documented_variables, settings_variables


def test_every_setting_read_from_the_environment_is_in_env_example():
    missing = settings_variables() - documented_variables()

    assert not missing, f"add to .env.example: {', '.join(sorted(missing))}"


def test_the_settings_scan_finds_the_documented_core_settings():
    assert {
        "DATABASE_URL",
        "REDIS_URL",
        "SESSION_RETENTION_DAYS",
        "SECRET_KEY",
        "CELERY_BROKER_URL",
    } <= settings_variables()
