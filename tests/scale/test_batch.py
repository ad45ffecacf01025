"""Partitioned batch decisions (``creditops predict SOURCE --out DIR``): the same decisions with
and without a Dask LocalCluster; a bad cell anywhere stops everything before anything is
written or logged, naming its file, row and column; a run that crashes is completed by a rerun
without logging any decision twice."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from creditops.data.datasets import load_builtin
from creditops.exceptions import BatchValidationError, ConfigurationError
from creditops.scale import batch as scale_batch
from creditops.scale import cluster_address, predict_partitioned

pytestmark = pytest.mark.slow

DECIDED = ["applicant_id", "probability_of_default", "score_points", "decision", "reasons"]


@pytest.fixture
def store(trained_store):
    """The trained store, read in partitions of about 30 KB (7 for credit_data's two files)."""
    return trained_store.model_copy(update={"batch_partition_bytes": 30_000})


@pytest.fixture
def applications(tmp_path: Path) -> Path:
    """credit_data without its outcome, as two CSV files."""
    frame, spec = load_builtin("credit_data")
    rows = frame.drop(columns=[spec.target])
    folder = tmp_path / "applications"
    folder.mkdir()
    rows.iloc[:2500].to_csv(folder / "a.csv", index=False)
    rows.iloc[2500:].to_csv(folder / "b.csv", index=False)
    return folder


def _logged(settings) -> tuple[int, int]:
    with sqlite3.connect(settings.home / "predictions.db") as conn:
        return conn.execute("SELECT count(*), count(DISTINCT id) FROM predictions").fetchone()


def _written(folder: Path) -> pd.DataFrame:
    parts = sorted(folder.glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)


def test_the_same_decisions_in_this_process_and_on_a_local_cluster(store, applications, tmp_path):
    here = predict_partitioned(store, str(applications), tmp_path / "here")
    assert here.partitions >= 4
    assert here.files == 2
    assert here.rows == 4454
    assert here.cluster is None
    on_cluster = predict_partitioned(
        store, str(applications / "*.csv"), tmp_path / "cluster", cluster="local:2"
    )
    assert on_cluster.partitions == here.partitions
    assert on_cluster.decisions == here.decisions
    pd.testing.assert_frame_equal(
        _written(tmp_path / "here")[DECIDED], _written(tmp_path / "cluster")[DECIDED]
    )
    # Both runs logged every decision once, each under ids of its own.
    assert _logged(store) == (2 * 4454, 2 * 4454)
    ids = set(_written(tmp_path / "here")["prediction_id"])
    assert ids.isdisjoint(set(_written(tmp_path / "cluster")["prediction_id"]))
    manifest = json.loads((tmp_path / "here" / "_batch.json").read_text())
    assert manifest["partitions"] == here.partitions
    assert manifest["model_version"] == here.model_version


def test_a_bad_cell_in_the_third_partition_stops_everything(store, applications, tmp_path):
    frame = pd.read_csv(applications / "a.csv")
    # 30 KB blocks hold about 500 rows: row 1,200 of the first file is in its third partition.
    frame["Income"] = frame["Income"].astype(object)
    frame.loc[1199, "Income"] = "twelve"
    frame.to_csv(applications / "a.csv", index=False)
    output = tmp_path / "decided"
    with pytest.raises(BatchValidationError) as raised:
        predict_partitioned(store, str(applications), output)
    message = str(raised.value)
    assert "a.csv, row 1200, column Income" in message
    assert "nothing decided, nothing logged" in message
    assert raised.value.problems[0]["row"] == 1200
    assert not output.exists()
    assert not (store.home / "predictions.db").exists() or _logged(store) == (0, 0)


def test_a_run_that_fails_between_logging_and_writing_a_part_is_completed_once(
    store, applications, tmp_path, monkeypatch
):
    output = tmp_path / "decided"
    real_replace = os.replace
    renamed: list[str] = []

    def replace_then_fail(source, target):
        if Path(target).name.startswith("part-"):
            if len(renamed) == 2:
                raise OSError("disk gone")  # the third part's rows are logged, its file is not
            renamed.append(str(target))
        return real_replace(source, target)

    monkeypatch.setattr(scale_batch.os, "replace", replace_then_fail)
    with pytest.raises(OSError, match="disk gone"):
        predict_partitioned(store, str(applications), output)
    monkeypatch.setattr(scale_batch.os, "replace", real_replace)
    written_before = len(list(output.glob("part-*.parquet")))
    logged_before, _ = _logged(store)
    assert written_before == 2
    assert logged_before > len(_written(output))  # the third part was logged, not written

    resumed = predict_partitioned(store, str(applications), output)
    assert resumed.partitions_skipped == 2
    decided = _written(output)
    assert len(decided) == 4454
    assert decided["prediction_id"].is_unique
    assert _logged(store) == (4454, 4454)
    assert sum(resumed.decisions.values()) == 4454


def test_a_killed_command_is_completed_by_running_it_again(store, applications, tmp_path):
    output = tmp_path / "decided"
    env = {
        **os.environ,
        "CREDITOPS_HOME": str(store.home),
        "CREDITOPS_BATCH_PARTITION_BYTES": "10000",
        "CREDITOPS_MAX_BATCH": "100",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [
        sys.executable, "-m", "creditops.cli", "predict", str(applications),
        "--out", str(output), "--json",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while len(list(output.glob("part-*.parquet"))) < 3:
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.time() < deadline, "no part was written"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    parts_at_kill = len(list(output.glob("part-*.parquet")))
    total_parts = json.loads((output / "_batch.json").read_text())["partitions"]
    assert parts_at_kill < total_parts, "the run finished before it could be killed"

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    summary = json.loads(rerun.stdout)
    assert summary["partitions_skipped"] >= parts_at_kill
    decided = _written(output)
    assert len(decided) == 4454
    assert decided["prediction_id"].is_unique
    assert _logged(store) == (4454, 4454)


def test_another_run_into_a_used_directory_is_refused(store, applications, tmp_path):
    output = tmp_path / "decided"
    predict_partitioned(store, str(applications), output, log=False)
    with pytest.raises(ConfigurationError, match="another run"):
        predict_partitioned(store, str(applications), output)  # logging now: another run


def test_the_cluster_setting_is_checked_before_anything_runs(store):
    assert cluster_address(store) is None
    assert cluster_address(store, "local:2") == "local:2"
    assert cluster_address(store, "tcp://scheduler:8786") == "tcp://scheduler:8786"
    assert cluster_address(store.model_copy(update={"dask_scheduler": "local"})) == "local"
    for bad in ("local:0", "scheduler:8786", "http://x:8786/path"):
        with pytest.raises(ConfigurationError):
            cluster_address(store, bad)


def test_a_file_without_rows_is_decided_as_nothing_and_no_rows_at_all_is_refused(
    store, applications, tmp_path
):
    header = (applications / "a.csv").read_text().splitlines()[0]
    (applications / "c-empty.csv").write_text(header + "\n")
    decided = predict_partitioned(store, str(applications), tmp_path / "decided", log=False)
    assert decided.rows == 4454
    assert decided.files == 3
    only_empty = tmp_path / "only-empty"
    only_empty.mkdir()
    (only_empty / "empty.csv").write_text(header + "\n")
    with pytest.raises(BatchValidationError, match="no rows to score"):
        predict_partitioned(store, str(only_empty), tmp_path / "nothing", log=False)
    assert not (tmp_path / "nothing").exists()


def test_a_block_that_cannot_be_read_is_named_before_anything_is_written(
    store, applications, tmp_path
):
    lines = (applications / "b.csv").read_text().splitlines(keepends=True)
    # A line with one field too many, past the first 30 KB blocks of the file.
    lines[1500] = lines[1500].rstrip("\n") + ",surplus\n"
    (applications / "b.csv").write_text("".join(lines))
    output = tmp_path / "decided"
    with pytest.raises(BatchValidationError) as raised:
        predict_partitioned(store, str(applications), output, cluster="local:2")
    message = str(raised.value)
    assert message.startswith("b.csv, partition ")
    assert "(from byte " in message
    assert "cannot be read (ParserError" in message
    assert not output.exists()
    assert not (store.home / "predictions.db").exists() or _logged(store) == (0, 0)


def test_of_two_runs_claiming_one_directory_only_one_goes_on(tmp_path):
    output = tmp_path / "decided"
    scale_batch._write_manifest(output, {"run_key": "first"})
    scale_batch._write_manifest(output, {"run_key": "first"})  # the same run: resumes
    with pytest.raises(ConfigurationError, match="another run"):
        scale_batch._write_manifest(output, {"run_key": "second"})
    assert json.loads((output / scale_batch.MANIFEST).read_text())["run_key"] == "first"
    assert [p.name for p in output.iterdir()] == [scale_batch.MANIFEST]  # no temporary left
