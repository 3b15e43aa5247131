"""
Debrief settings, read from the environment only.

Without any environment the project runs in its embedded default: a SQLite file under var/ and
Celery tasks executed eagerly in-process. Production values (PostgreSQL, Redis, secrets, hosts)
come from environment variables; see README.md for the table.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    """A string from NAME, or from the file named by NAME_FILE (for Docker/Kubernetes secrets)."""
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        try:
            return Path(file_path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE points to {file_path!r}: {exc}") from exc
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    """Only the words true and false (any case) are accepted, so a typo cannot flip a switch."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() == "true":
        return True
    if value.lower() == "false":
        return False
    raise ImproperlyConfigured(f"{name} must be 'true' or 'false', not {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from exc


def env_float(name: str, default: float, *, low: float, high: float) -> float:
    """A number between low and high (both included)."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from exc
    if not low <= number <= high:
        raise ImproperlyConfigured(f"{name} must lie between {low} and {high}, not {value!r}")
    return number


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Production (DEBUG=false) refuses to start without it: "
            "set SECRET_KEY (or SECRET_KEY_FILE) to a long random string, or set DEBUG=true "
            "for local development."
        )
    # Only ever used with DEBUG on, on a developer's machine.
    SECRET_KEY = "debrief-local-development-only-not-for-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "django_filters",
    "template_partials",
    "import_export",
    "django_celery_beat",
    "axes",
    "csp",
    "auditlog",
    "accounts",
    "customers",
    "opportunities",
    "suppressions",
    "reflections",
    "surveys",
    "insights",
    "imports",
]

MIDDLEWARE = [
    "crm_site.logs.RequestLogMiddleware",
    "crm_site.middleware.ApiJsonErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Before anything reads a body (the NUL rule, and CSRF's process_view, would parse and
    # spool an upload); after authentication, which reads none, so that the call-list upload
    # takes its large limit only from a signed-in person or a valid token.
    "crm_site.middleware.RequestSizeLimitMiddleware",
    "crm_site.middleware.RefuseNulBytesMiddleware",
    "crm_site.middleware.PrivatePagesMiddleware",
    "auditlog.middleware.AuditlogMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "crm_site.urls"
WSGI_APPLICATION = "crm_site.wsgi.application"

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
                "suppressions.context_processors.decisions_waiting",
            ],
        },
    },
]

# Database: PostgreSQL through psycopg 3 when DATABASE_URL is set, else a SQLite file under var/.
# Persistent connections (CONN_MAX_AGE) with health checks rather than a pool: gunicorn's sync
# workers each hold one connection, which is what a pool would give them anyway.
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL,
            conn_max_age=env_int("CONN_MAX_AGE", 60),
            conn_health_checks=True,
        )
    }
else:
    (BASE_DIR / "var").mkdir(exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("SQLITE_PATH", str(BASE_DIR / "var" / "debrief.sqlite3")),
            "OPTIONS": {
                # WAL and a busy timeout let the dev server and eager tasks share the file.
                "init_command": "PRAGMA journal_mode=WAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Covering indexes (Index(include=...), e.g. customers' suppression_active_idx for the call
# list) are a PostgreSQL feature; SQLite, the embedded default, builds them without the extra
# columns, which is all the small data there needs. Without this, every command says so.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

AUTHENTICATION_BACKENDS = [
    # Counts failed logins and refuses a locked-out user and address before checking a password.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Login throttling: after AXES_FAILURE_LIMIT failures for the same e-mail FROM the same address,
# that pair waits AXES_COOLOFF_MINUTES. Locking on the pair (not the e-mail alone) means nobody
# can lock a colleague out by guessing their password from elsewhere.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_USERNAME_CALLABLE = "accounts.access.login_name"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env_str("TIME_ZONE", "Europe/London")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
if DEBUG:
    # WhiteNoise serves from finders in development but warns when the folder is missing.
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Redis serves as Celery broker, result backend and cache when REDIS_URL is set.
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    # A cache is an optimisation: when Redis is down or frozen, a read is a miss after at most
    # a second and a write is dropped, so every page falls back to the database instead of
    # failing (django-redis logs each ignored error).
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": 1,
                "SOCKET_TIMEOUT": 1,
                "IGNORE_EXCEPTIONS": True,
            },
        }
    }
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery. Without REDIS_URL every task runs eagerly in-process (the embedded default).
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_RESULT_EXPIRES = 3600
# No task's return value is read by the product (a run's progress and outcome live in its
# InsightRun row), so none is stored. This also keeps a publish from touching the result
# backend at all: with results on, every send subscribes to the result store first, and a
# frozen Redis held a close for minutes there. A caller that wants a result asks for it
# (`apply_async(ignore_result=False)`), and the result store's calls are bounded too.
CELERY_TASK_IGNORE_RESULT = True
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = 1
CELERY_REDIS_SOCKET_TIMEOUT = 3
CELERY_TASK_TIME_LIMIT = 15 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 14 * 60
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A publish to an unreachable broker must not hang a request: a closed deal is saved first,
# and the periodic sweep queues what could not be sent. So try briefly, then give up:
# at most three attempts of a one-second connect each.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": 1,
    "socket_timeout": 3,
    # A message a worker took and never acknowledged (the worker died) is delivered again
    # after this many seconds; tasks are idempotent, so a second delivery is harmless.
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
}
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
CELERY_BROKER_CONNECTION_TIMEOUT = 1
CELERY_TIMEZONE = TIME_ZONE

# E-mail: SMTP when EMAIL_HOST is set; else the console in development, and in production a
# backend that sends nothing and says so in the log (the console would print password-reset
# links into the server's output).
EMAIL_HOST = env_str("EMAIL_HOST")
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "crm_site.mail.NotConfiguredBackend",
)
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Debrief <debrief@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Security. Production (DEBUG off) is HTTPS-only; a proxy that terminates TLS must set
# X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# /healthz is probed over plain HTTP by load balancers and the compose healthcheck.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

# Content-Security-Policy: scripts only from this site (every script is a static file; htmx
# runs without eval). Inline style attributes are allowed for the Django admin's widgets.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Audit trail (django-auditlog): who changed which registered record, when, from what to what.
AUDITLOG_INCLUDE_ALL_MODELS = False

# Uploads (call lists, imports) are streamed to disk beyond this size; the views cap the total.
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# Bodies are refused above these sizes before anything reads them (crm_site.middleware): the
# import pages take an import file (32 MB, with room for the form around it), every other page
# and the API a few megabytes; the call-list page and API take a call list
# (DEBRIEF_CALLLIST_MAX_BYTES), as their views say (crm_site.middleware.takes_large_bodies).
DEBRIEF_UPLOAD_PATHS = [
    "/admin/customers/",
    "/admin/imports/historyimport/upload/",
]
DEBRIEF_MAX_UPLOAD_BYTES = env_int("DEBRIEF_MAX_UPLOAD_BYTES", 33 * 1024 * 1024)
DEBRIEF_MAX_REQUEST_BYTES = env_int("DEBRIEF_MAX_REQUEST_BYTES", 3 * 1024 * 1024)

# Uploaded files that wait for a job (history imports) live here, outside the code; the web and
# worker containers share it (docker-compose.yml's media volume). Not served over HTTP.
MEDIA_ROOT = Path(env_str("DEBRIEF_MEDIA_ROOT", str(BASE_DIR / "var" / "media")))
# History imports (imports/, docs/importing-history.md): file limits, the largest file imported
# in one transaction, and the batch size (one transaction each) of larger files' jobs.
# A file of 32 MB holds about 150,000 deals; the upload page takes no more (see above).
DEBRIEF_IMPORT_MAX_BYTES = env_int("DEBRIEF_IMPORT_MAX_BYTES", 32 * 1024 * 1024)
DEBRIEF_IMPORT_MAX_COLUMNS = env_int("DEBRIEF_IMPORT_MAX_COLUMNS", 500)
DEBRIEF_IMPORT_SINGLE_TRANSACTION_ROWS = env_int("DEBRIEF_IMPORT_SINGLE_TRANSACTION_ROWS", 5000)
DEBRIEF_IMPORT_BATCH_ROWS = env_int("DEBRIEF_IMPORT_BATCH_ROWS", 2000)
# An import left waiting (uploaded, checked, stopped) this many days is cancelled and its file,
# which holds customers' names and e-mails, deleted (imports.expire_uploads, daily).
DEBRIEF_IMPORT_KEEP_DAYS = env_int("DEBRIEF_IMPORT_KEEP_DAYS", 14)
# Call lists (suppressions/calllist.py, suppressions/jobs.py): the largest file and header, and
# the most rows. A list of up to DEBRIEF_CALLLIST_INLINE_ROWS rows is answered at once; a
# larger one becomes a job, cut into chunks of DEBRIEF_CALLLIST_CHUNK_ROWS rows that workers
# check in parallel. Its checked file is kept DEBRIEF_CALLLIST_KEEP_HOURS for download, then
# deleted (suppressions.calllist_sweep); a chunk silent for DEBRIEF_CALLLIST_STALE_SECONDS is
# taken as lost with its worker.
DEBRIEF_CALLLIST_MAX_BYTES = env_int("DEBRIEF_CALLLIST_MAX_BYTES", 128 * 1024 * 1024)
DEBRIEF_CALLLIST_MAX_ROWS = env_int("DEBRIEF_CALLLIST_MAX_ROWS", 2_000_000)
DEBRIEF_CALLLIST_MAX_COLUMNS = env_int("DEBRIEF_CALLLIST_MAX_COLUMNS", 1000)
DEBRIEF_CALLLIST_INLINE_ROWS = env_int("DEBRIEF_CALLLIST_INLINE_ROWS", 100_000)
DEBRIEF_CALLLIST_CHUNK_ROWS = env_int("DEBRIEF_CALLLIST_CHUNK_ROWS", 50_000)
DEBRIEF_CALLLIST_KEEP_HOURS = env_int("DEBRIEF_CALLLIST_KEEP_HOURS", 24)
DEBRIEF_CALLLIST_STALE_SECONDS = env_int("DEBRIEF_CALLLIST_STALE_SECONDS", 120)

# Product settings.
DEBRIEF_PIPELINE_PAGE_SIZE = env_int("DEBRIEF_PIPELINE_PAGE_SIZE", 25)

# Logs: JSON lines in production (LOG_FORMAT=json, the default with DEBUG off), readable text
# in development. crm_site/logs.py writes one line per request and per task.
LOG_FORMAT = env_str("LOG_FORMAT", "text" if DEBUG else "json")
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be 'text' or 'json', not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "filters": {"scrub_requests": {"()": "crm_site.logs.ScrubRequestFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["scrub_requests"],
        },
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Request lines come from crm_site.logs; Django's own would repeat them with raw paths.
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "WARNING"},
    },
}

# seed_demo runs these steps in order; each later app adds its own (accounts -> ... -> insights).
DEBRIEF_DEMO_STEPS = [
    "accounts.demo.seed",
    "customers.demo.seed",
    "suppressions.demo.seed",
    "opportunities.demo.seed",
    "reflections.demo.seed",
    "surveys.demo.seed",
    "insights.demo.seed",
]
DEBRIEF_DEMO_PASSWORD = "debrief-demo-2026"

# The company page (the pre-call brief) shows the sections these functions return; later apps
# add theirs here so that customers never imports them.
DEBRIEF_BRIEF_SECTIONS = [
    "suppressions.brief.sections",
    "opportunities.brief.sections",
    "reflections.brief.sections",
    "surveys.brief.sections",
    "insights.brief.sections",
]
# Likewise for a user's home (My plan): a manager's exception requests waiting for a decision.
DEBRIEF_HOME_SECTIONS = ["suppressions.brief.home_sections"]
# The pipeline asks this module before a pitch (opportunities/guard.py): the suppressions app,
# which reads the pipeline and so cannot be imported by it.
DEBRIEF_PITCH_GUARD = "suppressions.guard"
# Outbound webhooks of suppression changes (suppressions/webhooks.py): seconds one delivery
# may take (short: in the embedded default it runs right after a close commits), failed
# attempts in a row that disable an endpoint, and attempts per delivery before it is given up.
DEBRIEF_WEBHOOK_TIMEOUT_SECONDS = env_float("DEBRIEF_WEBHOOK_TIMEOUT_SECONDS", 3, low=0.1, high=60)
DEBRIEF_WEBHOOK_DISABLE_AFTER = env_int("DEBRIEF_WEBHOOK_DISABLE_AFTER", 8)
DEBRIEF_WEBHOOK_MAX_ATTEMPTS = env_int("DEBRIEF_WEBHOOK_MAX_ATTEMPTS", 12)
# Likewise for the deal page: closing with a reflection, reopening, the reflection history.
DEBRIEF_DEAL_SECTIONS = [
    "reflections.brief.deal_sections",
    "surveys.brief.deal_sections",
]
# Phone numbers without a country prefix are read as numbers of this region (ISO 3166 code).
DEBRIEF_PHONE_REGION = env_str("DEBRIEF_PHONE_REGION", "GB")
# Buyer surveys: a contact is asked at most once in this many days; a link works this long;
# the public page takes this many requests per link and per address (django-ratelimit rates,
# counted in the cache; behind a proxy set RATELIMIT_IP_META_KEY so the address is the
# client's).
DEBRIEF_SURVEY_ASK_EVERY_DAYS = env_int("DEBRIEF_SURVEY_ASK_EVERY_DAYS", 90)
DEBRIEF_SURVEY_LINK_DAYS = env_int("DEBRIEF_SURVEY_LINK_DAYS", 30)
DEBRIEF_SURVEY_RATE_PER_LINK = env_str("DEBRIEF_SURVEY_RATE_PER_LINK", "30/h")
DEBRIEF_SURVEY_RATE_PER_ADDRESS = env_str("DEBRIEF_SURVEY_RATE_PER_ADDRESS", "200/h")
RATELIMIT_IP_META_KEY = env_str("RATELIMIT_IP_META_KEY") or None
# Password-reset requests per client address and, separately, per e-mail address.
DEBRIEF_PASSWORD_RESET_RATE = env_str("DEBRIEF_PASSWORD_RESET_RATE", "5/h")
# How long the author may amend a reflection after submitting it.
DEBRIEF_REFLECTION_EDIT_DAYS = env_int("DEBRIEF_REFLECTION_EDIT_DAYS", 14)

# Insights. A report slice (period x scope, or a row's denominator) with fewer reflections than
# this shows "not enough data" so that no report can single anyone out; a rep's own results are
# exempt. Significance flags also need this many on both sides of a comparison.
DEBRIEF_INSIGHT_MIN_SLICE = env_int("DEBRIEF_INSIGHT_MIN_SLICE", 5)
# When is a change headlined (README, "How a report decides that something changed")? The
# headlines of one report are one family of tests, with the false discovery rate held at this
# level (Benjamini-Hochberg)...
DEBRIEF_INSIGHT_FDR = env_float("DEBRIEF_INSIGHT_FDR", 0.10, low=0.001, high=0.5)
# ... the change must be larger than this many percentage points ...
DEBRIEF_INSIGHT_MIN_CHANGE_POINTS = env_int("DEBRIEF_INSIGHT_MIN_CHANGE_POINTS", 5)
# ... both periods of the slice need at least this many closed deals ...
DEBRIEF_INSIGHT_HEADLINE_MIN_DEALS = env_int("DEBRIEF_INSIGHT_HEADLINE_MIN_DEALS", 20)
# ... and the current month or quarter is headlined only once this share of it has passed.
DEBRIEF_INSIGHT_PARTIAL_MIN_PERCENT = env_int("DEBRIEF_INSIGHT_PARTIAL_MIN_PERCENT", 50)
# Amounts in reports are converted to one reporting currency at fixed rates (units of the
# reporting currency per unit of the deal's currency), e.g. "GBP=1,EUR=0.85,USD=0.79". Every
# deal currency needs a rate; use finance's planning rates, not live markets, so that a rebuild
# gives the same report.
DEBRIEF_REPORTING_CURRENCY = env_str("DEBRIEF_REPORTING_CURRENCY", "GBP")
DEBRIEF_CURRENCY_RATES = dict(
    item.split("=", 1) for item in env_list("DEBRIEF_CURRENCY_RATES", "GBP=1,EUR=0.85,USD=0.79")
)
# Links in e-mails (the weekly digest) point here.
DEBRIEF_SITE_URL = env_str("DEBRIEF_SITE_URL", "http://127.0.0.1:8000")
# Seconds a refresh queued by a close waits, so that a burst of closes shares one rollup.
DEBRIEF_INSIGHT_REFRESH_DELAY = env_int("DEBRIEF_INSIGHT_REFRESH_DELAY", 30)
# A running insight job stamps a heartbeat; silent for this long, it is taken as dead (its worker
# was killed) and started again by the next progress poll, "Refresh now" or sweep.
DEBRIEF_INSIGHT_RUN_LEASE_SECONDS = env_int("DEBRIEF_INSIGHT_RUN_LEASE_SECONDS", 60)
# Periodic tasks live in the database (insights/schedules.py installs them) so that admins can
# see and edit them in the Django admin.
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
