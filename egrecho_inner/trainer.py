"""Shared fine-tuning code for ``lora.py`` and ``full.py``: options, the lhotse-fed Seq2SeqTrainer,
and ``run_training``, which both scripts call with their own model hook."""

from __future__ import annotations

import logging
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import torch
from accelerate import PartialState
from jsonargparse import ActionConfigFile, ArgumentParser, set_parsing_settings
from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, TrainerCallback, set_seed
from transformers.training_args import OptimizerNames

from egrecho_inner.data_module import DataArgs, LhotseLoader, cuts_path, eval_loader, load_cuts, train_loader
from egrecho_inner.dataset import WhisperLabeler
from egrecho_inner.errors import InputError, MissingInputError, one_line_errors
from egrecho_inner.features import check_mel_bins
from egrecho_inner.kl_guard import base_logits, guarded_loss
from egrecho_inner.model import load_whisper, save_processor
from egrecho_inner.new_language import add_language
from egrecho_inner.unpadded import enable_unpadded_inputs, mark_trained_unpadded
from egrecho_inner.utils import atomic_path, setup_logging, writable_dir

log = logging.getLogger(__name__)


@dataclass
class TrainArgs(DataArgs):
    """Options shared by LoRA and full fine-tuning (data options come from DataArgs)."""

    base_model: str = "pretrained/whisper-small"
    """local model dir (or a hub id with local_files_only: false)"""
    output_dir: str = "exp/whisper-small/lora"
    local_files_only: bool = True
    """never reach for the hub unless asked"""
    learning_rate: float = 1e-3
    lr_scheduler_type: str = "linear"
    warmup_steps: int = 50
    weight_decay: float = 0.0
    num_train_epochs: float = 3.0
    max_steps: int = -1
    """> 0 overrides num_train_epochs"""
    gradient_accumulation_steps: int = 1
    """batches per optimizer step"""
    max_grad_norm: float = 1.0
    optim: str = "adamw_torch_fused"
    """an HF Trainer optimizer (HF's default adamw_torch_fused, adamw_torch, adafactor, sgd, ...) or lion (the lion-pytorch
    package, CPU and GPU; HF's own lion_* need bitsandbytes). Lion wants a 3-10x smaller learning_rate"""
    optim_args: Optional[str] = None
    """the optimizer's extra arguments, "key=value,..." (lion: beta1, beta2, decoupled_weight_decay)"""
    logging_steps: int = 10
    eval_steps: int = 500
    """validation loss every N steps; checkpoints are kept by it"""
    save_steps: int = 500
    """a multiple of eval_steps (the best checkpoint is chosen by eval loss)"""
    save_total_limit: int = 5
    save_on_each_node: bool = False
    """several machines without a shared disk: each machine's first process saves into its own output_dir"""
    fp16: bool = False  # GPU only; on CPU a warning and fp32
    bf16: bool = False  # GPU only; on CPU a warning and fp32
    gradient_checkpointing: bool = False
    """trade compute for activation memory"""
    use_compile: Optional[bool] = None
    """torch.compile the model (fuses the elementwise work of LoRA, the un-padded masks and the loss): null: on when
    training on CUDA without DeepSpeed. The first steps pay the compilation (about a minute for whisper-small)"""
    compile_mode: Optional[str] = None
    """torch.compile mode: null (default), reduce-overhead, max-autotune-no-cudagraphs, ..."""
    deepspeed: Optional[str] = None
    """config/ds_config_z1.json, _z2.json or _z3.json"""
    resume_from_checkpoint: Union[bool, str, None] = None
    """a checkpoint dir, or true for the latest in output_dir"""
    seed: int = 42
    record_cut_ids: bool = False
    """write trained cut ids to <output_dir>/cut_ids/rank<k>.txt (checks sharding)"""
    new_language: Optional[str] = None
    """a language code Whisper lacks (e.g. eo): adds <|CODE|> to tokenizer, embeddings and language map"""
    new_language_init: Optional[str] = None
    """a known language whose token row the new one starts from (None: the mean of all language rows)"""
    unpadded_decoding: Optional[bool] = None
    """how the saved model decodes by default (recorded in its generation config): null: as trained; false: padded to
    30 s, e.g. a model trained un-padded for speed that must decode short real clips (un-padded, a fine-tune of one
    voice can fail to end the transcript of a sub-second clip in a voice it never heard: README, Quick start)"""
    kl_weight: float = 1.0
    """weight of the KL term on kl_to_base cuts against the cross-entropy of the others (egrecho_inner/kl_guard.py)"""


