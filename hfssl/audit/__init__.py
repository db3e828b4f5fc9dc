"""Bias audits of hfssl runs, each with bootstrap intervals, n per group, a data hash and a random-init baseline.

    from hfssl.audit import audit_run
    report = audit_run("runs/my-mlm", bias_data_dir="../shared/data/bias", time_budget_s=120)

`audit_run` picks the audits that fit the run's objective (masked LM, next-token LM, text contrastive, vision,
fine-tuned classifier), writes <run>/bias_audit.json and the run.json "audit" section, and prints a table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes

if TYPE_CHECKING:
    from .api import (
        AUDIT_FILE,
        AUDITS,
        PLANS,
        audit_run,
        audit_table_rows,
        format_table,
        run_family,
    )
    from .common import AuditContext, bootstrap_ci, random_init_copy, token_coverage
    from .data import LabelledSet, MissingAuditData, resolve_bias_file
    from .text_clm import continuation_logprobs
    from .text_mlm import masked_option_logprobs

__all__ = [
    "AUDITS",
    "AUDIT_FILE",
    "PLANS",
    "AuditContext",
    "LabelledSet",
    "MissingAuditData",
    "audit_run",
    "audit_table_rows",
    "bootstrap_ci",
    "continuation_logprobs",
    "format_table",
    "masked_option_logprobs",
    "random_init_copy",
    "resolve_bias_file",
    "run_family",
    "token_coverage",
]
# Public name -> its submodule, imported on first use: `hfssl <command> --help` and argument errors need
# only the command's parser, not torch and transformers, which the submodules import.
_EXPORTS = {
    "AUDIT_FILE": ".api",
    "AUDITS": ".api",
    "PLANS": ".api",
    "audit_run": ".api",
    "audit_table_rows": ".api",
    "format_table": ".api",
    "run_family": ".api",
    "AuditContext": ".common",
    "bootstrap_ci": ".common",
    "random_init_copy": ".common",
    "token_coverage": ".common",
    "LabelledSet": ".data",
    "MissingAuditData": ".data",
    "resolve_bias_file": ".data",
    "continuation_logprobs": ".text_clm",
    "masked_option_logprobs": ".text_mlm",
}

__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
