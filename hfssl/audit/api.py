"""`audit_run`: run the bias audits that fit a run's objective and record them in the run.

```
runs/<name>/model/ ─▶ audits of its family (each also on a random-init copy) ─▶ runs/<name>/bias_audit.json
                                                                              ─▶ run.json "audit" section, a table
```
Everything is computed before anything is written, so a failed audit leaves the run as it was. An audit whose
data set is missing is recorded under "not_evaluated" with the reason, and the card lists it; a data file that
exists but holds no usable row is an error (ValueError naming it), and so is a run on which no audit could run
(e.g. a classifier without a labelled set), so bias_audit.json never holds an empty result.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..training.rundir import RunDirectory, write_json_atomic
from .classifier import labelled_set_audit
from .common import (
    BASELINE_NOTE,
    MIN_GROUP_N,
    N_BOOT,
    AuditContext,
    Budget,
    random_init_copy,
)
from .data import LabelledSet, MissingAuditData
from .text_clm import crows_pairs_clm_audit, occupation_pronoun_audit, stereoset_audit
from .text_contrastive import association_audit, counterfactual_audit
from .text_mlm import crows_pairs_audit, winobias_audit
from .vision import labelled_images_audit

logger = logging.getLogger(__name__)

AUDIT_FILE = "bias_audit.json"
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.])/(?:[^\s;,'\"/]+/)+([^\s;,'\"/]+)")
DEFAULT_TIME_BUDGET_S = 120.0
AuditFunction = Callable[[AuditContext, float | None, LabelledSet], dict[str, Any]]


def _needs_no_labels(function: Callable[..., dict[str, Any]], **options: Any) -> AuditFunction:
    """A text audit (its own data, no labelled set) in the shape every audit is called with."""
    return lambda ctx, budget_s, labelled: function(ctx, budget_s, **options)


# audit name -> (the model role it needs, the function).
AUDITS: dict[str, tuple[str, AuditFunction]] = {
    "seat": ("encoder", _needs_no_labels(association_audit)),
    "counterfactual_shift": ("encoder", _needs_no_labels(counterfactual_audit)),
    "crows_pairs": ("masked-lm", _needs_no_labels(crows_pairs_audit)),
    "winobias": ("masked-lm", _needs_no_labels(winobias_audit)),
    "occupation_pronouns": ("causal-lm", _needs_no_labels(occupation_pronoun_audit)),
    "crows_pairs_clm": ("causal-lm", _needs_no_labels(crows_pairs_clm_audit)),
    "stereoset_intrasentence": ("causal-lm", _needs_no_labels(stereoset_audit, kind="intrasentence")),
    "stereoset_intersentence": ("causal-lm", _needs_no_labels(stereoset_audit, kind="intersentence")),
    "image_factors": ("encoder", labelled_images_audit),
    "classifier": ("classifier", labelled_set_audit),
}
# Run family -> audits, cheap ones first so the expensive ones inherit the unused time.
PLANS: dict[str, tuple[str, ...]] = {
    "mlm": ("seat", "winobias", "crows_pairs"),
    "mlm+simcse": ("seat", "counterfactual_shift", "winobias", "crows_pairs"),
    "text-contrastive": ("seat", "counterfactual_shift"),
    "clm": ("occupation_pronouns", "crows_pairs_clm", "stereoset_intrasentence", "stereoset_intersentence"),
    "vision": ("image_factors",),
    "classifier": ("classifier",),
}
BASELINE_CAVEAT = ("Each value comes with a bootstrap 95% interval and the same audit on a randomly initialized copy "
                   "of the architecture (same tokenizer or processor); read a value against its baseline and "
                   "interval, not alone.")
NO_BASELINE_CAVEAT = ("Each value comes with a bootstrap 95% interval but no baseline (the audit ran with "
                      "--no-baseline): without the random-init copy's value, part of a number may come from the "
                      "architecture and tokenizer rather than from training.")
GLOBAL_CAVEATS = [
    BASELINE_CAVEAT,
    "These audits cover English text, US-centred stereotype categories and binary gender; a value near its "
    "ideal does not show that the model is free of bias, only that this test did not detect it.",
]


def run_family(manifest: dict[str, Any], config: dict[str, Any]) -> str:
    """The audit family of a run: its objective, else what its saved architecture is."""
    arch = (config.get("architectures") or [""])[0]
    if manifest.get("stage") == "finetune" or "finetune" in manifest or arch.endswith(("ForSequenceClassification",
                                                                                          "ForImageClassification")):
        return "classifier"
    objective = str(manifest.get("objective") or "")
    if objective in ("mlm", "clm", "mlm+simcse"):
        return objective
    if objective == "simcse" or (arch.endswith("ForContrastiveLearning") and "vocab_size" in config):
        return "text-contrastive"
    if manifest.get("modality") in ("image", "vision") or "image_size" in config:
        return "vision"
    if arch.endswith("ForMaskedLM"):
        return "mlm"
    if arch.endswith("ForCausalLM"):
        return "clm"
    raise ValueError(f"Cannot tell which audits fit this run (objective {objective!r}, architecture {arch!r}); "
                     "audit a run written by `hfssl pretrain` or `hfssl finetune`.")


# ---------------------------------------------------------------------------------------------- models


class Models:
    """The run's model for each role, loaded once, with its random-init baseline."""

    def __init__(self, run: RunDirectory, config: dict[str, Any], settings: dict[str, Any]):
        self.run, self.config, self.settings = run, config, settings
        self._contexts: dict[type, AuditContext] = {}

    def context(self, role: str) -> AuditContext:
        cls = self._class(role)
        if cls not in self._contexts:
            model, processor = self._load(cls, role)
            baseline = random_init_copy(model, self.settings["seed"]) if self.settings["baseline"] else None
            self._contexts[cls] = AuditContext(model, processor, baseline, self.settings["seed"],
                                               self.settings["n_boot"], self.settings["min_group_n"],
                                               self.settings["bias_data_dir"])
        return self._contexts[cls]

    def _class(self, role: str) -> type:
        """The saved architecture's hfssl class where it fits the role, else the role's Auto class."""
        import transformers

        import hfssl  # noqa: F401  (registers the Auto classes)

        arch = (self.config.get("architectures") or [""])[0]
        wanted = {"masked-lm": "ForMaskedLM", "causal-lm": "ForCausalLM"}.get(role)
        if hasattr(hfssl.models, arch) and (wanted is None or arch.endswith(wanted)):
            return getattr(hfssl.models, arch)
        if wanted is not None:
            return getattr(transformers, f"AutoModel{wanted}")
        if role == "classifier":
            vision = "image_size" in self.config
            return getattr(transformers, "AutoModelForImageClassification" if vision
                           else "AutoModelForSequenceClassification")
        return transformers.AutoModel

    def _load(self, cls: type, role: str):
        from transformers.utils import logging as hf_logging

        # A head left out (the pretraining head of a classifier's parent, SimCSE's pooler) is expected here; the
        # "Loading weights" bar would only interleave with the audit's log.
        level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            model, info = cls.from_pretrained(self.run.model_dir, output_loading_info=True)
        finally:
            hf_logging.set_verbosity(level)
            if bars:
                hf_logging.enable_progress_bar()
        head = [k for k in info.get("missing_keys", []) if "lm_head" in k or "classifier" in k]
        if head:
            raise MissingAuditData(f"The saved model has no trained {role} head ({sorted(head)[0]} is missing), so "
                                   f"the {role} audits cannot run on it.")
        return model.eval(), self._processor()

    def _processor(self):
        from transformers import AutoImageProcessor, AutoTokenizer

        if "image_size" in self.config:
            has = (self.run.model_dir / "preprocessor_config.json").is_file()
            return AutoImageProcessor.from_pretrained(self.run.model_dir) if has else None
        return AutoTokenizer.from_pretrained(self.run.model_dir)


