"""The load benchmark's replay: virtual users sign in through the real login form and
replay a planning session against a live server; the summary counts what it measured."""

from __future__ import annotations

import pytest

from webapp.planning.load_replay import Sample, replay, summarise


def test_summary_counts_errors_and_percentiles():
    samples = [Sample("a", s / 1000.0, True, 200) for s in range(1, 101)]
    samples += [Sample("a", 0.5, False, 500), Sample("sign-in", 0.2, True, 302)]
    report = summarise(samples)
    assert report["overall"]["requests"] == 101 and report["overall"]["errors"] == 1
    assert report["overall"]["error_statuses"] == ["500"]
    assert report["overall"]["p50_ms"] == pytest.approx(50.5, abs=0.01)
    assert report["by_request"]["sign-in"]["requests"] == 1


@pytest.mark.django_db(transaction=True)
def test_two_users_replay_a_session_without_errors(live_server, settings, tmp_path, make_user, team_a, patient_a):
    from tests.planning import helpers
    from webapp.planning import services
    from webapp.planning.management.commands.bench_load import session_steps

    settings.MEDIA_ROOT = str(tmp_path / "media")
    carm = helpers.make_carm()
    x1, x2 = helpers.make_xray(patient_a, carm, 0.0), helpers.make_xray(patient_a, carm, 90.0)
    owner = make_user("owner", "Surgeon", team=team_a)
    plan = services.create_plan(patient_a, owner, "load", x1, x2)
    users = []
    for name in ("load1", "load2"):
        make_user(name, "Surgeon", team=team_a)
        users.append((name, "pw-" + name + "-123"))
    recorder = replay(live_server.url, users, session_steps(plan), seconds=10.0, think_s=0.2)
    report = summarise(recorder.samples)
    assert report["by_request"]["sign-in"]["errors"] == 0
    assert report["overall"]["errors"] == 0, report
    assert report["overall"]["requests"] >= 8
    assert {"plan page", "view 1 image", "plan API"} <= set(report["by_request"])
