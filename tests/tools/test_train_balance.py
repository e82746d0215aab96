"""How the training (neco.codec.image_hp.training) builds its loss: rate levels weighed equally (balance_levels),
batches drawn evenly over levels, gradients accumulated over batches (backward_batches)."""

import math

import torch

from neco.codec.image_hp import training


def test_each_level_pulls_in_proportion_to_its_relative_loss():
    level_loss = torch.tensor([1.0, 10.0, math.nan])
    per_sample = torch.tensor([1.0, 10.0, 10.0], requires_grad=True)
    loss = training.balance_levels(per_sample, torch.tensor([0, 1, 1]), level_loss)
    loss.backward()
    # every sample at its level's running mean: each weighs in at the mean over levels (5.5),
    # and the gradient divides each sample by its level's mean (that of the mean log-loss)
    assert math.isclose(loss.item(), 5.5, rel_tol=1e-6)
    g = per_sample.grad
    assert torch.allclose(g[0] / g[1], torch.tensor(10.0))
    assert torch.equal(g[1], g[2])
    assert math.isnan(level_loss[2])  # unseen levels keep no mean


def test_running_means_start_at_the_first_batch_then_move_slowly():
    level_loss = torch.full((2,), math.nan)
    training.balance_levels(torch.tensor([2.0, 4.0]), torch.tensor([0, 0]), level_loss)
    assert level_loss[0] == 3.0 and math.isnan(level_loss[1])
    training.balance_levels(torch.tensor([13.0]), torch.tensor([0]), level_loss)
    assert math.isclose(level_loss[0].item(), 3.0 + (1 - training.LEVEL_LOSS_DECAY) * 10, rel_tol=1e-6)


def test_a_batch_spreads_its_levels_evenly():
    for levels, count in ((range(11), 16), (range(3, 11), 8), (range(0, 3), 2)):
        drawn = training.stratified_levels(levels, count).tolist()
        assert all(level in levels for level in drawn)
        counts = [drawn.count(level) for level in levels]
        assert max(counts) - min(counts) <= 1, counts


def test_low_levels_get_their_own_crops():
    assert training.batch_parts(11, 4, 192, 0, 384) == [(192, 4, range(11))]
    parts = training.batch_parts(11, 8, 192, 3, 384)
    assert parts == [(384, 3, range(0, 3)), (192, 8, range(3, 11))]
    # one crop per low level: each of them is drawn exactly once per step
    assert sorted(training.stratified_levels(parts[0][2], parts[0][1]).tolist()) == [0, 1, 2]


def test_accumulated_batches_give_the_mean_of_their_gradients():
    from neco.codec.image_hp.model import ImageModel, ImageModelConfig
    model = ImageModel(ImageModelConfig(channels=8, latent_channels=8, hyper_channels=8, post_channels=4))
    g = torch.Generator().manual_seed(0)
    batches = [[(torch.rand(2, 3, 64, 64, generator=g), torch.tensor([0, 5]))],
               [(torch.rand(1, 3, 64, 64, generator=g), torch.tensor([10]))]]
    lambdas = torch.tensor(model.cfg.lambdas)
    start = torch.tensor([math.nan] * model.cfg.levels)

    def gradients(groups):
        """Each group of batches backpropagated in turn (one level-loss history, the same noise)."""
        torch.manual_seed(1)
        level_loss, grads = start.clone(), []
        for group in groups:
            model.zero_grad()
            logged = training.backward_batches(training.BatchLoss(model, lambdas, "soft", None), group, level_loss)
            assert len(logged) == len(group)
            grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
        return grads

    (together,) = gradients([batches])
    first, second = gradients([[batches[0]], [batches[1]]])
    assert torch.allclose(together, (first + second) / 2, rtol=1e-4, atol=1e-7)
    assert not torch.allclose(first, second)  # the batches differ: the check can tell them apart
