from .cls_head import ClsHead, MultiLabelClsHead
from .dense_det_head import FCOSHead
from .seg_head import FPNSegHead
from .vqa_head import VQAHead, load_answer_vocab

__all__ = ['ClsHead', 'FCOSHead', 'FPNSegHead', 'MultiLabelClsHead', 'VQAHead', 'load_answer_vocab']
