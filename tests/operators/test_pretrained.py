"""operators.load_pretrained: a shipped checkpoint with its model card; format, shapes and
checksum checked with clear errors (tested with a checkpoint made here)."""
from __future__ import annotations

import json

import pytest
import torch
from operators_tiny import tiny_checkpoint_dict, use_tiny_models

import operators
from operators.checkpoint import atomic_save, sha256_file
from operators.pretrained import PretrainedError, available_pretrained, write_card


@pytest.fixture(autouse=True)
def _tiny(monkeypatch):
    use_tiny_models(monkeypatch)


@pytest.fixture
def shipped(tmp_path):
    ck = tiny_checkpoint_dict(in_steps=2, width=3)
    # training state is dropped from the shipped copy: the optimiser's, and with --ema the
    # optimiser's own weights next to the average that state_dict holds
    raw = {k: v + 1.0 if v.is_floating_point() else v for k, v in ck["state_dict"].items()}
    ck.update(optimizer={"state": {}}, epoch=3, raw_state_dict=raw, ema_state={"n_averaged": torch.tensor(5)})
    atomic_save(ck, tmp_path / "best.pt")
    d = tmp_path / "pretrained"
    write_card(tmp_path / "best.pt", d, "tiny-cpu", data_command="datagen generate channel --preset small",
               training_command="operators train --model tiny", training_time_s=12.5,
               metrics={"test_one_step_rel_l2": 0.1})
    return d, ck


def test_round_trip_gives_the_weights_and_the_card(shipped):
    d, ck = shipped
    model = operators.load_pretrained("tiny-cpu", directory=d)
    for k, v in ck["state_dict"].items():
        assert torch.equal(model.state_dict()[k], v)
    card = model.card
    assert card["parameters"] == sum(p.numel() for p in model.parameters())
    assert card["sha256"] == sha256_file(d / "tiny-cpu.pt")
    assert card["training_command"].startswith("operators train") and card["metrics"]["test_one_step_rel_l2"] == 0.1
    assert model.checkpoint_meta["in_steps"] == 2 and not model.training
    saved = torch.load(d / "tiny-cpu.pt", weights_only=True)
    assert not {"optimizer", "raw_state_dict", "ema_state"} & set(saved)
    assert available_pretrained(d) == ["tiny-cpu"]


def test_unknown_name_lists_the_known_ones(shipped):
    d, _ = shipped
    with pytest.raises(PretrainedError, match="known: tiny-cpu"):
        operators.load_pretrained("nosuch", directory=d)


def test_a_damaged_file_fails_its_checksum(shipped):
    d, _ = shipped
    data = bytearray((d / "tiny-cpu.pt").read_bytes())
    data[-20] ^= 0xFF
    (d / "tiny-cpu.pt").write_bytes(bytes(data))
    with pytest.raises(PretrainedError, match="fails its checksum"):
        operators.load_pretrained("tiny-cpu", directory=d)


def _edit_card(d, **kw):
    card = json.loads((d / "tiny-cpu.json").read_text())
    card.update(kw)
    for k in [k for k, v in kw.items() if v is None]:
        del card[k]
    (d / "tiny-cpu.json").write_text(json.dumps(card))


def test_card_and_checkpoint_must_agree(shipped):
    d, ck = shipped
    _edit_card(d, parameters=5)
    with pytest.raises(PretrainedError, match="parameters, its card says 5"):
        operators.load_pretrained("tiny-cpu", directory=d)
    _edit_card(d, training_command=None)
    with pytest.raises(PretrainedError, match="lacks training_command"):
        operators.load_pretrained("tiny-cpu", directory=d)
    (d / "tiny-cpu.json").write_text("{not json")
    with pytest.raises(PretrainedError, match="not valid JSON"):
        operators.load_pretrained("tiny-cpu", directory=d)


def test_wrong_shapes_and_format_are_refused(shipped):
    from operators.checkpoint import CheckpointError

    d, ck = shipped
    bad = dict(ck, model_config=dict(ck["model_config"], width=4))  # weights of width 3, config says 4
    atomic_save(bad, d / "tiny-cpu.pt")
    _edit_card(d, sha256=sha256_file(d / "tiny-cpu.pt"))
    with pytest.raises(CheckpointError, match="do not fit"):
        operators.load_pretrained("tiny-cpu", directory=d)
    atomic_save(dict(ck, format="other"), d / "tiny-cpu.pt")
    _edit_card(d, sha256=sha256_file(d / "tiny-cpu.pt"))
    with pytest.raises(CheckpointError, match="not an operators checkpoint"):
        operators.load_pretrained("tiny-cpu", directory=d)


@pytest.mark.parametrize("name, project", [("ifactformer-m-cpu", False), ("ifactformer-m-cpu-project", True)])
def test_shipped_ifactformer_m_cpu_loads_and_predicts_on_its_grid(name, project):
    """The shipped CPU-recipe checkpoints pass every check of load_pretrained (card, sha256,
    shapes, parameter count) and map a velocity field on their grid to one of the same shape; the
    card says whether the model was trained and is rolled out with the divergence-free projection."""
    import json

    import torch

    from operators.pretrained import PRETRAINED_DIR, available_pretrained, load_pretrained

    assert name in available_pretrained()
    card = json.loads((PRETRAINED_DIR / f"{name}.json").read_text())
    assert card["project"] is project
    model = load_pretrained(name)
    assert sum(p.numel() for p in model.parameters()) == card["parameters"] == 173_019
    nx, ny, nz = card["grid"]
    torch.manual_seed(0)
    x = torch.randn(1, model.in_steps, 3, nx, ny, nz)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (1, 3, nx, ny, nz) and torch.isfinite(y).all()
