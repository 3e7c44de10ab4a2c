"""The VQAv2-format dataset, the pipeline and the tokenizers."""
import json
import os.path as osp

import pytest
import torch
from conftest import SMALL_MMSHAPES
from mmengine.dataset import pseudo_collate

from mmfusion.datasets import MMShapesVQADataset, VQAv2Dataset, WordLevelTokenizer
from mmfusion.datasets.tokenizers import tokenizer_from_state, tokenizer_state
from mmfusion.errors import AnnotationError
from mmfusion.utils import register_all_modules

register_all_modules()


def test_vqav2_dataset_reads_the_official_format(mmshapes_root):
    ds = VQAv2Dataset(data_root=mmshapes_root,
                      question_file='vqa/v2_OpenEnded_mmshapes_val_questions.json',
                      ann_file='vqa/v2_mmshapes_val_annotations.json',
                      data_prefix=dict(img_path='images/val'),
                      img_file_template='{image_id:06d}.png')
    questions = json.load(open(osp.join(
        mmshapes_root, 'vqa/v2_OpenEnded_mmshapes_val_questions.json')))['questions']
    assert len(ds) == len(questions) == 4 * SMALL_MMSHAPES['num_val']
    info = ds.get_data_info(0)
    assert info['question'] == questions[0]['question']
    assert osp.isfile(info['img_path'])
    assert len(info['gt_answers']) == 10
    assert info['answer_type'] in {'yes/no', 'number', 'other'}


def test_dataset_errors_name_the_file(tmp_path, mmshapes_root):
    with pytest.raises(AnnotationError, match='VQA question file not found'):
        VQAv2Dataset(data_root=str(tmp_path), question_file='missing.json')
    bad = tmp_path / 'q.json'
    bad.write_text('{not json')
    with pytest.raises(AnnotationError, match=r'q\.json is not valid JSON'):
        VQAv2Dataset(data_root=str(tmp_path), question_file='q.json')
    bad.write_text(json.dumps({'questions': [{'image_id': 1, 'question': 'x?'}]}))
    with pytest.raises(AnnotationError,
                       match=r"question #0 \(sample 0\): missing \['question_id'\]"):
        VQAv2Dataset(data_root=str(tmp_path), question_file='q.json')
    with pytest.raises(ValueError, match='split'):
        MMShapesVQADataset(split='test', data_root=mmshapes_root)


def test_pipeline_packs_image_question_and_answers(mmshapes_root):
    ds = MMShapesVQADataset(split='train', data_root=mmshapes_root, mmshapes=SMALL_MMSHAPES,
                            pipeline=[dict(type='LoadImageFromFile'),
                                      dict(type='PackMultiModalInputs',
                                           inputs=dict(image='img', text='question'))])
    item = ds[0]
    assert set(item['inputs']) == {'image', 'text'}
    img = item['inputs']['image']
    assert img.shape == (3, 64, 64) and img.dtype == torch.uint8
    assert item['inputs']['text'] == ds.get_data_info(0)['question']
    assert item['data_samples'].gt_answers == ds.get_data_info(0)['gt_answers']
    batch = pseudo_collate([ds[0], ds[1]])
    assert len(batch['inputs']['image']) == 2 and len(batch['inputs']['text']) == 2


def test_word_tokenizer_is_deterministic_and_round_trips():
    texts = ['What color is the circle?', 'how many squares are there?', 'what shape?']
    a, b = WordLevelTokenizer(texts=texts), WordLevelTokenizer(texts=list(reversed(texts)))
    assert a.get_vocab() == b.get_vocab()
    # most frequent word first after the 4 special tokens, ties alphabetically
    assert a.convert_ids_to_tokens([4, 5]) == ['?', 'what']  # seen 3 and 2 times
    enc = a(['what color is the triangle ?'])['input_ids'][0]
    assert enc[0] == a.cls_token_id and enc[-1] == a.sep_token_id
    assert a.unk_token_id in enc  # 'triangle' was never seen
    restored = tokenizer_from_state(tokenizer_state(a))
    assert restored(texts)['input_ids'] == a(texts)['input_ids']
    assert restored.pad_token_id == a.pad_token_id == 0


def test_word_tokenizer_caps_the_vocabulary_and_reads_its_own_dataset(mmshapes_root):
    """A tokenizer config naming its own dataset is filled from that dataset."""
    from mmengine.config import Config

    from mmfusion.apis import resolve_vocabularies
    from mmfusion.errors import ConfigError
    from mmfusion.registry import TOKENIZERS

    source = dict(type='MMShapesVQADataset', data_root=mmshapes_root, split='train',
                  mmshapes=SMALL_MMSHAPES)

    def tokenizer_cfg(**kwargs) -> Config:
        return Config(dict(model=dict(data_preprocessor=dict(text=dict(tokenizer=dict(
            type='WordLevelTokenizer', dataset=source, **kwargs))))))

    cfg = tokenizer_cfg(text_key='question', max_vocab_size=10)
    assert resolve_vocabularies(cfg) is None  # the training set was not needed
    tok = TOKENIZERS.build(cfg.model.data_preprocessor.text.tokenizer)
    assert len(tok) == 10
    with pytest.raises(ConfigError, match="no 'nope' field"):
        resolve_vocabularies(tokenizer_cfg(text_key='nope'))


def test_hf_tokenizer_loads_a_local_folder_and_never_downloads(tmp_path):
    from mmfusion.datasets import HFTokenizer

    texts = ['what color is the circle?', 'how many squares are there?']
    trained = WordLevelTokenizer(texts=texts)
    trained.save_pretrained(str(tmp_path / 'tok'))
    loaded = HFTokenizer(name_or_path=str(tmp_path / 'tok'))
    assert loaded.is_fast
    assert loaded(texts)['input_ids'] == trained(texts)['input_ids']
    with pytest.raises(FileNotFoundError, match='never downloads'):
        HFTokenizer(name_or_path='bert-base-uncased')
