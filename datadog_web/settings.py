"""Settings, all read from the environment (SPEC §1).

Unset means the embedded default: SQLite metadata database, the django-q2
ORM broker and a file cache every local process shares, all kept under
``VAR_DIR``. ``DATABASE_URL`` and ``REDIS_URL`` switch to PostgreSQL and
Redis. A bad value stops the process with a message naming the variable.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import dj_database_url
from corsheaders.defaults import default_headers
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from core.env import env_bool, env_int, env_list, env_networks, env_str, env_url
from core.known_secrets import known_secret_problems

BASE_DIR = Path(__file__).resolve().parent.parent
# Embedded state (SQLite file, generated keys, file cache) lives here.
VAR_DIR = Path(env_str("DATADOG_VAR_DIR", str(BASE_DIR / "var")) or "")
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)
TESTING = "pytest" in sys.modules or env_bool("DATADOG_TESTING", False)
# The qcluster parent forks its workers: a connection pool opened there would
# be shared by the children (see DATABASES below).
IS_WORKER = len(sys.argv) > 1 and sys.argv[1] == "qcluster"

DATABASE_URL = env_url("DATABASE_URL", {"postgres", "postgresql", "sqlite"})
REDIS_URL = env_url("REDIS_URL", {"redis", "rediss"})
EMBEDDED = DATABASE_URL is None or DATABASE_URL.startswith("sqlite")


def _local_secret(filename: str, make: Callable[[], str]) -> str:
    """Read a generated secret kept in VAR_DIR, creating it on first use."""
    path = VAR_DIR / filename
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env_str("SECRET_KEY")
if SECRET_KEY is None:
    if not EMBEDDED:
        raise ImproperlyConfigured("SECRET_KEY: required when DATABASE_URL is set")
    SECRET_KEY = _local_secret("secret_key", lambda: secrets.token_urlsafe(50))
if len(SECRET_KEY.encode()) < 32:
    raise ImproperlyConfigured("SECRET_KEY: must be at least 32 bytes (it signs JWTs)")

# Fernet keys for connection secrets: the first encrypts, all decrypt (rotation).
FERNET_KEYS = env_list("FERNET_KEYS", [])
if not FERNET_KEYS:
    if not EMBEDDED:
        raise ImproperlyConfigured("FERNET_KEYS: required when DATABASE_URL is set")
    FERNET_KEYS = [_local_secret("fernet_key", lambda: Fernet.generate_key().decode())]
for _key in FERNET_KEYS:
    try:
        Fernet(_key)
    except ValueError:
        raise ImproperlyConfigured(
            "FERNET_KEYS: each key must be 32 url-safe base64-encoded bytes"
        ) from None
if DATABASE_URL is not None:
    # Production refuses the secrets .env.example and docker-compose.yml publish
    # (SPEC §10): every reader of the repository knows them.
    _published = known_secret_problems(
        secret_key=SECRET_KEY,
        fernet_keys=FERNET_KEYS,
        database_password=unquote(urlparse(DATABASE_URL).password or ""),
    )
    if _published:
        raise ImproperlyConfigured("; ".join(str(problem) for problem in _published))

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
ALLOWED_ORIGINS = env_list("ALLOWED_ORIGINS", ["http://localhost:3000", "http://localhost:8080"])
DATA_ROOT = Path(env_str("DATA_ROOT", str(VAR_DIR / "data")) or "").resolve()
DATA_ROOT.mkdir(parents=True, exist_ok=True)
# dbt tasks run projects found under this folder only (docs/dbt.md).
DBT_PROJECTS_ROOT = Path(env_str("DBT_PROJECTS_ROOT", str(DATA_ROOT / "dbt")) or "").resolve()

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "corsheaders",
    "django_htmx",
    "template_partials",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "django_q",
    "accounts",
    "connectors",
    "pipelines",
    "ops",  # on top: reports on pipelines and connectors
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files from the app server itself (gunicorn has no static serving).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "datadog_web.urls"
WSGI_APPLICATION = "datadog_web.wsgi.application"

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
                "accounts.context_processors.role",  # user_role, user_is_admin for the layout
            ],
        },
    },
]

# --- Database -------------------------------------------------------------
if EMBEDDED:
    sqlite_path = VAR_DIR / "db.sqlite3"
    if DATABASE_URL:
        sqlite_path = Path(dj_database_url.parse(DATABASE_URL)["NAME"])
    DATABASES: dict[str, Any] = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": sqlite_path,
            "OPTIONS": {
                # Web and worker processes write the same file: WAL lets readers
                # go on during a write, IMMEDIATE takes the write lock up front so
                # two writers queue instead of deadlocking on a lock upgrade.
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            # A file, not :memory:, so worker processes started by tests see it.
            "TEST": {"NAME": str(VAR_DIR / "test_db.sqlite3")},
        }
    }
else:
    assert DATABASE_URL is not None  # nosec B101 - type narrowing
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=0, conn_health_checks=True)
    _db["ENGINE"] = "django.db.backends.postgresql"
    if IS_WORKER:
        # No pool in qcluster: the parent forks its workers after touching the
        # database, and a pool's sockets would be shared by the children. Each
        # worker process keeps one persistent connection instead.
        _db["CONN_MAX_AGE"] = 300
        # A health check is a round trip per task; a broken connection fails
        # its task's query instead, and django-q2 closes it before the next.
        _db["CONN_HEALTH_CHECKS"] = False
    else:
        # Django's native psycopg pool needs CONN_MAX_AGE=0.
        _db["OPTIONS"] = {
            "pool": {
                "min_size": env_int("DB_POOL_MIN", 1, minimum=0),
                "max_size": env_int("DB_POOL_MAX", 10, minimum=1),
                "timeout": 10,
            }
        }
    DATABASES = {"default": dict(_db)}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, checkpoints and broker ----------------------------------------
REDIS_PREFIX = env_str("REDIS_PREFIX", "datadog") or "datadog"
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_PREFIX,
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        }
    }
else:
    # A file cache is shared by every local process (web, workers, commands).
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

WORKERS = env_int("WORKERS", 2, minimum=1)
TASK_TIMEOUT_MAX = env_int("TASK_TIMEOUT_MAX", 6 * 3600, minimum=60)
Q_CLUSTER = {
    "name": REDIS_PREFIX,
    # One more process than WORKERS: the maintenance task (reaper and cron
    # scheduler) keeps one busy in one cluster of the deployment.
    "workers": WORKERS + 1,
    # Our task runs enforce their own timeouts and leases; django-q2's hard
    # timeout is only a backstop above the longest allowed task.
    "timeout": TASK_TIMEOUT_MAX + 300,
    # timeout < retry: django-q2 must never hand a still-running task to a
    # second worker. Retries are ours (database rows), so one attempt here.
    "retry": TASK_TIMEOUT_MAX + 600,
    "max_attempts": 1,
    "ack_failures": True,
    "save_limit": 100,
    "save_limit_per": "func",
    "catch_up": False,
    "recycle": 500,
    "poll": 0.2,
    "label": "Task queue",
    # django-q2 logs three INFO lines per task; our rows record every task.
    "log_level": env_str("Q_LOG_LEVEL", "WARNING"),
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- Auth -----------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "accounts.backends.ActionBackend",  # has_perm(perm, obj) == can(user, action, obj)
]
# guardian warns when its own object backend is not listed: ActionBackend
# replaces it on purpose (guardian's answered from the sharing alone).
SILENCED_SYSTEM_CHECKS = ["guardian.W001"]
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user object
GUARDIAN_RAISE_403 = False
LOGIN_URL = "/login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
if TESTING:
    # Hashing dominates the test suite otherwise.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _rate(name: str, default: str) -> str:
    """A DRF throttle rate such as ``10/min``, checked at start."""
    value = env_str(name, default) or default
    count, _, period = value.partition("/")
    if not count.isdigit() or not period or period[0] not in "smhd":
        raise ImproperlyConfigured(f"{name}: expected <count>/<s|min|hour|day>, got {value!r}")
    return value


REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # simplejwt's check, the user's state cached instead of read per request.
        "accounts.tokens.CachedJWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only: the browsable API would be a second UI to secure.
    "DEFAULT_RENDERER_CLASSES": ["core.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.JSONParser",  # refuses NUL and lone surrogates with a 400
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "datadog_web.api_schema.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "core.api.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_THROTTLE_RATES": {
        "login": _rate("THROTTLE_LOGIN", "10/min"),
        "execute": _rate("THROTTLE_EXECUTE", "120/min"),
        # Connection tests per user, API and UI together: each one opens a
        # connection to a host the user names (SPEC §10).
        "connection_test": _rate("THROTTLE_CONNECTION_TEST", "20/min"),
    },
    # How many reverse proxies append to X-Forwarded-For. 0 trusts none: the
    # header is client-controlled, and trusting it would let anyone dodge the
    # login throttle and lockout. Set it to 1 behind one proxy.
    "NUM_PROXIES": env_int("NUM_PROXIES", 0, minimum=0),
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=env_int("ACCESS_TOKEN_SECONDS", 900, minimum=1)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("REFRESH_TOKEN_DAYS", 7, minimum=1)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "ALGORITHM": "HS256",  # tokens with any other "alg" (none included) are refused
    "SIGNING_KEY": SECRET_KEY,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "LEEWAY": 0,
    # Tokens carry a digest of the password hash: changing the password
    # revokes every token issued before.
    "CHECK_REVOKE_TOKEN": True,  # nosec B105 - a setting, not a secret
    "UPDATE_LAST_LOGIN": False,  # accounts.api does it on password logins only
}
SPECTACULAR_SETTINGS = {
    "TITLE": "DataDog Platform API",
    "DESCRIPTION": (
        "Pipelines, executions and connections (SPEC §4). Authenticate with "
        "`POST /api/v1/auth/token` and send `Authorization: Bearer <access_token>`."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Like every endpoint but the token ones, the schema and docs need a login.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # Separate request and response components: read-only fields are then
    # absent from request bodies, required ones present in responses.
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "datadog_web.api_schema.strip_trailing_slashes",
    ],
    "ENUM_NAME_OVERRIDES": {
        "ExecutionStatusEnum": "pipelines.models.ExecutionStatus",
        "TriggerEnum": "pipelines.models.Trigger",
    },
}

# --- CORS and CSRF --------------------------------------------------------
if any("*" in origin for origin in ALLOWED_ORIGINS):
    # Credentials are allowed cross-origin, so a wildcard would hand every
    # site on the web the user's session.
    raise ImproperlyConfigured("ALLOWED_ORIGINS: list origins explicitly; '*' is not allowed")
for _origin in ALLOWED_ORIGINS:
    _parsed = urlparse(_origin)
    if (
        _parsed.scheme not in {"http", "https"}
        or not _parsed.netloc
        or _parsed.path not in {"", "/"}
    ):
        raise ImproperlyConfigured(
            f"ALLOWED_ORIGINS: {_origin!r} is not an origin (scheme://host[:port])"
        )
CORS_ALLOWED_ORIGINS = [origin.rstrip("/") for origin in ALLOWED_ORIGINS]
CORS_ALLOW_CREDENTIALS = True
CORS_URLS_REGEX = r"^/api/.*$"
CORS_ALLOW_HEADERS = [*default_headers, "idempotency-key"]
CORS_EXPOSE_HEADERS = ["Retry-After"]
CSRF_TRUSTED_ORIGINS = CORS_ALLOWED_ORIGINS

# --- Security -------------------------------------------------------------
# Production (DATABASE_URL set, DEBUG off) defaults to HTTPS everywhere; the
# test suite runs plain HTTP against the production backends, so it opts out.
_HTTPS = not DEBUG and not EMBEDDED and not TESTING
# X-Forwarded-Proto says "https" only when a proxy we trust sets it (and
# drops the one a client sent): without a proxy any client could send it and
# be taken for HTTPS (secure-only behaviour, no redirect).
TRUSTED_PROXY = env_bool("TRUSTED_PROXY", False)
if TRUSTED_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _HTTPS)
# Probes and Prometheus scrape over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", _HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if _HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
# Outbound host policy (core.outbound, SPEC §10): networks no connection or
# webhook may reach, and networks http sources and webhooks may reach although
# they are loopback or private (database connections may reach those anyway).
OUTBOUND_DENY_NETWORKS = env_networks("OUTBOUND_DENY_NETWORKS")
OUTBOUND_ALLOW_NETWORKS = env_networks("OUTBOUND_ALLOW_NETWORKS")
METRICS_TOKEN = env_str("METRICS_TOKEN")
# Failure alerts (pipelines.alerts): links point at PUBLIC_URL (workers cannot
# know the public address); e-mails go through Django's email backend.
PUBLIC_URL = env_str("PUBLIC_URL", "http://localhost:8000")
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = 10  # seconds; an alert never waits longer on a dead SMTP server
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "datadog@localhost")
# Login lockout (accounts.lockout): failures per username and address, and
# per address whatever the username, before a lock of LOGIN_LOCKOUT_SECONDS.
LOGIN_LOCKOUT_FAILURES = env_int("LOGIN_LOCKOUT_FAILURES", 5, minimum=1)
LOGIN_LOCKOUT_IP_FAILURES = env_int("LOGIN_LOCKOUT_IP_FAILURES", 20, minimum=1)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 900, minimum=1)
# Failed logins audited one by one per client address and minute; one summary
# row counts the rest, so a flood cannot fill the audit table.
LOGIN_AUDIT_FAILURES_PER_MINUTE = env_int("LOGIN_AUDIT_FAILURES_PER_MINUTE", 10, minimum=1)

# --- Engine ----------------------------------------------------------------
TASK_LEASE_SECONDS = env_int("TASK_LEASE_SECONDS", 60, minimum=2)
HEARTBEAT_SECONDS = env_int("HEARTBEAT_SECONDS", max(1, TASK_LEASE_SECONDS // 4), minimum=1)
REAPER_SECONDS = env_int("REAPER_SECONDS", 15, minimum=1)
# A queued task run nobody claimed within this is taken as a lost message.
QUEUED_GRACE_SECONDS = env_int("QUEUED_GRACE_SECONDS", 120, minimum=1)
RETRY_DELAY_CAP_SECONDS = env_int("RETRY_DELAY_CAP_SECONDS", 3600, minimum=1)
TASK_LOG_MAX_LINES = env_int("TASK_LOG_MAX_LINES", 5000, minimum=10)
# A worker that finished a task runs one newly ready downstream task itself
# (no broker hop) for up to this long per broker message; 0 turns it off.
FOLLOW_DOWNSTREAM_SECONDS = env_int("FOLLOW_DOWNSTREAM_SECONDS", 60, minimum=0)
# History retention (pipelines.services.retention, `manage.py prune`): finished
# executions that ended this many days ago go with their task runs,
# transitions and log lines; audit events after AUDIT_RETENTION_DAYS.
# 0 keeps that history forever.
RETENTION_DAYS = env_int("RETENTION_DAYS", 90, minimum=0)
AUDIT_RETENTION_DAYS = env_int("AUDIT_RETENTION_DAYS", 365, minimum=0)
CHECKPOINT_TTL_SECONDS = 24 * 3600
# Packages whose functions python tasks may call (docs/python-tasks.md):
# comma separated, matched by dotted path; empty turns python tasks off.
PYTHON_TASK_MODULES = env_list("PYTHON_TASK_MODULES", [])

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS: list[Any] = [BASE_DIR / "static"]
# htmx comes from npm at install time (`make install` runs `npm ci`); it is
# served as static/vendor/htmx/. Without node_modules the settings still load,
# but `manage.py check` (ops/checks.py) fails naming the missing file and
# `npm ci`, and a page whose script did not load says so in a banner.
_HTMX_DIST = BASE_DIR / "node_modules" / "htmx.org" / "dist"
if _HTMX_DIST.is_dir():
    STATICFILES_DIRS.append(("vendor/htmx", _HTMX_DIST))
# The editor (CodeMirror 6) and the graphs (dagre) are bundled from npm by
# `npm run build` (make assets) into build/static/, served as bundle/.
_BUNDLES = BASE_DIR / "build" / "static"
if _BUNDLES.is_dir():
    STATICFILES_DIRS.append(_BUNDLES)
# Every static file the pages load (base.html; bundle/: the editor and graph pages).
FRONTEND_ASSETS = [
    "vendor/htmx/htmx.min.js",
    "js/app.js",
    "css/app.css",
    "bundle/editor.js",
    "bundle/dag.js",
]
# WhiteNoise serves collected files (production: collectstatic in the image)
# and, where nothing was collected, straight from the finders.
WHITENOISE_USE_FINDERS = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "core.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if env_bool("LOG_JSON", False) else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
