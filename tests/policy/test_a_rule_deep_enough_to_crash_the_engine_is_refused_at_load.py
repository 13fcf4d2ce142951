"""A rule's `when` the CEL engine could crash the process on is refused at load, before anything
compiles it: longer than MAX_WHEN_LENGTH, brackets nested deeper than MAX_WHEN_NESTING, or operators,
selects and calls chained deeper than MAX_WHEN_DEPTH. Every path that makes a version refuses it
(load_profiles, the admin, the service), and a stored version holding one denies everything.

Found by an outside review: the engine (common-expression-language 0.10.0) recurses without limit, so
`has(action.arguments.a.a...)` with 14,000 selects loaded cleanly and then killed every gunicorn worker
that evaluated it (SIGSEGV); with 20,000 it killed load_profiles itself. Each shape below is shown to
crash the engine, run in a child process on the stack it crashes with, and to be refused at load; the
deepest shapes the bounds let through run in a thread of 128 KiB (musl's default thread stack, the
smallest a worker thread is given) without a crash."""

import signal
import subprocess
import sys

import pytest
import yaml
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from policy import services
from policy.models import ProfileVersion
from tests.policy.conftest import FINANCE

# Compiles and runs the expression in the file argv[1] on a thread of argv[2] KiB (0: the main thread).
ENGINE = """
import sys, threading, cel
source = open(sys.argv[1]).read()
def run():
    try:
        cel.compile(source).execute({"action": {"arguments": {"a": {}}}, "a": True, "b": True, "x": 1})
    except BaseException:
        pass  # an error is the engine's answer; only a crash is a failure here
if sys.argv[2] != "0":
    threading.stack_size(int(sys.argv[2]) * 1024)
thread = threading.Thread(target=run)
thread.start()
thread.join()
"""


def run_in_engine(tmp_path, source, *, stack_kib):
    path = tmp_path / "when.cel"
    path.write_text(source)
    return subprocess.run(
        [sys.executable, "-c", ENGINE, str(path), str(stack_kib)],
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", "RUST_BACKTRACE": "0"},
        timeout=120,
    ).returncode


def profile(when, effect="deny"):
    return {**FINANCE, "rules": [{"id": "deep", "when": when, "effect": effect}]}


REVIEWED = "has(action.arguments" + ".a" * 14000 + ")"

# (expression, the stack it crashes the engine on in KiB (0: a main thread of 8 MiB), the refusal)
CRASHING = {
    "the review's 14,000 selects": (REVIEWED, 0, "is 28021 characters long"),
    "15,000 additions": (" + ".join(["1"] * 15000) + " > 0", 0, "characters long"),
    "2,000 selects in 4 KB": ("has(action.arguments" + ".a" * 2000 + ")", 1024, "chains 2002 operators"),
    "2,000 additions in 4 KB": ("+".join(["1"] * 2000) + ">0", 1024, "chains 2000 operators"),
    "1,300 indexes": ("a" + "[0]" * 1300 + " == 1", 256, "chains 1301 operators"),
    "300 method calls": ('"a"' + ".lowerAscii()" * 300 + ' == "a"', 128, "chains 601 operators"),
    "500 'in'": ("1" + " in [1]" * 500, 256, "chains 1000 operators"),
    "40 parentheses": ("(" * 40 + "true" + ")" * 40, 256, "nests brackets 40 deep"),
    "40 lists": ("size(" + "[" * 40 + "]" * 40 + ") > 0", 256, "nests brackets 41 deep"),
    "40 maps": ("size(" + "{'a': " * 40 + "1" + "}" * 40 + ") > 0", 256, "nests brackets 41 deep"),
    "40 calls": ("int(" * 40 + "1" + ")" * 40 + " > 0", 256, "nests brackets 40 deep"),
    "40 macros": ("".join(f"[1].all(x{n}, " for n in range(40)) + "true" + ")" * 40, 256, "nests brackets 40 deep"),
    # Found by the second outside review: a string the engine does not read as one (an escape CEL
    # lacks, a carriage return), whose brackets it then parses as code, hid them from the bounds.
    "parentheses after an escape CEL lacks": ('"\\q' + "(" * 40 + "true" + ")" * 40 + '"', 256, "nests brackets"),
    "parentheses after a carriage return": ('"\r' + "(" * 40 + "true" + ")" * 40 + '"', 256, "nests brackets"),
    # Found by the third: code the engine parses after a backtick identifier holding `//`, or after an
    # `rb"` prefix it lacks, which the tokenizer read as a comment or a raw string.
    "parentheses after a backtick identifier": ("x.`//` + " + "(" * 40 + "1" + ")" * 40, 256, "nests brackets"),
    "divisions after a backtick identifier": ("x.`//` + " + "/".join(["1"] * 1500), 256, "chains"),
    "parentheses after an rb prefix": ('(rb"\\" " + ' + "(" * 40 + "1" + ")" * 40 + ' + "x")', 256, "nests brackets"),
}


