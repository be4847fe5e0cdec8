"""Settings of the end-to-end test project.

DEBUG is on on purpose: the classic decorator skipped validation under DEBUG,
twilioguard never does. The TWILIOGUARD_* settings come from the environment
the tests start the server with.
"""

import os

DEBUG = True
SECRET_KEY = "end-to-end-tests-only"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "djangoapp.urls"
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
USE_TZ = True

TWILIOGUARD_URL = os.environ["TWILIOGUARD_URL"]
TWILIOGUARD_TIMEOUT = 5
for _name in ("TWILIOGUARD_PUBLIC_BASE_URL", "TWILIOGUARD_TRUSTED_PROXIES", "TWILIOGUARD_ACCOUNTS", "TWILIOGUARD_MODE", "TWILIOGUARD_DUPLICATES"):
    if os.environ.get(_name):
        globals()[_name] = os.environ[_name]
