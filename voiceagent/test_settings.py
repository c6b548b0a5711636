"""Settings for the test suite: production settings with test secrets and plain static storage."""

import os
import tempfile

os.environ.setdefault("VOICEAGENT_ENV_FILE", "")  # never a developer's .env: tests run as CI does
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789")
os.environ.setdefault("ELKS_WS_SECRET", "test-elks-secret-0123456789")
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
# Uploaded files (knowledge documents) go to a temporary folder, shared with the suite's daphne.
os.environ.setdefault("MEDIA_ROOT", os.path.join(tempfile.gettempdir(), f"voiceagent-test-media-{os.getpid()}"))

from .settings import *  # noqa: F403

STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
WHITENOISE_USE_FINDERS = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The suite runs a real daphne in a subprocess: it must see the test database, so SQLite's test
# database is a file, and the subprocess is pointed at the test database by name.
# Each test run has its own test database, so runs side by side do not trample each other.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / f".test-db-{os.getpid()}.sqlite3")}  # noqa: F405
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}  # noqa: F405
if os.environ.get("VOICEAGENT_DB_NAME"):
    DATABASES["default"]["NAME"] = os.environ["VOICEAGENT_DB_NAME"]  # noqa: F405
LOGGING["loggers"]["daphne.server"] = {"level": "INFO"}  # noqa: F405  (the suite waits for "Listening on")
WHITENOISE_AUTOREFRESH = True

# pytest-xdist's workers (and their daphne subprocesses, which inherit PYTEST_XDIST_WORKER) share
# one Redis: each worker has its own channel-layer and cache prefixes, so none hears another's groups.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if "CONFIG" in CHANNEL_LAYERS["default"]:  # noqa: F405
    CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"asgi-test{_WORKER}"  # noqa: F405
CACHES["default"]["KEY_PREFIX"] = f"test{_WORKER}"  # noqa: F405