LION = "lion"
COMPILED_FRAME_BUCKET = 100  # un-padded batches of a compiled model: padded up to whole seconds


def optimizer_cls_and_kwargs(args: TrainArgs) -> Optional[tuple[type, dict]]:
    """What the Trainer builds the optimizer from when it is not one of its own (Lion); None otherwise."""
    if args.optim != LION:
        if args.optim not in {o.value for o in OptimizerNames}:
            known = ", ".join(o.value for o in OptimizerNames)
            raise InputError(f"optim {args.optim!r} unknown: one of {LION}, {known}")
        return None
    from lion_pytorch import Lion

    options = dict(item.split("=", 1) for item in (args.optim_args or "").replace(" ", "").split(",") if item)
    unknown = set(options) - {"beta1", "beta2", "decoupled_weight_decay"}
    if unknown:
        raise InputError(f"optim_args: {sorted(unknown)} unknown for lion (beta1, beta2, decoupled_weight_decay)")
    betas = (float(options.get("beta1", 0.9)), float(options.get("beta2", 0.99)))
    decoupled = options.get("decoupled_weight_decay", "false").lower() == "true"
    return Lion, {"lr": args.learning_rate, "betas": betas, "decoupled_weight_decay": decoupled}


def training_arguments(args: TrainArgs) -> Seq2SeqTrainingArguments:
    """HF TrainingArguments from our options, with the precision fixed up for CPU."""
    fp16, bf16 = args.fp16, args.bf16
    if (fp16 or bf16) and not torch.cuda.is_available():
        log.warning("fp16/bf16 need a GPU; training in fp32 on CPU")
        fp16 = bf16 = False
    if args.deepspeed and not Path(args.deepspeed).is_file():
        raise MissingInputError(f"deepspeed config {args.deepspeed} not found (see config/ds_config_z*.json)")
    if args.deepspeed and "RANK" not in os.environ:
        _single_process_group()
    if args.save_steps % args.eval_steps:
        raise InputError(f"save_steps ({args.save_steps}) must be a multiple of eval_steps ({args.eval_steps})")
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(Path(args.output_dir) / "tensorboard")
    return Seq2SeqTrainingArguments(
        output_dir=args.output_dir, learning_rate=args.learning_rate, lr_scheduler_type=args.lr_scheduler_type,
        warmup_steps=args.warmup_steps, weight_decay=args.weight_decay, num_train_epochs=args.num_train_epochs,
        max_steps=args.max_steps, gradient_accumulation_steps=args.gradient_accumulation_steps,
        max_grad_norm=args.max_grad_norm, optim="adamw_torch" if args.optim == LION else args.optim,
        optim_args=None if args.optim == LION else args.optim_args,  # Lion comes from optimizer_cls_and_kwargs
        logging_steps=args.logging_steps, eval_strategy="steps", eval_steps=args.eval_steps, save_strategy="steps",
        save_steps=args.save_steps, save_total_limit=args.save_total_limit, save_on_each_node=args.save_on_each_node,
        load_best_model_at_end=True, metric_for_best_model="eval_loss",
        greater_is_better=False, fp16=fp16, bf16=bf16, activation_checkpointing=args.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False}, torch_compile=compiles(args),
        torch_compile_mode=args.compile_mode if compiles(args) else None,
        deepspeed=args.deepspeed, seed=args.seed, report_to=["tensorboard"],
        ignore_data_skip=True,  # the lhotse sampler fast-forwards itself (SamplerResume below)
        remove_unused_columns=False, label_names=["labels"], predict_with_generate=False,
        per_device_train_batch_size=1, per_device_eval_batch_size=1,  # batches come whole from lhotse
        ddp_find_unused_parameters=False,
        use_cpu=not torch.cuda.is_available(),  # lets several CPU processes (gloo) form a DDP group
    )


