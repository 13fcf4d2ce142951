"""docker-compose.yml names only real things: its commands exist, its settings are documented and read."""

import importlib
import re
import shlex
from pathlib import Path

import pytest
import yaml
from django.core.management import get_commands

REPO = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = {name: service for name, service in SERVICES.items() if service.get("build")}


def settings_variables():
    return set(
        re.findall(r'env_(?:str|bool|int|list)\(\s*"([A-Z0-9_]+)"', (REPO / "orchestrator" / "settings.py").read_text())
    )


def documented_variables():
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (REPO / ".env.example").read_text(), flags=re.M))


def command_words(service):
    command = service["command"]
    words = command if isinstance(command, list) else shlex.split(command)
    if words[:2] == ["sh", "-c"]:
        words = shlex.split(words[2].replace("&&", " && "))
    return words


def commands_of(service):
    """Each shell command of the service, as a list of words."""
    current, commands = [], []
    for word in command_words(service):
        if word in ("&&", ";"):
            commands.append(current)
            current = []
        elif word != "exec":
            current.append(word)
    return [*commands, current]


def test_the_stack_is_postgresql_16_redis_7_and_the_app_roles():
    assert SERVICES["postgres"]["image"].startswith("postgres:16")
    assert SERVICES["redis"]["image"].startswith("redis:7")
    assert set(APP_SERVICES) == {"web", "stream", "worker", "beat"}
    assert (REPO / APP_SERVICES["web"]["build"] / "Dockerfile").is_file()


def test_postgresql_keeps_the_statements_of_errors_out_of_its_log():
    # A refused Idempotency-Key's statement carries request data (orchestrator/http/checks.py).
    command = SERVICES["postgres"]["command"]
    assert command[0] == "postgres"
    assert "log_min_error_statement=panic" in command[command.index("-c") + 1 :]


def test_exactly_one_beat_runs_and_no_worker_embeds_one():
    beats = [name for name, service in APP_SERVICES.items() if "beat" in command_words(service)]
    assert beats == ["beat"]
    assert SERVICES["beat"].get("deploy", {}).get("replicas", 1) == 1
    for word in command_words(SERVICES["worker"]):
        assert word not in ("-B", "--beat")


def test_web_migrates_then_serves_with_gunicorn():
    commands = commands_of(SERVICES["web"])
    assert commands[0][:3] == ["python", "manage.py", "migrate"]
    assert commands[1][0] == "gunicorn"


@pytest.mark.parametrize("service", sorted(APP_SERVICES))
def test_every_command_a_service_runs_exists_in_the_project(service):
    for words in commands_of(APP_SERVICES[service]):
        program = words[0]
        if program == "python":
            assert words[1] == "manage.py"
            assert words[2] in get_commands(), f"{service}: no management command {words[2]!r}"
        elif program == "celery":
            assert words[1:3] == ["-A", "orchestrator"]
            assert importlib.import_module("orchestrator").celery_app.main == "orchestrator"
            assert words[3] in ("worker", "beat")
        elif program == "gunicorn":
            module, _, attribute = words[1].partition(":")
            assert callable(getattr(importlib.import_module(module), attribute or "application"))
        else:
            pytest.fail(f"{service} runs an unexpected program {program!r}")


@pytest.mark.parametrize("service", sorted(APP_SERVICES))
def test_every_variable_given_to_the_app_is_a_setting_and_documented(service):
    names = set(APP_SERVICES[service].get("environment", {}))

    assert names, "the app services are configured through the environment"
    assert names <= settings_variables(), names - settings_variables()
    assert names <= documented_variables(), names - documented_variables()


def test_every_variable_the_compose_file_interpolates_is_documented():
    text = (REPO / "docker-compose.yml").read_text()
    interpolated = set(re.findall(r"\$\{([A-Z0-9_]+)", text))

    assert interpolated - documented_variables() == set()


def healthcheck_url(service):
    return re.search(r"http://127\.0\.0\.1:\d+(/[^'\"]*)", " ".join(SERVICES[service]["healthcheck"]["test"])).group(1)


def test_web_is_healthy_when_ready_and_the_stream_server_when_live():
    assert healthcheck_url("web") == "/api/v1/health/ready"
    assert healthcheck_url("stream") == "/api/v1/health/live"


@pytest.mark.parametrize("service", ["web", "stream"])
def test_gunicorn_runs_with_the_config_that_keeps_multiprocess_metrics_right(service):
    [words] = [words for words in commands_of(SERVICES[service]) if words[0] == "gunicorn"]
    assert words[words.index("-c") + 1] == "python:orchestrator.gunicorn_conf"
    assert callable(importlib.import_module("orchestrator.gunicorn_conf").child_exit)
    assert SERVICES[service]["environment"]["PROMETHEUS_MULTIPROC_DIR"]


def test_the_api_server_has_room_in_dev_shm_for_its_replay_copies():
    # Docker's /dev/shm is 64 MB unless asked; the copy file may grow to 256 MB (orchestrator.http.replay_copies).
    from orchestrator.http.replay_copies import _MAX_FILE_BYTES

    size = SERVICES["web"]["shm_size"]
    assert size.endswith("m") and int(size[:-1]) * 1024 * 1024 > _MAX_FILE_BYTES
