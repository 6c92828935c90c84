"""Training and validation data: lazily read cut manifests, lhotse samplers sharded per rank,
optional MUSAN mixing and SpecAugment, replayed cuts of other manifests and non-speech cuts mixed
into training, and a loader the Hugging Face Trainer can drive and resume.

Whisper pads every input to 30 s, so the cost of a batch is its number of cuts: ``max_cuts`` is
the natural batch size. ``max_duration`` (total seconds) is there for un-padded training.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Iterator, Optional, Union

import torch
from lhotse import CutSet, load_manifest_lazy
from lhotse.dataset import CutMix, DynamicBucketingSampler, SimpleCutSampler, SpecAugment
from lhotse.dataset.sampling.base import CutSampler
from lhotse.utils import Pathlike

from egrecho_inner.constants import MUSAN_CUTS, SHAR_DIR
from egrecho_inner.dataset import KL_TO_BASE, TrainingCutFilter, WhisperDataset, WhisperLabeler
from egrecho_inner.errors import InputError, MissingInputError

log = logging.getLogger(__name__)


@dataclass
class DataArgs:
    """Where the cuts are and how batches are formed."""

    manifest_dir: str = "data/fbank_whisper80"
    """where prepare.sh wrote <prefix>_cuts_<part>.jsonl.gz"""
    prefix_name: str = "demo_vi"
    """the --prefix given to prepare.sh"""
    max_cuts: Optional[int] = 16
    """cuts per batch (per process)"""
    max_duration: Optional[float] = None
    """or: seconds of audio per batch"""
    shar: bool = False
    """read the train part from Lhotse Shar shards (<manifest_dir>/<prefix>_shar_train/, prepare.sh --shar true):
    sequentially, shard by shard in a seeded shuffled order, never the whole manifest at once"""
    bucketing_sampler: bool = True
    """group cuts of similar duration (DynamicBucketingSampler)"""
    num_buckets: int = 30
    sampler_buffer_size: int = 20000
    """cuts the bucketing sampler holds to shuffle and bucket (lhotse's default): its memory, flat in corpus size.
    With shar the cuts hold their features (lilcom, about 6 KiB per second of audio): 20000 cuts of 5 s are
    ~0.6 GB per rank (bench/bench_shar.py)"""
    on_the_fly_feats: bool = False
    """compute features from audio at batch time"""
    num_mel_bins: Optional[int] = None
    """mel bins of features computed at batch time (on the fly, MUSAN mixes); null: the model's (128 for large-v3)"""
    enable_musan: bool = False
    """mix MUSAN noise/music/babble into training audio"""
    musan_prob: float = 0.5
    """fraction of training cuts that get noise"""
    musan_snr: tuple[float, float] = (10.0, 20.0)
    """SNR range (dB) of the mixed noise"""
    enable_spec_aug: bool = False
    """SpecAugment on training features"""
    num_workers: int = 2
    """dataloader worker processes"""
    remove_whisper_encoder_input_length_restriction: bool = False
    """un-padded batches: pad to the longest cut, not 30 s, and mask the padding (egrecho_inner/unpadded.py)"""
    bucket_frames: Optional[int] = None
    """un-padded batches padded up to a multiple of this many frames, and labels of any batch to a multiple of 8
    tokens (masked: the loss is the same), so that a compiled model sees few input shapes. null: 100 (1 s) when
    training compiles the model, else 2 (off)"""
    language: Optional[str] = None
    """language of cuts whose supervision names none"""
    task: str = "transcribe"
    timestamp_probability: float = 0.5
    """share of cuts labelled with their segments' times (<|0.00|> text <|2.40|>) instead of <|notimestamps|>,
    so the fine-tune keeps predicting timestamps (long-form decoding, subtitles); 0: none, as the original"""
    language_token_loss: Optional[bool] = None
    """train the language token (Whisper's language identification) with the transcripts' cross-entropy. null: only
    when training a new_language (its token must be learnt); else off: a fine-tune on one language would learn that
    all speech is that language (docs/training.md: Language identification). kl_to_base cuts keep theirs"""
    replay: list[str] = field(default_factory=list)
    """cut manifests of other data (e.g. another language) mixed into training so the model keeps it,
    each cut with its own transcript and language"""
    replay_prob: Union[float, list[float]] = 0.2
    """share of training cuts drawn from the replay manifests (split equally), or one share per manifest"""
    kl_to_base: list[str] = field(default_factory=list)
    """cut manifests (audio; transcripts optional) mixed into training with no transcript target: on their cuts the
    loss is KL(base || fine-tune) of the next-token distributions, the base being the LoRA model with its adapters
    off (LoRA only). Keeps what the model did on other languages and voices without teaching their transcripts
    (docs/training.md: A guard that needs no transcripts). A cut's text, if any, only gives the tokens the two are compared on"""
    kl_to_base_prob: Union[float, list[float]] = 0.2
    """share of training cuts drawn from the kl_to_base manifests (split equally), or one share per manifest"""
    nospeech_cuts: Optional[str] = None
    """a cut manifest of non-speech clips (noise, silence; empty transcripts: prepare.sh --keep_empty_text)"""
    nospeech_prob: float = 0.0
    """share of training cuts drawn from nospeech_cuts; their target is the empty transcript"""


def cuts_path(args: DataArgs, part: str) -> Path:
    return Path(args.manifest_dir) / f"{args.prefix_name}_cuts_{part}.jsonl.gz"


def read_cuts(path: Pathlike, missing_hint: str) -> CutSet:
    """Lazily read cuts, or a clear error if the manifest is missing (with ``missing_hint``) or empty."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{path} not found: {missing_hint}")
    cuts = load_manifest_lazy(path)  # None for an empty file
    if cuts is None or next(iter(cuts), None) is None:
        raise InputError(f"{path} holds no cuts")
    return cuts


def load_cuts(args: DataArgs, part: str, seed: int = 42, cuts_only: bool = False,
              shard_split: tuple[int, int] = (0, 1)) -> CutSet:
    """The lazily read cuts of one part, or a clear error if the manifest is missing or empty. With ``shar``
    the train part comes from its Shar shards (``cuts_only``: without reading the features' tar files;
    ``shard_split``: (rank, world size), only this rank's shards)."""
    if args.shar and part == "train":
        return read_shar(Path(args.manifest_dir) / SHAR_DIR.format(prefix=args.prefix_name, part=part), seed, cuts_only, shard_split)
    return read_cuts(cuts_path(args, part),
                     f"run prepare.sh with --prefix {args.prefix_name} (or set manifest_dir/prefix_name)")


def read_shar(shar_dir: Path, seed: int, cuts_only: bool = False, shard_split: tuple[int, int] = (0, 1)) -> CutSet:
    """Lazily read Shar shards in a shuffled order (the same on every rank and epoch, so a resumed run
    fast-forwards through the same batches); cuts are shuffled within the sampler's buffer each epoch.
    ``shard_split`` (rank, world size): the shards are dealt out over the ranks, each reads only its own."""
    shards = sorted(shar_dir.glob("cuts.*.jsonl.gz"))
    if not shards:
        raise MissingInputError(f"{shar_dir} holds no Shar shards (cuts.*.jsonl.gz): run prepare.sh --shar true")
    rank, world_size = shard_split
    if len(shards) < world_size:
        raise InputError(f"{shar_dir} holds {len(shards)} Shar shards for {world_size} ranks: every rank needs one "
                         "(prepare.sh --shar_shard_size smaller)")
    order = list(range(len(shards)))
    random.Random(seed).shuffle(order)
    mine = order[rank::world_size]
    fields = {"cuts": [str(shards[i]) for i in mine]}
    if not cuts_only:
        for field in ("features", "recording"):
            tars = sorted(shar_dir.glob(f"{field}.*.tar"))
            if tars:
                fields[field] = [str(tars[i]) for i in mine]
    return CutSet.from_shar(fields=fields, shuffle_shards=False)


class LhotseLoader:
    """A DataLoader over a lhotse sampler that the HF Trainer can drive.

    It has a length (batches per epoch on this rank, counted by running the sampler, or ``counters``, without
    loading data), ``set_epoch`` (called by the Trainer each epoch, reshuffles), and ``skip_batches`` so a
    resumed run fast-forwards the sampler past the batches it already trained on, without loading them, and
    without repeating any cut of the epoch. With one counter per rank (ranks reading their own Shar shards,
    whose batch counts differ) every rank takes the smallest count of the epoch, so all take the same steps.
    """

    def __init__(self, sampler: CutSampler, dataset: WhisperDataset, num_workers: int,
                 counters: Optional[list[CutSampler]] = None):
        self.sampler, self.dataset, self.num_workers = sampler, dataset, num_workers
        self.counters = counters or [sampler]  # samplers making the same batches from lighter cuts
        self._counts: dict[int, int] = {}
        self._skip = 0

    def __len__(self) -> int:
        epoch = self.sampler.epoch if len(self.counters) > 1 else 0  # one sampler: counted once
        if epoch not in self._counts:
            counts = []
            for counter in self.counters:
                counter.set_epoch(self.sampler.epoch)
                counts.append(sum(1 for _ in counter))
            self._counts[epoch] = min(counts)
            if max(counts) > min(counts):
                log.info("epoch %d: the ranks' shards make %s batches; each rank takes %d, the rest (%.1f%% of "
                         "the batches) wait for another epoch's draw (more, smaller shards even this out)",
                         self.sampler.epoch, counts, min(counts), 100 * (1 - min(counts) * len(counts) / sum(counts)))
        return self._counts[epoch]

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def skip_batches(self, num_batches: int) -> None:
        """Make the next iteration start ``num_batches`` into the current epoch."""
        self._skip = num_batches

    def __iter__(self) -> Iterator[dict]:
        batches = iter(self.sampler)
        if len(self.counters) > 1:  # the ranks' samplers are independent: stop together
            batches = islice(batches, len(self))
        for _ in range(self._skip):
            next(batches, None)
        if self._skip:
            log.info("resumed the sampler %d batches into epoch %d", self._skip, self.sampler.epoch)
        self._skip = 0
        loader = torch.utils.data.DataLoader(
            self.dataset,
            sampler=_OneShot(batches),
            batch_size=None,  # the sampler yields whole batches (CutSets)
            num_workers=self.num_workers,
            persistent_workers=False,
        )
        yield from loader


class _OneShot:
    """Wraps an already started iterator so a DataLoader can consume it as its sampler."""

    def __init__(self, iterator: Iterator):
        self.iterator = iterator

    def __iter__(self) -> Iterator:
        return self.iterator


def make_sampler(cuts: CutSet, args: DataArgs, shuffle: bool, world_size: int, rank: int, seed: int) -> CutSampler:
    if args.max_cuts is None and args.max_duration is None:
        raise InputError("set max_cuts (cuts per batch) or max_duration (seconds per batch)")
    common = dict(max_cuts=args.max_cuts, max_duration=args.max_duration, shuffle=shuffle,
                  world_size=world_size, rank=rank, seed=seed, drop_last=False)
    if args.bucketing_sampler and shuffle:
        # lhotse estimates bucket bins from the first 10k cuts and needs at least one cut per bucket
        num_buckets = min(args.num_buckets, sum(1 for _ in islice(cuts, 10000)))
        return DynamicBucketingSampler(cuts, num_buckets=num_buckets, buffer_size=args.sampler_buffer_size, **common)
    return SimpleCutSampler(cuts, **common)


def training_cuts(args: DataArgs, seed: int = 42, cuts_only: bool = False,
                  shard_split: tuple[int, int] = (0, 1)) -> CutSet:
    """The train part, with ``replay`` and ``nospeech_cuts`` mixed in at their shares when set (``cuts_only``:
    Shar shards read without their features, for counting batches; ``shard_split``: (rank, world size), this
    rank's Shar shards, mixed with a rank's own draw of the extras).

    Extra manifests repeat endlessly and the mix stops when the train part is used up, so an epoch holds
    every training cut once plus the extras in proportion (``replay_prob`` + ``nospeech_prob`` < 1).
    """
    train = load_cuts(args, "train", seed, cuts_only, shard_split)
    hint = "the {} cut manifest (docs/training.md: Keeping other languages and silence)"
    replay = shares(args.replay, args.replay_prob, "replay")
    kl = shares(args.kl_to_base, args.kl_to_base_prob, "kl_to_base")
    extras = [(path, read_cuts(path, hint.format("replay")), share) for path, share in replay]
    extras += [(path, read_cuts(path, hint.format("kl_to_base")).map(mark_kl_to_base), share) for path, share in kl]
    if args.nospeech_cuts and args.nospeech_prob > 0:
        extras.append((args.nospeech_cuts, read_cuts(args.nospeech_cuts, hint.format("nospeech")).map(_as_nonspeech),
                       args.nospeech_prob))
    if not extras:
        return train
    main_share = 1.0 - sum(share for _, _, share in extras)
    if main_share <= 0 or any(share <= 0 for _, _, share in extras):
        raise InputError(f"replay_prob ({args.replay_prob}), kl_to_base_prob ({args.kl_to_base_prob}) and "
                         f"nospeech_prob ({args.nospeech_prob}) must be above 0 and add up to less than 1")
    log.info("training mix: train %.2f, %s", main_share, ", ".join(f"{path} {share:.2f}" for path, _, share in extras))
    return CutSet.mux(train, *(cuts.repeat() for _, cuts, _ in extras),
                      weights=[main_share] + [share for _, _, share in extras], seed=seed + shard_split[0],
                      stop_early=True)


def shares(paths: list[str], prob: Union[float, list[float]], option: str) -> list[tuple[str, float]]:
    """``(manifest, training share)`` of each manifest of ``option`` (replay, kl_to_base): ``prob`` split
    equally, or one share per manifest as listed."""
    if not paths:
        return []
    if not isinstance(prob, (list, tuple)):
        return [(path, prob / len(paths)) for path in paths]
    if len(prob) != len(paths):
        raise InputError(f"{option}_prob lists {len(prob)} shares for {len(paths)} {option} manifests")
    return list(zip(paths, prob))


def mark_kl_to_base(cut):
    """A cut trained towards the base model's predictions (``kl_to_base``), not its transcript."""
    for supervision in cut.supervisions:
        supervision.custom = {**(supervision.custom or {}), KL_TO_BASE: True}
    return cut


def _as_nonspeech(cut):
    """A non-speech cut whose target is the empty transcript, whatever its manifest says."""
    for supervision in cut.supervisions:
        supervision.text = ""
    return cut


def train_loader(
    args: DataArgs, labeler: WhisperLabeler, world_size: int = 1, rank: int = 0, seed: int = 42
) -> LhotseLoader:
    """Shuffled, filtered (over 30 s / 448 tokens dropped and counted), optionally augmented. With ``shar`` and
    several ranks each rank reads only its own shards (dealt out in the seeded shard order)."""
    split = args.shar and world_size > 1
    own_shards = (rank, world_size) if split else (0, 1)
    # every rank filters the cuts it reads: all of them (logged by rank 0 only), or its own Shar shards
    drops = TrainingCutFilter(labeler, log_drops=split or rank == 0)
    cuts = training_cuts(args, seed, shard_split=own_shards).filter(drops)
    cut_transforms = []
    if args.enable_musan:  # loaded only when enabled
        musan = load_manifest_lazy(_musan_path(args)).to_eager()
        cut_transforms.append(CutMix(musan, p=args.musan_prob, snr=args.musan_snr, pad_to_longest=False,
                                     preserve_id=True, seed=seed + rank))
    spec_augment = SpecAugment(time_warp_factor=80, num_frame_masks=2) if args.enable_spec_aug else None
    dataset = WhisperDataset(labeler, on_the_fly_feats=args.on_the_fly_feats, num_mel_bins=args.num_mel_bins,
                             cut_transforms=cut_transforms, spec_augment=spec_augment,
                             unpadded=args.remove_whisper_encoder_input_length_restriction,
                             frame_bucket=args.bucket_frames or 2, language_loss=args.language_token_loss is not False)
    if not args.shar:
        return LhotseLoader(make_sampler(cuts, args, shuffle=True, world_size=world_size, rank=rank, seed=seed),
                            dataset, args.num_workers)
    # Shar: batches counted on the cuts alone (counting must not read every feature shard); a rank's own
    # shards need no further split, and every rank's count is needed to stop all ranks together
    sampler_split = dict(world_size=1, rank=0) if split else dict(world_size=world_size, rank=rank)
    sampler = make_sampler(cuts, args, shuffle=True, seed=seed, **sampler_split)
    counters = [make_sampler(training_cuts(args, seed, cuts_only=True, shard_split=(r, world_size) if split else (0, 1))
                             .filter(TrainingCutFilter(labeler, log_drops=False)), args, shuffle=True, seed=seed,
                             **sampler_split)
                for r in (range(world_size) if split else [rank])]
    return LhotseLoader(sampler, dataset, args.num_workers, counters)


def eval_loader(
    args: DataArgs, labeler: WhisperLabeler, part: str = "val", world_size: int = 1, rank: int = 0
) -> LhotseLoader:
    """Unshuffled batches of one part, for the validation loss."""
    cuts = load_cuts(args, part).filter(TrainingCutFilter(labeler, log_drops=rank == 0))
    dataset = WhisperDataset(labeler, on_the_fly_feats=args.on_the_fly_feats, num_mel_bins=args.num_mel_bins,
                             unpadded=args.remove_whisper_encoder_input_length_restriction,
                             frame_bucket=args.bucket_frames or 2, language_loss=args.language_token_loss is not False)
    sampler = make_sampler(cuts, args, shuffle=False, world_size=world_size, rank=rank, seed=0)
    return LhotseLoader(sampler, dataset, args.num_workers)


def _musan_path(args: DataArgs) -> Path:
    path = Path(args.manifest_dir) / MUSAN_CUTS
    if not path.is_file():
        raise MissingInputError(f"{path} not found: run prepare.sh with --musandir, or set enable_musan: false")
    return path