def compiles(args: TrainArgs) -> bool:
    """Whether training runs a torch.compile'd model: ``use_compile``, or by default on CUDA without DeepSpeed."""
    if args.use_compile is not None:
        return args.use_compile
    sharded = args.deepspeed or any(os.environ.get(f"ACCELERATE_USE_{k}", "").lower() in ("1", "true")
                                    for k in ("DEEPSPEED", "FSDP"))  # set by an accelerate config
    return torch.cuda.is_available() and not sharded


def _single_process_group() -> None:
    """The environment a one-process launch lacks and DeepSpeed needs (else it looks for MPI): rank 0 of 1,
    rendezvous on a free local port. One GPU with ZeRO-3 offload is DeepSpeed's main one-process use."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}.items():
        os.environ.setdefault(key, value)


class SamplerResume(TrainerCallback):
    """On resume, start the sampler where the checkpoint left the epoch, so no cut repeats."""

    def __init__(self, loader: LhotseLoader):
        self.loader = loader

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step == 0:
            return
        ga = args.gradient_accumulation_steps
        n = len(self.loader)
        updates_per_epoch = max(n // ga + int(n % ga > 0), 1)  # as the HF Trainer counts them
        self.loader.skip_batches((state.global_step % updates_per_epoch) * ga)


class LhotseSeq2SeqTrainer(Seq2SeqTrainer):
    """A Seq2SeqTrainer fed by lhotse loaders (already sharded per rank, so not re-sharded here)."""

    def __init__(self, *, train_loader: LhotseLoader, eval_loader: LhotseLoader, cut_id_file: Optional[Path],
                 optimizer_cls_and_kwargs: Optional[tuple[type, dict]] = None, kl_weight: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.kl_weight, self._kl_values = kl_weight, []  # kl_to_base cuts: their KL per token since the last log
        self.optimizer_cls_and_kwargs = optimizer_cls_and_kwargs  # Seq2SeqTrainer does not pass it on
        # Whisper's forward takes **kwargs, so HF assumes it normalises the loss by num_items_in_batch
        # and skips dividing by gradient_accumulation_steps; it doesn't (its loss is a plain mean),
        # which would scale gradients and logged losses by the accumulation steps.
        self.model_accepts_loss_kwargs = False
        self._train_loader, self._eval_loader, self._cut_id_file = train_loader, eval_loader, cut_id_file
        self.add_callback(SamplerResume(train_loader))

    def get_train_dataloader(self):
        return self._train_loader

    def get_eval_dataloader(self, eval_dataset=None):
        return self._eval_loader

    def training_step(self, model, inputs, *args, **kwargs):
        cut_ids = inputs.pop("cut_ids")
        if self._cut_id_file is not None:
            with open(self._cut_id_file, "a") as f:
                f.writelines(f"{self.state.global_step}\t{cut_id}\n" for cut_id in cut_ids)
        return super().training_step(model, inputs, *args, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        kl_rows = inputs.pop("kl_rows", None)
        if kl_rows is None:  # no kl_to_base cut in the batch: Whisper's own loss
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        teacher = base_logits(self.accelerator.unwrap_model(model), inputs, kl_rows)  # before the graph is built
        outputs = model(**inputs)
        loss, kl = guarded_loss(outputs.logits, inputs["labels"], kl_rows, teacher, self.kl_weight)
        self._kl_values.append(kl)  # a tensor: no device sync per step, one at logging
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict, *args, **kwargs) -> None:
        if self._kl_values and "loss" in logs:  # a training log: the kl_to_base term beside the loss
            logs["kl_to_base"] = round(torch.stack(self._kl_values).mean().item(), 6)
            self._kl_values = []
        super().log(logs, *args, **kwargs)

    def prediction_step(self, model, inputs, *args, **kwargs):
        inputs.pop("cut_ids", None)
        inputs.pop("kl_rows", None)
        return super().prediction_step(model, inputs, *args, **kwargs)


def resolve_resume(value: Union[bool, str, None], output_dir: str) -> Optional[str]:
    """``true``/``latest`` -> the newest complete checkpoint in output_dir (one a kill interrupted while it
    was being written has no trainer_state.json and is passed over); a path is checked to exist."""
    if value in (None, False, "", "false"):
        return None
    if value in (True, "true", "latest"):
        found = sorted(Path(output_dir).glob("checkpoint-[0-9]*"), key=lambda p: int(p.name.split("-")[1]),
                       reverse=True) if Path(output_dir).is_dir() else []
        for checkpoint in found:
            if (checkpoint / "trainer_state.json").is_file():
                return str(checkpoint)
            log.warning("resume_from_checkpoint: %s is incomplete (no trainer_state.json), passed over", checkpoint)
        raise MissingInputError(f"resume_from_checkpoint: no complete checkpoint-* in {output_dir} to resume from")
    if not Path(value).is_dir():
        raise MissingInputError(f"resume_from_checkpoint: {value} not found")
    return str(value)


def run_training(args: TrainArgs, prepare_model: Callable, save_config: Callable[[Path], None]) -> Seq2SeqTrainer:
    """Fine-tune ``args.base_model`` on the prepared cuts and save ``<output_dir>/checkpoint-final``.

    Args:
        args: all options.
        prepare_model: ``(model, args, total_steps) -> (model, callbacks)``: wraps or freezes the model
            (LoRA, frozen encoder) and names any trainer callbacks that needs.
        save_config: writes the resolved config to the given path.
    """
    # 1. The model, loaded before the TrainingArguments: with a ZeRO-3 config those make from_pretrained
    # load into partitioned parameters (zero.Init), which crashes on Whisper's sinusoidal positions in
    # transformers 5.24. So each process holds the whole model until DeepSpeed partitions it.
    optimizer = optimizer_cls_and_kwargs(args)  # checks optim before any work
    set_seed(args.seed)  # before loading: the random stream up to the adapters' initialisation stays as it was
    model, processor = load_whisper(args.base_model, args.local_files_only)
    if args.new_language:
        add_language(model, processor.tokenizer, args.new_language, args.new_language_init)

    # 2. Arguments, distributed state.
    training_args = training_arguments(args)
    state = PartialState(cpu=training_args.use_cpu)
    resume = resolve_resume(args.resume_from_checkpoint, args.output_dir)
    output_dir = Path(args.output_dir)
    saves = state.is_local_main_process if args.save_on_each_node else state.is_main_process
    if saves:
        writable_dir(output_dir)
        save_config(output_dir / "config" / "train.yaml")

    # 3. Data: lhotse loaders sharded by rank.
    check_mel_bins(load_cuts(args, "train"), str(cuts_path(args, "train")), model.config.num_mel_bins,
                   args.base_model, args.num_mel_bins)
    args.num_mel_bins = model.config.num_mel_bins
    if not 0.0 <= args.timestamp_probability <= 1.0:
        raise InputError(f"timestamp_probability must be within [0, 1], got {args.timestamp_probability}")
    args.language_token_loss = resolve_language_token_loss(args)
    labeler = WhisperLabeler(processor.tokenizer, task=args.task, default_language=args.language,
                             timestamp_probability=args.timestamp_probability, seed=args.seed)
    world, rank = state.num_processes, state.process_index
    if args.bucket_frames is None:  # a compiled model: few input shapes, few recompilations
        args.bucket_frames = COMPILED_FRAME_BUCKET if compiles(args) else 2
    if args.bucket_frames < 2 or args.bucket_frames % 2:
        raise InputError(f"bucket_frames must be even and >= 2, got {args.bucket_frames}")
    if args.compile_mode and not compiles(args):
        log.warning("compile_mode %s ignored: the model is not compiled (use_compile)", args.compile_mode)
    train = train_loader(args, labeler, world_size=world, rank=rank, seed=args.seed)
    valid = eval_loader(args, labeler, "val", world_size=world, rank=rank)
    if len(train) == 0:
        raise InputError(f"no training batch: every cut of {args.prefix_name}_cuts_train was filtered out")
    total_steps = args.max_steps if args.max_steps > 0 else _epoch_steps(len(train), args)

    # 4. Model: LoRA / frozen parts from the script's hook.
    model, callbacks = prepare_model(model, args, total_steps)
    if args.kl_to_base and not hasattr(model, "disable_adapter"):
        raise InputError("kl_to_base needs LoRA (lora.py): its base is the model with the adapters off. Full "
                         "fine-tuning would need a frozen copy of the model; use replay (with transcripts) there")
    unpadded = args.remove_whisper_encoder_input_length_restriction
    mark_trained_unpadded(model, unpadded if args.unpadded_decoding is None else args.unpadded_decoding)
    if unpadded:
        enable_unpadded_inputs(model)
    if args.gradient_checkpointing:
        model.config.use_cache = False
        model.enable_input_require_grads()  # checkpointed blocks need grads through frozen inputs (LoRA)

    # 5. Train.
    if state.is_main_process:
        log.info("C allocator: %s", c_allocator())
    trainer = LhotseSeq2SeqTrainer(
        model=model, args=training_args, processing_class=processor.feature_extractor,
        train_dataset=train, eval_dataset=valid,  # for the Trainer's checks (it asks for a length); batches come from:
        train_loader=train, eval_loader=valid, cut_id_file=_cut_id_file(args, rank, resume), callbacks=callbacks,
        optimizer_cls_and_kwargs=optimizer, kl_weight=args.kl_weight,
    )
    result = trainer.train(resume_from_checkpoint=resume)
    trainer.save_metrics("train", result.metrics)  # <output_dir>/train_results.json: train_runtime, samples/s

    # 6. Save the final (best by eval loss) model with the processor next to it.
    final = output_dir / "checkpoint-final"
    trainer.save_model(str(final))
    if saves:
        save_processor(processor, final)
        model.generation_config.save_pretrained(final)  # an adapter dir too: it carries added languages
        log.info("best checkpoint: %s; final model: %s", trainer.state.best_model_checkpoint, final)
        log.info("tensorboard --logdir %s", os.environ["TENSORBOARD_LOGGING_DIR"])
    state.wait_for_everyone()
    return trainer


def resolve_language_token_loss(args: TrainArgs) -> bool:
    """Whether transcripts train the language token: as set, else only for a new language (its token must be
    learnt; a known language's identification is kept as the base model has it)."""
    return bool(args.new_language) if args.language_token_loss is None else args.language_token_loss


def c_allocator() -> str:
    """The malloc this process runs with: tcmalloc or jemalloc when preloaded (finetune.sh), else the system's."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:  # not Linux
        return "system malloc"
    for lib in ("tcmalloc", "jemalloc"):
        if f"lib{lib}" in maps:
            return lib
    return "system malloc (glibc)"


def _epoch_steps(batches_per_epoch: int, args: TrainArgs) -> int:
    ga = args.gradient_accumulation_steps
    return math.ceil(args.num_train_epochs * math.ceil(batches_per_epoch / ga))


def _cut_id_file(args: TrainArgs, rank: int, resume: Optional[str]) -> Optional[Path]:
    if not args.record_cut_ids:
        return None
    path = Path(args.output_dir) / "cut_ids" / f"rank{rank}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    if resume is None:
        path.unlink(missing_ok=True)  # a fresh run starts a fresh record; a resumed one appends
    return path


def main_cli(args_class: type, prepare_model: Callable, description: str, argv: Optional[list] = None) -> None:
    """Parse ``-c CONFIG`` plus overrides into ``args_class`` and run training."""
    set_parsing_settings(docstring_parse_attribute_docstrings=True)  # field docstrings become --help text
    parser = ArgumentParser(description=description.split("\n\n")[0])
    parser.add_argument("-c", "--config", action=ActionConfigFile, help="YAML config, e.g. config/lora.yaml")
    parser.add_class_arguments(args_class)
    cfg = parser.parse_args(argv)
    args = args_class(**{k: v for k, v in cfg.as_dict().items() if k != "config"})

    def save_config(path: Path) -> None:
        with atomic_path(path) as tmp:
            tmp.write_text(parser.dump(cfg, skip_none=False))

    setup_logging()
    with one_line_errors(Path(sys.argv[0]).name):
        run_training(args, prepare_model, save_config)
