"""`hfssl <command> --help` and flag errors need only the command's parser: no torch, transformers, datasets, gradio
or peft (they took 2-8 s on 2 cores importing them); the command bodies still run after the Auto classes are
registered. `pretrain` is left out: its parser is transformers' HfArgumentParser over TrainingArguments."""

from __future__ import annotations

import json
import os
import subprocess
import sys

HEAVY = ("torch", "transformers", "datasets", "gradio", "peft")

# Runs hfssl.cli.main as the console script does (sys.argv[0] is the script, so `import hfssl` does not register);
# prints, per command line, the exit code, the output and which heavy modules were imported by then.
RUN = """
import contextlib, io, json, sys
sys.argv = ["/venv/bin/hfssl"]
from hfssl.cli import main
results = []
for argv in json.loads(sys.stdin.read()):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as stop:
            code = stop.code
    results.append({"code": code, "out": out.getvalue(), "err": err.getvalue(),
                    "heavy": [name for name in HEAVY if name in sys.modules],
                    "registered": sys.modules["hfssl"]._registered})
print(json.dumps(results))
""".replace("HEAVY", repr(HEAVY))

# Flags each command's --help must list (choices included where they come from a light copy of a heavy constant).
EXPECTED = {
    "quickstart": ["--output", "--max-steps", "--overwrite"],
    "evaluate": ["run_dir", "--protocol {linear-probe,knn,finetune,label-efficiency}", "--fractions", "--k K",
                 "--pooling {mean,cls,pooler_output}", "--supervised-epochs", "--device", "examples:"],
    "finetune": ["parent", "--task {text-classification,image-classification}", "--output", "--peft PEFT",
                 "--lora-r", "--peft-option KEY=VALUE", "--training-arg KEY=VALUE", "--merge",
                 "  lora   LoRA, low-rank updates (Hu et al. 2021) (default learning rate 0.002)",
                 "any other method of the installed peft by its name", "20 virtual tokens"],
    "audit": ["run_dir", "--group-column", "--bias-data-dir", "--time-budget", "--n-boot", "--no-baseline"],
    "card": ["run_dir", "--license", "--repo-id"],
    "demo": ["model", "--host", "--port", "--share", "--kind {fill-mask,generation,reconstruction,classification,gallery}",
             "--pooling {mean,cls,last}"],
    "publish": ["run_dir", "--repo-id", "--private", "--dry-run", "--create-pr", "--full-model", "--dry-run-dir"],
    "publish-space": ["--repo-id", "--model", "--spaces-dir", "--sdk-version", "--dry-run"],
}
# A command line that fails on its flags, and the error argparse gives for it.
BAD_FLAGS = {
    "quickstart": (["--max-steps", "many"], "argument --max-steps: invalid int value: 'many'"),
    "evaluate": ([], "the following arguments are required: run_dir"),
    "finetune": (["runs/x"], "the following arguments are required: --task, --output"),
    "audit": ([], "the following arguments are required: run_dir"),
    "card": ([], "the following arguments are required: run_dir"),
    "demo": (["runs/x", "--kind", "poem"], "argument --kind: invalid choice: 'poem'"),
    "publish": (["runs/x"], "the following arguments are required: --repo-id"),
    "publish-space": (["--repo-id", "me/space"], "the following arguments are required: --model"),
}


def _run_cli(command_lines: list[list[str]], env: dict[str, str] | None = None) -> list[dict]:
    done = subprocess.run([sys.executable, "-c", RUN], input=json.dumps(command_lines), capture_output=True,
                          text=True, timeout=300, check=False, env={**os.environ, "COLUMNS": "200", **(env or {})})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_help_and_flag_errors_import_no_heavy_module():
    lines = [[name, "--help"] for name in EXPECTED] + [[name, *BAD_FLAGS[name][0]] for name in EXPECTED]
    results = dict(zip(map(tuple, lines), _run_cli(lines), strict=True))
    for name, flags in EXPECTED.items():
        helped = results[(name, "--help")]
        assert helped["code"] == 0, (name, helped["err"])
        assert helped["out"].startswith(f"usage: hfssl {name} "), name
        assert [flag for flag in flags if flag not in helped["out"]] == [], name
        assert helped["heavy"] == [] and not helped["registered"], f"hfssl {name} --help imported {helped['heavy']}"
    for name, (argv, message) in BAD_FLAGS.items():
        failed = results[(name, *argv)]
        assert failed["code"] == 2, (name, failed)
        assert f"hfssl {name}: error: {message}" in failed["err"], (name, failed["err"])
        assert failed["heavy"] == [], f"hfssl {name} {' '.join(argv)} imported {failed['heavy']}"


