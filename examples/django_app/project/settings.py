"""The smallest Django project that shows envoi from Django: one view, one model-less sign-up."""

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "example-only-not-a-secret"  # noqa: S105  (an example project, never deployed)
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
INSTALLED_APPS = ["django.contrib.contenttypes", "examples.django_app.signup"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "examples.django_app.project.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
USE_TZ = True
