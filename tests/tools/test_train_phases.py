"""Training phases after the soft one (neco.codec.image_hp.training): --hard (the encoder side stays, the
rest learns the coded rate) and --entropy (only the entropy models learn, on the rate alone);
resuming from a checkpoint that predates a module; the learning-rate plan of a run."""

import random

import pytest
import torch

from neco.codec.image_hp import training
from neco.codec.image_hp.model import ImageModel, ImageModelConfig


def _tiny_model() -> ImageModel:
    torch.manual_seed(0)
    return ImageModel(ImageModelConfig(channels=8, latent_channels=8, hyper_channels=8, lambdas=(0.002, 0.03)))


def _one_step_moves(model: ImageModel, loss_fn) -> set[str]:
    """Top-level names of the parameters one Adam step on loss_fn() changes."""
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss_fn().backward()
    opt.step()
    return {name.split(".")[0] for name, p in model.named_parameters() if not torch.equal(before[name], p)}


def test_hard_training_moves_only_the_decoder_side():
    model = _tiny_model()
    training.freeze_encoder_side(model)
    x = torch.rand(2, 3, 64, 64)
    out = model(x, torch.tensor([0, 1]))
    torch.manual_seed(1)
    assert torch.equal(out["bits_y"], model(x, torch.tensor([0, 1]))["bits_y"])  # no noise: the coded rate
    moved = _one_step_moves(model, lambda: out["bits_y"].sum() + out["bits_z"].sum()
                            + 1e3 * ((out["x_hat"] - x) ** 2).sum())
    assert not moved & set(training.ENCODER_SIDE)
    assert {"g_s", "h_s", "context", "log_inv_gain", "z_scale_t"} <= moved


def test_entropy_training_moves_only_the_entropy_models():
    model = _tiny_model()
    training.train_only_entropy_models(model)
    x, level = torch.rand(2, 3, 64, 64), torch.tensor([0, 1])
    with torch.no_grad():
        y = model.analyse(x, level)

    def rate():
        bits_y, bits_z, _ = model.latent_bits(y, level)
        return (bits_y + bits_z).sum()
    moved = _one_step_moves(model, rate)
    assert moved <= set(training.ENTROPY_MODELS)
    assert {"h_a", "h_s", "context", "z_scale_t"} <= moved


def test_forward_is_analysis_then_latent_bits():
    model = _tiny_model().eval()
    x, level = torch.rand(2, 3, 64, 64), torch.tensor([1, 0])
    out = model(x, level)
    bits_y, bits_z, _ = model.latent_bits(model.analyse(x, level), level)
    assert torch.equal(out["bits_y"], bits_y) and torch.equal(out["bits_z"], bits_z)


def test_a_checkpoint_without_the_post_filter_resumes_as_the_same_function():
    old = _tiny_model()
    state = {k: v for k, v in old.state_dict().items() if not k.startswith("g_s.7.")}
    torch.manual_seed(1)
    new = ImageModel(old.cfg)
    missing = training.load_checkpoint_weights(new, state)
    assert missing and all(k.startswith("g_s.7.") for k in missing)
    v = torch.randn(1, 8, 4, 4)
    assert torch.equal(new.g_s(v), old.g_s[:-1](v))  # the filter starts as a no-op


def test_the_post_filter_trains_at_the_fast_learning_rate():
    model = _tiny_model()
    post = {id(p) for p in model.g_s[-1].parameters()}
    names = [n for n, p in model.named_parameters() if id(p) in post]
    assert names and all(n.startswith(training.FAST_PARAMETERS) for n in names)
    assert not any(n.startswith(training.FAST_PARAMETERS) for n, p in model.g_s[:-1].named_parameters("g_s"))


def test_resuming_past_a_new_module_keeps_the_weight_average():
    old, average = _tiny_model(), _tiny_model()
    with torch.no_grad():
        for p in average.parameters():
            p.add_(0.01)
    drop = lambda m: {k: v for k, v in m.state_dict().items() if not k.startswith("g_s.7.")}
    state = {"model": drop(old), "ema": drop(average)}
    model = ImageModel(old.cfg)
    predated = training.load_checkpoint_weights(model, state["model"])
    resumed = training.resume_average(model, state)
    v = torch.randn(1, 8, 4, 4)
    assert torch.equal(resumed.g_s(v), average.g_s[:-1](v))  # the saved average, the new filter a no-op
    restarted = training.resume_average(model, None)
    assert torch.equal(restarted.g_s(v), old.g_s[:-1](v))  # a new phase: a copy of the model


def test_a_later_phase_plans_its_learning_rate_over_its_own_steps():
    lr = lambda step, fresh=False: training.lr_at(step, 1.0, 20000, 21000, fresh)
    assert lr(20000) == lr(20799) == 1.0  # constant for 80 % of the run, not decayed from the start
    assert 0.1 < lr(20900) < 1.0 and abs(lr(21000) - 0.1) < 1e-9
    assert lr(20000, fresh=True) == 1 / training.WARMUP_STEPS  # a fresh optimizer warms up
    assert lr(20000 + training.WARMUP_STEPS, fresh=True) == 1.0


def test_crops_come_only_from_images_at_least_as_large():
    small, large = torch.zeros(3, 100, 300, dtype=torch.uint8), torch.full((3, 200, 200), 255, dtype=torch.uint8)
    batch = training.random_batch(training.large_enough([small, large], 150), 8, 150, random.Random(0))
    assert batch.shape == (8, 3, 150, 150) and bool((batch == 1).all())
    with pytest.raises(SystemExit):
        training.large_enough([small], 150)
