from .cls_head import ClsHead, MultiLabelClsHead
from .vqa_head import VQAHead, load_answer_vocab

__all__ = ['ClsHead', 'MultiLabelClsHead', 'VQAHead', 'load_answer_vocab']
