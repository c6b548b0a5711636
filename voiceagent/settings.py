"""Settings, read from the environment (and an optional `.env` file) with django-environ.

Every variable is listed in the README. With DEBUG off, missing secrets stop the process at
startup with a message that says which variable to set (`manage.py` and the server print it as
one line). `make run` writes a local `.env` on first use (DEBUG on, generated secrets), so every
command of the README works on a fresh clone; `VOICEAGENT_ENV_FILE` names another file, or none
when empty (the test suite reads none, so a developer's `.env` cannot change what it tests).
"""

from __future__ import annotations

import os
from pathlib import Path

import environ

from .config_errors import SettingError

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
ENV_FILE = os.environ.get("VOICEAGENT_ENV_FILE", str(BASE_DIR / ".env"))
if ENV_FILE:
    environ.Env.read_env(ENV_FILE, overwrite=False)

DEV_SECRET_KEY = "dev-insecure-secret-key-change-me"
DEV_ELKS_WS_SECRET = "dev-elks-secret"

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default=DEV_SECRET_KEY)
ELKS_WS_SECRET = env.str("ELKS_WS_SECRET", default=DEV_ELKS_WS_SECRET)

if not DEBUG:
    for name, value, default in (
        ("SECRET_KEY", SECRET_KEY, DEV_SECRET_KEY),
        ("ELKS_WS_SECRET", ELKS_WS_SECRET, DEV_ELKS_WS_SECRET),
    ):
        if not value or value == default:
            raise SettingError(
                f"{name} is not set. With DEBUG off it must be a long random value: "
                f"""python -c "import secrets; print(secrets.token_urlsafe(32))" """
                f"(or set DEBUG=1 for local development)."
            )
    if len(ELKS_WS_SECRET) < 16:
        raise SettingError("ELKS_WS_SECRET must be at least 16 characters: it is the only lock on the call socket.")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
OPENAI_REALTIME_URL = env.str("OPENAI_REALTIME_URL", default="wss://api.openai.com/v1/realtime")
# The text models' API (Responses): the openai package's own variable; empty means api.openai.com.
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "assistants",
    "calls",
    "tools",
    "dashboard",
    "insights",
    "knowledge",
    "campaigns",
    "scenarios",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "voiceagent.urls"
ASGI_APPLICATION = "voiceagent.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
# Under ASGI each request may run in a different thread: persistent connections would leak.
# (The fixed threads of calls.db.run_db keep theirs on SQLite, where opening one is slow.)
DATABASES["default"]["CONN_MAX_AGE"] = 0
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A pool instead of a new connection per query: call setup waits for the database.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DB_POOL_MIN", default=1),
        "max_size": env.int("DB_POOL_MAX", default=10),
        "timeout": 10,
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Calls write from several threads at once; wait for the lock instead of failing. In WAL mode
    # a reader never waits for a writer: a new call's assistant look-up does not queue behind the
    # records of the calls that are ending (measured: hello → OpenAI connect 37 ms → 12 ms).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")


def channel_layer_config(redis_url: str) -> dict:
    """In-memory layer without Redis; channels-redis with it (rediss:// as hosted Redis gives it)."""
    if not redis_url:
        return {"default": {"BACKEND": "voiceagent.layers.InMemoryChannelLayer"}}
    host: dict = {"address": redis_url}
    # redis-py 8 with channels-redis 4.3 drops idle connections unless the read timeout is off.
    host["socket_timeout"] = None
    if redis_url.startswith("rediss://"):
        # Hosted Redis (Heroku and similar) presents certificates that cannot be verified.
        host["ssl_cert_reqs"] = None
    return {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [host], "capacity": 1500, "expiry": 30},
        }
    }


CHANNEL_LAYERS = channel_layer_config(REDIS_URL)


def cache_config(redis_url: str) -> dict:
    """Shared across processes with Redis (login limits must hold whichever process answers)."""
    if not redis_url:
        return {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    options = {"ssl_cert_reqs": None} if redis_url.startswith("rediss://") else {}
    return {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url, "OPTIONS": options}
    }


