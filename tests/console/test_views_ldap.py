"""Console login with a directory password (django-auth-ldap against a real slapd): the same
backends as the token endpoint and the admin, with the directory's groups as roles."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.directory.conftest import ldap_on, new_tree, slapd, tree  # noqa: F401 (the directory's fixtures)

pytestmark = pytest.mark.django_db


def _login(client: Client, username: str, password: str):
    page = client.get("/console/login").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    return client.post("/console/login", {"username": username, "password": password, "csrfmiddlewaretoken": token})


def test_a_directory_worker_logs_in_with_the_directory_password(tree, ldap_on):  # noqa: F811
    ldap_on(tree)
    client = Client(enforce_csrf_checks=True)
    refused = _login(client, "u012", "not-the-password")
    assert refused.status_code == 200 and 'data-testid="login-error"' in refused.content.decode()
    response = _login(client, "u012", "pw-u012")  # u012 is a worker through nested directory groups
    assert response.status_code == 302
    inbox = client.get("/console/", follow=True)
    assert inbox.redirect_chain == [("/console/inbox", 302)]
    assert 'data-testid="nav-user">u012<' in inbox.content.decode()