# ---------------------------------------------------------------------------------------------- running


def run_audits(plan: tuple[str, ...], models: Models, budget: Budget,
               labelled: LabelledSet) -> tuple[dict[str, Any], dict[str, str]]:
    """(results by audit name, {audit name: why it was not evaluated})."""
    results, not_evaluated = {}, {}
    for position, name in enumerate(plan):
        try:
            role, function = AUDITS[name]
            ctx = models.context(role)  # loaded before the share is taken, so loading counts against the budget
            share = budget.share(len(plan) - position)
            logger.info("Audit %s (%s)", name, "no time limit" if share is None else f"{share:.0f} s")
            results[name] = function(ctx, share, labelled)
        except MissingAuditData as error:
            logger.warning("Audit %s not evaluated: %s", name, error)
            not_evaluated[name] = without_local_paths(str(error))
    return results, not_evaluated


def without_local_paths(message: str) -> str:
    """`message` with absolute paths shortened to their last name: the reason is published with the card."""
    return _ABSOLUTE_PATH.sub(lambda m: m.group(1), message)


def audit_run(
    run_dir: str | Path, *, group_column: str | None = None, dataset: Any = None,
    train_files: list[str] | None = None, test_files: list[str] | None = None, split: str | None = None,
    text_column: str | None = None, image_column: str | None = None, label_column: str = "label",
    bias_data_dir: str | None = None, time_budget_s: float | None = DEFAULT_TIME_BUDGET_S, seed: int = 0,
    baseline: bool = True, min_group_n: int = MIN_GROUP_N, n_boot: int = N_BOOT, print_table: bool = True,
) -> dict[str, Any]:
    """Run the audits that fit the run's objective; write bias_audit.json and run.json's "audit" section.

    Args:
        group_column: column of the labelled set naming each example's group (classifier and vision audits).
        dataset / train_files / test_files / split / text_column / image_column / label_column: the labelled
            set of classifier and vision audits.
        bias_data_dir: folder (or Hub dataset id) holding crows_pairs.csv, stereoset.jsonl, winobias.jsonl;
            default $HFSSL_DATA_DIR/bias.
        time_budget_s: seconds for all audits together (None: no limit); an audit that would not fit uses a
            stated, seeded random subsample.
        baseline: also run every audit on a randomly initialized copy of the architecture.

    Returns:
        The report written to bias_audit.json: {"audits": {name: result}, "not_evaluated": {name: reason}, ...}.

    Raises:
        ValueError: a bias file that exists holds no usable row, or no audit of the run's family could run.
    """
    run = RunDirectory(run_dir)
    config_path = run.model_dir / "config.json"
    if not config_path.is_file():
        raise run.no_model_error("audit")
    if min_group_n < 1 or n_boot < 1 or seed < 0:
        raise ValueError(f"min_group_n ({min_group_n}) and n_boot ({n_boot}) must be >= 1 and seed ({seed}) >= 0.")
    manifest, config = run.read_manifest(), json.loads(config_path.read_text(encoding="utf-8"))
    family = run_family(manifest, config)
    budget, started = Budget(time_budget_s), time.perf_counter()
    settings = {"seed": seed, "baseline": baseline, "n_boot": n_boot, "min_group_n": min_group_n,
                "bias_data_dir": None if bias_data_dir is None else str(bias_data_dir)}
    labelled = LabelledSet(dataset, train_files, test_files, split, text_column, image_column, label_column,
                           group_column)
    results, not_evaluated = run_audits(PLANS[family], Models(run, config, settings), budget, labelled)
    if not results:  # an empty bias_audit.json would read as "audited" on the card
        reasons = " ".join(f"{name}: {reason}" for name, reason in not_evaluated.items())
        raise ValueError(f"No audit could run on this {family} run, so nothing was written. {reasons}")
    report = _report(manifest, config, family, results, not_evaluated, settings, time_budget_s, group_column, started)
    write_json_atomic(run.path / AUDIT_FILE, report)
    run.update_manifest(audit=report)
    if print_table:
        print(format_table(report))
    return report