CACHES = cache_config(REDIS_URL)
LOGIN_MAX_ATTEMPTS = env.int("LOGIN_MAX_ATTEMPTS", default=5)
LOGIN_WINDOW_SECONDS = env.int("LOGIN_WINDOW_SECONDS", default=15 * 60)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="Europe/Stockholm")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
    # Knowledge documents' files (knowledge app): on disk under MEDIA_ROOT/knowledge by default; on
    # platforms with ephemeral disks, any django-storages backend (README: "Knowledge documents").
    "knowledge": {
        "BACKEND": env.str("KNOWLEDGE_STORAGE_BACKEND", default="django.core.files.storage.FileSystemStorage"),
        "OPTIONS": env.json("KNOWLEDGE_STORAGE_OPTIONS", default={})
        or {"location": os.path.join(str(MEDIA_ROOT), "knowledge"), "base_url": "/media/knowledge/"},
    },
}
# Tests and the dev server run without collectstatic; whitenoise then serves from the finders.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

LOGIN_URL = "admin:login"

# Security: on a Heroku-style platform TLS ends at the router, which sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 60 * 60 * 24 * 30)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# "json" writes one JSON object per line (with call_id on call lines) for log platforms; "plain" for people.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise SettingError(f"LOG_FORMAT must be 'plain' or 'json', not {LOG_FORMAT!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "voiceagent.logfmt.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        # httpx2 logs every request's URL at INFO; tool and webhook URLs may carry secrets.
        "httpx2": {"level": "WARNING"},
    },
}

# Extensions of a call: observers told about its events, and the runner of the assistant's tools.
CALL_OBSERVERS: list[str] = [
    "insights.observers.call_insights",  # usage, cost, reply times, metrics (before the webhook reads them)
    "insights.recording.call_recorder",  # stereo recording, for assistants that record calls
    "insights.analysis.call_analyser",  # after-call analysis: queued before the webhook reads the call
    "campaigns.amd.answering_machine_detector",  # campaign calls only: answering machine or person
    # Live dashboards (call started/ended, transcript lines): after insights, so an ended call shows its cost.
    "dashboard.observers.dashboard_observer",
    # Keep it last: it sends the after-call webhook once the other observers have recorded the call.
    "tools.observers.tools_observer",
]
CALL_TOOL_RUNNER = "tools.runner.tool_runner"
# Extensions' part in recording a new call (calls.hooks.CallStartHook).
# tools' hook first: it claims the answered leg of an outbound call; campaigns then adds the contact's texts.
CALL_START_HOOKS: list[str] = [
    "tools.call_start.OutboundAndTools",
    "campaigns.call_start.CampaignCallStart",
    "knowledge.call_start.KnowledgeDocuments",
    # Voice-mode scenario calls (call id "scenario-…") are marked test calls.
    "scenarios.call_start.ScenarioCallStart",
]
# Built-in tools extension apps offer (tools.builtins): each names a function config → {name: (definition, fn)}.
CALL_BUILTIN_TOOLS: list[str] = ["knowledge.tool.builtin_tools", "campaigns.builtins.opt_out_builtins"]
# Mixins that extend the core's admin pages (calls.hooks.admin_extensions), first named first.
CALL_ADMIN_EXTENSIONS: list[str] = [
    "insights.admin_mixins.CallInsightsAdminMixin",
    "insights.analysis_admin.CallAnalysisAdminMixin",
    "tools.admin.CallToolsAdminMixin",
    "campaigns.admin.CallCampaignAdminMixin",
]
ASSISTANT_ADMIN_EXTENSIONS: list[str] = [
    "insights.analysis_admin.AssistantAnalysisAdminMixin",
    "tools.admin.AssistantToolsAdminMixin",
    "knowledge.admin.AssistantKnowledgeAdminMixin",
    "scenarios.admin.AssistantScenariosAdminMixin",
]
# Keys extensions add to the JSON documents about a call (after-call webhook, API): calls.hooks.
CALL_DOCUMENT_PARTS: list[str] = ["insights.analysis.call_document_analysis"]
# What a stopping server process waits for once its calls have ended (calls.hooks.wait_for_shutdown).
SHUTDOWN_WAITERS: list[str] = ["insights.recording.wait_for_saves"]
# Asked before every outbound call is placed (tools.outbound): `(to_number) -> refusal ("" to ring)`.
OUTBOUND_CALL_CHECKS: list[str] = ["campaigns.checks.do_not_call_refusal"]
# What apps above the dashboard add to its pages (dashboard.extensions): `(request) -> html`, `(call) -> html`.
DASHBOARD_PANELS: list[str] = ["campaigns.dashboard.campaigns_panel"]
DASHBOARD_CALL_DETAILS: list[str] = ["tools.handoff.transfer_note"]

