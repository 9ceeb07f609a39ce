"""The network: size, shapes, padding invariance, the masks, mixed precision and channels_last."""

from __future__ import annotations

import pytest
import torch

from model.batching import pad_batch
from model.config import ModelConfig
from model.network import Im2LatexModel, count_parameters

import numpy as np


def small_config(**overrides) -> ModelConfig:
    values = dict(vocab_size=30, encoder_stages=2, d_model=64, nhead=4, decoder_layers=2,
                  dim_feedforward=128, dropout=0.0, max_len=40)
    values.update(overrides)
    return ModelConfig(**values)


def random_inputs(shapes: list[tuple[int, int]], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.random(shape) > 0.8).astype(np.float32) for shape in shapes]


def test_default_config_has_about_six_to_seven_million_parameters():
    model = Im2LatexModel(ModelConfig(vocab_size=600))
    count = count_parameters(model)
    print(f"default ModelConfig (vocab 600): {count:,} parameters")
    assert 6_000_000 <= count <= 7_000_000


def test_pad_batch_pads_right_and_bottom_with_zeros():
    a, b = np.ones((16, 32), np.float32), np.ones((32, 16), np.float32) * 0.5
    images, sizes = pad_batch([a, b])
    assert images.shape == (2, 1, 32, 32) and images.dtype == torch.float32
    assert sizes.tolist() == [[16, 32], [32, 16]]
    assert images[0, 0, :16].eq(1).all() and images[0, 0, 16:].eq(0).all()
    assert images[1, 0, :, :16].eq(0.5).all() and images[1, 0, :, 16:].eq(0).all()
    with pytest.raises(ValueError):
        pad_batch([])


def test_shapes_and_memory_mask_mark_cells_entirely_in_padding():
    torch.manual_seed(0)
    model = Im2LatexModel(small_config()).eval()  # 2 stages: stride 8
    images, sizes = pad_batch(random_inputs([(32, 64), (16, 24)]))
    memory, pad_mask = model.encode(images, sizes)
    assert memory.shape == (2, 4 * 8, 64) and pad_mask.shape == (2, 32)
    grid = pad_mask.view(2, 4, 8)
    assert not grid[0].any()
    assert not grid[1, :2, :3].any()  # 16x24 pixels cover 2x3 cells
    assert grid[1, 2:].all() and grid[1, :, 3:].all()
    logits = model(images, sizes, torch.randint(4, 30, (2, 7)))
    assert logits.shape == (2, 7, 30)


@pytest.mark.parametrize("stride", [0, 8])
def test_an_image_gives_the_same_output_alone_as_in_a_padded_batch(stride):
    torch.manual_seed(1)
    model = Im2LatexModel(small_config(encoder_stages=3, d_model=96, nhead=4, encoder_stride=stride)).eval()
    with torch.no_grad():  # give BatchNorm non-trivial statistics, so padding would show
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.bias.uniform_(-0.5, 0.5)
    arrays = random_inputs([(64, 192), (32, 80), (48, 32)], seed=3)
    images, sizes = pad_batch(arrays)
    tgt = torch.randint(4, 30, (3, 9))
    with torch.no_grad():
        batched = model(images, sizes, tgt)
        for i, array in enumerate(arrays):
            alone_images, alone_sizes = pad_batch([array])
            alone = model(alone_images, alone_sizes, tgt[i:i + 1])
            torch.testing.assert_close(batched[i], alone[0], atol=1e-4, rtol=1e-4)


