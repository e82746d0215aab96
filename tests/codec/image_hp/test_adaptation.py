"""Decoder adaptation (codec/image_hp/adaptation.py): coded deltas to the synthesis' biases and last weight."""

import numpy as np
import pytest
import torch

import neco
from neco.codec import registry
from neco.codec.image_hp import adaptation as adaptation_mod, encoder, fit, refine
from neco.codec.image_hp import payload as fields
from neco.codec.image_hp.payload import read_first_field
from neco.codec.image_hp.model import interpolate_levels
from neco.codec.constants import ACT_FRAC_BITS
from neco.formats import ChunkType, encode_varint, read_container, write_container
from conftest import encode_adapted, fixed_adaptation, photo_crop


@pytest.fixture(scope="module")
def coder():
    return registry.get_encoder(registry.DEFAULT_IMAGE_MODEL)


def _frame(data: bytes) -> bytes:
    return next(c.payload for c in read_container(data).chunks if c.type == ChunkType.FRAME)


def _with_frame(data: bytes, payload: bytes) -> bytes:
    return write_container(read_container(data).header, [(ChunkType.FRAME, payload)])


@pytest.fixture(scope="module")
def adapted_file(coder):
    return encode_adapted(photo_crop(64, 48, index=2), 60), fixed_adaptation()


def test_adapted_tensors_are_the_biases_then_the_last_weight(coder):
    names = adaptation_mod.adapted_names(coder.decoder.net().g_s)
    params = dict(coder.decoder.net().g_s.named_parameters())
    assert names[-1] == "7.body.6.weight" and all(n.endswith(".bias") for n in names[:-1])
    assert [params[n].numel() for n in names] == [128, 128, 128, 3, 32, 32, 32, 3, 864]


def test_quantize_picks_the_cheapest_table_row(coder):
    adaptation = fixed_adaptation(seed=1)
    for symbols, row in zip(adaptation.symbols, adaptation.rows):
        bits = [coder.coder.cross_entropy_bits(symbols, torch.full_like(symbols, r)) for r in range(64)]
        assert bits[row] == min(bits)


def test_rate_proxy_tracks_the_symbols_magnitudes():
    # At step 2^-6 a delta of k steps counts log2(1 + k) bits: zero for zero, and it grows.
    deltas = [torch.tensor([0.0, 1.0, -3.0]) * 2 ** -6, torch.tensor([[7.0]]) * 2 ** -6]
    assert float(refine.rate_proxy(deltas)) == pytest.approx(1 + 2 + 3)
    assert float(refine.rate_proxy([torch.zeros(5)])) == 0


