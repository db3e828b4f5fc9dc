"""`hfssl publish` and `hfssl publish-space`: argument parsers and the functions the CLI table calls.

The token is never a flag (flags land in shell history and process lists): it comes from HF_TOKEN or
`hf auth login`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def add_publish_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("run_dir", help="The run directory to publish (model/ or adapter/, run.json, eval/).")
    parser.add_argument("--repo-id", required=True, help="Hub repository, NAMESPACE/NAME (created if missing).")
    _add_common(parser)
    parser.add_argument("--revision", help="Branch to commit to (created from main if missing; default main).")
    parser.add_argument("--create-pr", action="store_true", help="Open a pull request instead of committing.")
    parser.add_argument("--base-model-id", help="Adapters: the base model's Hub id (default: from the parent run).")
    parser.add_argument("--full-model", action="store_true",
                        help="A fine-tuned run with adapter/ and a merged model/: publish model/ (the complete "
                             "classifier, no base needed) instead of the adapter.")
    parser.add_argument("--dry-run-dir", help="Where --dry-run writes (default: RUN_DIR/publish_preview).")
    return parser


def add_publish_space_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--repo-id", required=True, help="The Space, NAMESPACE/NAME (created with the gradio SDK).")
    parser.add_argument("--model", required=True, help="Hub id of the model the demo shows, NAMESPACE/NAME.")
    _add_common(parser)
    parser.add_argument("--spaces-dir", help="Folder to upload (default: spaces/ of the hfssl checkout).")
    parser.add_argument("--sdk-version", help="gradio version for the Space (default: the installed gradio).")
    parser.add_argument("--dry-run-dir", help="Where --dry-run writes (default: ./space_preview).")
    return parser


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--private", action="store_true", help="Create the repository as private.")
    parser.add_argument("--commit-message", help="Message of the commit.")
    parser.add_argument("--dry-run", action="store_true", help="Write the exact folder that would be uploaded; upload nothing.")
    parser.add_argument("--endpoint", help="Hub URL for private deployments (default: HF_ENDPOINT or the public Hub).")


def run_publish_from_args(args: argparse.Namespace) -> int:
    """Publish a run; prints where it went. Hub failures print a message and return 1."""
    from .client import PublishError
    from .publish import publish_run

    try:
        result = publish_run(
            args.run_dir, args.repo_id, private=args.private, revision=args.revision,
            commit_message=args.commit_message, create_pr=args.create_pr, endpoint=args.endpoint,
            dry_run=args.dry_run, dry_run_dir=args.dry_run_dir, base_model_id=args.base_model_id,
            full_model=args.full_model,
        )
    except PublishError as error:
        print(f"hfssl publish: error: {error}", file=sys.stderr)
        return 1
    _print_result(result)
    return 0


def run_publish_space_from_args(args: argparse.Namespace) -> int:
    """Publish the demo Space; prints where it went. Hub failures print a message and return 1."""
    from .client import PublishError
    from .space import publish_space

    try:
        result = publish_space(
            args.repo_id, args.model, endpoint=args.endpoint, private=args.private, dry_run=args.dry_run,
            dry_run_dir=args.dry_run_dir, spaces_dir=args.spaces_dir, sdk_version=args.sdk_version,
            commit_message=args.commit_message,
        )
    except PublishError as error:
        print(f"hfssl publish-space: error: {error}", file=sys.stderr)
        return 1
    _print_result(result)
    return 0


def _print_result(result: dict) -> None:
    if result.get("dry_run"):
        print(f"Dry run: {len(result['files'])} files written to {result['folder']}; nothing was uploaded.")
        return
    print(f"Published {len(result['files'])} files to {result['url']}")
    print(f"  commit  {result['commit_url']}")
    if result.get("pr_url"):
        print(f"  pull request  {result['pr_url']}")


def build_publish_parser() -> argparse.ArgumentParser:
    """The parser of `hfssl publish` (quick: nothing heavy is imported)."""
    return add_publish_arguments(argparse.ArgumentParser(prog="hfssl publish", description=cmd_publish.__doc__))


def build_publish_space_parser() -> argparse.ArgumentParser:
    """The parser of `hfssl publish-space` (quick: nothing heavy is imported)."""
    return add_publish_space_arguments(
        argparse.ArgumentParser(prog="hfssl publish-space", description=cmd_publish_space.__doc__)
    )


def cmd_publish(argv: Sequence[str]) -> int:
    """Publish a run (model or PEFT adapter) to the Hugging Face Hub in one commit."""
    return run_publish_from_args(build_publish_parser().parse_args(list(argv)))


def cmd_publish_space(argv: Sequence[str]) -> int:
    """Publish the Gradio demo as a Hugging Face Space for a published model."""
    return run_publish_space_from_args(build_publish_space_parser().parse_args(list(argv)))