@pytest.mark.parametrize("shape", CRASHING)
def test_an_expression_that_crashes_the_engine_is_refused_before_it_compiles(db, tmp_path, shape):
    when, stack_kib, refusal = CRASHING[shape]

    assert run_in_engine(tmp_path, when, stack_kib=stack_kib) == -signal.SIGSEGV

    with pytest.raises(services.ProfileRefused, match=refusal) as refused:
        services.upsert_profile(document=profile(when), actor="test", source="test")
    assert refused.value.rule_id == "deep"
    assert not ProfileVersion.objects.exists()


def test_load_profiles_names_the_file_and_the_rule_and_loads_nothing(db, tmp_path):
    path = tmp_path / "finance.yaml"
    path.write_text(yaml.safe_dump(profile(REVIEWED)))

    with pytest.raises(CommandError, match=rf"{path}, rule 'deep': 'when' is 28021 characters long; .* at most 4096"):
        call_command("load_profiles", str(path))
    assert not ProfileVersion.objects.exists()


def test_the_admin_form_refuses_it(client, db):
    client.force_login(get_user_model().objects.create_superuser("ada", "ada@example.com", "pw-for-tests"))

    response = client.post("/admin/policy/profileversion/add/", {"profile_yaml": yaml.safe_dump(profile(REVIEWED))})

    assert response.status_code == 200
    assert "rule &#x27;deep&#x27;: &#x27;when&#x27; is 28021 characters long" in response.content.decode()
    assert not ProfileVersion.objects.exists()


def test_a_stored_version_holding_one_denies_everything(finance, db):
    # Written before the bounds existed: it is not compiled, the role's checks are denied.
    document = profile(" && ".join(["true"] * 1100), effect="allow")
    ProfileVersion.objects.create(
        role="finance", version=1, digest=services.digest_of(document), document=document, is_active=True
    )

    response = finance.post("/api/v1/policy/check", {"tool": "pay_invoice", "arguments": {}}, format="json")

    assert response.status_code == 403
    assert (response.json()["rule"], response.json()["decision"]) == ("deep", "deny")


# The deepest expressions of each kind the bounds let through.
N, D = services.MAX_WHEN_NESTING, services.MAX_WHEN_DEPTH
AT_THE_BOUNDS = {
    "parentheses around a chain": "(" * N + "x" + " + 1" * (D - N) + ")" * N + " > 0",
    "selects": "has(action.arguments" + ".a" * (D - 3) + ")",
    "additions": " + ".join(["1"] * D) + " > 0",
    "indexes": "a" + "[0]" * (D - 1) + " == 1",
    "method calls": '"a"' + ".lowerAscii()" * (D // 2 - 1) + ' == "a"',
    "'in'": "1" + " in [1]" * (D // 2),
    "lists": "size(" + "[" * (N - 1) + "]" * (N - 1) + ") > 0",
    "maps": "size(" + "{'a': " * (N - 1) + "1" + "}" * (N - 1) + ") > 0",
    "calls": "int(" * N + "1" + ")" * N + " > 0",
    "macros": "".join(f"[1].all(x{n}, " for n in range(N)) + "true" + ")" * N,
    "a chain at every level": "".join("1 + " * (D // N - 2) + "int(" for _ in range(N)) + "1" + ")" * N + " > 0",
    "conditions": "(a ? " * N + "true" + " : false)" * N,
    "conditions in a row": "a ? b : " * (D // 2) + "b",
    "chains joined by &&": " && ".join(["action.arguments" + ".a" * (D - 3) + " == 1"] * 27),
    "negations": "!" * D + "a",
}


@pytest.mark.parametrize("shape", AT_THE_BOUNDS)
def test_the_deepest_expression_the_bounds_let_through_runs_on_a_128_kib_thread(db, tmp_path, shape):
    when = AT_THE_BOUNDS[shape]
    services.validate_document(profile(when))

    assert run_in_engine(tmp_path, when, stack_kib=128) == 0
