import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

from api.middleware import CharsetGuard  # noqa: E402 - it imports DRF, which needs the settings set up

application = CharsetGuard(application)  # charsets Django cannot decode a query string with: 415
