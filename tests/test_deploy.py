"""Issue 2 point 16 and issue 3 point 7: the files a PaaS reads."""

import multiprocessing
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def gunicorn_settings(monkeypatch, **environ) -> dict:
    for name in ("PORT", "WEB_CONCURRENCY", "GUNICORN_BIND", "GUNICORN_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_gunicorn_binds_to_port_on_every_interface(monkeypatch):
    assert gunicorn_settings(monkeypatch, PORT="5123")["bind"] == "0.0.0.0:5123"


def test_gunicorn_stays_on_loopback_without_port(monkeypatch):
    assert gunicorn_settings(monkeypatch)["bind"] == "127.0.0.1:8000"


def test_gunicorn_workers_come_from_web_concurrency(monkeypatch):
    assert gunicorn_settings(monkeypatch, WEB_CONCURRENCY="3")["workers"] == 3


def test_gunicorn_workers_default_to_twice_the_cores_plus_one(monkeypatch):
    expected = multiprocessing.cpu_count() * 2 + 1
    assert gunicorn_settings(monkeypatch)["workers"] == expected


def test_gunicorn_has_sane_timeouts_and_no_control_socket(monkeypatch):
    settings = gunicorn_settings(monkeypatch)
    assert 10 <= settings["timeout"] <= 120
    assert settings["graceful_timeout"] <= settings["timeout"]
    assert settings["control_socket_disable"] is True


def test_procfile_migrates_on_release_and_serves_with_gunicorn():
    lines = dict(
        line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
    )
    assert lines["release"].strip() == "flask --app wsgi db upgrade"
    assert lines["web"].strip().startswith("gunicorn ")
    assert lines["web"].strip().endswith("wsgi:app")


def test_python_version_is_pinned_for_paas_builders():
    assert (ROOT / ".python-version").read_text().strip() == "3.11"


def test_requirements_install_the_package_itself():
    assert (ROOT / "requirements.txt").read_text().split() == ["."]
