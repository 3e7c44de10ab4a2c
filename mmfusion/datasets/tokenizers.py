"""Text tokenizers. Every builder returns a Hugging Face fast tokenizer.

Two sources, one result type, so the rest of the library never cares which:

* ``HFTokenizer``: a pretrained tokenizer from a local folder (never the hub).
* ``WordLevelTokenizer``: a word-level vocabulary trained on a dataset's own
  text, for data without a pretrained vocabulary. Built with the
  ``tokenizers`` library (normaliser, pre-tokeniser, special tokens), with the
  vocabulary ordered deterministically by (-count, word) so the same corpus
  always gives the same ids.

The tokenizer is serialised into checkpoints by the data preprocessor (see
``MultiModalDataPreprocessor.get_extra_state``), so test and inference use
exactly the training vocabulary.
"""
import os.path as osp
from collections import Counter
from typing import Iterable, List, Optional, Union

from mmfusion.registry import DATASETS, TOKENIZERS

SPECIAL_TOKENS = dict(pad_token='[PAD]', unk_token='[UNK]', cls_token='[CLS]',
                      sep_token='[SEP]')


def tokenizer_state(tokenizer) -> dict:
    """Plain-data state of a fast tokenizer (safe to store in a checkpoint)."""
    return dict(backend=tokenizer.backend_tokenizer.to_str(),
                special_tokens={k: str(v) for k, v in tokenizer.special_tokens_map.items()
                                if isinstance(v, str)},
                model_max_length=int(min(tokenizer.model_max_length, 1 << 30)))


def tokenizer_from_state(state: dict):
    """Rebuild the fast tokenizer saved by :func:`tokenizer_state`."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(state['backend']),
                                   model_max_length=state['model_max_length'],
                                   **state['special_tokens'])


@TOKENIZERS.register_module()
def HFTokenizer(name_or_path: str, **kwargs):
    """A pretrained fast tokenizer from a local folder (``AutoTokenizer``)."""
    from transformers import AutoTokenizer

    if not osp.isdir(name_or_path):
        raise FileNotFoundError(
            f'HFTokenizer: {name_or_path!r} is not a local folder. mmfusion never '
            'downloads: pass the folder holding tokenizer.json / vocab.txt.')
    return AutoTokenizer.from_pretrained(name_or_path, local_files_only=True,
                                         use_fast=True, **kwargs)


def _dataset_texts(dataset: dict, text_key: str) -> List[str]:
    """The ``text_key`` field of every sample of a dataset config."""
    ds = DATASETS.build(dict(dataset, pipeline=[], lazy_init=False))
    texts = []
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        if text_key not in info:
            raise KeyError(f'WordLevelTokenizer: samples of {dataset.get("type")} have no '
                           f'{text_key!r} field (fields: {sorted(info)}); set text_key')
        texts.append(info[text_key])
    return texts


@TOKENIZERS.register_module()
def WordLevelTokenizer(texts: Optional[Iterable[str]] = None,
                       dataset: Optional[dict] = None,
                       text_key: str = 'text',
                       max_vocab_size: int = 1000,
                       min_count: int = 1,
                       lowercase: bool = True):
    """Train a word-level fast tokenizer on ``texts`` or on a dataset's text.

    Args:
        texts: the corpus, or None to read it from ``dataset``.
        dataset: a dataset config (e.g. the training set); its samples'
            ``text_key`` field is the corpus.
        max_vocab_size: total size including the 4 special tokens; the text
            encoder's ``vocab_size`` must be at least this.
        min_count: words seen fewer times become ``[UNK]``.

    Returns:
        ``transformers.PreTrainedTokenizerFast`` that adds ``[CLS]`` ... ``[SEP]``.
    """
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    if texts is None:
        if dataset is None:
            raise ValueError('WordLevelTokenizer needs texts=[...] or dataset=dict(...)')
        texts = _dataset_texts(dataset, text_key)
    norm = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
    normalizer = normalizers.Sequence(norm)
    pre_tokenizer = pre_tokenizers.Whitespace()

    counts: Counter = Counter()
    for text in texts:
        normed = normalizer.normalize_str(text)
        counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normed))
    specials = list(SPECIAL_TOKENS.values())
    words = [w for w, c in sorted(counts.items(), key=lambda wc: (-wc[1], wc[0]))
             if c >= min_count and w not in specials]
    vocab = {tok: i for i, tok in enumerate(specials + words[:max_vocab_size - len(specials)])}

    backend = Tokenizer(WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS['unk_token']))
    backend.normalizer = normalizer
    backend.pre_tokenizer = pre_tokenizer
    cls_id, sep_id = vocab['[CLS]'], vocab['[SEP]']
    backend.post_processor = processors.TemplateProcessing(
        single='[CLS] $A [SEP]', pair='[CLS] $A [SEP] $B [SEP]',
        special_tokens=[('[CLS]', cls_id), ('[SEP]', sep_id)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, **SPECIAL_TOKENS)


def build_tokenizer(cfg: Union[dict, object]):
    """Build a tokenizer from a config dict; pass a built tokenizer through."""
    if isinstance(cfg, dict):
        return TOKENIZERS.build(cfg)
    return cfg
