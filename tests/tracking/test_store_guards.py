"""What the store refuses: a store URL of a kind it cannot use, resuming a run that is
alive elsewhere, names beyond the length limits; and deleting a run while another process
logs the same content."""

from __future__ import annotations

from pathlib import Path

import pytest

from neural_dsl_tracking.errors import TrackingError
from neural_dsl_tracking.tracking import ExperimentManager, ExperimentTracker

UNSUPPORTED_URLS = ["sqlite:///{tmp}/s", "sqlite://{tmp}/s", "mysql://u:secret@localhost/db",
                    "file://{tmp}/s"]


@pytest.mark.parametrize("url", UNSUPPORTED_URLS)
def test_a_store_url_other_than_postgresql_is_refused_and_creates_nothing(tmp_path, url,
                                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = url.format(tmp=tmp_path)
    expected = "unsupported store URL .*: give a folder path for an embedded SQLite store"
    with pytest.raises(TrackingError, match=expected) as raised:
        ExperimentTracker("e", store=url, auto_visualize=False)
    assert "secret" not in str(raised.value)
    with pytest.raises(TrackingError, match=expected):
        ExperimentManager(store=url).list_experiments()
    assert list(tmp_path.iterdir()) == []


def test_a_compiled_programs_store_url_is_checked_before_it_becomes_a_folder(tmp_path):
    from neural_dsl_tracking.plugins.tracking.hooks import open_tracker
    from neural_dsl_tracking.plugins.tracking.spec import TrackingSpec

    source = tmp_path / "m.neural"
    source.write_text("network N {}\n")
    with pytest.raises(TrackingError, match="unsupported store URL sqlite:///runs.db"):
        open_tracker(TrackingSpec(store="sqlite:///runs.db"), {}, launch_dir=tmp_path,
                     source_file=source)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.neural"]
