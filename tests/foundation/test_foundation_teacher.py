import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

from pocketgan.data import heldout_images
from pocketgan.errors import ModelLoadError
from pocketgan.flops import count_macs, count_params
from pocketgan.images import to_nchw
from pocketgan.models import available, build, zoo
from pocketgan.torchload import load_torch_file


@pytest.fixture(scope="module")
def vintage():
    return zoo.load_vintage()


def test_vintage_state_dict_matches_our_definition_exactly():
    state = load_torch_file(zoo.vintage_weights_path())
    model = build("cyclegan-resnet9")
    assert set(state) == set(model.state_dict())
    model.load_state_dict(state, strict=True)


def test_vintage_size_and_macs(vintage):
    assert count_params(vintage) == 11_388_675
    assert count_macs(vintage, 256) == pytest.approx(49.6e9, rel=0.01)


def test_vintage_on_astronaut_is_deterministic_and_changes_the_image(vintage):
    image = dict(heldout_images(256))["astronaut"]
    x = torch.from_numpy(to_nchw([image]))
    with torch.no_grad():
        first, second = vintage(x).numpy(), vintage(x).numpy()
    np.testing.assert_array_equal(first, second)
    psnr = peak_signal_noise_ratio(x.numpy(), first, data_range=2.0)
    assert 18.0 < psnr < 30.0, psnr


def test_missing_vintagify_gives_install_hint(monkeypatch):
    import importlib.metadata

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(ModelLoadError, match="pip install --no-deps vintagify"):
        zoo.vintage_weights_path()


def test_registry_refuses_duplicates():
    from pocketgan.models import register_model

    assert "cyclegan-resnet9" in available()
    with pytest.raises(ValueError, match="already registered"):
        register_model("cyclegan-resnet9")(lambda: None)


def test_checkpoint_with_code_is_refused(tmp_path):
    import os

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "pocketgan-student/1", "payload": Evil()}, path)
    with pytest.raises(ModelLoadError, match="refused"):
        load_torch_file(path)