def _report(manifest, config, family, results, not_evaluated, settings, time_budget_s, group_column,
            started) -> dict[str, Any]:
    if family == "vision" and group_column is None:
        not_evaluated["social_bias"] = ("Social bias was not evaluated: no labelled image set with a group column "
                                        "describing people was supplied (--group-column).")
    return {
        "format_version": 1, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "family": family, "objective": manifest.get("objective"),
        "model_class": (config.get("architectures") or [None])[0], "seed": settings["seed"],
        "n_boot": settings["n_boot"], "min_group_n": settings["min_group_n"], "time_budget_s": time_budget_s,
        "baseline": BASELINE_NOTE if settings["baseline"] else None,
        "audits": results, "not_evaluated": not_evaluated,
        "caveats": [BASELINE_CAVEAT if settings["baseline"] else NO_BASELINE_CAVEAT, *GLOBAL_CAVEATS[1:]],
        "wall_time_s": round(time.perf_counter() - started, 2),
    }


# ---------------------------------------------------------------------------------------------- table


def fmt_number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def fmt_ci(ci: list[float] | None) -> str:
    return "-" if not ci else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def audit_table_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    """Every row of every audit as display strings: audit, metric, group, value, ci, baseline, n, ideal."""
    rows = []
    for name, audit in (report.get("audits") or {}).items():
        for r in audit.get("rows", []):
            base = r.get("baseline") or {}
            rows.append({"audit": name, "metric": r["metric"], "group": str(r.get("group", "all")),
                         "value": fmt_number(r.get("value")), "ci": fmt_ci(r.get("ci95")),
                         "baseline": fmt_number(base.get("value")) if base else "-",
                         "n": fmt_number(r.get("n")), "ideal": fmt_number(r.get("ideal"))})
    return rows


def format_table(report: dict[str, Any]) -> str:
    """A plain-text table of the report, then what was not evaluated."""
    header = {"audit": "audit", "metric": "metric", "group": "group", "value": "value", "ci": "95% CI",
              "baseline": "baseline", "n": "n", "ideal": "ideal"}
    rows = [header] + audit_table_rows(report)
    widths = {k: min(60, max(len(r[k]) for r in rows)) for k in header}
    lines = [f"Bias audit ({report['family']}), {report['wall_time_s']:.1f} s"]
    lines += ["  ".join(_clip(r[k], widths[k]).ljust(widths[k]) for k in header).rstrip() for r in rows]
    for name, reason in (report.get("not_evaluated") or {}).items():
        lines.append(f"not evaluated: {name}: {reason}")
    return "\n".join(lines)


def _clip(text: str, width: int) -> str:
    """`text`, cut to `width` with an ellipsis that shows it was cut (the full names are in bias_audit.json)."""
    return text if len(text) <= width else text[: width - 1] + "…"