def test_a_finer_encoder_stride_keeps_the_weights_and_quadruples_the_cells():
    coarse = Im2LatexModel(small_config(encoder_stages=3)).eval()
    fine = Im2LatexModel(small_config(encoder_stages=3, encoder_stride=8)).eval()
    fine.load_state_dict(coarse.state_dict())  # the same names and shapes: weights carry over
    images, sizes = pad_batch(random_inputs([(32, 64)]))
    with torch.no_grad():
        assert coarse.encode(images, sizes)[0].shape[1] == 2 * 4
        assert fine.encode(images, sizes)[0].shape[1] == 4 * 8
    assert fine.encoder.stride == 8 and coarse.encoder.stride == 16
    for bad in (2, 12, 32):
        with pytest.raises(ValueError, match="encoder_stride"):
            Im2LatexModel(small_config(encoder_stages=3, encoder_stride=bad))


def test_incremental_steps_match_teacher_forcing():
    torch.manual_seed(2)
    model = Im2LatexModel(small_config()).eval()
    images, sizes = pad_batch(random_inputs([(32, 64), (16, 48)]))
    tgt = torch.randint(4, 30, (2, 6))
    with torch.no_grad():
        full = model(images, sizes, tgt)
        memory, pad_mask = model.encode(images, sizes)
        cache = model.start_decoding(memory, pad_mask)
        steps = torch.stack([model.decode_step(tgt[:, t], cache) for t in range(6)], dim=1)
    torch.testing.assert_close(steps, full, atol=1e-4, rtol=1e-4)
    assert cache.layers[0].k.shape[2] == 6  # one cached position per step


def test_trains_under_bfloat16_autocast_with_channels_last_images():
    torch.manual_seed(3)
    model = Im2LatexModel(small_config(dropout=0.1)).train()
    images, sizes = pad_batch(random_inputs([(32, 64), (16, 48)]))
    images = images.to(memory_format=torch.channels_last)
    tgt = torch.randint(4, 30, (2, 8))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(images, sizes, tgt[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, 30), tgt[:, 1:].reshape(-1))
    loss.backward()
    assert torch.isfinite(loss)
    assert model.encoder.conv1.weight.grad is not None and model.tok_emb.weight.grad.abs().sum() > 0
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        model.eval()
        low = model(images, sizes, tgt).float()
    with torch.no_grad():
        high = model(images.contiguous(), sizes, tgt)
    assert (low - high).abs().max() < 0.1


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="vocab_size"):
        Im2LatexModel(ModelConfig())
    with pytest.raises(ValueError, match="encoder_stages"):
        Im2LatexModel(small_config(encoder_stages=5))
    with pytest.raises(ValueError, match="d_model"):
        Im2LatexModel(small_config(d_model=66, nhead=3))


def test_sequences_longer_than_max_len_are_refused():
    model = Im2LatexModel(small_config(max_len=8)).eval()
    images, sizes = pad_batch(random_inputs([(16, 16)]))
    with pytest.raises(ValueError, match="max_len"):
        model(images, sizes, torch.randint(4, 30, (1, 9)))


def test_resnet_trunk_matches_torchvision_names_shapes_and_seeded_weights():
    """model.resnet replaces torchvision's resnet18: same state-dict names and shapes (old
    checkpoints load strictly) and, for a seed, the same initial weights."""
    torchvision_models = pytest.importorskip("torchvision.models")
    from model.resnet import ResNet18

    torch.manual_seed(3)
    theirs = torchvision_models.resnet18(weights=None).state_dict()
    after_theirs = torch.rand(4)
    torch.manual_seed(3)
    ours = ResNet18().state_dict()
    assert torch.equal(torch.rand(4), after_theirs)  # the same random draws were used up
    assert list(ours) == list(theirs)
    for name, tensor in theirs.items():
        assert ours[name].shape == tensor.shape and torch.equal(ours[name], tensor), name


def test_the_recognition_code_does_not_import_torchvision():
    import subprocess
    import sys

    code = ("import sys; import model.inference, model.decoding, model.checkpoint, model.predict; "
            "from model.network import Im2LatexModel; from model.config import ModelConfig; "
            "Im2LatexModel(ModelConfig(vocab_size=30)); print(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('torchvision', 'matplotlib') or m.startswith('torch._dynamo')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
