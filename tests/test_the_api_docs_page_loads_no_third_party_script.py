"""The Swagger UI page at /api/docs/ loads its script and styles from our own static files. By default
drf-spectacular pointed it at a CDN's latest build, unpinned and without SRI, and that script runs on
the origin of the admin and the console, where it could act as any staff member who opens the page
(an outside review)."""

import re

from django.contrib.staticfiles import finders


def test_the_docs_page_names_no_script_or_style_of_another_origin(client, db):
    html = client.get("/api/docs/").content.decode()

    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(source.endswith("swagger-ui-bundle.js") for source in sources), sources
    assert all(source.startswith("/") and not source.startswith("//") for source in sources), sources
    assert "jsdelivr" not in html and "unpkg" not in html


def test_the_scripts_it_names_are_files_we_ship(client, db):
    html = client.get("/api/docs/").content.decode()

    for source in re.findall(r'src="/static/([^"?]+)', html):
        assert finders.find(source), source


def test_the_page_sends_the_schema_address_to_no_validator(client, db):
    # Swagger UI's default shows a badge fetched from validator.swagger.io with the schema's address.
    script = client.get("/api/docs/?script=").content.decode()

    assert '"validatorUrl": null' in script, script
