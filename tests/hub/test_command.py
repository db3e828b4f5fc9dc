"""`hfssl publish` / `hfssl publish-space` flags reach the publishing functions."""

from __future__ import annotations

import argparse

import pytest

from hfssl.hub.command import (
    add_publish_arguments,
    add_publish_space_arguments,
    cmd_publish,
)


def test_publish_flags():
    parser = add_publish_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["runs/x", "--repo-id", "me/x", "--private", "--revision", "dev", "--commit-message", "m",
                              "--create-pr", "--dry-run", "--endpoint", "http://hub.local"])
    assert (args.run_dir, args.repo_id, args.private, args.revision, args.commit_message, args.create_pr,
            args.dry_run, args.endpoint) == ("runs/x", "me/x", True, "dev", "m", True, True, "http://hub.local")
    with pytest.raises(SystemExit):
        parser.parse_args(["runs/x", "--token", "hf_x", "--repo-id", "me/x"])  # tokens never travel as flags


def test_publish_space_flags():
    args = add_publish_space_arguments(argparse.ArgumentParser()).parse_args(
        ["--repo-id", "me/demo", "--model", "me/x", "--private", "--dry-run"])
    assert (args.repo_id, args.model, args.private, args.dry_run) == ("me/demo", "me/x", True, True)


def test_dry_run_from_the_command_line(mlm_run, tmp_path, capsys):
    assert cmd_publish([str(mlm_run.path), "--repo-id", "me/x", "--dry-run", "--dry-run-dir", str(tmp_path / "p")]) == 0
    assert "nothing was uploaded" in capsys.readouterr().out
    assert (tmp_path / "p" / "model.safetensors").is_file()


def test_a_bad_repo_id_is_a_value_error():
    with pytest.raises(ValueError, match="namespace/name"):
        cmd_publish(["runs/x", "--repo-id", "no-namespace", "--dry-run"])