def test_every_command_registers_and_checks_the_environment_before_its_body(tmp_path):
    """Parsing moved ahead of the registration; a bad $HFSSL_CPU_GEMM must still stop every command after its flags
    parse and before anything is read or written, with the Auto classes registered by then."""
    missing, out = str(tmp_path / "no-run"), str(tmp_path / "out")
    lines = [
        ["quickstart", "--output", out, "--max-steps", "1"],
        ["evaluate", missing],
        ["finetune", missing, "--task", "text-classification", "--output", out],
        ["audit", missing],
        ["card", missing],
        ["demo", missing],
        ["publish", missing, "--repo-id", "me/model", "--dry-run"],
        ["publish-space", "--repo-id", "me/space", "--model", "me/model", "--dry-run", "--dry-run-dir", out],
    ]
    results = _run_cli(lines, env={"HFSSL_CPU_GEMM": "fastest"})
    for argv, result in zip(lines, results, strict=True):
        assert result["code"] == 2, (argv, result["err"])
        assert f"hfssl {argv[0]}: error: HFSSL_CPU_GEMM='fastest' is not a CPU matmul backend" in result["err"], argv
    assert results[0]["registered"]  # by the first command already (the console script's import left it)
    assert "gradio" not in results[-1]["heavy"] and "peft" not in results[-1]["heavy"]  # no body ran
    assert list(tmp_path.iterdir()) == []


def test_the_help_tables_are_the_ones_the_commands_use():
    """`--help` reads light modules of plain data; the heavy modules build from the same tables."""
    from hfssl.demo import command as demo_command
    from hfssl.demo import kinds, loading
    from hfssl.finetune import method_table, methods

    assert list(methods.METHODS) == list(method_table.METHOD_TABLE)
    assert methods.METHODS["ia3"].learning_rate == method_table.METHOD_TABLE["ia3"][1]
    assert not methods.METHODS["none"].mergeable and methods.METHODS["lora"].mergeable
    # The full text, once peft is imported anyway, names the installed peft's other methods.
    assert "any other peft method by name: adalora" in methods.describe_methods()
    assert loading.DEMO_KINDS is kinds.DEMO_KINDS and demo_command.POOLING_RULES is loading.POOLING_RULES


def test_package_names_stay_importable_and_load_on_first_use():
    """The package __init__s import their submodules on first use; every public name and submodule still works."""
    code = """
import importlib, json, sys
sys.argv = ["/venv/bin/hfssl"]
packages = [importlib.import_module(f"hfssl.{name}") for name in ("evaluation", "finetune", "cards", "audit", "hub",
                                                                       "demo")]
found = {"heavy": [name for name in HEAVY if name in sys.modules]}
found["names"] = [f"{package.__name__}.{name}" for package in packages for name in package.__all__
                  if getattr(package, name) is None]
found["submodule"] = packages[0].features.__name__
try:
    packages[4].nothing_here
except AttributeError as error:
    found["missing"] = str(error)
print(json.dumps(found))
""".replace("HEAVY", repr(HEAVY))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["heavy"] == []  # importing the packages alone is quick; their names load torch on first use
    assert found["names"] == []  # getattr raised for none, and none is None
    assert found["submodule"] == "hfssl.evaluation.features"
    assert found["missing"] == "module 'hfssl.hub' has no attribute 'nothing_here'"
