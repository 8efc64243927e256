"""MAML's meta-gradient through ``higher`` matches finite differences; first-order MAML drops the Hessian term."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from torch import nn

import flash_envs  # noqa: F401  (registers the envs)
from flash_rl.cases import CONFIG_DIR
from flash_rl.config import load_config
from flash_rl.maml import MAML, meta_gradient
from flash_rl.pipeline import make_maml


def toy():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    xi, yi = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 1, dtype=torch.float64)
    xo, yo = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 1, dtype=torch.float64)
    inner = lambda m: ((m(xi) - yi) ** 2).mean()  # noqa: E731
    outer = lambda m: ((m(xo) - yo) ** 2).mean()  # noqa: E731
    return model, inner, outer


def meta_loss(model, inner, outer, lr, steps):
    """The meta-objective computed by hand, without higher: plain SGD steps on a functional copy."""
    params = [p.detach().clone().requires_grad_(True) for p in model.parameters()]

    def forward(ps, x):
        h = torch.tanh(x @ ps[0].T + ps[1])
        return h @ ps[2].T + ps[3]

    class F:
        def __init__(self, ps):
            self.ps = ps

        def __call__(self, x):
            return forward(self.ps, x)

    for _ in range(steps):
        grads = torch.autograd.grad(inner(F(params)), params)
        params = [(p - lr * g).detach().requires_grad_(True) for p, g in zip(params, grads)]
    return float(outer(F(params)).detach())


def test_meta_gradient_matches_finite_differences():
    model, inner, outer = toy()
    lr, steps, eps = 0.3, 2, 1e-6
    loss, grads = meta_gradient(model, inner, outer, lr, steps)
    assert abs(loss - meta_loss(model, inner, outer, lr, steps)) < 1e-10
    params = list(model.parameters())
    checked = 0
    for p, g in zip(params, grads):
        for idx in [(0,) * p.dim(), tuple(s - 1 for s in p.shape)]:
            old = p[idx].item()
            with torch.no_grad():
                p[idx] = old + eps
            up = meta_loss(model, inner, outer, lr, steps)
            with torch.no_grad():
                p[idx] = old - eps
            down = meta_loss(model, inner, outer, lr, steps)
            with torch.no_grad():
                p[idx] = old
            fd = (up - down) / (2 * eps)
            assert abs(fd - g[idx].item()) < 1e-6 * max(1.0, abs(fd)), (idx, fd, g[idx].item())
            checked += 1
    assert checked == 8


def test_first_order_differs_and_model_unchanged():
    model, inner, outer = toy()
    before = [p.detach().clone() for p in model.parameters()]
    _, full = meta_gradient(model, inner, outer, 0.3, 1)
    _, first = meta_gradient(model, inner, outer, 0.3, 1, first_order=True)
    for p, b in zip(model.parameters(), before):
        assert torch.equal(p, b)
    assert any(not torch.allclose(a, b) for a, b in zip(full, first))
    # first order = the outer gradient evaluated at the adapted weights
    ps = [p.detach().clone().requires_grad_(True) for p in model.parameters()]
    g_in = torch.autograd.grad(inner(model), list(model.parameters()))
    adapted = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    with torch.no_grad():
        for q, p, g in zip(adapted.parameters(), ps, g_in):
            q.copy_(p - 0.3 * g)
    expected = torch.autograd.grad(outer(adapted), list(adapted.parameters()))
    for a, b in zip(first, expected):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("kwargs, message", [
    ({"inner_lr": -1}, "maml.inner_lr must be > 0, got -1.0"),
    ({"gamma": 2}, r"maml.gamma must be in \(0, 1\], got 2.0"),
    ({"hidden": [0]}, "maml.hidden must be a list of positive ints"),
])
def test_bad_hyper_parameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MAML("flash/Autoscaling-v0", **kwargs)


def test_the_api_defaults_are_the_settings_reproduce_runs():
    """``MAML(env)`` is the baseline of the full run (``flash reproduce``), its discount included."""
    assert MAML("flash/Autoscaling-v0").config() == make_maml(load_config(CONFIG_DIR / "autoscaling.yaml")).config()


@pytest.mark.parametrize("hidden", [[], [0], [8, True], [1.5]])
def test_layer_sizes_the_config_refuses_are_refused(hidden):
    with pytest.raises(ValueError, match=r"maml.hidden must be a list of positive ints \(one per hidden layer"):
        MAML("flash/Autoscaling-v0", hidden=hidden)


def test_bad_adaptation_arguments_are_refused():
    maml = MAML("flash/Autoscaling-v0", {"episode_steps": 5}, hidden=[8])
    task = gym.make("flash/Autoscaling-v0").unwrapped.family.test[0]
    for episodes, eval_every, name in ((-1, 1, "episodes"), (2, 0, "eval_every")):
        with pytest.raises(ValueError, match=f"{name} must be a whole number >= "):
            maml.adapt(task, episodes, eval_every=eval_every)


def test_adaptation_steps_by_the_rule_meta_training_used(monkeypatch):
    """One inner step per inner_episodes episodes, as in meta-training; adapt took one per episode whatever the
    setting. The evaluations within a step's episodes see the policy those episodes were sampled with."""
    import flash_rl.maml as maml_module

    task = gym.make("flash/Autoscaling-v0").unwrapped.family.test[0]
    steps: list[int] = []   # the episodes of each step
    loss = maml_module.reinforce_loss

    def counted(policy, batch, gamma):
        steps.append(batch["rewards"].shape[0])
        return loss(policy, batch, gamma)

    monkeypatch.setattr(maml_module, "reinforce_loss", counted)
    for inner_episodes, expected in ((1, [1] * 5), (2, [2, 2, 1])):
        steps.clear()
        maml = MAML("flash/Autoscaling-v0", {"episode_steps": 5}, hidden=[8], inner_episodes=inner_episodes)
        curve = maml.adapt(task, 5)
        assert steps == expected and [e for e, _ in curve] == [0, 1, 2, 3, 4, 5]
        if inner_episodes == 2:   # episode 1 is evaluated before the first step: the meta-learned policy
            assert curve[1][1] == curve[0][1]


