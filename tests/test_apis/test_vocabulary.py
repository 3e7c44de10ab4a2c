"""Vocabularies are data: they follow the training set, come back from checkpoints,
and a vocabulary that does not fit the data stops training at start-up."""
import json
import os.path as osp

import pytest
import torch
from conftest import REPO_ROOT, point_datasets_at, run_tool, small_cfg
from mmengine.config import Config

from mmfusion.apis import find_vocabulary_slots, resolve_vocabularies, use_built_train_set
from mmfusion.errors import ConfigError
from mmfusion.evaluation.functional import build_answer_vocab
from mmfusion.models.data_preprocessors.tokenizers import count_words
from mmfusion.registry import DATASETS, MODELS
from mmfusion.utils import register_all_modules

VQA_CONFIG = osp.join(REPO_ROOT, 'configs/vqa/mmshapes_vqa.py')


def vqa_cfg(mmshapes_root: str) -> Config:
    register_all_modules()
    cfg = Config.fromfile(VQA_CONFIG)
    point_datasets_at(cfg, mmshapes_root)
    return cfg


def samples_of(dataset_cfg: dict) -> list:
    dataset = DATASETS.build(dict(dataset_cfg, pipeline=[]))
    return [dataset.get_data_info(i) for i in range(len(dataset))]


def test_quickstart_leaves_both_vocabularies_to_the_data(mmshapes_root):
    cfg = vqa_cfg(mmshapes_root)
    slots = {slot.kind: slot for slot in find_vocabulary_slots(cfg.model)}
    assert set(slots) == {'words', 'answers'}
    assert slots['answers'].path == 'model.head' and slots['answers'].module == 'head'
    assert slots['words'].modality == 'text'
    assert slots['words'].module == 'data_preprocessor'


def test_vocabularies_follow_the_training_set(mmshapes_root):
    cfg = vqa_cfg(mmshapes_root)
    infos = samples_of(cfg.train_dataloader.dataset)
    train_set = resolve_vocabularies(cfg)

    # the training set itself comes back, to be handed to the runner
    assert len(train_set) == len(infos)
    assert train_set.get_data_info(0)['question_id'] == infos[0]['question_id']
    # answers: every normalised annotator answer of the training split, by count
    assert cfg.model.head.answer_vocab == build_answer_vocab(i['gt_answers'] for i in infos)
    # words: the training questions' words (the field PackMultiModalInputs packs as text)
    tokenizer_cfg = cfg.model.data_preprocessor.text.tokenizer
    assert tokenizer_cfg.vocab == count_words((i['question'] for i in infos), 128)
    assert 'what' in tokenizer_cfg.vocab

    model = MODELS.build(cfg.model)
    assert model.head.answers == cfg.model.head.answer_vocab
    tokenizer = model.data_preprocessor.tokenizers['text']
    assert len(tokenizer) == len(tokenizer_cfg.vocab) + 4
    ids = tokenizer(infos[0]['question'])['input_ids']
    assert tokenizer.unk_token_id not in ids
    # nothing left open: resolving again changes nothing and builds no dataset
    assert resolve_vocabularies(cfg) is None


def write_vqav2_copy(mmshapes_root: str, out_dir: str) -> dict:
    """A user's own VQAv2-format training set: the MMShapes training questions
    with other answers ("colour red" for "red", ...), in the official files."""
    source = DATASETS.build(dict(type='MMShapesVQADataset', data_root=mmshapes_root,
                                 split='train', pipeline=[]))
    questions, annotations = [], []
    for i in range(len(source)):
        info = source.get_data_info(i)
        questions.append(dict(image_id=info['image_id'], question=info['question'],
                              question_id=info['question_id']))
        annotations.append(dict(question_id=info['question_id'],
                                answers=[dict(answer=f'answer {a}') for a in info['gt_answers']]))
    with open(osp.join(out_dir, 'questions.json'), 'w') as f:
        json.dump(dict(questions=questions), f)
    with open(osp.join(out_dir, 'annotations.json'), 'w') as f:
        json.dump(dict(annotations=annotations), f)
    img_dir = osp.dirname(source.get_data_info(0)['img_path'])
    return dict(type='VQAv2Dataset', data_root=out_dir, question_file='questions.json',
                ann_file='annotations.json', data_prefix=dict(img_path=img_dir),
                img_file_template=source.img_file_template)


def test_own_vqav2_data_is_named_once(mmshapes_root, tmp_path):
    """Overriding the training set alone moves both vocabularies with it."""
    cfg = vqa_cfg(mmshapes_root)
    own = write_vqav2_copy(mmshapes_root, str(tmp_path))
    cfg.merge_from_dict({'train_dataloader.dataset': dict(own, _delete_=True,
                         pipeline=cfg.train_dataloader.dataset.pipeline)})
    resolve_vocabularies(cfg)
    answers = cfg.model.head.answer_vocab
    assert answers and all(a.startswith('answer ') for a in answers)


