"""The device data path gives the per-batch host path's batches bit for bit: same order, same crops."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunebench.spec import TrainSpec
from prunebench.data import DataSplits, batches
from prunebench.data.augment import random_crop_flip
from prunebench.data.device_batches import device_batches, plan_epoch
from prunebench.data.pixels import Pixels
from prunebench.data.stream import Stream
from prunebench.train import train
from prunebench.train.batches import resolve_data_path


def pixels(n: int, seed: int = 0) -> Pixels:
    images = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    (train_pixels,) = Pixels.standardized_by(images)
    return train_pixels


def host_epoch(x, y, generator, batch_size, steps, augment):  # type: ignore[no-untyped-def]
    """The training loop's per-batch path, written out: the reference."""
    n = x.shape[0]
    order = torch.randperm(n, generator=generator)
    starts = range(0, steps * batch_size, batch_size)
    keys = [order[start : start + batch_size] for start in starts]
    out = []
    for key, (inputs, targets) in zip(keys, batches(x, y, keys)):
        out.append((key, random_crop_flip(inputs, generator) if augment else inputs, targets))
    return out


@pytest.mark.parametrize("as_pixels", [True, False], ids=["uint8-pixels", "float-tensor"])
@pytest.mark.parametrize(("n", "batch_size", "steps"), [(70, 16, 5), (64, 16, 4), (70, 16, 2), (5, 8, 1)])
@pytest.mark.parametrize("augment", [True, False])
def test_the_same_order_and_the_same_augmented_batches_as_the_host_path(
    as_pixels: bool, n: int, batch_size: int, steps: int, augment: bool
) -> None:
    x = pixels(n) if as_pixels else torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.arange(n) % 10
    host_gen, device_gen = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    for _epoch in range(2):  # the second epoch checks that both leave the generator in one state
        reference = host_epoch(x, y, host_gen, batch_size, steps, augment)
        plan = plan_epoch(device_gen, n, batch_size, steps, augment)
        got = list(device_batches(x, y, plan, batch_size, steps))
        assert len(got) == len(reference) == min(steps, -(-n // batch_size))
        seen = torch.cat([key for key, _, _ in reference])
        assert torch.equal(plan.order[: seen.shape[0]], seen)  # identical index order
        for (_, want_x, want_y), (got_x, got_y) in zip(reference, got):
            assert got_x.dtype == torch.float32 and torch.equal(got_x, want_x)  # identical augmented tensors
            assert torch.equal(got_y, want_y)
        if augment:  # the crops really moved pixels: the check is not of unaugmented batches
            assert not torch.equal(got[0][0], x[plan.order[: got[0][0].shape[0]]])
        assert torch.equal(host_gen.get_state(), device_gen.get_state())


def conv_data() -> DataSplits:
    images = torch.randint(0, 256, (120, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    labels = torch.randint(0, 4, (120,), generator=torch.Generator().manual_seed(4))
    train_x, test_x = Pixels.standardized_by(images[:100], images[100:])
    return DataSplits(train_x, labels[:100], train_x.take(torch.arange(10)), labels[:10], test_x, labels[100:], 4)


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 4))


def test_training_on_either_path_gives_the_same_weights_bit_for_bit() -> None:
    data = conv_data()
    spec = TrainSpec(epochs=2, lr=0.05, batch_size=32, augment="crop-flip", max_steps_per_epoch=3)
    host, device = small_cnn(), small_cnn()
    host_log = train(host, data, spec, seed=5, data_path="host")
    device_log = train(device, data, spec, seed=5, data_path="device")
    assert [e.train_loss for e in host_log.epochs] == [e.train_loss for e in device_log.epochs]
    for (name, a), (_, b) in zip(host.state_dict().items(), device.state_dict().items()):
        assert torch.equal(a, b), name
    other = small_cnn()
    train(other, data, spec, seed=6, data_path="device")  # another seed: other batches, other weights
    assert not torch.equal(other[0].weight, device[0].weight)


def test_auto_takes_the_device_path_only_for_in_memory_cuda_data() -> None:
    x = pixels(4)
    assert resolve_data_path(x, "auto") == "host"  # on the CPU
    assert resolve_data_path(torch.zeros(2, 3), "device") == "device"
    assert resolve_data_path(x, "host") == "host"
    stream = Stream.of([torch.zeros(3, 4, 4, dtype=torch.uint8)] * 3)  # type: ignore[arg-type]
    assert resolve_data_path(stream, "auto") == "host"
    with pytest.raises(ValueError, match="data_path: 'device' needs the training data in memory"):
        resolve_data_path(stream, "device")
    with pytest.raises(ValueError, match="data_path: 'gpu' is not one of auto, host, device"):
        resolve_data_path(x, "gpu")  # type: ignore[arg-type]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_the_device_path_gives_the_host_paths_batches() -> None:
    x, y = pixels(70), torch.arange(70) % 10
    reference = host_epoch(x, y, torch.Generator().manual_seed(2), 16, 5, True)
    plan = plan_epoch(torch.Generator().manual_seed(2), 70, 16, 5, True).to("cuda")
    for (_, want_x, want_y), (got_x, got_y) in zip(reference, device_batches(x.to("cuda"), y.to("cuda"), plan, 16, 5)):
        assert got_x.is_cuda and torch.equal(got_x.cpu(), want_x) and torch.equal(got_y.cpu(), want_y)
