"""Deprecated location: tokenizers live in :mod:`mmfusion.models.data_preprocessors.tokenizers`.

They belong to the data preprocessor, which tokenises each batch; this module
keeps ``from mmfusion.datasets.tokenizers import ...`` working for one release.
"""
from mmfusion.models.data_preprocessors.tokenizers import (  # noqa: F401
    SPECIAL_TOKENS,
    HFTokenizer,
    WordLevelTokenizer,
    build_tokenizer,
    tokenizer_from_state,
    tokenizer_state,
)