def test_vocabularies_come_back_from_a_checkpoint_without_training_data(mmshapes_root,
                                                                        tmp_path):
    cfg = vqa_cfg(mmshapes_root)
    resolve_vocabularies(cfg)
    model = MODELS.build(cfg.model)
    ckpt = str(tmp_path / 'model.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), ckpt)

    fresh = vqa_cfg(mmshapes_root)
    # no training data at all: the checkpoint alone must do
    fresh.train_dataloader = None
    assert resolve_vocabularies(fresh, checkpoint=ckpt) is None
    assert fresh.model.head.answer_vocab == model.head.answers
    rebuilt = MODELS.build(fresh.model)
    assert (rebuilt.data_preprocessor.tokenizers['text'].get_vocab()
            == model.data_preprocessor.tokenizers['text'].get_vocab())
    rebuilt.load_state_dict(model.state_dict(), strict=True)


def test_an_unresolved_head_says_how_to_resolve_it():
    register_all_modules()
    with pytest.raises(ConfigError, match='resolve_vocabularies'):
        MODELS.build(dict(type='VQAHead', in_dim=8))
    from mmfusion.models.data_preprocessors.tokenizers import WordLevelTokenizer
    with pytest.raises(ConfigError, match='resolve_vocabularies'):
        WordLevelTokenizer(max_vocab_size=16)


def test_hf_tokenizer_refuses_inherited_word_level_arguments(tmp_path):
    from mmfusion.models.data_preprocessors.tokenizers import HFTokenizer
    with pytest.raises(ConfigError, match=r"\['max_vocab_size'\].*_delete_=True"):
        HFTokenizer(str(tmp_path), max_vocab_size=128)


def test_training_reads_the_training_set_once(mmshapes_root, tmp_path, monkeypatch):
    from mmengine.runner import Runner

    from mmfusion.datasets import VQAv2Dataset

    loads = []
    original = VQAv2Dataset.load_data_list

    def counting(self):
        loads.append(osp.basename(self.question_path))
        return original(self)

    monkeypatch.setattr(VQAv2Dataset, 'load_data_list', counting)
    cfg = Config.fromfile(small_cfg('configs/vqa/mmshapes_vqa.py', mmshapes_root,
                                    str(tmp_path), max_epochs=1))
    cfg.work_dir = str(tmp_path)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    train_set = resolve_vocabularies(cfg)
    runner = Runner.from_cfg(cfg)
    use_built_train_set(runner, train_set)
    runner.train()
    # one read of the training questions, shared by the vocabularies and the loader
    assert len(loads) == 1 and 'train' in loads[0], loads
    # MMEngine copies the loader config, dataset object included: a copy, not a re-read
    loader_set = runner.train_dataloader.dataset
    assert type(loader_set) is type(train_set) and len(loader_set) == len(train_set)
    assert loader_set.get_data_info(3) == train_set.get_data_info(3)


def test_a_vocabulary_that_does_not_fit_stops_training(mmshapes_root, tmp_path):
    config = small_cfg('configs/vqa/mmshapes_vqa.py', mmshapes_root, str(tmp_path))
    with pytest.raises(AssertionError) as failure:
        run_tool(['python', 'tools/train.py', config, '--work-dir', str(tmp_path / 'run'),
                  '--cfg-options', 'model.head.answer_vocab=[apple,banana,cherry]'])
    message = str(failure.value)
    assert 'mmfusion: error:' in message and 'answer_vocab does not match' in message
    assert 'Traceback' not in message
    assert not osp.exists(tmp_path / 'run' / 'epoch_1.pth')


def readme_vqav2_config() -> str:
    readme = open(osp.join(REPO_ROOT, 'README.md'), encoding='utf-8').read()
    start = readme.index('```python\n# my_vqav2.py') + len('```python\n')
    return readme[start:readme.index('```', start)]


def test_readme_vqav2_config_trains_on_vqav2_files(mmshapes_root, tmp_path, monkeypatch):
    """The README's own-VQAv2-data config, as written, on files laid out as VQAv2's
    (MMShapes scenes under COCO file names): vocabularies from those files, one step."""
    import os

    from mmengine.dataset import pseudo_collate
    from mmengine.optim import build_optim_wrapper

    root = tmp_path / 'data' / 'vqav2'
    counts = {}
    for split, source_split in (('train2014', 'train'), ('val2014', 'val')):
        source = DATASETS.build(dict(type='MMShapesVQADataset', data_root=mmshapes_root,
                                     split=source_split, pipeline=[]))
        (root / split).mkdir(parents=True)
        questions, annotations = [], []
        for i in range(len(source)):
            info = source.get_data_info(i)
            image = root / split / f'COCO_{split}_{info["image_id"]:012d}.jpg'
            if not image.exists():
                os.symlink(info['img_path'], image)  # a PNG: decoders read the content
            questions.append(dict(image_id=info['image_id'], question=info['question'],
                                  question_id=info['question_id']))
            annotations.append(dict(question_id=info['question_id'],
                                    answers=[dict(answer=a) for a in info['gt_answers']]))
        counts[split] = len(questions)
        kind = 'OpenEnded_mscoco_' + split
        (root / f'v2_{kind}_questions.json').write_text(json.dumps(dict(questions=questions)))
        (root / f'v2_mscoco_{split}_annotations.json').write_text(
            json.dumps(dict(annotations=annotations)))
    config = tmp_path / 'my_vqav2.py'
    config.write_text(readme_vqav2_config())

    register_all_modules()
    monkeypatch.chdir(tmp_path)  # the README's paths are relative: data/vqav2
    cfg = Config.fromfile(str(config))
    train_set = resolve_vocabularies(cfg)
    assert type(train_set).__name__ == 'VQAv2Dataset'
    assert len(train_set) == counts['train2014']
    expected = build_answer_vocab(train_set.get_data_info(i)['gt_answers']
                                  for i in range(len(train_set)))
    assert cfg.model.head.answer_vocab == expected
    model = MODELS.build(cfg.model)
    batch = pseudo_collate([train_set[i] for i in range(2)])
    assert batch['inputs']['image'][0].shape[-2:] == (224, 224)
    losses = model.train_step(batch, build_optim_wrapper(model, cfg.optim_wrapper))
    assert torch.isfinite(losses['loss'])
