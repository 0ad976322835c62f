"""xai_lab.models.cache: keys, atomic saves with a checksum, and damaged or foreign files that
are reported (path and reason) and rebuilt instead of raising."""
import warnings

import pytest
import torch
from torch import nn

from xai_lab.models import cache
from xai_lab.models.cache import CacheWarning


def test_key_depends_on_the_payload_only():
    assert cache.key({"a": 1, "b": [1, 2]}) == cache.key({"b": [1, 2], "a": 1})
    assert cache.key({"a": 1}) != cache.key({"a": 2})
    assert len(cache.key({})) == 16


def test_models_dir(tmp_path):
    assert cache.models_dir(tmp_path) == tmp_path
    assert cache.models_dir().name == "models"


def test_save_is_whole_and_checked(tmp_path):
    path = tmp_path / "sub" / "thing.pt"
    cache.save({"x": torch.arange(3)}, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["thing.pt", "thing.pt.sha256"]   # no temporary left
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(cache.load(path)["x"], torch.arange(3))
    assert cache.load(tmp_path / "absent.pt") is None


@pytest.mark.parametrize("damage", ["truncated", "empty", "overwritten"])
def test_damaged_files_are_reported(tmp_path, damage):
    path = cache.save({"x": torch.zeros(1000)}, tmp_path / "thing.pt")
    whole = path.read_bytes()
    path.write_bytes({"truncated": whole[:100], "empty": b"", "overwritten": whole[:-4] + b"abcd"}[damage])
    with pytest.warns(CacheWarning, match="thing.pt.*sha256") as caught:
        assert cache.load(path) is None
    assert str(path) in str(caught[0].message)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 half a zip", b"not a torch file at all"])
def test_unreadable_files_without_checksum_are_reported(tmp_path, content):
    path = tmp_path / "old.pt"
    path.write_bytes(content)
    with pytest.warns(CacheWarning, match="torch.load failed") as caught:
        assert cache.load(path) is None
    message = str(caught[0].message)
    assert str(path) in message and "Traceback" not in message and len(message) < 600


def test_state_dict_mismatch_names_the_first_keys():
    model = nn.Sequential(*[nn.Linear(2, 2) for _ in range(10)])
    assert cache.state_dict_mismatch(model, model.state_dict()) is None
    state = {f"other.{i}": torch.zeros(1) for i in range(30)}
    message = cache.state_dict_mismatch(model, state)
    assert message.startswith("20 missing: 0.weight, 0.bias, 1.weight, 1.bias, 2.weight and 15 more")
    assert "30 unexpected: other.0, other.1, other.2, other.3, other.4 and 25 more" in message
    shapes = {**model.state_dict(), "0.weight": torch.zeros(3, 2)}
    assert cache.state_dict_mismatch(model, shapes) == "1 wrong shape: 0.weight [3, 2] instead of [2, 2]"
    assert cache.state_dict_mismatch(model, [1, 2]) == "expected a state dict, found list"


def test_fit_or_load(tmp_path):
    trained = []

    def train():
        trained.append(1)
        torch.manual_seed(len(trained))
        return nn.Linear(3, 2).eval(), {"step": len(trained)}

    path = tmp_path / "m.pt"
    model, info = cache.fit_or_load(path, lambda: nn.Linear(3, 2), train)
    assert info == {"step": 1, "cached": False, "path": str(path)}
    again, info = cache.fit_or_load(path, lambda: nn.Linear(3, 2), train)
    assert info["cached"] and info["step"] == 1 and torch.equal(again.weight, model.weight) and not again.training
    with pytest.warns(CacheWarning, match="wrong shape: weight"):                         # a foreign model
        _, info = cache.fit_or_load(path, lambda: nn.Linear(4, 2), train)
    assert not info["cached"] and info["step"] == 2
    cache.save([1, 2, 3], path)                                                           # not a cached model
    with pytest.warns(CacheWarning, match="no state_dict"):
        _, info = cache.fit_or_load(path, lambda: nn.Linear(4, 2), train)
    _, info = cache.fit_or_load(path, lambda: nn.Linear(4, 2), train, force=True)
    assert len(trained) == 4 and not info["cached"]
