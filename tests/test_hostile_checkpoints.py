"""Hostile and broken model files: always one CheckpointError sentence, never code run, never a hang.

``tests/test_checkpoint.py`` has the basic cases (one pickle payload of each container, one
truncation, one shape and vocabulary mismatch, a newer format, an unknown config key); this file
goes wider: payloads that reach for different callables and pickle protocols, a sweep of
truncation points and byte flips, non-finite weights, every bundle file missing or replaced by
something that is not a file, and configuration and vocabulary files that are wrong in type,
range, size or nesting.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import pickle
import signal
import subprocess
import zipfile
from pathlib import Path

import pytest
import torch

from model.checkpoint import FORMAT_VERSION, load_model, save_bundle, save_training_checkpoint
from model.config import ModelConfig
from model.errors import CheckpointError, ModelNotFoundError
from model.network import Im2LatexModel
from model.vocab import Vocab


def is_sentence(message: str) -> bool:
    return bool(message) and "\n" not in message and message[0].isupper() and message.endswith(".") \
        and "Traceback" not in message and len(message) < 500


@pytest.fixture(autouse=True)
def no_hang():
    """A loader that blocks (a pipe, a device file) fails the test instead of hanging the suite."""
    def alarm(signum, frame):
        raise TimeoutError("the loader hung")
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    vocab = Vocab.build([list("abcdefgh")])
    config = ModelConfig(vocab_size=len(vocab), encoder_stages=1, d_model=32, nhead=4, decoder_layers=1,
                         dim_feedforward=64, dropout=0.0, max_len=24)
    return Im2LatexModel(config).eval(), config, vocab


@pytest.fixture
def bundle(tmp_path, parts):
    return save_bundle(tmp_path / "bundle", *parts, {"note": "ok"})


@pytest.fixture
def training_file(tmp_path, parts):
    return save_training_checkpoint(tmp_path / "train.pt", *parts, step=3)


def refused(target: Path, match: str = "") -> str:
    with pytest.raises(CheckpointError) as info:
        load_model(target)
    message = str(info.value)
    assert is_sentence(message), message
    assert str(target) in message or target.name in message or str(target.parent) in message, message
    if match:
        assert match in message, message
    return message


# ----------------------------------------------------------------------------- code in the pickle


class Payload:
    """Unpickling calls ``func(*args)``: each one would leave ``marker`` behind."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker: Path) -> dict[str, object]:
    shell = f"touch {marker}"
    return {
        "os.system": Payload(os.system, (shell,)),
        "subprocess.call": Payload(subprocess.call, (["touch", str(marker)],)),
        "builtins.exec": Payload(builtins.exec, (f"open({str(marker)!r}, 'w').close()",)),
        "builtins.eval": Payload(builtins.eval, (f"open({str(marker)!r}, 'w')",)),
        "pathlib.touch": Payload(Path.touch, (marker,)),
    }


@pytest.mark.parametrize("name", ["os.system", "subprocess.call", "builtins.exec", "builtins.eval", "pathlib.touch"])
@pytest.mark.parametrize("where", ["top", "meta", "state_dict", "nested"])
def test_payloads_never_run(tmp_path, name, where):
    marker = tmp_path / "payload-ran"
    evil = _payloads(marker)[name]
    payload = {"format": FORMAT_VERSION, "kind": "im2latex-training-checkpoint", "config": {}, "vocab": [],
               "state_dict": {}, "meta": {}}
    if where == "top":
        payload["evil"] = evil
    elif where == "meta":
        payload["meta"] = {"author": evil}
    elif where == "state_dict":
        payload["state_dict"] = {"tok_emb.weight": evil}
    else:
        payload["optimizer"] = {"state": {0: [1, (2, {"x": evil})]}}
    path = tmp_path / "hostile.pt"
    torch.save(payload, path)
    refused(path, "could run")
    assert not marker.exists()


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
def test_bare_pickles_of_every_protocol_are_refused(tmp_path, protocol):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "hostile.pt"
    path.write_bytes(pickle.dumps({"format": 1, "x": _payloads(marker)["os.system"]}, protocol=protocol))
    refused(path)
    assert not marker.exists()


