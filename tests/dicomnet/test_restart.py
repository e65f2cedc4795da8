"""Staged CT series outlive the listener: a restarted node finishes what it had received."""

from __future__ import annotations

import os

from tests.dicomnet.conftest import wait_for
from tests.dicomnet.scu import store
from tests.dicomnet.test_ct_series import _series
from webapp.records.models import CTStudy


def test_a_series_staged_before_a_stop_is_imported_after_the_restart(make_node, tmp_path):
    first = make_node(quiet_s=60.0)
    datasets, _ = _series(tmp_path / "in", n=5, seed=4)
    assert [s for s, _ in store(first.port, datasets)] == [0] * 5
    first.stop()
    assert CTStudy.objects.count() == 0
    second = make_node(quiet_s=1.0)
    study = wait_for(lambda: CTStudy.objects.first())
    assert study.shape == [5, 32, 32]
    assert second.receiver.stager.pending() == {}


def test_a_series_left_mid_import_is_imported_again(make_node, tmp_path):
    first = make_node(quiet_s=60.0)
    datasets, _ = _series(tmp_path / "in", n=4, seed=5)
    store(first.port, datasets)
    first.stop()
    staged = first.receiver.stager.take(datasets[0].SeriesInstanceUID)  # as if cut short
    assert staged is not None and staged.folder.parent.name == ".importing"
    make_node(quiet_s=1.0)
    assert wait_for(lambda: CTStudy.objects.first()).shape == [4, 32, 32]
    wait_for(lambda: not os.listdir(staged.folder.parent))  # removed after the import