# Each server process beats this often; one silent for SERVER_DEAD_AFTER_SECONDS is dead and its calls
# are closed by the next beat of any live process (or the worker): within dead-after + heartbeat of a crash.
SERVER_HEARTBEAT_SECONDS = env.float("SERVER_HEARTBEAT_SECONDS", default=5.0)
SERVER_DEAD_AFTER_SECONDS = env.float("SERVER_DEAD_AFTER_SECONDS", default=20.0)
# The worker process (Procfile `worker`, calls.jobs): background jobs and how often each runs, in seconds.
WORKER_JOBS: list[tuple[str, float]] = [
    ("tools.jobs.deliver_due_webhooks", 30.0),
    ("insights.jobs.delete_expired_recordings", 3600.0),
    ("calls.jobs.close_calls_of_dead_servers", SERVER_HEARTBEAT_SECONDS),
    ("insights.analysis.analyse_pending_calls", 5.0),
    ("campaigns.jobs.run_dialer", env.float("CAMPAIGN_DIALER_INTERVAL", default=5.0)),
    ("scenarios.jobs.run_queued_scenarios", 5.0),
]

# Scenario tests (scenarios app, docs/scenarios.md).
SCENARIO_CALLER_MODEL = env.str("SCENARIO_CALLER_MODEL", default="gpt-5-mini")
SCENARIO_JUDGE_MODEL = env.str("SCENARIO_JUDGE_MODEL", default="gpt-5-mini")
# How long one answer of the caller's or the judge's text model may take (seconds).
SCENARIO_TEXT_TIMEOUT = env.float("SCENARIO_TEXT_TIMEOUT", default=60.0)
# On: runs started from admin wait for the worker process; off: they run in a thread of the web process.
# Voice mode: where the simulated caller reaches our 46elks WebSocket (this server), its voice, its time limit.
SCENARIO_VOICE_URL = env.str("SCENARIO_VOICE_URL", default=f"ws://127.0.0.1:{env.int('PORT', default=8000)}")
SCENARIO_CALLER_VOICE = env.str("SCENARIO_CALLER_VOICE", default="cedar")
SCENARIO_VOICE_TIMEOUT = env.float("SCENARIO_VOICE_TIMEOUT", default=300.0)
SCENARIO_RUNS_IN_WORKER = env.bool("SCENARIO_RUNS_IN_WORKER", default=False)

# Actions (tools app; every variable is explained in docs/actions.md).
# The longest any tool may run; a webhook tool gets at least its own timeout plus one second.
CALL_TOOL_TIMEOUT = env.float("CALL_TOOL_TIMEOUT", default=10.0)
# This server's public https:// address, for URLs given to 46elks (outbound calls' whenhangup).
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="").rstrip("/")
ELKS_API_URL = env.str("ELKS_API_URL", default="https://api.46elks.com/a1").rstrip("/")
ELKS_API_USERNAME = env.str("ELKS_API_USERNAME", default="")
ELKS_API_PASSWORD = env.str("ELKS_API_PASSWORD", default="")
# The number outbound calls come from (else the assistant's first number) and the websocket number.
ELKS_CALLER_ID = env.str("ELKS_CALLER_ID", default="")
ELKS_WEBSOCKET_NUMBER = env.str("ELKS_WEBSOCKET_NUMBER", default="")
# Warm transfers (docs/campaigns.md): send the assistant's hand-off note by SMS to the colleague, from
# TRANSFER_SMS_FROM (a 46elks number, or up to 11 letters), else ELKS_CALLER_ID, else the dialled number.
TRANSFER_SMS = env.bool("TRANSFER_SMS", default=False)
TRANSFER_SMS_FROM = env.str("TRANSFER_SMS_FROM", default="")
# How long after we place an outbound call its WebSocket leg may arrive and still be paired with it.
OUTBOUND_PAIRING_WINDOW_SECONDS = env.float("OUTBOUND_PAIRING_WINDOW_SECONDS", default=180.0)
# After-call webhooks: first retry after this many seconds, then 4x longer each time (at most 6 h).
POST_CALL_WEBHOOK_RETRY_BASE_SECONDS = env.float("POST_CALL_WEBHOOK_RETRY_BASE_SECONDS", default=30.0)
POST_CALL_WEBHOOK_MAX_ATTEMPTS = env.int("POST_CALL_WEBHOOK_MAX_ATTEMPTS", default=8)