def test_payload_in_a_bundle_reached_through_its_model_pt(bundle, tmp_path):
    marker = tmp_path / "payload-ran"
    torch.save({"format": 1, "kind": "im2latex-bundle-weights",
                "state_dict": {"tok_emb.weight": _payloads(marker)["os.system"]}}, bundle / "model.pt")
    refused(bundle / "model.pt", "could run")
    refused(bundle, "could run")
    assert not marker.exists()


def test_the_payloads_are_real(tmp_path):
    """Without weights_only each payload would have run: the tests above prove something."""
    for name, evil in _payloads(tmp_path / "m").items():
        marker = tmp_path / "m"
        marker.unlink(missing_ok=True)
        pickle.loads(pickle.dumps(evil))
        assert marker.exists(), name


# ----------------------------------------------------------------------------- broken bytes


def test_every_truncation_point_is_refused(training_file, bundle):
    for target, path in ((training_file, training_file), (bundle, bundle / "model.pt")):
        data = path.read_bytes()
        for keep in [0, 1, 2, 10, 100, 512] + [int(len(data) * f / 20) for f in range(1, 20)] + [len(data) - 1]:
            path.write_bytes(data[:keep])
            refused(target)
        path.write_bytes(data)
        load_model(target)


def test_byte_flips_are_refused_or_harmless(training_file):
    """A flipped byte in a zip header or pickle is refused; one inside tensor data may load, but then
    the weights are checked: never an exception other than CheckpointError."""
    data = training_file.read_bytes()
    rng = __import__("random").Random(0)
    outcomes = {"refused": 0, "loaded": 0}
    for trial in range(60):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        training_file.write_bytes(bytes(damaged))
        try:
            loaded = load_model(training_file)
        except CheckpointError as error:
            assert is_sentence(str(error)), str(error)
            outcomes["refused"] += 1
        else:
            assert all(torch.isfinite(t).all() for t in loaded.model.state_dict().values() if t.is_floating_point())
            outcomes["loaded"] += 1
    assert outcomes["refused"] > 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused(training_file, bad):
    payload = torch.load(training_file, weights_only=True)
    payload["state_dict"]["layers.0.ff.0.weight" if "layers.0.ff.0.weight" in payload["state_dict"]
                          else "norm.weight"].view(-1)[3] = bad
    torch.save(payload, training_file)
    refused(training_file, "not finite")


def test_a_zip_that_is_not_a_torch_file(tmp_path):
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "not a model")
    refused(path)


# ----------------------------------------------------------------------------- wrong weights


@pytest.mark.parametrize("change", ["scalar", "transposed", "string", "list", "int-dtype"])
def test_weights_of_the_wrong_kind(training_file, change):
    payload = torch.load(training_file, weights_only=True)
    weights = payload["state_dict"]
    if change == "scalar":
        weights["tok_emb.weight"] = torch.tensor(1.0)
    elif change == "transposed":
        weights["tok_emb.weight"] = weights["tok_emb.weight"].t().contiguous()
    elif change == "string":
        weights["norm.weight"] = "ones"
    elif change == "list":
        payload["state_dict"] = list(weights.values())
    else:
        weights["norm.weight"] = weights["norm.weight"].long()
    torch.save(payload, training_file)
    if change == "int-dtype":  # integer weights of the right shape are converted: harmless
        load_model(training_file)
        return
    refused(training_file)


def test_weights_from_a_bigger_model(tmp_path, parts):
    _, config, vocab = parts
    bigger = ModelConfig(**{**config.to_dict(), "input": config.input, "decoder_layers": 2})
    path = save_training_checkpoint(tmp_path / "big.pt", Im2LatexModel(bigger), bigger, vocab)
    payload = torch.load(path, weights_only=True)
    payload["config"] = config.to_dict()  # claims the small shape, carries the big weights
    torch.save(payload, path)
    refused(path, "do not fit this network")


# ----------------------------------------------------------------------------- vocabularies


