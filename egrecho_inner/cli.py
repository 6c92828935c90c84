"""The ``egrecho`` command: a jsonargparse dispatcher over an explicit command registry.

Add a command by calling :func:`register` in :func:`register_commands` with a function whose
typed, documented parameters become its options. Every command gets ``-h``, ``-c/--config FILE``
and ``--print_config``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from jsonargparse import ActionConfigFile, ArgumentParser

from egrecho_inner import __version__
from egrecho_inner.errors import one_line_errors
from egrecho_inner.utils import quiet_library_warnings


@dataclass(frozen=True)
class Command:
    name: str
    func: Callable
    help: str
    aliases: tuple[str, ...] = ()
    positional: bool = False  # required arguments are positional (`egrecho describe FILE`)
    many: Optional[str] = None  # a list parameter taken as trailing positionals (`egrecho transcribe ... a.wav b.wav`)


COMMANDS: dict[str, Command] = {}


def register(
    name: str, func: Callable, help: str, aliases: tuple[str, ...] = (), positional: bool = False,
    many: Optional[str] = None,
) -> None:
    """Add ``func`` as ``egrecho <name>`` (and its aliases); its typed parameters become options."""
    for key in (name, *aliases):
        if key in COMMANDS or any(key in c.aliases for c in COMMANDS.values()):
            raise ValueError(f"command name {key!r} is taken")
    COMMANDS[name] = Command(name, func, help, aliases, positional, many)


def register_commands() -> None:
    """The commands egrecho ships, registered explicitly (no import side effects)."""
    if COMMANDS:
        return
    from egrecho_inner.alignment_heads import find_alignment_heads
    from egrecho_inner.deploy.ct2_import import import_ct2
    from egrecho_inner.deploy.export_ct2 import export_ct2
    from egrecho_inner.deploy.export_ggml import export_ggml
    from egrecho_inner.deploy.export_onnx import export_onnx
    from egrecho_inner.deploy.transcribe import transcribe
    from egrecho_inner.evaluate import evaluate
    from egrecho_inner.merge_lora import merge_lora_whisper
    from egrecho_inner.model import save_tiny_whisper
    from egrecho_inner.pseudo_label import pseudo_label
    from egrecho_inner.stats import print_stats
    from egrecho_inner.tokenizer import save_whisper_tokenizer

    register("eval", evaluate, "Transcribe and score a test set (WER/CER, RTF).")
    register("transcribe", transcribe, "Print utt-id<TAB>text for audio files or a wav.scp.", many="audio")
    register("describe", print_stats, "Print duration statistics of a lhotse manifest.", positional=True)
    register("build-tokenizer", save_whisper_tokenizer, "Save OpenAI's multilingual Whisper tokenizer (offline).")
    register("merge-lora-whisper", merge_lora_whisper, "Merge a LoRA adapter into its base Whisper.", aliases=("mlw",))
    register("export-ct2", export_ct2, "Write a Whisper model in CTranslate2 format (faster-whisper).")
    register("export-ggml", export_ggml, "Write a Whisper as a whisper.cpp (ggml) model.")
    register("export-onnx", export_onnx, "Write a Whisper as ONNX encoder + decoder with key/value cache.")
    register("import-ct2", import_ct2, "Convert a CTranslate2 (faster-whisper) Whisper dir to transformers.")
    register("pseudo-label", pseudo_label, "Relabel a cut manifest with a model's transcripts (self-distillation).")
    register("find-alignment-heads", find_alignment_heads,
             "Choose the decoder heads that time words best (word timestamps) and write them to the model.")
    register("make-tiny-whisper", save_tiny_whisper, "Save a tiny random Whisper for tests and CPU demos.")


def build_parser() -> ArgumentParser:
    register_commands()
    parser = ArgumentParser(prog="egrecho", description="Whisper fine-tuning recipe tools.")
    parser.add_argument("--version", action="version", version=f"egrecho {__version__}")
    subcommands = parser.add_subcommands(dest="command", required=True)
    for command in COMMANDS.values():
        sub = ArgumentParser(description=(command.func.__doc__ or command.help).split("\n\n")[0])
        sub.add_argument("-c", "--config", action=ActionConfigFile, help="YAML config file with the options below")
        sub.add_function_arguments(command.func, as_positional=command.positional,
                                   skip={command.many} if command.many else None)
        if command.many:
            sub.add_argument(command.many, nargs="+", help=f"one or more {command.many} inputs")
        subcommands.add_subcommand(command.name, sub, help=command.help, aliases=command.aliases)
    return parser


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point of the ``egrecho`` console script."""
    quiet_library_warnings()  # before the commands' imports
    parser = build_parser()
    cfg = parser.parse_args(argv)
    name = cfg.command
    command = COMMANDS.get(name) or next(c for c in COMMANDS.values() if name in c.aliases)
    init = parser.instantiate(cfg)[name]  # nested blocks (e.g. gen_args) become their dataclasses
    kwargs = {k: v for k, v in init.items(branches=True) if k != "config"}
    with one_line_errors(f"egrecho {command.name}"):
        command.func(**kwargs)


if __name__ == "__main__":
    main()
