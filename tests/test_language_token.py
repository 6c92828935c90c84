"""language_token_loss: a one-language fine-tune need not learn that all speech is its language. Without it the
language token's label is ignored on transcribed cuts (kept on kl_to_base cuts), the decoder still reads the
same input ids (checked against transformers' own label shift), and training resolves null by new_language."""

from __future__ import annotations

import torch
from lhotse import CutSet, load_manifest
from transformers import WhisperConfig, WhisperForConditionalGeneration
from transformers.models.whisper.modeling_whisper import shift_tokens_right

from egrecho_inner.constants import IGNORE_INDEX
from egrecho_inner.data_module import mark_kl_to_base
from egrecho_inner.dataset import WhisperDataset, WhisperLabeler
from egrecho_inner.trainer import TrainArgs, resolve_language_token_loss


def _cuts(prepared_demo) -> CutSet:
    cuts = list(load_manifest(prepared_demo / "data/fbank_whisper80/demo_vi_cuts_val.jsonl.gz"))[:3]
    return CutSet.from_cuts([cuts[0], mark_kl_to_base(cuts[1]), cuts[2]])  # the middle one a kl_to_base cut


def test_language_label_ignored_on_transcribed_rows_only(prepared_demo, whisper_tokenizer, monkeypatch):
    monkeypatch.chdir(prepared_demo)  # the manifests hold paths relative to the recipe dir
    cuts = _cuts(prepared_demo)
    labeler = WhisperLabeler(whisper_tokenizer, timestamp_probability=0.5)
    trained = WhisperDataset(labeler)[cuts]
    kept = WhisperDataset(labeler, language_loss=False)[cuts]
    langs = [whisper_tokenizer.convert_tokens_to_ids(f"<|{cut.supervisions[0].language}|>") for cut in cuts]
    assert trained["labels"][:, 0].tolist() == langs and "decoder_input_ids" not in trained
    assert kept["labels"][:, 0].tolist() == [IGNORE_INDEX, langs[1], IGNORE_INDEX]
    assert torch.equal(kept["labels"][:, 1:], trained["labels"][:, 1:])
    # the model would derive these from the unmasked labels: same decoder input, only the loss differs
    expected = shift_tokens_right(trained["labels"], whisper_tokenizer.eos_token_id,
                                  whisper_tokenizer.convert_tokens_to_ids("<|startoftranscript|>"))
    assert torch.equal(kept["decoder_input_ids"], expected)


def test_bucketed_labels_and_decoder_inputs_keep_one_shape(prepared_demo, whisper_tokenizer, monkeypatch):
    monkeypatch.chdir(prepared_demo)
    batch = WhisperDataset(WhisperLabeler(whisper_tokenizer), unpadded=True, frame_bucket=100,
                           language_loss=False)[_cuts(prepared_demo)]
    assert batch["labels"].shape == batch["decoder_input_ids"].shape and batch["labels"].shape[1] % 8 == 0


def test_the_loss_leaves_out_the_language_position():
    """Whisper's loss on the masked batch is the cross-entropy of every other position: no gradient reaches
    the language token's logits, while the logits themselves are the unmasked batch's."""
    torch.manual_seed(0)
    config = WhisperConfig(vocab_size=100, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                           decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=80,
                           max_source_positions=50, max_target_positions=32, decoder_start_token_id=1,
                           pad_token_id=0, eos_token_id=2)
    model = WhisperForConditionalGeneration(config).eval()
    labels = torch.randint(3, 100, (2, 6))
    features = torch.randn(2, 80, 100)
    masked = labels.clone()
    masked[:, 0] = IGNORE_INDEX
    decoder_input_ids = shift_tokens_right(labels, 0, 1)
    full = model(input_features=features, labels=labels)
    out = model(input_features=features, labels=masked, decoder_input_ids=decoder_input_ids)
    assert torch.equal(out.logits, full.logits)
    expected = torch.nn.functional.cross_entropy(full.logits[:, 1:].reshape(-1, 100), labels[:, 1:].reshape(-1))
    assert torch.allclose(out.loss, expected, atol=1e-6)
    logits = model(input_features=features, decoder_input_ids=decoder_input_ids).logits.detach().requires_grad_()
    torch.nn.functional.cross_entropy(logits.reshape(-1, 100), masked.reshape(-1), ignore_index=IGNORE_INDEX).backward()
    assert logits.grad[:, 0].abs().sum() == 0 and logits.grad[:, 1:].abs().sum() > 0


def test_null_trains_the_token_only_for_a_new_language():
    assert resolve_language_token_loss(TrainArgs()) is False
    assert resolve_language_token_loss(TrainArgs(new_language="eo")) is True
    assert resolve_language_token_loss(TrainArgs(language_token_loss=True)) is True
    assert resolve_language_token_loss(TrainArgs(new_language="eo", language_token_loss=False)) is False
