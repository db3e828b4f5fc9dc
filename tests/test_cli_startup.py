"""The `hfssl` console script starts without torch and transformers for `--help`, `--version` and typos, and
still registers the Auto classes before any command runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Imports hfssl as the console script does: sys.argv[0] is the script, then `from hfssl.cli import main`.
START = """
import json, sys
sys.argv = ["/venv/bin/hfssl", *{argv!r}]
from hfssl.cli import main
code = main()
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
print(json.dumps({{"code": code, "torch": "torch" in sys.modules, "registered": "hfssl_text" in CONFIG_MAPPING}}))
"""


def _start(argv: list[str]) -> dict:
    done = subprocess.run([sys.executable, "-c", START.format(argv=argv)], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["no-such-command"]])
def test_help_version_and_typos_do_not_import_torch(argv):
    """They took 4-8 s on 2 cores importing torch and transformers for the model registration."""
    started = START.format(argv=argv).replace("from transformers.models.auto.configuration_auto import CONFIG_MAPPING",
                                              "CONFIG_MAPPING = {}")
    done = subprocess.run([sys.executable, "-c", started], capture_output=True, text=True, timeout=120, check=False)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == (2 if argv == ["no-such-command"] else 0) and not result["torch"]


def test_a_command_registers_the_auto_classes_first(tmp_path):
    result = _start(["card", str(tmp_path / "no-run")])  # fails on its input, after the registration
    assert result == {"code": 2, "torch": True, "registered": True}


def test_importing_hfssl_anywhere_else_registers_at_once():
    code = ("import hfssl; from transformers import AutoConfig; "
            "print(type(AutoConfig.for_model('hfssl_vision')).__name__, hfssl.HfsslTextModel.__name__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.stdout.split() == ["HfsslVisionConfig", "HfsslTextModel"], done.stderr


def test_the_model_classes_are_attributes_of_the_package():
    import hfssl
    from hfssl.models import HfsslVisionForImageClassification

    assert hfssl.HfsslVisionForImageClassification is HfsslVisionForImageClassification
    assert set(hfssl.__all__) >= {"HfsslTextConfig", "register_auto_classes", "__version__"}
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = hfssl.Nope
    assert Path(hfssl.__file__).name == "__init__.py"


def test_commands_do_not_log_every_hub_request(tmp_path):
    """huggingface_hub's HTTP client logged one INFO line per request under the CLI's INFO logging."""
    import logging

    from hfssl.cli import main

    assert main(["card", str(tmp_path / "no-run")]) == 2
    assert all(logging.getLogger(name).getEffectiveLevel() >= logging.WARNING for name in ("httpx", "httpx2"))


def test_quickstart_into_another_run_suggests_only_its_own_flags(tmp_path, capsys):
    """It suggested --resume, which quickstart does not have."""
    from hfssl.cli import main

    other = tmp_path / "other-run"
    other.mkdir()
    (other / "run.json").write_text('{"objective": "clm"}')
    assert main(["quickstart", "--output", str(other), "--max-steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "--resume" not in err
    assert (other / "run.json").read_text() == '{"objective": "clm"}'  # untouched
