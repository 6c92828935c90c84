"""Our offline Whisper tokenizer encodes exactly like OpenAI's multilingual.tiktoken."""

import tiktoken
from tiktoken.load import load_tiktoken_bpe

from egrecho_inner.tokenizer import WHISPER_SPLIT_PATTERN, openai_tiktoken_file

TEXTS = [
    "The quick brown fox jumps over the lazy dog, and the dog doesn't mind.",
    "Người bán hàng viết thư ở chợ ngày mai.",
    "医生每天在北京吃饭。我们在学校学习中文！",
    "  spaces,\ttabs and 123456 numbers's edge-cases...",
]


def test_encodes_like_tiktoken(whisper_tokenizer):
    reference = tiktoken.Encoding(
        "ref", pat_str=WHISPER_SPLIT_PATTERN, mergeable_ranks=load_tiktoken_bpe(str(openai_tiktoken_file())), special_tokens={}
    )
    for text in TEXTS:
        ids = whisper_tokenizer.encode(text, add_special_tokens=False)
        assert ids == reference.encode(text), text
        assert whisper_tokenizer.decode(ids) == text


def test_special_token_ids(whisper_tokenizer):
    ids = whisper_tokenizer.convert_tokens_to_ids
    assert len(whisper_tokenizer) == 51865
    assert ids(["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|su|>", "<|translate|>"]) == [50257, 50258, 50259, 50357, 50358]
    assert ids(["<|notimestamps|>", "<|0.00|>", "<|30.00|>"]) == [50363, 50364, 51864]
