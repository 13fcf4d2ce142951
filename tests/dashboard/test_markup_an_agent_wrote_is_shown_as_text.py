"""What an agent writes reaches staff pages as text, never as markup. The Content-Security-Policy
refuses an injected script, but not markup that drives the console's own htmx (an `hx-post` that
fires on load with the page's CSRF token; docs/decisions.md, "A content security policy"), so
escaping is the wall that counts: every agent-written value goes through Django's autoescape, and no
template or view of ours marks text safe."""

import re
from pathlib import Path

from orchestrator.identity.principal import Principal
from routing import services as routing

ROOT = Path(__file__).resolve().parents[2]
HTMX_PAYLOAD = '<span hx-post="decision" hx-trigger="load" hx-vals=\'{"decision": "approve"}\'>x</span>'
# What would render text unescaped: the safe filter, autoescape off, mark_safe and SafeString.
# format_html escapes its arguments, so it is not among them.
UNESCAPING = re.compile(r"\|\s*safe\b|autoescape\s+off|mark_safe\(|SafeString\(|safeseq")


def test_htmx_markup_in_an_approvals_notes_and_payload_is_text_on_its_page(staff_client, db):
    finance = Principal(subject="agent:finance-bot", role="finance")
    routed = routing.route_task(
        principal=finance,
        type="pay-invoice",
        to_role="finance",
        trace_id="trace-markup",
        payload={"note": HTMX_PAYLOAD},
        requires_approval=True,
        approver_role="manager",
        approval_notes=HTMX_PAYLOAD,
    )

    page = staff_client.get(f"/dashboard/approvals/{routed.approval_id}/").content.decode()

    # The notes as text, and the payload as JSON text (its quotes backslashed), both escaped.
    assert "&lt;span hx-post=&quot;decision&quot; hx-trigger=&quot;load&quot;" in page
    assert "&lt;span hx-post=\\&quot;decision\\&quot;" in page
    assert "<span hx-post" not in page


def test_no_template_or_module_of_ours_renders_text_unescaped():
    apps = [path for path in ROOT.iterdir() if (path / "__init__.py").exists() and path.name != "tests"]
    files = [ROOT / "templates", *apps]
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for folder in files
        for path in sorted(folder.rglob("*"))
        if path.suffix in {".html", ".py", ".txt"} and "migrations" not in path.parts
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if UNESCAPING.search(line)
    ]

    assert found == []
