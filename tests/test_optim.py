"""vlmid.optim: the one optimiser step gives, bit for bit, what each training loop's own copy gave."""
import pytest
import torch

from vlmid.optim import optimizer_step


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.GELU(), torch.nn.Linear(8, 3))


def _batches(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(5, 6, generator=g), torch.randn(5, 3, generator=g) * 10) for _ in range(n)]


def _loss(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def _by_hand(model, opt, sched, batches, clip, observe=None):
    """The step as the loops wrote it inline before: zero_grad, backward, [observe], [clip], step, [schedule]."""
    params = [p for g in opt.param_groups for p in g["params"]]
    for b in batches:
        loss = _loss(model, b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if observe:
            observe()
        if clip:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        if sched is not None:
            sched.step()


def _shared(model, opt, sched, batches, clip, observe=None):
    for b in batches:
        optimizer_step(_loss(model, b), opt, sched, clip_norm=clip, after_backward=observe)


def _groups(model):
    """Two parameter groups at different rates, as the tiny models' trainer builds them."""
    first, rest = list(model[0].parameters()), list(model[2].parameters())
    return [{"params": first, "lr": 0.5e-2}, {"params": rest, "lr": 1e-2}]


SETUPS = {
    # the tiny models' build: AdamW over two groups, LambdaLR, clip 1
    "build": lambda m: (lambda o: (o, torch.optim.lr_scheduler.LambdaLR(o, lambda s: 1 / (1 + s)), 1.0))(
        torch.optim.AdamW(_groups(m), lr=1e-2, weight_decay=0.05)),
    # the layer-drop heal: AdamW, cosine annealing, clip 1
    "layer drop": lambda m: (lambda o: (o, torch.optim.lr_scheduler.CosineAnnealingLR(o, 6), 1.0))(
        torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=5e-4, weight_decay=0.01)),
    # the prune-fine-tune runs: AdamW, constant rate, clip (here 0.5), no schedule
    "pruning": lambda m: (torch.optim.AdamW(list(m.parameters()), lr=1e-3, weight_decay=0.01), None, 0.5),
    # notebook 04's models: Adam, nothing else
    "retrieval": lambda m: (torch.optim.Adam(m.parameters(), lr=1e-3), None, None),
}


@pytest.mark.parametrize("name", sorted(SETUPS))
def test_the_shared_step_equals_each_loops_own_copy_bit_for_bit(name):
    batches = _batches(6)
    runs = []
    for step in (_by_hand, _shared):
        model = _model()
        opt, sched, clip = SETUPS[name](model)
        seen = []
        step(model, opt, sched, batches, clip, observe=lambda: seen.append(float(model[0].weight.grad.norm())))
        runs.append(([p.detach().clone() for p in model.parameters()], seen))
    (by_hand, seen_a), (shared, seen_b) = runs
    assert all(torch.equal(a, b) for a, b in zip(by_hand, shared))
    assert seen_a == seen_b and len(seen_a) == 6          # the gradients seen before clipping
    assert not torch.equal(by_hand[0], _model()[0].weight)  # the weights did move


def test_clipping_reads_the_gradients_after_the_observer_and_caps_their_norm():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # no movement: the gradients stay to be read
    norms = []
    optimizer_step(_loss(model, _batches(1)[0]), opt, clip_norm=0.25,
                   after_backward=lambda: norms.append(torch.nn.utils.get_total_norm([p.grad for p in model.parameters()])))
    after = torch.nn.utils.get_total_norm([p.grad for p in model.parameters()])
    assert float(norms[0]) > 0.25 and float(after) == pytest.approx(0.25, rel=1e-5)
    optimizer_step(_loss(model, _batches(1)[0]), opt)  # no clip_norm: the gradients as they came
    assert float(torch.nn.utils.get_total_norm([p.grad for p in model.parameters()])) == pytest.approx(float(norms[0]))