@pytest.mark.parametrize("vocab_json", [
    {"format": 1, "tokens": ["a", "b", "<pad>", "<bos>"]},              # specials out of place
    {"format": "2", "tokens": ["<pad>", "<bos>", "<eos>", "<unk>"]},    # a format that is not a number
    {"format": 9, "tokens": ["<pad>", "<bos>", "<eos>", "<unk>"]},      # a newer format
    {"format": 1, "tokens": "abc"},
    {"format": 1},
    ["<pad>", "<bos>", "<eos>", "<unk>", "a"],
    42,
])
def test_broken_vocabulary_files(bundle, vocab_json):
    (bundle / "vocab.json").write_text(json.dumps(vocab_json))
    refused(bundle, "vocab")


def test_vocabulary_with_duplicate_tokens(bundle, parts):
    _, _, vocab = parts
    tokens = list(vocab.tokens)
    tokens[-1] = tokens[-2]  # same size, so only the duplicate gives it away
    (bundle / "vocab.json").write_text(json.dumps({"format": 1, "tokens": tokens}))
    refused(bundle, "twice")


def test_vocabulary_of_another_model_with_the_same_size(bundle, parts):
    """Same size, other tokens: the weights cannot tell, but the meta records which vocabulary it was."""
    _, _, vocab = parts
    other = Vocab(vocab.tokens[:4] + [t.upper() for t in vocab.tokens[4:]])
    other.save(bundle / "vocab.json")
    loaded = load_model(bundle)  # loads: a vocabulary's tokens are not bound to the weights
    assert loaded.vocab.tokens == other.tokens


# ----------------------------------------------------------------------------- configurations


@pytest.mark.parametrize("change", [
    {"nhead": 0}, {"nhead": -4}, {"d_model": "32"}, {"d_model": 32.5}, {"encoder_stages": "2"},
    {"decoder_layers": -1}, {"max_len": 10**12}, {"max_len": 0}, {"dropout": "high"}, {"dropout": 7},
    {"vocab_size": None}, {"input": {"glyph_height": 12.0, "wings": 2}}, {"input": [1, 2]},
    {"input": {"grid": 0}}, {"input": {"max_width": -5}}, {"input": {"glyph_height": "big"}},
])
def test_invalid_configurations(bundle, change):
    data = json.loads((bundle / "config.json").read_text())
    data.update(change)
    (bundle / "config.json").write_text(json.dumps(data))
    refused(bundle)


@pytest.mark.parametrize("name", ["config.json", "vocab.json", "meta.json"])
def test_absurdly_nested_or_huge_json(bundle, name):
    (bundle / name).write_text("[" * 200_000 + "]" * 200_000)
    refused(bundle, name)
    with open(bundle / name, "wb") as f:
        f.truncate(300 * 2**20)  # 300 MiB of zeros: refused by size, not read into memory
    refused(bundle, name)


# ----------------------------------------------------------------------------- the bundle folder


@pytest.mark.parametrize("name", ["model.pt", "config.json", "vocab.json", "meta.json"])
def test_each_missing_bundle_file_is_named(bundle, name):
    (bundle / name).unlink()
    refused(bundle, f"{name} missing")


@pytest.mark.parametrize("name", ["model.pt", "config.json"])
@pytest.mark.parametrize("thing", ["folder", "pipe", "dangling-link", "link-to-dev-zero"])
def test_bundle_files_that_are_not_files(bundle, name, thing):
    path = bundle / name
    path.unlink()
    if thing == "folder":
        path.mkdir()
    elif thing == "pipe":
        os.mkfifo(path)          # opening it would block forever
    elif thing == "dangling-link":
        path.symlink_to(bundle / "nowhere")
    else:
        path.symlink_to("/dev/zero")  # reading it would never end
    refused(bundle, name)


def test_an_empty_folder_is_no_model_not_a_broken_one(tmp_path):
    with pytest.raises(ModelNotFoundError):
        load_model(tmp_path)


def test_a_training_file_path_that_is_a_pipe(tmp_path):
    path = tmp_path / "train.pt"
    os.mkfifo(path)
    with pytest.raises((CheckpointError, ModelNotFoundError)) as info:
        load_model(path)
    assert is_sentence(str(info.value))


def test_the_good_files_still_load(bundle, training_file):
    assert load_model(bundle).meta == {"note": "ok"}
    assert load_model(training_file).state["step"] == 3
    buffer = io.BytesIO()
    torch.save({"a": 1}, buffer)  # sanity: the module under test did not break torch.save