# After-call analysis (insights.analysis; docs/analysis.md): the text model, its limits, where it runs.
ANALYSIS_MODEL = env.str("ANALYSIS_MODEL", default="gpt-5-mini")
ANALYSIS_TIMEOUT_SECONDS = env.float("ANALYSIS_TIMEOUT_SECONDS", default=60.0)
# Retries (by the openai package, with backoff) on 429, 5xx, timeouts and lost connections.
ANALYSIS_MAX_RETRIES = env.int("ANALYSIS_MAX_RETRIES", default=3)
# 1: the web process analyses ended calls itself (in a thread), for setups without a worker process.
# 0: only the worker does (its job picks up waiting analyses every few seconds).
ANALYSIS_IN_WEB = env.bool("ANALYSIS_IN_WEB", default=True)
# Knowledge documents (docs/knowledge.md): the largest file or web page read, how long a web page may
# take, how many characters of passages one look-up hands the model.
KNOWLEDGE_MAX_BYTES = env.int("KNOWLEDGE_MAX_BYTES", default=10 * 1024 * 1024)
KNOWLEDGE_FETCH_TIMEOUT = env.float("KNOWLEDGE_FETCH_TIMEOUT", default=10.0)
KNOWLEDGE_TOOL_MAX_CHARS = env.int("KNOWLEDGE_TOOL_MAX_CHARS", default=2400)
# Hybrid ranking: OpenAI embeddings per passage re-rank the full-text candidates (needs OPENAI_API_KEY).
KNOWLEDGE_EMBEDDINGS = env.bool("KNOWLEDGE_EMBEDDINGS", default=False)
KNOWLEDGE_EMBEDDING_MODEL = env.str("KNOWLEDGE_EMBEDDING_MODEL", default="text-embedding-3-small")
KNOWLEDGE_EMBEDDINGS_URL = env.str("KNOWLEDGE_EMBEDDINGS_URL", default="https://api.openai.com/v1/embeddings")
KNOWLEDGE_EMBEDDINGS_QUERY_TIMEOUT = env.float("KNOWLEDGE_EMBEDDINGS_QUERY_TIMEOUT", default=2.0)

# Operations (docs/operations.md): /metrics answers only with `Authorization: Bearer <METRICS_TOKEN>`
# (unset: /metrics is off); calls whose reply time p95 exceeds SLOW_CALL_P95_MS are flagged in admin.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
SLOW_CALL_P95_MS = env.int("SLOW_CALL_P95_MS", default=1500)

# The fast lane for call sockets' audio frames (voiceagent.fastlane); 0 serves them through plain daphne/Channels.
FAST_LANE = env.bool("FAST_LANE", default=True)
# A wake-up of the event loop later than 100 ms is logged at most once per this many seconds.
LOOP_LAG_LOG_EVERY_SECONDS = env.float("LOOP_LAG_LOG_EVERY_SECONDS", default=30.0)

# Call limits (safe defaults; see the README).
CALL_HELLO_TIMEOUT = env.float("CALL_HELLO_TIMEOUT", default=5.0)
CALL_BYE_TIMEOUT = env.float("CALL_BYE_TIMEOUT", default=5.0)
OPENAI_CONNECT_TIMEOUT = env.float("OPENAI_CONNECT_TIMEOUT", default=10.0)
MAX_CALLS_PER_PROCESS = env.int("MAX_CALLS_PER_PROCESS", default=100)
MAX_CALLS_PER_NUMBER = env.int("MAX_CALLS_PER_NUMBER", default=50)
ELKS_MAX_MESSAGE_BYTES = env.int("ELKS_MAX_MESSAGE_BYTES", default=256 * 1024)
CALLER_MAX_MESSAGES_PER_SECOND = env.int("CALLER_MAX_MESSAGES_PER_SECOND", default=200)
# Source networks 46elks connects from (empty: anyone with the secret URL). See the README.
ELKS_ALLOWED_IPS = env.list("ELKS_ALLOWED_IPS", default=[])
# How many proxies in front of the app append to X-Forwarded-For (Heroku's router: 1). 0: trust none.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
# A staff hang-up from the dashboard lets the assistant say goodbye, at most this long ("Hang up now" ends at once).
STAFF_HANGUP_SECONDS = env.float("STAFF_HANGUP_SECONDS", default=6.0)
SHUTDOWN_GRACE_SECONDS = env.float("SHUTDOWN_GRACE_SECONDS", default=20.0)
CALL_HEARTBEAT_SECONDS = env.float("CALL_HEARTBEAT_SECONDS", default=60.0)
