"""transformers 5 returns a near-empty tokenizer offline instead of raising: every subject tokenizer load checks
its size against the Q-Former's word embeddings and names the flag / argument to pass."""

from __future__ import annotations

import pytest

from blipdiff_plugins import BlipDiffusionPipeline
from blipdiff_plugins.conversion.state_dict import CheckpointError
from blipdiff_plugins.cli import main

from tests.helpers import PARITY_DIR


def test_convert_offline_without_subject_tokenizer_fails_naming_the_flag(tmp_path, capsys):
    # conftest sets HF_HUB_OFFLINE=1: google-bert/bert-base-uncased comes back with 5 tokens (+ [DEC]).
    assert main(["convert", str(PARITY_DIR / "tiny16"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "--subject-tokenizer" in err and "has 6 tokens but the Q-Former embeds 134" in err
    assert not (tmp_path / "out").exists()


def test_python_api_fails_naming_the_argument():
    with pytest.raises(CheckpointError, match=r"has 6 tokens but the Q-Former embeds 134.*`subject_tokenizer=`"):
        BlipDiffusionPipeline.from_pretrained(PARITY_DIR / "tiny16")


def test_a_tokenizer_override_on_our_layout_is_checked_too(saved_tiny_pipeline):
    from blipdiff_plugins.builtin.tokenizers import build_bert_tokenizer

    with pytest.raises(CheckpointError, match="subject_tokenizer: the tokenizer has"):
        BlipDiffusionPipeline.from_pretrained(saved_tiny_pipeline, subject_tokenizer=build_bert_tokenizer(["dog"]))
    pipe = BlipDiffusionPipeline.from_pretrained(saved_tiny_pipeline)  # its own tokenizer fits
    assert len(pipe.subject_tokenizer) == pipe.subject_encoder.embeddings.word_embeddings.num_embeddings
