"""A person signing in through the real provider (the authorization code flow a browser follows)."""

import importlib
from urllib.parse import urlparse

import requests
from django.test import Client
from django.urls import clear_url_caches

import orchestrator.urls

STAFF = {"groups": ["orchestrator-staff"]}


def reload_urls():
    importlib.reload(orchestrator.urls)
    clear_url_caches()


def sign_in(provider, sub, claims):
    """Open /admin/ in a fresh browser, pick `sub` on the provider's form, and follow back."""
    provider.set_user(sub, claims)
    browser = Client()
    response = browser.get("/admin/")
    while response.status_code == 302 and not response["Location"].startswith(provider.issuer):
        response = browser.get(response["Location"])
    assert response.status_code == 302, response.content
    authorized = requests.post(response["Location"], data={"sub": sub}, allow_redirects=False, timeout=5)
    assert authorized.status_code == 302, authorized.text
    callback = urlparse(authorized.headers["Location"])
    assert callback.path == "/oidc/callback/"
    landed = browser.get(f"{callback.path}?{callback.query}")
    return browser, landed
