"""Building the VQA model from its config, forward modes, and build-time checks."""
import copy

import pytest
import torch
from conftest import REPO_ROOT, point_datasets_at
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from mmfusion.apis import resolve_vocabularies
from mmfusion.errors import ConfigError
from mmfusion.registry import DATASETS, MODELS
from mmfusion.utils import register_all_modules

register_all_modules()


@pytest.fixture(scope='module')
def cfg(mmshapes_root):
    cfg = Config.fromfile(f'{REPO_ROOT}/configs/vqa/mmshapes_vqa.py')
    point_datasets_at(cfg, mmshapes_root)
    resolve_vocabularies(cfg)  # the word and answer lists, from the training set
    return cfg


@pytest.fixture(scope='module')
def batch(cfg):
    ds = DATASETS.build(cfg.train_dataloader.dataset)
    return pseudo_collate([ds[i] for i in range(4)])


def test_forward_modes(cfg, batch):
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    data = model.data_preprocessor(batch, True)
    assert data['inputs']['image'].shape == (4, 3, 64, 64)
    assert data['inputs']['text']['input_ids'].shape[0] == 4
    losses = model(**data, mode='loss')
    assert losses['loss'].ndim == 0 and losses['loss'] > 0
    logits = model(**data, mode='tensor')
    assert logits.shape == (4, len(model.head.answers))
    preds = model(**data, mode='predict')
    assert all(p.pred_answer in model.head.answers for p in preds)
    assert preds[0].pred_score.shape == (len(model.head.answers),)
    # the config trains a softmax over answers, so scores are a distribution
    assert float(preds[0].pred_score.sum()) == pytest.approx(1.0, abs=1e-5)


def test_soft_targets_follow_vqa_accuracy(cfg):
    from mmfusion.structures import MultiModalDataSample

    head = MODELS.build(dict(type='VQAHead', in_dim=8, answer_vocab=['red', 'blue', '2']))
    sample = MultiModalDataSample()
    sample.gt_answers = ['red'] * 2 + ['Red.'] + ['blue'] * 6 + ['two']
    targets = head.soft_targets([sample], torch.device('cpu'))
    # 3 annotators said red (0.9), 6 blue (1.0), 1 said two -> '2' (0.3)
    assert targets[0].tolist() == pytest.approx([0.9, 1.0, 0.3])


def test_sizes_are_filled_in_and_mismatches_caught_at_build(cfg):
    model = MODELS.build(cfg.model)
    assert model.fusion.in_dims == {'image': model.encoders['image'].out_dim,
                                    'text': model.encoders['text'].out_dim}
    bad = copy.deepcopy(cfg.model)
    bad.fusion.in_dims = dict(image=7, text=128)
    with pytest.raises(ValueError, match=r"in_dims\['image'\]=7 but the image encoder outputs"):
        MODELS.build(bad)
    bad = copy.deepcopy(cfg.model)
    bad.encoders.text.vocab_size = 8
    with pytest.raises(ValueError, match='tokenizer has .* tokens but model.encoders.text'):
        MODELS.build(bad)


def test_missing_or_unconsumed_modality_is_a_clear_error(cfg, batch):
    model = MODELS.build(cfg.model)
    data = model.data_preprocessor(batch, False)
    del data['inputs']['image']
    with pytest.raises(ConfigError, match=r"missing: \['image'\]"):
        model(**data, mode='loss')


def test_state_dict_carries_vocabularies(cfg):
    model = MODELS.build(cfg.model)
    state = model.state_dict()
    from mmfusion.utils import decode_extra_state
    assert decode_extra_state(state['head._extra_state'])['answers'] == model.head.answers
    assert isinstance(state['data_preprocessor._extra_state'], torch.Tensor)  # broadcastable
    other = MODELS.build(cfg.model)
    other.head.answers = list(reversed(other.head.answers))
    other.load_state_dict(state)
    assert other.head.answers == model.head.answers
    assert other.head.answer_to_idx == model.head.answer_to_idx
    vocab = model.data_preprocessor.tokenizers['text'].get_vocab()
    assert other.data_preprocessor.tokenizers['text'].get_vocab() == vocab


def test_model_fits_a_small_batch(cfg):
    """With a fixed seed, 60 steps on 32 questions take training accuracy from
    chance to near perfect: every part of the model learns together."""
    from mmfusion.evaluation.functional import vqa_accuracy

    torch.manual_seed(0)
    ds = DATASETS.build(cfg.train_dataloader.dataset)
    model = MODELS.build(cfg.model)
    data = model.data_preprocessor(pseudo_collate([ds[i] for i in range(32)]), True)

    def accuracy():
        model.eval()
        with torch.no_grad():
            preds = model(**data, mode='predict')
        model.train()
        return sum(vqa_accuracy(p.pred_answer, p.gt_answers) for p in preds) / len(preds)

    before = accuracy()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for _ in range(60):
        loss = model(**data, mode='loss')['loss']
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = accuracy()
    assert before < 0.5
    assert after > before + 0.4 and after > 0.85
