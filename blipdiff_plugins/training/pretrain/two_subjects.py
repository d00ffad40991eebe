"""Pre-training on two-subject records (our choice; the paper's stage 2 has one subject per record).

A batch that holds a two-subject record (``second_subject`` and ``second_composite``, `data/two_subjects.py`) is
tokenized row by row with the several-subject slots (`adapters.subject_slots`): a two-subject record's caption
names both words and each subject's query tokens go in front of its word; a one-subject record of the same batch
keeps ``"a {subject} {caption}"`` with its slots in front of the subject word, exactly the released layout. A batch
of one-subject records never comes here: it trains exactly as before.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ...adapters.subject_slots import open_subject_slots
from ..records import tokenize_as_found

SECOND_SUBJECT = "second_subject"
SECOND_COMPOSITE = "second_composite"


def has_two_subjects(records: Sequence[dict[str, Any]]) -> bool:
    """Whether any record of the batch shows two subjects."""
    return any(SECOND_SUBJECT in record for record in records)


def two_subject_inputs(pipe, records: Sequence[dict[str, Any]], drop: torch.Tensor) -> dict[str, Any]:
    """Token ids ``(batch, max_length)`` with every row's slots opened (the plain caption where dropped), and the
    second subjects' encoder inputs with where each row's subjects sit (``second`` for `SubjectPretrainModule`)."""
    num_tokens = pipe.subject_encoder.num_query_tokens
    max_length = pipe.text_encoder.config.max_position_embeddings
    rows, first_slots, second_rows, second_slots = [], [], [], []
    for row, record in enumerate(records):
        if SECOND_SUBJECT in record:
            text, words = record["caption"], [record["subject"], record[SECOND_SUBJECT]]
        else:
            text, words = f"a {record['subject']} {record['caption']}", [record["subject"]]
        slots = open_subject_slots(
            pipe.tokenizer, [text], words, [num_tokens] * len(words), max_length=max_length,
            placeholder_token_id=pipe.prompt_injector.placeholder_token_id, prefix_chars=[len(text)], argument="data",
        )
        rows.append(slots.input_ids[0])
        first_slots.append(slots.slots[0][0])
        if len(words) == 2:
            second_rows.append(row)
            second_slots.append(slots.slots[0][1])
    captions = [record["caption"] for record in records]
    plain = pipe.tokenizer(captions, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt").input_ids
    tokens = tokenize_as_found(pipe.subject_tokenizer, [records[row][SECOND_SUBJECT] for row in second_rows])
    second = {
        "pixels": pipe.subject_image_processor.preprocess([records[row][SECOND_COMPOSITE] for row in second_rows], argument="second_composite"),
        "ids": tokens.input_ids,
        "mask": tokens.attention_mask,
        "rows": second_rows,
        "slots": second_slots,
        "first_slots": first_slots,
    }
    return {"input_ids": torch.where(drop[:, None], plain, torch.stack(rows)), "second": second}


def splice_two_subjects(output: torch.Tensor, embeds: torch.Tensor, second_embeds: torch.Tensor, second: dict, keep: torch.Tensor) -> torch.Tensor:
    """Token embeddings ``(batch, seq_len, hidden)`` with each kept row's subjects in their slots; dropped rows keep
    their tokens through `torch.where`, so the encoder stays in the graph (zero gradient), as the one-subject splice."""
    output = output.clone()
    length = embeds.shape[1]
    for row, start in enumerate(second["first_slots"]):
        output[row, start : start + length] = torch.where(keep[row], embeds[row].to(output.dtype), output[row, start : start + length])
    for index, (row, start) in enumerate(zip(second["rows"], second["slots"])):
        output[row, start : start + length] = torch.where(keep[row], second_embeds[index].to(output.dtype), output[row, start : start + length])
    return output
