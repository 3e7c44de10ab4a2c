"""Check at start-up that the model's vocabularies fit the training data."""
from typing import List, Sequence

from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmfusion.errors import ConfigError
from mmfusion.registry import HOOKS


@HOOKS.register_module()
class VocabularyCheckHook(Hook):
    """Stop before training when a vocabulary does not match the training set.

    A vocabulary given as a fixed list or file (or inherited from another
    dataset) silently turns most targets into "no class" or most words into
    ``[UNK]`` when it belongs to other data. Before the first iteration this
    hook measures, on up to ``max_samples`` training samples spread evenly
    over the set:

    * answer coverage: the share of samples with at least one annotator
      answer in a VQA head's vocabulary (``module.answers``);
    * unknown-word rate: the share of words that a tokenizer maps to its
      unknown token (tokenizers of ``data_preprocessor.tokenizers``);
    * class count: a head's ``num_classes`` against the dataset metainfo's
      ``classes``, as mmpretrain's ``ClassNumCheckHook`` does.

    Args:
        min_answer_coverage: fail below this coverage.
        max_unknown_rate: fail above this unknown-word rate.
        max_samples: how many samples to look at (the check reads annotations
            only, no images).
    """
    priority = 'LOW'

    def __init__(self, min_answer_coverage: float = 0.5, max_unknown_rate: float = 0.5,
                 max_samples: int = 5000) -> None:
        self.min_answer_coverage = min_answer_coverage
        self.max_unknown_rate = max_unknown_rate
        self.max_samples = max_samples

    def before_train(self, runner) -> None:
        dataset = runner.train_dataloader.dataset
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        step = max(1, len(dataset) // self.max_samples)
        infos = [dataset.get_data_info(i) for i in range(0, len(dataset), step)]
        name = type(dataset).__name__
        for module_name, module in model.named_modules():
            answers = getattr(module, 'answers', None)
            # a multi-task mixture holds samples of other tasks too: only those with
            # answers tell whether the answer list fits
            answered = [info for info in infos if 'gt_answers' in info]
            if isinstance(answers, list) and answers and answered:
                self._check_answers(f'model.{module_name}', answers, answered, name)
            num_classes = getattr(module, 'num_classes', None)
            classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
            if (module_name == 'head' and isinstance(num_classes, int) and classes
                    and getattr(module, 'checks_class_count', True)):
                self._check_classes(num_classes, classes, name)
        tokenizers = getattr(model.data_preprocessor, 'tokenizers', {}) or {}
        for modality, tokenizer in tokenizers.items():
            texts = self._texts(runner, modality, infos)
            if texts:
                self._check_words(modality, tokenizer, texts, name)

    def _check_answers(self, where: str, answers: List[str], infos: Sequence[dict],
                       dataset: str) -> None:
        from mmfusion.evaluation.functional import normalize_answer

        vocab = set(answers)
        covered = sum(any(normalize_answer(a) in vocab for a in info.get('gt_answers') or ())
                      for info in infos)
        coverage = covered / len(infos)
        print_log(f'{where}: {len(answers)} answers cover {coverage:.1%} of the {dataset} '
                  'training samples', logger='current')
        if coverage < self.min_answer_coverage:
            raise ConfigError(
                f'{where}.answer_vocab does not match the training data: only {coverage:.1%} '
                f'of {len(infos)} {dataset} samples have an answer in its {len(answers)} '
                f'answers (first: {answers[:5]}). Leave answer_vocab out to build it from the '
                'training set, or lower VocabularyCheckHook.min_answer_coverage')

    def _check_classes(self, num_classes: int, classes: Sequence[str], dataset: str) -> None:
        if num_classes != len(classes):
            raise ConfigError(f'model.head.num_classes={num_classes} but the {dataset} '
                              f'training set has {len(classes)} classes ({list(classes)[:8]}'
                              f'{" ..." if len(classes) > 8 else ""})')

    @staticmethod
    def _texts(runner, modality: str, infos: Sequence[dict]) -> List[str]:
        pipeline = runner.cfg.get('train_dataloader', {}).get('dataset', {}).get('pipeline', [])
        key = modality
        for step in pipeline or []:
            if isinstance(step, dict) and step.get('type') == 'PackMultiModalInputs':
                key = (step.get('inputs') or {}).get(modality, modality)
        return [info[key] for info in infos if isinstance(info.get(key), str)]

    def _check_words(self, modality: str, tokenizer, texts: List[str], dataset: str) -> None:
        unk = tokenizer.unk_token_id
        if unk is None:  # byte-level and similar tokenizers have no unknown token
            return
        specials = set(tokenizer.all_special_ids)
        ids = [i for row in tokenizer(texts)['input_ids'] for i in row if i not in specials
               or i == unk]
        rate = sum(i == unk for i in ids) / max(len(ids), 1)
        print_log(f'the {modality} tokenizer maps {rate:.1%} of the {dataset} training words '
                  'to its unknown token', logger='current')
        if rate > self.max_unknown_rate:
            raise ConfigError(
                f'the {modality} tokenizer does not match the training data: {rate:.1%} of the '
                f'words of {len(texts)} {dataset} samples are unknown to it. Leave its vocab '
                'out to learn the words from the training set, or raise '
                'VocabularyCheckHook.max_unknown_rate')
