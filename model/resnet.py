"""ResNet-18 as torchvision builds it (``torchvision.models.resnet18(weights=None)``), without torchvision.

Importing torchvision costs the app about 3 s and 210 MB of resident memory (it pulls in
``torch._dynamo``) for nothing but these few modules.  This copy keeps torchvision's module
names, shapes and construction order, so that

* checkpoints saved while the encoder came from torchvision load unchanged (``strict=True``);
* a given ``torch.manual_seed`` gives the very same initial weights: the modules are created,
  and then initialized (Kaiming normal for convolutions, ones/zeros for batch norms), in
  torchvision's order, including the unused ``fc`` layer, whose random draws come in between.

Only what the encoder uses is here: ``BasicBlock`` and ``ResNet18`` (no average pooling, no
forward; the encoder runs the blocks itself, see ``model.network.Encoder``).
"""

from __future__ import annotations

import torch.nn as nn


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a shortcut (``downsample`` when the shape changes)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride


def _layer(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    downsample = None
    if stride != 1 or inplanes != planes:  # created before its block, as torchvision does
        downsample = nn.Sequential(conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes))
    return nn.Sequential(BasicBlock(inplanes, planes, stride, downsample),
                         *(BasicBlock(planes, planes) for _ in range(1, blocks)))


class ResNet18(nn.Module):
    """The modules of torchvision's ``resnet18(weights=None)``: conv1 (3 channels), bn1, relu,
    maxpool, layer1-layer4, fc; initialized as torchvision initializes them."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = _layer(64, 64, 2, stride=1)
        self.layer2 = _layer(64, 128, 2, stride=2)
        self.layer3 = _layer(128, 256, 2, stride=2)
        self.layer4 = _layer(256, 512, 2, stride=2)
        self.fc = nn.Linear(512, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
