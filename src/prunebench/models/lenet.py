"""LeNet-5, Caffe variant (as used by Han et al. 2015 and ShrinkBench's literature table)."""

from __future__ import annotations

from torch import nn

from prunebench.models.base import MODELS, output_size


class LeNet5(nn.Module):
    """conv 20@5x5 -> max-pool 2 -> conv 50@5x5 -> max-pool 2 -> fc 500 -> ReLU -> fc classes.

    Like Caffe's ``lenet_train_test.prototxt``, the convolutions have no nonlinearity of their
    own; the only ReLU follows the 500-unit layer.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(input_shape[0], 20, kernel_size=5),
            nn.MaxPool2d(2),
            nn.Conv2d(20, 50, kernel_size=5),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.fc1 = nn.Linear(output_size(self.features, input_shape), 500)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.fc2(self.relu(self.fc1(self.features(x))))


@MODELS.register("lenet-5")
def lenet5(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    if len(input_shape) != 3:
        raise ValueError(f"lenet-5 needs image inputs (channels, height, width), got {input_shape}")
    return LeNet5(input_shape, num_classes)