def test_adaptation_round_trips_and_moves_the_synthesis(coder, adapted_file):
    data, adaptation = adapted_file
    payload = _frame(data)
    rate_fx, adapted, _, _ = read_first_field(payload)
    pos = len(encode_varint(rate_fx | fields.ADAPTATION_FLAG))
    step_exponent, rows = adaptation.head()
    assert adapted and payload[pos:pos + 10] == bytes((step_exponent, *rows))
    assert fields.read_head(payload, len(rows)).adaptation == adaptation.head()
    _, _, y_sym, mean_fx, decoded = coder.decoder.decode_latents(payload, 48, 64)
    assert decoded.head() == adaptation.head()
    assert all(torch.equal(a, b) for a, b in zip(decoded.symbols, adaptation.symbols))
    # the decoder's pixels are the adapted synthesis of the decoded latents, not the shipped one
    v = ((y_sym.double() + mean_fx.double() / 2 ** ACT_FRAC_BITS).float()
         * interpolate_levels(coder.decoder.net().log_inv_gain, rate_fx)[:, None, None])[None]
    with torch.no_grad():
        pixels = [(g(v)[0, :, :48, :64].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
                  for g in (adaptation.apply(coder.decoder.net().g_s), coder.decoder.net().g_s)]
    out = neco.decode_array(data)
    assert np.array_equal(out, pixels[0]) and not np.array_equal(out, pixels[1])


# The adapted files' first varint takes 3 bytes (the flag is bit 16); the block follows.
@pytest.mark.parametrize("cut,error", [
    (lambda p: encode_varint(read_first_field(p)[0] | 1 << 18) + p[3:], neco.UnsupportedError),  # reserved flag
    (lambda p: p[:6], neco.CorruptDataError),                                   # inside the block
    (lambda p: p[:3] + b"\x00" + p[4:], neco.CorruptDataError),                 # step exponent 0
    (lambda p: p[:3] + b"\x11" + p[4:], neco.CorruptDataError),                 # step exponent 17
    (lambda p: p[:5] + b"\x40" + p[6:], neco.CorruptDataError),                 # table row 64
])
def test_bad_adaptation_blocks_are_refused(adapted_file, cut, error):
    data, _ = adapted_file
    with pytest.raises(error):
        neco.decode_array(_with_frame(data, cut(_frame(data))))


def test_info_shows_the_rate_field(adapted_file):
    """neco.info reads a FRAME's rate level and adaptation flag; a first field it cannot read
    (a reserved flag) leaves them out rather than failing."""
    data, _ = adapted_file
    rate_fx = read_first_field(_frame(data))[0]
    frame = neco.info(data)["chunks"][0]
    assert (frame["type"], frame["rate_level"], frame["decoder_adaptation"]) == ("FRAME", rate_fx / 256, True)
    reserved = _with_frame(data, encode_varint(rate_fx | 1 << 18) + _frame(data)[3:])
    assert "rate_level" not in neco.info(reserved)["chunks"][0]


def test_refinement_adapts_the_decoder_where_it_pays(coder, monkeypatch):
    """On a real photo at a high rate the fitted adaptation lowers the coded cost."""
    pixels = photo_crop(192, 160, index=4)
    adapted = neco.encode(pixels, quality=95, effort=1)
    assert read_first_field(_frame(adapted))[1]
    monkeypatch.setattr(refine, "STEP_EXPONENTS", ())
    monkeypatch.setattr(encoder, "fit_last_layer", _no_fit)
    plain = neco.encode(pixels, quality=95, effort=1)
    assert not read_first_field(_frame(plain))[1]
    assert _cost(coder, adapted, pixels) < 0.995 * _cost(coder, plain, pixels)


def _no_fit(g_s, features, residual, lam, coder, flag_bits, base):
    return base


def _cost(coder, data: bytes, pixels: np.ndarray) -> float:
    """The coded cost of a file: bits per pixel + lambda * 255^2 * MSE (pixels in [0, 1])."""
    mse = np.mean((neco.decode_array(data).astype(float) - pixels) ** 2)
    lam = refine.encoder_lambda(coder.cfg.lambdas, read_first_field(_frame(data))[0], 8)
    return 8 * len(data) / (pixels.shape[0] * pixels.shape[1]) + lam * mse


def _decoded_adaptation(coder, data: bytes) -> adaptation_mod.Adaptation | None:
    c = read_container(data)
    return coder.decoder.decode_latents(_frame(data), c.header.height, c.header.width)[-1]


def test_effort_0_corrects_the_last_layer_where_it_pays(coder, monkeypatch):
    """The closed-form fit adapts only the last convolution, and lowers the coded cost."""
    pixels = photo_crop(192, 160, index=4)
    fitted = neco.encode(pixels, quality=95)
    adaptation = _decoded_adaptation(coder, fitted)
    names = adaptation_mod.adapted_names(coder.decoder.net().g_s)
    moved = {name for name, s in zip(names, adaptation.symbols) if s.any()}
    assert moved and moved <= {names[-1], names[-1].replace(".weight", ".bias")}
    monkeypatch.setattr(encoder, "fit_last_layer", _no_fit)
    plain = neco.encode(pixels, quality=95)
    assert not read_first_field(_frame(plain))[1]
    assert _cost(coder, fitted, pixels) < 0.99 * _cost(coder, plain, pixels)


def test_the_fit_builds_on_a_refinements_adaptation_exactly(coder):
    """On top of refinement's adaptation the fit changes the last layer only, at a step no
    coarser, so every other delta decodes exactly as refinement chose it."""
    pixels = photo_crop(192, 160, index=4)
    base = fixed_adaptation(seed=3, exponent=6)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(encoder, "refine_latents", lambda net, x, y, z, *args: (y, z, base))
        fitted = neco.encode(pixels, quality=95, effort=1)
    adaptation = _decoded_adaptation(coder, fitted)
    assert adaptation.step_exponent >= base.step_exponent
    for before, after in zip(base.deltas()[:-2], adaptation.deltas()[:-2]):
        assert torch.equal(before, after)
    assert _cost(coder, fitted, pixels) < _cost(coder, encode_adapted(pixels, 95, seed=3), pixels)


@pytest.mark.parametrize("extra_rows, extra_columns", [(0, 0), (1, 1), (3, 0)])
def test_normal_equations_match_the_unfolded_patches(monkeypatch, extra_rows, extra_columns):
    """Accumulation in one chunk, in chunks of 5 rows (each with a core and, below the first,
    rows shared with the chunk above), and in chunks of 2 rows and of 1 row gives the Gram matrix and
    correlation of the full patch matrix around each residual pixel: zero past the features'
    edges, the features' values where they reach past the residual's bottom and right edges."""
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(1, 4, 13 + extra_rows, 7 + extra_columns, generator=gen)
    residual = torch.randn(1, 3, 13, 7, generator=gen)
    patches = torch.nn.functional.unfold(features, 3, padding=1)[0].unflatten(1, features.shape[-2:])
    phi = torch.cat([patches[:, :13, :7].reshape(-1, 13 * 7), torch.ones(1, 13 * 7)]).double()
    for chunk_pixels in (1 << 16, 35, 15, 1):
        monkeypatch.setattr(fit, "FIT_PIXELS", chunk_pixels)
        gram, cross = fit._normal_equations(features, residual, 3)
        assert torch.allclose(gram, phi @ phi.T, atol=1e-4)
        assert torch.allclose(cross, phi @ residual[0].reshape(3, -1).double().T, atol=1e-4)


@pytest.mark.parametrize("width, height", [(128, 64), (120, 50)])
def test_the_fit_predicts_the_distortion_it_gets(coder, width, height):
    """The fit's quadratic form is the exact change of the synthesis' squared error (before
    clamping and rounding), also on an image whose size is not a multiple of 64 (where the last
    layer sees the padded synthesis past the image's edges)."""
    pixels = torch.from_numpy(photo_crop(width, height, index=4)).permute(2, 0, 1)
    rate_fx = coder.rate_fx_from_quality(95)
    payload, _ = coder.code_latents(coder.analyse(pixels), rate_fx)     # no pixels: no adaptation
    _, _, y_sym, mean_fx, _ = coder.decoder.decode_latents(payload, height, width)
    adaptation = coder._fit_adaptation(rate_fx, y_sym, mean_fx, pixels, None, "cpu")
    assert adaptation is not None
    g_s = coder.decoder.net().g_s
    features, residual = coder._last_layer_inputs(g_s, rate_fx, y_sym, mean_fx, pixels, "cpu")
    target = pixels[None].float() / 255
    gram, cross = fit._normal_equations(features, residual, 3)
    deltas = adaptation.deltas()
    predicted = fit.squared_error_change(gram, cross, deltas[-1], deltas[-2])
    adapted = coder.decoder.synthesize(adaptation.apply(g_s), rate_fx, y_sym, mean_fx, height, width, "cpu")
    measured = float(((adapted - target) ** 2).sum() - (residual ** 2).sum())
    assert predicted < 0 and measured == pytest.approx(predicted, rel=1e-3)


def test_rd_quantization_leaves_no_move_that_pays(coder, monkeypatch):
    """Rate-distortion optimized quantization of the fit lowers the exact cost (bits + kappa *
    squared-error change) below rounding's, and, given the sweeps to converge (this tiny crop's
    ill-conditioned Gram matrix needs hundreds), stops where moving any one symbol by a step or
    to zero (the table rows kept) would raise it: its running gradient stays exact."""
    monkeypatch.setattr(fit, "RDO_SWEEPS", 100_000)
    height, width = 64, 128
    pixels = torch.from_numpy(photo_crop(width, height, index=4)).permute(2, 0, 1)
    rate_fx = coder.rate_fx_from_quality(30)
    payload, _ = coder.code_latents(coder.analyse(pixels), rate_fx)
    _, _, y_sym, mean_fx, _ = coder.decoder.decode_latents(payload, height, width)
    g_s = coder.decoder.net().g_s
    features, residual = coder._last_layer_inputs(g_s, rate_fx, y_sym, mean_fx, pixels, "cpu")
    gram, cross = fit._normal_equations(features, residual, 3)
    kappa = 0.01 * 255 ** 2 / 3
    params = dict(g_s.named_parameters())
    deltas = [torch.zeros(params[name].shape) for name in adaptation_mod.adapted_names(g_s)]
    solution = torch.linalg.solve(gram + 1e-3 * float(torch.diagonal(gram).mean()) * torch.eye(len(gram),
                                  dtype=gram.dtype), cross)
    deltas[-1] = solution[:-1].T.reshape(deltas[-1].shape).float()
    deltas[-2] = solution[-1].float()
    rounded = adaptation_mod.Adaptation.quantize(deltas, 6, coder.coder)

    def cost(adaptation):
        moved = adaptation.deltas()
        return adaptation.bits(coder.coder, 8) + kappa * fit.squared_error_change(gram, cross, moved[-1], moved[-2])

    start = torch.zeros(len(gram), 3, dtype=torch.float64)
    optimized = fit._rd_quantized(rounded, (8, 7), start, gram, cross, kappa, coder.coder)
    assert cost(optimized) < cost(rounded) - 10
    weight = optimized.symbols[-1]
    for flat in torch.randperm(weight.numel(), generator=torch.Generator().manual_seed(0))[:40]:
        v = int(weight.view(-1)[flat])
        for new in {v - 1, v + 1, 0} - {v}:
            moved = weight.clone()
            moved.view(-1)[flat] = new
            neighbour = adaptation_mod.Adaptation(optimized.step_exponent, optimized.rows,
                                                  optimized.symbols[:-1] + (moved,))
            assert cost(neighbour) > cost(optimized) - 1e-6


def test_the_fit_copes_with_dead_features(coder):
    """Features that never fire (a ReLU off over the whole image) make the Gram matrix singular;
    the ridge keeps the solve regular."""
    gen = torch.Generator().manual_seed(1)
    features = torch.relu(torch.randn(1, 32, 16, 16, generator=gen))
    features[:, 5:] = 0
    residual = 0.05 * torch.randn(1, 3, 16, 16, generator=gen)
    gram, _ = fit._normal_equations(features, residual, 3)
    assert torch.linalg.matrix_rank(gram) < len(gram)
    adaptation = fit.fit_last_layer(coder.decoder.net().g_s, features, residual, 1.0, coder.coder, 8)
    assert adaptation is None or all(torch.isfinite(d).all() for d in adaptation.deltas())


def test_the_encoders_hooks_compute_the_decoders_adapted_synthesis(coder):
    adaptation = fixed_adaptation(seed=2)
    v = torch.randn(1, coder.cfg.latent_channels, 3, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        with refine.adapted_forward(coder.decoder.net().g_s, adaptation.deltas()) as hooked:
            encoder_view = hooked(v)
        assert torch.allclose(encoder_view, adaptation.apply(coder.decoder.net().g_s)(v), atol=1e-5)
        assert not torch.allclose(coder.decoder.net().g_s(v), encoder_view, atol=1e-3)  # the hooks are gone


def test_applying_an_adaptation_copies_no_weights_and_leaves_the_model_untouched(coder):
    g_s = coder.decoder.net().g_s
    before = {name: p.clone() for name, p in g_s.named_parameters()}
    adaptation = fixed_adaptation()
    adapted = adaptation.apply(g_s)
    moved = set(adaptation_mod.adapted_names(g_s))
    for (name, p), (_, q) in zip(g_s.named_parameters(), adapted.named_parameters()):
        assert (p.data_ptr() == q.data_ptr()) == (name not in moved), name   # shared unless adapted
    assert all(torch.equal(p, before[name]) for name, p in g_s.named_parameters())
    assert coder.decoder.net() is coder.decoder.net("cpu")   # one instance per device


def test_refinement_never_hooks_the_shared_synthesis(coder):
    """The encoder's hooked copy leaves the model other threads decode with untouched."""
    g_s = coder.decoder.net().g_s
    params = dict(g_s.named_parameters())
    deltas = [torch.full_like(params[name], 0.01) for name in adaptation_mod.adapted_names(g_s)]
    v = torch.randn(1, coder.cfg.latent_channels, 3, 3, generator=torch.Generator().manual_seed(1))
    plain = g_s(v)
    with refine.adapted_forward(g_s, deltas) as hooked:
        assert not torch.allclose(hooked(v), plain, atol=1e-4)
        assert not any(module._forward_hooks for module in g_s.modules())
        assert torch.equal(g_s(v), plain)