def test_adaptation_takes_sgd_steps_of_inner_lr_on_the_reinforce_loss_from_the_meta_learned_weights(monkeypatch):
    """Each step moves a copy of the meta-learned weights by -inner_lr times the REINFORCE gradient of its episodes
    (an adapt that never changed the policy passed every other test); the meta-learned weights stay."""
    import flash_rl.maml as maml_module

    task = gym.make("flash/Autoscaling-v0").unwrapped.family.test[0]
    loss, steps, evaluated = maml_module.reinforce_loss, [], []

    def watched(policy, batch, gamma):
        value = loss(policy, batch, gamma)
        grads = torch.autograd.grad(value, list(policy.parameters()), retain_graph=True)
        steps.append(([p.detach().clone() for p in policy.parameters()], grads))
        return value

    def evaluate(self, policy, task, seed, actions=None):
        evaluated.append([p.detach().clone() for p in policy.parameters()])
        return 0.0

    monkeypatch.setattr(maml_module, "reinforce_loss", watched)
    monkeypatch.setattr(MAML, "evaluate", evaluate)
    maml = MAML("flash/Autoscaling-v0", {"episode_steps": 5}, hidden=[8], inner_lr=0.5)
    meta_learned = [p.detach().clone() for p in maml.policy.parameters()]
    maml.adapt(task, 2)
    assert len(steps) == 2 and len(evaluated) == 3
    for a, b in zip(evaluated[0], meta_learned):
        assert torch.equal(a, b)
    for (before, grads), after, previous in zip(steps, evaluated[1:], evaluated):
        assert any(g.abs().max() > 0 for g in grads)
        for p, g, q, r in zip(before, grads, after, previous):
            assert torch.equal(p, r)
            torch.testing.assert_close(q, p - 0.5 * g)
    for a, b in zip(maml.policy.parameters(), meta_learned):
        assert torch.equal(a, b)


def test_building_maml_seeds_its_policy_but_leaves_the_callers_torch_generator_alone():
    """The same seed gives the same initial weights; the caller's global torch stream goes on as if MAML were not
    built (it used to be reseeded with MAML's seed)."""
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = MAML("flash/Autoscaling-v0", hidden=[8], seed=5)
    assert torch.equal(torch.rand(3), expected)
    second = MAML("flash/Autoscaling-v0", hidden=[8], seed=5)
    for a, b in zip(first.policy.parameters(), second.policy.parameters()):
        assert torch.equal(a, b)
    other = MAML("flash/Autoscaling-v0", hidden=[8], seed=6)
    assert not torch.equal(next(other.policy.parameters()), next(first.policy.parameters()))
