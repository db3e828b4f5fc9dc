"""Bias audits of hfssl runs, each with bootstrap intervals, n per group, a data hash and a random-init baseline.

    from hfssl.audit import audit_run
    report = audit_run("runs/my-mlm", bias_data_dir="../shared/data/bias", time_budget_s=120)

`audit_run` picks the audits that fit the run's objective (masked LM, next-token LM, text contrastive, vision,
fine-tuned classifier), writes <run>/bias_audit.json and the run.json "audit" section, and prints a table.
"""

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
