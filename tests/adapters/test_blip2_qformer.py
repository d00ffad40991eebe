import pytest
import torch

from blipdiff_plugins.adapters.blip2_qformer import Blip2SubjectEncoder
from tests.precision import FLOAT64_ATOL, float32_atol

SMALL = dict(
    vision_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4, "patch_size": 32},
    qformer_config={"vocab_size": 50, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37, "max_position_embeddings": 16},
    num_query_tokens=6,
)


def build(**overrides):
    torch.manual_seed(0)
    model = Blip2SubjectEncoder(**{**SMALL, **overrides}).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    return model


def test_output_shape_and_config_driven_sizes():
    model = build()
    pixels = torch.randn(3, 3, 224, 224)
    ids = torch.tensor([[2, 10, 3], [2, 11, 3], [2, 12, 3]])
    with torch.no_grad():
        out = model(pixels, ids)
    assert out.shape == (3, 6, 32)
    assert model.num_query_tokens == 6 and model.hidden_size == 32 and model.image_size == 224


def test_sdpa_and_eager_agree_with_padding():
    # The same maths by two kernels, in float64; transformers' eager attention still rounds its softmax and mask to
    # float32, so the bound is a float32 sum over the (query + text) keys at the output's scale (tests/precision.py).
    sdpa = build().double()
    eager = Blip2SubjectEncoder(**SMALL, attn_implementation="eager").eval().double()
    eager.load_state_dict(sdpa.state_dict())
    pixels = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ids = torch.tensor([[2, 10, 11, 3], [2, 12, 3, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    with torch.no_grad():
        expected = eager(pixels, ids, mask)
        tolerance = float32_atol(scale=float(expected.abs().max()), terms=SMALL["num_query_tokens"] + ids.shape[1])
        torch.testing.assert_close(sdpa(pixels, ids, mask), expected, atol=tolerance, rtol=0)
        assert (eager(pixels, ids, torch.ones_like(mask)) - expected).abs().max() > 100 * tolerance  # the check can fail


def test_padding_is_masked_out():
    model = build().double()  # exactness is the point: float64 (tests/precision.py)
    pixels = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad():
        short = model(pixels, torch.tensor([[2, 12, 3]]))
        padded = model(pixels, torch.tensor([[2, 12, 3, 0, 0]]), torch.tensor([[1, 1, 1, 0, 0]]))
        unmasked = model(pixels, torch.tensor([[2, 12, 3, 0, 0]]))
    torch.testing.assert_close(short, padded, atol=FLOAT64_ATOL, rtol=0)
    assert (short - unmasked).abs().max() > 1e-3  # the mask matters, so the check above is not vacuous


def test_subject_depends_on_image_and_text():
    model = build()
    gen = torch.Generator().manual_seed(3)
    pixels_a, pixels_b = torch.randn(1, 3, 224, 224, generator=gen), torch.randn(1, 3, 224, 224, generator=gen)
    ids_a, ids_b = torch.tensor([[2, 10, 3]]), torch.tensor([[2, 20, 3]])
    with torch.no_grad():
        base = model(pixels_a, ids_a)
        assert (model(pixels_b, ids_a) - base).abs().max() > 1e-3
        assert (model(pixels_a, ids_b) - base).abs().max() > 1e-3


def test_layers_without_cross_attention():
    model = build(qformer_config={**SMALL["qformer_config"], "cross_attention_frequency": 2})
    assert hasattr(model.qformer.encoder.layer[0], "crossattention")
    assert not model.qformer.encoder.layer[1].has_cross_attention


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_query_tokens"):
        Blip2SubjectEncoder(**{**SMALL, "num_query_tokens": 0})
    with pytest.raises(ValueError, match="attn_implementation"):
        Blip2SubjectEncoder(**SMALL, attn_implementation="flash")
    model = build()
    with pytest.raises(ValueError, match="same batch size"):
        model(torch.randn(2, 3, 224, 224), torch.tensor([[2, 10, 3]]))


def test_save_and_load_round_trip(tmp_path):
    model = build()
    model.save_pretrained(tmp_path)
    loaded = Blip2SubjectEncoder.from_pretrained(tmp_path)
    pixels, ids = torch.randn(1, 3, 224, 224), torch.tensor([[2, 10, 3]])
    with torch.no_grad():
        torch.testing.assert_close(model(pixels, ids), loaded(pixels, ids), atol=0, rtol=0)
