"""Text encoders built from Hugging Face ``transformers`` models."""
import os.path as osp
from typing import Dict, Optional

import torch

from mmfusion.registry import MODELS

from .base import BaseEncoder, ModalityFeatures, masked_mean


@MODELS.register_module()
class HFTextEncoder(BaseEncoder):
    """A ``transformers`` encoder (BERT, RoBERTa, DistilBERT, ...) over token ids.

    Args:
        config: build from a config with random weights, offline, e.g.
            ``dict(model_type='bert', hidden_size=128, num_hidden_layers=2,
            num_attention_heads=2, intermediate_size=256, vocab_size=1000)``.
        pretrained: or load weights from a local folder (``from_pretrained``
            with ``local_files_only=True``). Exactly one of the two.
        pooling: ``'cls'`` (first token), ``'mean'`` (masked mean), ``'sum'``
            or ``'last'`` (the last real token, CLIP's end-of-text token) for
            the pooled view.
        frozen: keep the weights fixed.

    Input: ``dict(input_ids=(B, L), attention_mask=(B, L))`` from the data
    preprocessor. Output :class:`ModalityFeatures`: tokens (B, L, D), mask
    (B, L) True on real tokens, pooled (B, D); D = ``out_dim`` = hidden size.
    """

    def __init__(self, config: Optional[dict] = None, pretrained: Optional[str] = None,
                 pooling: str = 'cls', frozen: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        from transformers import AutoConfig, AutoModel

        if (config is None) == (pretrained is None):
            raise ValueError('HFTextEncoder needs exactly one of config=dict(model_type=...) '
                             'and pretrained=<local folder>')
        if pooling not in ('cls', 'mean', 'sum', 'last'):
            raise ValueError(f"HFTextEncoder: pooling must be 'cls', 'mean', 'sum' or 'last', "
                             f'got {pooling!r}')
        if pretrained is not None:
            if not osp.isdir(pretrained):
                raise FileNotFoundError(f'HFTextEncoder: pretrained must be a local folder '
                                        f'(mmfusion never downloads), got {pretrained!r}')
            self.model = AutoModel.from_pretrained(pretrained, local_files_only=True)
        else:
            cfg = dict(config)
            model_type = cfg.pop('model_type', None)
            if model_type is None:
                raise ValueError('HFTextEncoder: config needs model_type, e.g. "bert"')
            self.model = AutoModel.from_config(AutoConfig.for_model(model_type, **cfg))
        # The pooled view comes from ``pooling``; a BERT-style pooler head
        # would be parameters that never get a gradient (and break DDP).
        if getattr(self.model, 'pooler', None) is not None:
            self.model.pooler = None
        # transformers initialised (or loaded) the weights; keep MMEngine's
        # init_weights from touching them.
        self.model.is_init = True
        self.pooling = pooling
        self.out_dim = int(self.model.config.hidden_size)
        self.vocab_size = int(self.model.config.vocab_size)
        if frozen:
            self.freeze()

    def forward(self, x: Dict[str, torch.Tensor]) -> ModalityFeatures:
        mask = x['attention_mask']
        tokens = self.model(input_ids=x['input_ids'], attention_mask=mask).last_hidden_state
        mask = mask.bool()
        if self.pooling == 'cls':
            pooled = tokens[:, 0]
        elif self.pooling == 'last':  # the last real token: CLIP's end-of-text token
            pooled = tokens[torch.arange(len(tokens)), mask.sum(dim=1) - 1]
        elif self.pooling == 'mean':
            pooled = masked_mean(tokens, mask)
        else:
            pooled = (tokens * mask.unsqueeze(-1).to(tokens.dtype)).sum(dim=1)
        return ModalityFeatures(pooled=pooled, tokens=tokens, mask=mask)


@MODELS.register_module()
class WordEmbeddingEncoder(BaseEncoder):
    """A bag of learned word embeddings: the classic VQA question baseline.

    The "BoW Q" question model of Antol et al., "VQA: Visual Question
    Answering", ICCV 2015. A transformer trained from scratch on a small
    dataset learns slowly (it first has to learn which token matters);
    summed word embeddings carry every word's identity from the first step,
    which is what a small, fast model on a synthetic dataset needs. For
    pretrained or large-data text models use :class:`HFTextEncoder`.

    Args:
        vocab_size: number of token ids (at least the tokenizer's size).
        embed_dim: size D of each word vector.
        pooling: ``'sum'`` (keeps each word's full weight) or ``'mean'``.
        padding_idx: id of the padding token (its embedding stays zero).

    Input: ``dict(input_ids=(B, L), attention_mask=(B, L))``. Output
    :class:`ModalityFeatures`: tokens (B, L, D), mask (B, L), pooled (B, D).
    """

    def __init__(self, vocab_size: int, embed_dim: int = 128, pooling: str = 'sum',
                 padding_idx: int = 0, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if pooling not in ('sum', 'mean'):
            raise ValueError(f"WordEmbeddingEncoder: pooling must be 'sum' or 'mean', "
                             f'got {pooling!r}')
        self.embedding = torch.nn.Embedding(vocab_size, embed_dim, padding_idx=padding_idx)
        self.pooling = pooling
        self.out_dim = int(embed_dim)
        self.vocab_size = int(vocab_size)

    def forward(self, x: Dict[str, torch.Tensor]) -> ModalityFeatures:
        mask = x['attention_mask'].bool()
        tokens = self.embedding(x['input_ids'])
        if self.pooling == 'mean':
            pooled = masked_mean(tokens, mask)
        else:
            pooled = (tokens * mask.unsqueeze(-1).to(tokens.dtype)).sum(dim=1)
        return ModalityFeatures(pooled=pooled, tokens=tokens, mask=mask)


@MODELS.register_module()
class TextCNNEncoder(BaseEncoder):
    """Word embeddings followed by an n-gram convolution.

    Kim, "Convolutional Neural Networks for Sentence Classification", EMNLP
    2014. Each output token sees its ``kernel_size`` neighbours, so short
    phrases such as "two red circles" become single features (a bag of words
    cannot tell "two red circles and a blue circle" from "a red circle and
    two blue circles"), while the model stays as quick to train as
    :class:`WordEmbeddingEncoder`.

    Args:
        vocab_size: number of token ids (at least the tokenizer's size).
        embed_dim: size of the word vectors.
        out_dim: number of convolution channels D (the token size).
        kernel_size: odd n-gram width.
        pooling: ``'sum'`` (counts repeated phrases), ``'mean'`` or ``'max'``.
        padding_idx: id of the padding token.

    Input: ``dict(input_ids=(B, L), attention_mask=(B, L))``. Output
    :class:`ModalityFeatures`: tokens (B, L, D) (zero at padding), mask
    (B, L), pooled (B, D).
    """

    def __init__(self, vocab_size: int, embed_dim: int = 128, out_dim: int = 256,
                 kernel_size: int = 3, pooling: str = 'sum', padding_idx: int = 0,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if pooling not in ('sum', 'mean', 'max'):
            raise ValueError(f"TextCNNEncoder: pooling must be 'sum', 'mean' or 'max', "
                             f'got {pooling!r}')
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'TextCNNEncoder: kernel_size must be odd and >= 1, '
                             f'got {kernel_size}')
        self.embedding = torch.nn.Embedding(vocab_size, embed_dim, padding_idx=padding_idx)
        self.conv = torch.nn.Conv1d(embed_dim, out_dim, kernel_size, padding=kernel_size // 2)
        self.pooling = pooling
        self.out_dim = int(out_dim)
        self.vocab_size = int(vocab_size)

    def forward(self, x: Dict[str, torch.Tensor]) -> ModalityFeatures:
        mask = x['attention_mask'].bool()
        keep = mask.unsqueeze(-1)
        # padding embeddings are zero (padding_idx), so n-grams at the edges
        # see zeros beyond the sentence
        words = self.embedding(x['input_ids']).masked_fill(~keep, 0.0)
        tokens = torch.relu(self.conv(words.transpose(1, 2))).transpose(1, 2)
        tokens = tokens.masked_fill(~keep, 0.0)
        if self.pooling == 'mean':
            pooled = masked_mean(tokens, mask)
        elif self.pooling == 'max':
            pooled = tokens.amax(dim=1)  # ReLU outputs are >= 0, so zeroed padding never wins
        else:
            pooled = tokens.sum(dim=1)
        return ModalityFeatures(pooled=pooled, tokens=tokens, mask=mask)
